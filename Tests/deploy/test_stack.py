"""The compose stack for real: compose.yaml with the image built from the Dockerfile, run with
rootful podman + podman-compose, reached only through ports published on 127.0.0.1.

Run by scripts/deploy-test.sh (`make deploy-test`), which builds the images first and sets
DEPLOY_TEST_IMAGE; skipped otherwise. Tests run in file order against one stack.
"""

import base64
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)   # the test's own self-signed certificate

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("DEPLOY_TEST_IMAGE")
pytestmark = [pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
              pytest.mark.skipif(not IMAGE, reason="run through scripts/deploy-test.sh (make deploy-test)")]
WORK = Path(os.environ.get("DEPLOY_TEST_WORK", "/var/tmp/onionrp-deploy"))
PROJECT = "onionrp-deploy-test"
FIXTURES = ROOT / "Tests" / "fixtures" / "media"
FIGURES = {}


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qualified(name):
    if name.count("/") >= 2:
        return name
    return ("docker.io/" if "/" in name else "docker.io/library/") + name


class Stack:
    def __init__(self):
        self.dir = WORK / "stack"
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "tls").mkdir(parents=True)
        (self.dir / "acme").mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", str(self.dir / "tls" / "privkey.pem"), "-out", str(self.dir / "tls" / "fullchain.pem")],
                       check=True, capture_output=True)
        for path in self.dir.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.http = free_port()
        self.https = free_port()
        self.turn = free_port(socket.SOCK_DGRAM)
        self.streamer_token = secrets.token_hex(24)
        self.turn_secret = secrets.token_hex(24)
        compose = (ROOT / "compose.yaml").read_text()
        default = lambda var: qualified(re.search(r"\$\{" + var + r":-([^}]+)\}", compose).group(1))
        self.env = {
            "PUBLIC_URL": f"https://127.0.0.1:{self.https}",
            "STREAMER_API_TOKEN": self.streamer_token,
            "REDIS_PASSWORD": secrets.token_hex(16),
            "TURN_HOST": "127.0.0.1",
            "TURN_SECRET": self.turn_secret,
            "TURN_PORT": str(self.turn),
            "TURN_LISTENING_IP": "127.0.0.1",
            "TURN_MIN_PORT": "49300",
            "TURN_MAX_PORT": "49340",
            "HTTP_BIND": "127.0.0.1",
            "HTTP_PORT": str(self.http),
            "HTTPS_BIND": "127.0.0.1",
            "HTTPS_PORT": str(self.https),
            "NGINX_SITE": "https",
            "TLS_DIR": str(self.dir / "tls"),
            "ACME_DIR": str(self.dir / "acme"),
            "ENABLE_STRICT_ORIGIN": "true",
            "LOG_LEVEL": "info",
            # podman resolves short names only through registries.conf; name the local images in full.
            "DOCK_IMAGE": IMAGE,
            "NGINX_IMAGE": default("NGINX_IMAGE"),
            "REDIS_IMAGE": default("REDIS_IMAGE"),
            "COTURN_IMAGE": default("COTURN_IMAGE"),
        }
        self.env_file = self.dir / ".env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self.base = f"https://127.0.0.1:{self.https}"
        self.origin = self.base

    def compose(self, *args, timeout=180, check=True):
        command = [sys.executable, "-m", "podman_compose", "--env-file", str(self.env_file), "-p", PROJECT,
                   "-f", str(ROOT / "compose.yaml"), *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired as expired:
            state = self.podman("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=False).stdout
            raise AssertionError(f"{' '.join(args)} did not finish within {timeout}s; containers:\n{state}\n"
                                 f"{(expired.stdout or b'')[-2000:]!r}\n{(expired.stderr or b'')[-3000:]!r}") from None
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def podman(self, *args, timeout=60, check=True):
        result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.stderr[-2000:]}")
        return result

    def container(self, service):
        return f"{PROJECT}_{service}_1"

    def logs(self, service, tail=200):
        result = self.podman("logs", "--tail", str(tail), self.container(service), check=False)
        state = self.podman("inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}",
                            self.container(service), check=False).stdout.strip()
        return f"[{service}: {state}]\n" + result.stdout + result.stderr

    def up(self, timeout=120):
        started = time.monotonic()
        self.compose("up", "-d", timeout=timeout)
        self.wait_ready(started, timeout)
        return time.monotonic() - started

    def wait_ready(self, started, timeout):
        # No systemd here: healthchecks never run by themselves, so poll through nginx like a user would.
        last = None
        while time.monotonic() - started < timeout:
            try:
                r = requests.get(self.base + "/readyz", verify=False, timeout=2)
                if r.status_code == 200 and r.json().get("store") == "redis":
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as error:
                last = repr(error)
            time.sleep(0.3)
        raise AssertionError(f"the stack was not ready through nginx within {timeout}s (last: {last})\n"
                             f"--- web\n{self.logs('web')}\n--- nginx\n{self.logs('nginx')}\n--- redis\n{self.logs('redis', 30)}")

    def get(self, path, **kwargs):
        return requests.get(self.base + path, verify=False, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        headers = {"Origin": self.origin, **kwargs.pop("headers", {})}
        return requests.post(self.base + path, verify=False, timeout=120, headers=headers, **kwargs)

    def streamer(self):
        return {"x-streamer-token": self.streamer_token}

    def ws(self, path):
        from websockets.sync.client import connect
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return connect(f"wss://127.0.0.1:{self.https}{path}", ssl=context, origin=self.origin, open_timeout=10)


@pytest.fixture(scope="module")
def stack(request):
    stack = Stack()
    stack.compose("down", "-v", "-t", "5", check=False)   # leftovers of an interrupted run
    failed_before = request.session.testsfailed
    started = False
    try:
        FIGURES["stack_start_seconds"] = stack.up()
        started = True
        yield stack
    finally:
        if not started or request.session.testsfailed > failed_before:
            logs = WORK / "stack-logs"
            logs.mkdir(exist_ok=True)
            for service in ("web", "nginx", "redis", "coturn"):
                (logs / f"{service}.log").write_text(stack.logs(service, 2000))
            print(f"\nthe services' logs are in {logs}")
        if os.environ.get("KEEP_STACK") != "1":
            stack.compose("down", "-v", "-t", "20", check=False, timeout=120)
        (WORK / "stack-figures.json").write_text(json.dumps(FIGURES, indent=1))
        print("\nstack figures:", json.dumps(FIGURES))


def frames_until(ws, predicate, timeout=15):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        seen.append(message.get("type"))
        if predicate(message):
            return message
    raise AssertionError(f"no matching frame; saw {seen}")


STATE = {}


def test_stack_runs_the_engine_on_redis_as_a_non_root_user(stack):
    ps = stack.podman("ps", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "{{.Names}}").stdout.split()
    assert sorted(ps) == sorted(stack.container(s) for s in ("web", "redis", "nginx", "coturn")), ps
    assert stack.podman("exec", stack.container("web"), "id", "-u").stdout.strip() == "10001"
    ready = stack.get("/readyz").json()
    assert ready["store"] == "redis" and ready["store_ok"]
    assert set(ready["plugins"]) >= {"moderator-keys", "media", "tts", "webrtc-signaling"}
    # The image's HEALTHCHECK command works (podman runs it on demand; there is no timer here).
    assert stack.podman("healthcheck", "run", stack.container("web"), check=False).returncode == 0
    # Nothing but nginx (and coturn's TURN port) is published.
    published = stack.podman("port", "-a").stdout
    assert f"127.0.0.1:{stack.http}" in published and f"127.0.0.1:{stack.https}" in published
    assert "8080" not in published and "6379" not in published


def test_overlay_page_and_overlay_socket_through_the_proxy(stack):
    page = stack.get("/overlay")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["strict-transport-security"].startswith("max-age")
    redirect = requests.get(f"http://127.0.0.1:{stack.http}/overlay", allow_redirects=False, timeout=10)
    assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://")
    with stack.ws("/ws/overlay?overlay_id=deploy") as ws:
        frame = frames_until(ws, lambda m: m.get("type") == "scene.full")
        assert frame["scene"]["name"]
    # Upgrades are never sent on a kept-alive upstream connection (the engine answers those 307).
    import http.client
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for attempt in range(5):
        assert stack.get("/healthz").status_code == 200
        conn = http.client.HTTPSConnection("127.0.0.1", stack.https, context=context, timeout=10)
        conn.request("GET", f"/ws/overlay?overlay_id=raw{attempt}", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Origin": stack.origin})
        status = conn.getresponse().status
        conn.close()
        assert status == 101, f"upgrade {attempt} answered {status}"
    # Strict origin is on in the stack: a foreign page's socket is refused (403, or closed with 4403).
    from websockets.sync.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        foreign = connect(f"wss://127.0.0.1:{stack.https}/ws/overlay", ssl=context, origin="https://evil.example", open_timeout=10)
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
    else:
        with foreign, pytest.raises(ConnectionClosed) as closed:
            while True:
                assert json.loads(foreign.recv(timeout=10)).get("type") != "scene.full", "a foreign origin got the scene"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, closed.value


def test_moderator_key_flow(stack):
    generated = stack.post("/api/moderator-keys/generate", headers=stack.streamer(), data={"streamer_id": "deploy"})
    assert generated.status_code in (200, 201), generated.text
    key = generated.json()["key"]
    consumed = stack.post("/api/moderator-keys/consume", data={"key": key})
    assert consumed.status_code == 200, consumed.text
    session = consumed.json()["session"]
    assert stack.post("/api/moderator-keys/consume", data={"key": key}).status_code in (401, 404, 410)
    with stack.ws(f"/ws/moderator?session={session}") as ws:
        frames_until(ws, lambda m: m.get("type") == "scene.full")
    STATE["session"] = session
    assert stack.post("/api/moderator-keys/generate", data={}).status_code == 401


def test_client_address_comes_from_nginx_forwarded_for(stack):
    """trusted_proxies holds nginx's address: the engine keys rate limits by the address nginx saw,
    not by nginx's own address, and a forged X-Forwarded-For from the client is not believed."""
    stack.post("/api/moderator-keys/consume", data={"key": "x" * 40}, headers={"X-Forwarded-For": "203.0.113.77"})
    keys = stack.podman("exec", stack.container("redis"), "redis-cli", "--scan", "--pattern", "*rate*consume*").stdout.split()
    assert keys, "no rate-limit bucket for moderator-keys.consume in redis"
    clients = {key.rsplit(":", 1)[-1] for key in keys}
    assert "172.30.77.10" not in clients, f"the engine saw nginx, not the client: {keys}"
    assert "203.0.113.77" not in clients, f"a forged X-Forwarded-For was believed: {keys}"


def test_scene_save_is_seen_on_an_overlay_socket(stack):
    with stack.ws("/ws/overlay?overlay_id=deploy-save") as ws:
        first = frames_until(ws, lambda m: m.get("type") == "scene.full")
        version = first["version"]
        element = {"id": "deploy-text", "type": "text", "text": "hello from the container", "x": 10, "y": 20}
        answer = requests.patch(stack.base + "/api/scene", verify=False, timeout=30,
                                headers={"x-moderator-session": STATE["session"], "Origin": stack.origin},
                                json={"base_version": version, "ops": [{"op": "add", "element": element}]})
        assert answer.status_code == 200, answer.text
        saved = answer.json()["_version"]
        frame = frames_until(ws, lambda m: m.get("type") == "scene.full" and m["version"] >= saved)
        assert any(e["id"] == "deploy-text" for e in frame["scene"]["elements"])
    STATE["scene_version"] = saved


def multipart(content, filename, content_type):
    boundary = "deploy" + uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_upload_is_served_by_nginx_from_the_uploads_volume(stack):
    data = (FIXTURES / "image.png").read_bytes()
    body, headers = multipart(data, "image.png", "image/png")
    answer = stack.post("/api/media", data=body, headers={**headers, "x-moderator-session": STATE["session"]})
    assert answer.status_code in (200, 201), answer.text
    media = answer.json()["media"]
    served = stack.get(media["url"])
    assert served.status_code == 200, served.text
    assert served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    # nginx's own ETag (mtime-size), not the engine's content hash: the bytes came from nginx.
    assert served.headers["etag"] != f'"{media["sha256"]}"'
    assert "x-accel-redirect" not in served.headers
    part = stack.get(media["url"], headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == data[:8]
    assert stack.get("/_onionrp_media/" + media["sha256"] + ".png").status_code == 404
    big, headers = multipart(os.urandom(3 << 20), "noise.bin", "application/octet-stream")
    refused = stack.post("/api/media", data=big, headers={**headers, "x-moderator-session": STATE["session"]})
    assert refused.status_code == 415, refused.text   # reached the engine (not nginx's 413), refused by content
    STATE["media"] = media


def test_turn_rest_credentials_from_the_engine_are_accepted_by_coturn(stack):
    issued = stack.post("/api/webrtc/token", headers=stack.streamer(), data={"room": "cam", "role": "publisher"})
    assert issued.status_code == 201, issued.text
    config = stack.get("/api/webrtc/config", params={"token": issued.json()["token"]}).json()
    assert config["turn"] == "rest", config
    turn = next(s for s in config["ice_servers"] if any(u.startswith("turn:") for u in s["urls"]))
    assert f"turn:127.0.0.1:{stack.turn}?transport=udp" in turn["urls"]

    def client(username, password, *flags):
        return subprocess.run(["turnutils_uclient", "-v", "-y", "-c", "-n", "1", "-p", str(stack.turn), "-u", username,
                               "-w", password, *flags, "127.0.0.1"], capture_output=True, text=True, timeout=60)

    for flags in [(), ("-t",)]:
        accepted = client(turn["username"], turn["credential"], *flags)
        assert "Received relay addr" in accepted.stdout, accepted.stdout[-2000:] + stack.logs("coturn", 30)
        # The production config then refuses to relay to a loopback peer: the relay is no way into the host.
        assert "Forbidden IP" in accepted.stdout, accepted.stdout[-2000:]
    wrong = client(turn["username"], base64.b64encode(b"not-the-credential-0").decode())
    assert "Cannot complete Allocation" in wrong.stdout and "Received relay addr" not in wrong.stdout


def test_data_survives_down_and_up(stack):
    before = stack.get("/api/scene", headers={"x-moderator-session": STATE["session"]}).json()
    stack.compose("down", "-t", "20", timeout=120)   # containers gone, volumes kept
    assert not stack.podman("ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "-q").stdout.strip()
    FIGURES["restart_seconds"] = stack.up()
    # The moderator session lives in redis (AOF volume), the scene in app-data, the file in app-uploads.
    after = stack.get("/api/scene", headers={"x-moderator-session": STATE["session"]})
    assert after.status_code == 200, after.text
    assert after.json()["_version"] == before["_version"] == STATE["scene_version"]
    assert any(e["id"] == "deploy-text" for e in after.json()["elements"])
    served = stack.get(STATE["media"]["url"])
    assert served.status_code == 200 and served.content == (FIXTURES / "image.png").read_bytes()
    with stack.ws(f"/ws/moderator?session={STATE['session']}") as ws:
        frames_until(ws, lambda m: m.get("type") == "scene.full")


def test_stack_stops_cleanly_within_the_grace_time(stack):
    with stack.ws("/ws/overlay?overlay_id=deploy-stop") as ws:   # a socket open while stopping
        frames_until(ws, lambda m: m.get("type") == "scene.full")
        started = time.monotonic()
        stack.compose("stop", "-t", "15", timeout=120)
        FIGURES["stop_seconds"] = time.monotonic() - started
    assert FIGURES["stop_seconds"] < 20, FIGURES
    inspect = json.loads(stack.podman("inspect", stack.container("web")).stdout)[0]["State"]
    assert inspect["ExitCode"] == 0, inspect   # SIGTERM handled, not SIGKILLed (137)
    assert "engine stopped" in stack.logs("web", 40)
    redis_exit = json.loads(stack.podman("inspect", stack.container("redis")).stdout)[0]["State"]["ExitCode"]
    assert redis_exit == 0
