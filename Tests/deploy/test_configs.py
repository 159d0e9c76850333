"""Fast native test of the deployment configs (seconds, no containers).

Debian's nginx runs deploy/nginx/*.conf on loopback in front of a stub engine, and Debian's coturn
runs deploy/coturn/turnserver.conf through deploy/coturn/start.sh, so a config mistake is caught
before the container test (scripts/deploy-test.sh) is ever run. Paths the containers mount
(/etc/nginx/..., /srv/uploads, web:8080) are rewritten to a temporary folder and loopback ports.

Needs: nginx (nginx-light), coturn (turnserver, turnutils_uclient), openssl; skipped without them.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
import urllib3
import yaml

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)   # the test's own self-signed certificate

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = [pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"), pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()) or not shutil.which("turnserver")
    or not shutil.which("openssl"),
    reason="needs Debian's nginx, coturn and openssl (apt-get install nginx-light coturn openssl)",
)]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


# ---------------------------------------------------------------- the stub engine

MEDIA_FILE = "0" * 64 + ".png"


class StubEngine:
    """Answers like the engine where the proxy config matters: echo of what arrived, media
    authorization with X-Accel-Redirect, a WebSocket echo, and a streamed upload sink."""

    def __init__(self):
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        self.ready.wait(5)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)

    @staticmethod
    def _response(status, headers=None, body=b""):
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 101: "Switching Protocols"}.get(status, "X")
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if status != 101:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                received = 0
                while received < length:
                    chunk = await reader.read(min(1 << 16, length - received))
                    if not chunk:
                        break
                    received += len(chunk)
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._websocket(reader, writer, headers)
                    return
                path = target.split("?", 1)[0]
                if path == "/media/known":
                    writer.write(self._response(200, {
                        "Content-Type": "image/png", "Cache-Control": "private, max-age=31536000, immutable",
                        "X-Content-Type-Options": "nosniff", "X-Accel-Redirect": f"/_onionrp_media/{MEDIA_FILE}"}))
                elif path.startswith("/media/"):
                    writer.write(self._response(401, {"Content-Type": "application/json"}, b'{"error":"unauthorized"}'))
                else:
                    body = json.dumps({"method": method, "path": target, "headers": headers, "received": received}).encode()
                    writer.write(self._response(200, {"Content-Type": "application/json"}, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _websocket(self, reader, writer, headers):
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        writer.write(self._response(101, {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept.decode()}))
        await writer.drain()
        while True:
            first, second = await reader.readexactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
            if opcode == 8:
                writer.write(bytes([0x88, 0]))
                await writer.drain()
                return
            if opcode == 1:
                reply = b"echo:" + payload
                writer.write(bytes([0x81, len(reply)]) + reply)
                await writer.drain()


@pytest.fixture(scope="module")
def stub():
    engine = StubEngine()
    engine.start()
    yield engine
    engine.stop()


# ---------------------------------------------------------------- nginx on loopback

def rewrite_nginx(folder: Path, upstream_port: int, http_port: int, https_port: int, site: str, replicas: int = 1):
    """Copies deploy/nginx into `folder` with the container paths and ports made local."""
    def fix(text):
        text = text.replace("/etc/nginx/conf.d/", f"{folder}/conf.d/")
        text = text.replace("/etc/nginx/onionrp-proxy.conf", f"{folder}/onionrp-proxy.conf")
        text = text.replace("/etc/nginx/onionrp-upstreams.conf", f"{folder}/onionrp-upstreams.conf")
        text = text.replace("/etc/nginx/tls/", f"{folder}/tls/")
        text = text.replace("/var/www/acme", f"{folder}/acme")
        text = text.replace("/srv/uploads/", f"{folder}/uploads/")
        text = text.replace("/tmp/nginx", f"{folder}/nginx")
        text = text.replace("server 172.30.77.20:8080;", f"server 127.0.0.1:{upstream_port};")
        text = re.sub(r"server 172\.30\.77\.2\d:8080", f"server 127.0.0.1:{upstream_port}", text)
        text = re.sub(r"^\s*listen \[::\].*$", "", text, flags=re.M)
        text = re.sub(r"listen 80\b", f"listen 127.0.0.1:{http_port}", text)
        text = re.sub(r"listen 443\b", f"listen 127.0.0.1:{https_port}", text)
        return text

    (folder / "conf.d").mkdir()
    (folder / "nginx.conf").write_text(fix((DEPLOY / "nginx" / "nginx.conf").read_text()))
    (folder / "onionrp-proxy.conf").write_text(fix((DEPLOY / "nginx" / "onionrp-proxy.conf").read_text()))
    (folder / "onionrp-upstreams.conf").write_text(fix((DEPLOY / "nginx" / f"upstreams-{replicas}.conf").read_text()))
    (folder / "conf.d" / "default.conf").write_text(fix((DEPLOY / "nginx" / f"site-{site}.conf").read_text()))
    (folder / "acme" / ".well-known" / "acme-challenge").mkdir(parents=True)
    (folder / "acme" / ".well-known" / "acme-challenge" / "token123").write_text("token123.thumbprint")
    (folder / "uploads" / "media").mkdir(parents=True)
    (folder / "uploads" / "media" / MEDIA_FILE).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    (folder / "tls").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(folder / "tls" / "privkey.pem"), "-out", str(folder / "tls" / "fullchain.pem")],
                   check=True, capture_output=True)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)   # nginx workers run as an unprivileged user


class Nginx:
    def __init__(self, stub, site, replicas=1):
        self.folder = Path(tempfile.mkdtemp(prefix="onionrp-nginx-", dir="/tmp"))
        self.http = free_port()
        self.https = free_port()
        rewrite_nginx(self.folder, stub.port, self.http, self.https, site, replicas)
        self.conf = self.folder / "nginx.conf"

    def check(self):
        return subprocess.run([NGINX, "-t", "-p", str(self.folder), "-c", str(self.conf)], capture_output=True, text=True)

    def start(self):
        self.process = subprocess.Popen([NGINX, "-p", str(self.folder), "-c", str(self.conf), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_port(self.http)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module", params=["http", "https"])
def nginx(request, stub):
    server = Nginx(stub, request.param)
    result = server.check()
    assert result.returncode == 0, result.stderr
    server.start()
    server.site = request.param
    yield server
    server.stop()


def base(nginx):
    if nginx.site == "https":
        return f"https://127.0.0.1:{nginx.https}"
    return f"http://127.0.0.1:{nginx.http}"


def get(nginx, path, **kwargs):
    return requests.get(base(nginx) + path, verify=False, timeout=10, **kwargs)


def test_proxied_request_carries_client_address_host_and_scheme(nginx):
    r = get(nginx, "/echo?x=1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["path"] == "/echo?x=1"
    # Appended, so the engine (walking from the right, trusting only nginx) finds the real peer.
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    port = nginx.https if nginx.site == "https" else nginx.http
    assert seen["headers"]["host"] == f"127.0.0.1:{port}"
    assert seen["headers"]["x-forwarded-proto"] == nginx.site
    assert "upgrade" not in seen["headers"]
    assert r.headers.get("Server") == "nginx"   # server_tokens off: no version


def test_websocket_upgrade_through_the_proxy(nginx):
    from websockets.sync.client import connect
    scheme = "wss" if nginx.site == "https" else "ws"
    port = nginx.https if nginx.site == "https" else nginx.http
    context = None
    if scheme == "wss":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with connect(f"{scheme}://127.0.0.1:{port}/ws/overlay", ssl=context, open_timeout=5) as ws:
        for text in ["one", "two"]:
            ws.send(text)
            assert ws.recv(timeout=5) == "echo:" + text


def test_uploads_above_nginx_default_reach_the_engine_streamed(nginx):
    body = os.urandom(3 << 20)   # 3 MiB: past nginx's default 1m limit
    r = requests.post(base(nginx) + "/api/media", data=body, verify=False, timeout=30,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["received"] == len(body)


def test_media_bytes_come_from_the_uploads_folder_after_the_engine_says_yes(nginx):
    stored = (nginx.folder / "uploads" / "media" / MEDIA_FILE).read_bytes()
    r = get(nginx, "/media/known")
    assert r.status_code == 200
    assert r.content == stored
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in r.headers["Cache-Control"]
    assert "X-Accel-Redirect" not in r.headers
    ranged = get(nginx, "/media/known", headers={"Range": "bytes=8-15"})
    assert ranged.status_code == 206 and ranged.content == stored[8:16]
    again = get(nginx, "/media/known", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    denied = get(nginx, "/media/other")
    assert denied.status_code == 401 and stored[:8] not in denied.content
    # The internal location cannot be asked for directly.
    assert get(nginx, f"/_onionrp_media/{MEDIA_FILE}").status_code == 404


def test_acme_challenges_are_served_on_port_80(nginx):
    r = requests.get(f"http://127.0.0.1:{nginx.http}/.well-known/acme-challenge/token123", timeout=5, allow_redirects=False)
    assert r.status_code == 200 and r.text == "token123.thumbprint"
    if nginx.site == "https":
        redirect = requests.get(f"http://127.0.0.1:{nginx.http}/overlay?x=1", timeout=5, allow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == "https://127.0.0.1/overlay?x=1"
        tls = get(nginx, "/echo")
        assert tls.headers["Strict-Transport-Security"].startswith("max-age=")


def parse_size(text):
    text = str(text).replace("_", "").strip()
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", text)
    units = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(float(m.group(1)) * units[m.group(2).lower()])


def test_the_three_engine_upstreams_are_valid_and_every_engine_in_both(stub):
    text = (DEPLOY / "nginx" / "upstreams-3.conf").read_text()
    for upstream in ("onionrp_web", "onionrp_web_upgrade"):
        block = text[text.index(f"upstream {upstream} {{"):]
        block = block[:block.index("}")]
        assert [f"172.30.77.2{i}:8080" for i in range(3)] == re.findall(r"server (172\.30\.77\.\d+:8080)", block)
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert [compose[name]["networks"]["backend"]["ipv4_address"] for name in ("web", "web-2", "web-3")] == [
        f"172.30.77.2{i}" for i in range(3)]
    assert compose["web-2"]["profiles"] == ["scale"] and compose["web-2"]["image"] == compose["web"]["image"]
    proxy = Nginx(stub, "http", replicas=3)
    checked = proxy.check()
    assert checked.returncode == 0, checked.stderr


def test_nginx_body_limit_and_timeouts_match_the_engine():
    """client_max_body_size covers the media plugin's largest upload (file + form bytes) and
    socket timeouts outlast the engine's keep-alive pings."""
    config = yaml.safe_load((DEPLOY / "overlay.yaml").read_text())
    media = next(p for p in config["plugins"] if p["name"] == "media")["config"]
    largest = max(parse_size(media[k]) for k in ("max_image_bytes", "max_video_bytes", "max_audio_bytes"))
    needed = largest + parse_size(media["max_form_bytes"])
    proxy = (DEPLOY / "nginx" / "onionrp-proxy.conf").read_text()
    limit = parse_size(re.search(r"client_max_body_size\s+(\w+);", proxy).group(1))
    assert needed <= limit <= needed + (8 << 20), (needed, limit)
    assert media["accel_redirect_prefix"] in proxy
    ping = config["limits"]["ws_ping_seconds"]
    read_timeout = re.search(r"proxy_read_timeout\s+(\d+)([smh]?);", proxy)
    seconds = int(read_timeout.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[read_timeout.group(2)]
    assert seconds > 3 * ping
    assert "trusted_proxies" in (DEPLOY / "overlay.yaml").read_text()
    nginx_ip = re.search(r"ipv4_address:\s*([0-9.]+)\s*# = security.trusted_proxies", (ROOT / "compose.yaml").read_text()).group(1)
    assert config["security"]["trusted_proxies"] == [nginx_ip]
    # nginx reaches web, and web reaches redis, by the fixed addresses compose.yaml gives them.
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    web_ip = compose["services"]["web"]["networks"]["backend"]["ipv4_address"]
    redis_ip = compose["services"]["redis"]["networks"]["backend"]["ipv4_address"]
    assert f"server {web_ip}:8080;" in (DEPLOY / "nginx" / "upstreams-1.conf").read_text()
    assert f"@{redis_ip}:6379/" in compose["services"]["web"]["environment"]["REDIS_URL"]


# ---------------------------------------------------------------- coturn on loopback

SECRET = "deploy-test-secret-0123456789"


def rest_credentials(secret, ttl=600, name="cam"):
    """What the webrtc-signaling plugin mints (ICEServers.turnRESTCredentials)."""
    username = f"{int(time.time()) + ttl}:{name}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


class Coturn:
    def __init__(self, allow_loopback):
        self.folder = Path(tempfile.mkdtemp(prefix="onionrp-coturn-", dir="/tmp"))
        self.port = free_port(socket.SOCK_DGRAM)
        relay = free_port(socket.SOCK_DGRAM)
        env = dict(os.environ, TURN_SECRET=SECRET, TURN_REALM="overlay.test", TURN_PORT=str(self.port),
                   TURN_LISTENING_IP="127.0.0.1", TURN_MIN_PORT=str(relay), TURN_MAX_PORT=str(relay + 20),
                   TURN_BASE_CONFIG=str(DEPLOY / "coturn" / "turnserver.conf"), TURN_RUN_DIR=str(self.folder))
        if allow_loopback:
            env["TURN_ALLOW_LOOPBACK_PEERS"] = "1"
        self.log = open(self.folder / "turn.log", "w")
        self.process = subprocess.Popen(["sh", str(DEPLOY / "coturn" / "start.sh")], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def client(self, username, password, *flags):
        return subprocess.run(["turnutils_uclient", "-v", "-p", str(self.port), "-u", username, "-w", password, "-n", "2", "-z", "5", "-c", "-y",
                               *flags, "127.0.0.1"], capture_output=True, text=True, timeout=60)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def coturn_test_mode():
    server = Coturn(allow_loopback=True)
    yield server
    server.stop()


def test_coturn_accepts_the_plugins_rest_credentials_and_relays(coturn_test_mode):
    username, password = rest_credentials(SECRET)
    for flags in [(), ("-t",)]:   # UDP and TCP
        result = coturn_test_mode.client(username, password, *flags)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-1000:]
        assert "tot_recv_msgs=4" in result.stdout, result.stdout[-2000:]


def test_coturn_refuses_wrong_and_expired_credentials(coturn_test_mode):
    username, _ = rest_credentials(SECRET)
    _, other = rest_credentials("another-secret-0123456789")
    wrong = coturn_test_mode.client(username, other)
    assert wrong.returncode != 0 and "Cannot complete Allocation" in wrong.stdout
    expired_user, expired_password = rest_credentials(SECRET, ttl=-60)
    expired = coturn_test_mode.client(expired_user, expired_password)
    assert expired.returncode != 0 and "Received relay addr" not in expired.stdout


def test_production_coturn_config_refuses_to_relay_into_the_host():
    """Without the test-only switch, denied-peer-ip keeps the relay off loopback and private networks."""
    server = Coturn(allow_loopback=False)
    try:
        username, password = rest_credentials(SECRET)
        result = server.client(username, password)
        assert "Received relay addr" in result.stdout, result.stdout[-2000:]      # the credentials are good...
        assert "Forbidden IP" in result.stdout and "tot_recv_msgs=4" not in result.stdout   # ...the peer is not
        conf = (server.folder / "turnserver.conf").read_text()
        assert f"static-auth-secret={SECRET}" in conf and "allow-loopback-peers" not in conf
        assert oct((server.folder / "turnserver.conf").stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()
