"""Hardening: no request, peer or fault crashes, corrupts or exhausts the engine (issue 11).

Each test drives the real binary and checks afterwards that the process is still alive.
"""
import json
import socket
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import ROOT

ALL_PLUGINS = """
limits:
  rate:
    moderator-keys.generate: {burst: 1000, per_minute: 100000}
    moderator-keys.consume: {burst: 1000, per_minute: 100000}
    scene.save: {burst: 1000, per_minute: 100000}
plugins:
  - name: moderator-keys
    config: {max_failures: 1000}
  - name: media
  - name: tts
    config: {mode: browser}
  - name: webrtc-signaling
"""


def alive(engine):
    assert engine.proc.poll() is None, f"engine died:\n{engine.logs()[-3000:]}"
    assert requests.get(engine.url + "/healthz", timeout=5).status_code == 200


def raw(engine, data: bytes, timeout=5.0, read_all=True):
    """Sends raw bytes and returns what the engine answered until it closed (or the timeout)."""
    with socket.create_connection(("127.0.0.1", engine.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not read_all and b"\r\n\r\n" in out:
                    break
        except socket.timeout:
            pass
        return out


def status_of(answer: bytes):
    line = answer.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


def json_body(answer: bytes):
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def session_for(engine):
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer()).json()["key"]
    return requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key}).json()["session"]


def mod(session):
    return {"x-moderator-session": session}


# 1. An empty media type in Content-Type trapped in PluginRequest.contentType.
@pytest.mark.parametrize("content_type", [";", "", " ; charset=utf-8", ";;;", "\t"])
def test_empty_content_type_is_an_error_not_a_crash(engines, content_type):
    engine = engines(ALL_PLUGINS)
    answer = raw(engine, b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Content-Type: " + content_type.encode() + b"\r\nContent-Length: 5\r\n\r\nkey=x")
    assert status_of(answer) in (400, 401, 415), answer
    assert "error" in json_body(answer)
    alive(engine)


# 2 and 3. Scene names that are path tricks or hidden files are refused; nothing outside scenes/ changes.
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "_active", "-x", ".%2e", "%2e%2e"])
def test_scene_names_cannot_escape_or_hide(engines, name):
    engine = engines(ALL_PLUGINS)
    session = session_for(engine)
    data_dir = engine.workdir / "data"
    before = sorted(p.name for p in data_dir.iterdir())
    put = requests.put(f"{engine.url}/api/scenes/{name}", headers=mod(session),
                       json={"base_version": 0, "elements": []})
    assert put.status_code in (400, 404), put.text
    delete = requests.delete(f"{engine.url}/api/scenes/{name}", headers=mod(session))
    assert delete.status_code in (400, 404), delete.text
    assert delete.json()["error"]["code"] in ("invalid_field", "not_found")
    assert data_dir.is_dir() and sorted(p.name for p in data_dir.iterdir()) == before
    assert (data_dir / "scenes" / "main").is_dir()
    alive(engine)


def test_versions_never_go_backwards_after_a_deleted_scene_and_restart(engines):
    engine = engines(ALL_PLUGINS)
    session = session_for(engine)
    made = requests.put(f"{engine.url}/api/scenes/extra", headers=mod(session), json={"base_version": 0, "elements": []})
    assert made.status_code == 200, made.text
    top = made.json()["_version"]
    assert requests.delete(f"{engine.url}/api/scenes/extra", headers=mod(session)).status_code == 200
    engine.stop()
    engine.start()
    session = session_for(engine)
    scene = requests.get(engine.url + "/api/scene").json()
    saved = requests.put(engine.url + "/api/scene", headers=mod(session),
                         json={"base_version": scene["_version"], "elements": []})
    assert saved.status_code == 200
    assert saved.json()["_version"] > top, "a version number handed out before the restart was given again"


# 7. A failed write answers its own request and leaves memory as it was.
def test_failed_scene_write_answers_its_own_request_and_changes_nothing(engines):
    engine = engines(ALL_PLUGINS)
    session = session_for(engine)
    scene = requests.get(engine.url + "/api/scene").json()
    version = scene["_version"]
    folder = engine.workdir / "data" / "scenes" / "main"
    # The next version is renamed into `<version>.json`; a folder there makes the write fail.
    blocker = folder / f"{version + 1}.json"
    blocker.mkdir()
    with connect(f"{engine.ws_url}/ws/overlay") as overlay:
        first = json.loads(overlay.recv(timeout=5))
        while first.get("type") != "scene.full":
            first = json.loads(overlay.recv(timeout=5))
        failed = requests.put(engine.url + "/api/scene", headers=mod(session),
                              json={"base_version": version, "elements": [{"id": "t", "type": "text", "text": "lost"}]})
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "storage_failed" and "retry-after" in failed.headers
        after = requests.get(engine.url + "/api/scene").json()
        assert after["_version"] == version and after["elements"] == scene["elements"], "memory kept an unsaved version"
        blocker.rmdir()
        ok = requests.put(engine.url + "/api/scene", headers=mod(session),
                          json={"base_version": version, "elements": [{"id": "t", "type": "text", "text": "kept"}]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["_version"] == version + 1
        frame = json.loads(overlay.recv(timeout=5))
        assert frame["type"] == "scene.full" and frame["version"] == version + 1
    alive(engine)


# 4. A Redis that refuses the password (or is not there) is never fatal.
def test_redis_with_wrong_password_or_unreachable_is_not_fatal(engines, redis_server):
    redis_server.cli("CONFIG", "SET", "requirepass", "right")
    engine = engines(ALL_PLUGINS, env={"REDIS_URL": f"redis://:wrong@127.0.0.1:{redis_server.port}/0"})
    for _ in range(5):
        ready = requests.get(engine.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["store_ok"] is False
        generate = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer())
        assert generate.status_code == 503 and "retry-after" in generate.headers, generate.text
    alive(engine)
    gone = engines(ALL_PLUGINS, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert requests.get(gone.url + "/readyz").status_code == 503
    alive(gone)


# 9. Timeouts: a half-sent head gets 408 and the connection closes; idle connections are closed.
FAST_TIMEOUTS = """
server:
  header_timeout_seconds: 1
  idle_timeout_seconds: 2
  body_timeout_seconds: 1
  max_connections: 40
plugins:
  - name: moderator-keys
"""


def test_half_sent_headers_get_408_and_are_closed(engines):
    engine = engines(FAST_TIMEOUTS)
    started = time.monotonic()
    answer = raw(engine, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", timeout=10)
    assert status_of(answer) == 408, answer
    assert 0.8 < time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(16) == b"", "a silent connection must be closed"
        assert time.monotonic() - t0 < 5
    alive(engine)


def test_idle_keep_alive_connection_is_closed_after_idle_timeout(engines):
    engine = engines(FAST_TIMEOUTS)
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(4096)
        assert status_of(first) == 200
        t0 = time.monotonic()
        rest = s.recv(4096)
        assert rest == b"" and 1.5 < time.monotonic() - t0 < 6


def test_stalled_body_is_closed(engines):
    engine = engines(FAST_TIMEOUTS)
    started = time.monotonic()
    answer = raw(engine, b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 100\r\n\r\nkey=abc", timeout=10)
    # The engine waits for the body; after body_timeout_seconds (1 s) of nothing the connection ends (not the
    # client's 10 s timeout).
    took = time.monotonic() - started
    assert answer == b"" or status_of(answer) in (400, 408), answer
    assert 0.8 < took < 5, f"the stalled body was closed after {took:.1f} s"
    # The same when the head arrives first and the body never starts.
    started = time.monotonic()
    answer = raw(engine, b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 100\r\n\r\n", timeout=10)
    took = time.monotonic() - started
    assert answer == b"" or status_of(answer) in (400, 408), answer
    assert 0.8 < took < 5, f"the body that never started was closed after {took:.1f} s"
    alive(engine)


def test_connection_cap_keeps_healthz_answering(engines):
    engine = engines(FAST_TIMEOUTS)
    held = [socket.create_connection(("127.0.0.1", engine.port), timeout=5) for _ in range(60)]
    try:
        time.sleep(0.2)
        health = requests.get(engine.url + "/healthz", timeout=5)
        assert health.status_code == 200
        refused = requests.get(engine.url + "/api/plugins", timeout=5)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_many_connections"
        assert "retry-after" in refused.headers
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)
    assert requests.get(engine.url + "/api/plugins", timeout=5).status_code == 200


# 16. Malformed requests get a status line.
@pytest.mark.parametrize("request_bytes,expected", [
    (b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\nkey=a", 501),
    (b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
], ids=["xchunked", "bad-length", "huge-header", "control-char", "not-http", "bad-chunk"])
def test_malformed_requests_get_a_status_line(engines, request_bytes, expected):
    engine = engines(ALL_PLUGINS)
    answer = raw(engine, request_bytes)
    assert status_of(answer) == expected, answer[:300]
    assert "error" in json_body(answer)
    alive(engine)


# The parser's refusal on a later request of a keep-alive connection gets its status line too (the first request's
# is answered by ParseErrorResponder, later ones by RequestPhaseHandler).
@pytest.mark.parametrize("second, expected", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
], ids=["bad-length", "huge-header", "not-http"])
def test_a_malformed_second_request_on_a_connection_gets_a_status_line(engines, second, expected):
    engine = engines("plugins: []\n")
    with socket.create_connection(("127.0.0.1", engine.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            chunk = s.recv(65536)
            assert chunk, first
            first += chunk
        assert status_of(first) == 200, first
        s.sendall(second)
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
    assert status_of(rest) == expected, rest[:300]
    assert "error" in json_body(rest)
    alive(engine)


# 10. A single WebSocket message over limits.ws_max_message_bytes closes the socket with 1009.
def test_ws_message_over_limit_closes_1009(engines):
    engine = engines("limits:\n  ws_max_message_bytes: 4096\nplugins: []\n")
    with connect(f"{engine.ws_url}/ws/overlay", max_size=None) as ws:
        ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(10):
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1009
    with connect(f"{engine.ws_url}/ws/overlay") as ws:
        ws.send(json.dumps({"type": "ping", "pad": "x" * 3000}))
        seen = [json.loads(ws.recv(timeout=5))["type"] for _ in range(3)]
        assert "pong" in seen
    alive(engine)


# 5 and 6. A plugin with small integer config fields, and one answering with statuses HTTP cannot carry.
MISBEHAVING_DIR = ROOT / "Tests" / "fixtures" / "misbehaving-plugin"


@pytest.fixture(scope="session")
def misbehaving_so():
    import subprocess
    result = subprocess.run(["swift", "build"], cwd=MISBEHAVING_DIR, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    path = MISBEHAVING_DIR / ".build" / "debug" / "libmisbehaving.so"
    assert path.exists()
    return path


def test_plugin_statuses_outside_http_become_500_and_small_ints_decode(engines, misbehaving_so):
    engine = engines(f"""
plugins:
  - name: misbehaving
    path: {misbehaving_so}
    config:
      tiny: 200
      signed: -5
      shorts: [1, -2]
      ports: [8080, 65535]
""")
    assert requests.get(engine.url + "/api/misbehaving/config").json() == {"tiny": 200, "signed": -5, "shorts": [1, -2],
                                                                            "ports": [8080, 65535]}
    for query in ("status=700", "status=0", "status=99", "status=-1", "status=100", "status=101",
                  "throw=1000", "throw=0", "throw=200", "throw=-7", "throw=99999999"):
        answer = requests.get(engine.url + "/api/misbehaving/status?" + query)
        assert answer.status_code == 500, (query, answer.status_code)
        assert answer.json()["error"]["code"] == "plugin_error"
    assert requests.get(engine.url + "/api/misbehaving/status?status=418").status_code == 418
    assert requests.get(engine.url + "/api/misbehaving/status?throw=409").status_code == 409
    for status in (70000, 99, 1000):
        with connect(f"{engine.ws_url}/ws/misbehaving?status={status}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 4500
    assert "plugin answered an invalid HTTP status" in engine.logs() and "misbehaving" in engine.logs()
    alive(engine)
    # Out of range for UInt8: refused at start-up with the line, not a crash.
    bad = engines(f"plugins:\n  - name: misbehaving\n    path: {misbehaving_so}\n    config:\n      tiny: 300\n      shorts: []\n",
                  start=False)
    bad.start(wait=False)
    assert bad.wait_exit(timeout=20) != 0
    assert "out of range" in bad.logs() and "tiny" in bad.logs()


# 12. A moderator socket closes with 4401 when its session expires (idle TTL), not only on revoke.
def test_moderator_socket_closes_when_its_session_expires(engines):
    engine = engines(ALL_PLUGINS, env={"MODERATOR_SESSION_TTL_SECONDS": "2"})
    session = session_for(engine)
    with connect(f"{engine.ws_url}/ws/moderator?session={session}") as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4401 and "expired" in closed.value.rcvd.reason
        assert time.monotonic() - started < 6
    alive(engine)


# 13. A revoked session stays revoked, whatever requests were in flight with it.
def test_revoke_is_not_undone_by_requests_in_flight(engines, backend):
    import concurrent.futures
    engine = engines(ALL_PLUGINS, env=backend["env"])
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer()).json()["key"]
    consumed = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key}).json()
    session, session_id = consumed["session"], consumed["session_id"]
    stop = time.monotonic() + 1.5

    def hammer():
        with requests.Session() as http:
            while time.monotonic() < stop:
                http.get(engine.url + "/api/moderator/me", headers=mod(session))

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hammer) for _ in range(6)]
        time.sleep(0.5)
        revoked = requests.delete(f"{engine.url}/api/moderator-sessions/{session_id}", headers=engine.streamer())
        assert revoked.status_code == 200, revoked.text
        for f in futures:
            f.result()
    assert requests.get(engine.url + "/api/moderator/me", headers=mod(session)).status_code == 401


# 14. Strict origin means the public URL, not whatever Host the client sends (DNS rebinding).
def test_strict_origin_ignores_the_host_header(engines):
    engine = engines(ALL_PLUGINS, env={"ENABLE_STRICT_ORIGIN": "true", "PUBLIC_URL": "https://overlay.example"})
    rebinding = raw(engine, b"POST /api/moderator-keys/generate HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n"
                            b"x-streamer-token: streamer-secret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert status_of(rebinding) == 403 and json_body(rebinding)["error"]["code"] == "origin_forbidden"
    own = requests.post(engine.url + "/api/moderator-keys/generate", headers={**engine.streamer(), "Origin": "https://overlay.example"})
    assert own.status_code == 201
    loopback = requests.post(engine.url + "/api/moderator-keys/generate", headers={**engine.streamer(), "Origin": engine.url})
    assert loopback.status_code == 201
    with connect(f"{engine.ws_url}/ws/overlay", additional_headers={"Origin": "http://evil.example", "Host": "evil.example"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4403


# 15. A Redis outage does not stop streamer saves (rate limits fall back to local buckets); 503s carry Retry-After.
def test_redis_outage_keeps_streamer_saves_and_503s_say_when(engines, redis_server):
    engine = engines(ALL_PLUGINS, env={"REDIS_URL": redis_server.url})
    scene = requests.get(engine.url + "/api/scene").json()
    redis_server.stop()
    # On the redis backend the scenes live in Redis: a save cannot be made durable, so it is refused with a clear
    # 503 (not the rate limiter's: its buckets fall back to memory) and the engine keeps serving the last scene.
    saved = requests.put(engine.url + "/api/scene", headers=engine.streamer(), json={"base_version": scene["_version"], "elements": []})
    assert saved.status_code == 503 and saved.json()["error"]["code"] == "storage_failed", saved.text
    assert int(saved.headers["retry-after"]) >= 1
    assert requests.get(engine.url + "/api/scene").json() == scene
    down = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer())
    assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
    ready = requests.get(engine.url + "/readyz")
    assert ready.status_code == 503 and int(ready.headers["retry-after"]) >= 1
    alive(engine)
    redis_server.start()
    deadline = time.monotonic() + 15
    while requests.get(engine.url + "/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    saved = requests.put(engine.url + "/api/scene", headers=engine.streamer(), json={"base_version": scene["_version"], "elements": []})
    assert saved.status_code == 200, saved.text


# 17. ?session= works on sockets only; on HTTP routes it is not a credential.
def test_session_in_query_is_for_sockets_only(engines):
    engine = engines(ALL_PLUGINS)
    session = session_for(engine)
    assert requests.get(engine.url + "/api/moderator/me", params={"session": session}).status_code == 401
    assert requests.get(engine.url + "/api/moderator/me", headers=mod(session)).status_code == 200
    with connect(f"{engine.ws_url}/ws/moderator?session={session}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"


# 18. An image is what its whole structure says: a PNG signature before HTML is refused.
def test_image_uploads_are_validated_structurally(engines):
    import struct
    import zlib
    engine = engines(ALL_PLUGINS)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    good = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")
    html = b"<html><script>alert(document.cookie)</script></html>"
    cases = {
        "png then html": (b"\x89PNG\r\n\x1a\n" + html, 415),
        "png with html after IEND": (good + html, 415),
        "png with a bad crc": (good[:-5] + b"\x00" + good[-4:], 415),
        "jpeg signature then html": (b"\xff\xd8\xff\xe0" + html, 415),
        "gif header then html": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + html, 415),
        "webp header then html": (b"RIFF" + struct.pack("<I", 4 + len(html)) + b"WEBP" + html, 415),
        "valid png": (good, 201),
        "valid png with zero padding": (good + b"\0" * 16, 201),
    }
    for name, (data, expected) in cases.items():
        body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
                + data + b"\r\n--b--\r\n")
        answer = requests.post(engine.url + "/api/media", data=body,
                               headers={**engine.streamer(), "Content-Type": "multipart/form-data; boundary=b"})
        assert answer.status_code == expected, (name, answer.text)
        if expected == 415:
            assert answer.json()["error"]["code"] == "invalid_image", (name, answer.text)
    alive(engine)


# 11. shutdown_grace_seconds bounds the shutdown: a request in flight and a plugin that never stops.
def test_shutdown_is_bounded_by_the_grace_time(engines, misbehaving_so):
    import threading
    engine = engines(f"""
server:
  shutdown_grace_seconds: 2
plugins:
  - name: misbehaving
    path: {misbehaving_so}
    config: {{tiny: 1, shorts: [], hang_on_shutdown: true}}
""")
    def slow_request():
        try:
            requests.get(engine.url + "/api/misbehaving/slow", timeout=90)
        except requests.RequestException:
            pass  # the engine goes away under it; that is the point

    slow = threading.Thread(target=slow_request, daemon=True)
    slow.start()
    time.sleep(0.5)
    started = time.monotonic()
    engine.proc.send_signal(__import__("signal").SIGTERM)
    code = engine.wait_exit(timeout=20)
    took = time.monotonic() - started
    assert took < 2 * 2 + 5 + 2, f"shutdown took {took:.1f} s"
    assert "did not stop within server.shutdown_grace_seconds" in engine.logs()
    assert code in (0, 1), f"exit code {code}: a crash, not a bounded shutdown\n{engine.logs()[-2000:]}"
    assert "Fatal error" not in engine.logs()


# 11b. A graceful shutdown lets the request in flight finish (inside the grace time) and closes idle keep-alive
# connections at once: the engine's RequestPhaseHandler does this in place of Hummingbird's connection state handler.
def test_shutdown_answers_the_request_in_flight_and_closes_idle_connections(engines, misbehaving_so):
    import socket
    import threading
    engine = engines(f"""
server:
  shutdown_grace_seconds: 10
plugins:
  - name: misbehaving
    path: {misbehaving_so}
    config: {{tiny: 1, shorts: []}}
""")
    port = int(engine.url.rsplit(":", 1)[1])
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")  # served; the connection now idles between requests
    answer = {}

    def slow_request():
        try:
            answer["response"] = requests.get(engine.url + "/api/misbehaving/slow?seconds=2", timeout=20)
        except requests.RequestException as error:
            answer["error"] = error

    slow = threading.Thread(target=slow_request, daemon=True)
    slow.start()
    time.sleep(0.5)
    engine.proc.send_signal(__import__("signal").SIGTERM)
    idle.settimeout(5)
    closed_at = time.monotonic()
    assert idle.recv(4096) == b"", "the idle keep-alive connection must be closed at shutdown"
    assert time.monotonic() - closed_at < 1.5, "the idle connection was not closed at once"
    slow.join(timeout=20)
    assert "response" in answer, f"the request in flight got no answer: {answer.get('error')}"
    assert answer["response"].status_code == 200 and answer["response"].text == "late"
    assert engine.wait_exit(timeout=20) == 0


# Found by the HTTP fuzz test: an If-Modified-Since year near Int32's limit overflowed in the date
# parser; a part header name with a byte >= 0x80 trapped MultipartKit. Both are plain 4xx/200 now.
def test_fuzz_finds_date_overflow_and_multipart_name_byte(engines):
    engine = engines(ALL_PLUGINS)
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
            + b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 40 + b"\r\n--b--\r\n")
    stored = requests.post(engine.url + "/api/media", data=body,
                           headers={**engine.streamer(), "Content-Type": "multipart/form-data; boundary=b"})
    assert stored.status_code == 201, stored.text
    url = engine.url + stored.json()["media"]["url"]
    for date in ("Mon, 01 Jan -2147483648 00:00:00 GMT", "Mon, 01 Jan 2147483647 00:00:00 GMT",
                 "Mon, 99 Jan 2020 99:99:99 GMT", "Mon, 01 Jan 0 00:00:00 GMT"):
        answer = requests.get(url, headers={"If-Modified-Since": date, "If-Range": date, "Range": "bytes=0-1"})
        assert answer.status_code in (200, 206), (date, answer.status_code)
    for name in (b"Content-\x80Disposition", b"\xff", b"X\xc3\xa9"):
        bad = (b"--b\r\n" + name + b': form-data; name="file"\r\n\r\nabc\r\n--b--\r\n')
        answer = requests.post(engine.url + "/api/media", data=bad,
                               headers={**engine.streamer(), "Content-Type": "multipart/form-data; boundary=b"})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_multipart", (name, answer.text)
    alive(engine)


# Found by FuzzSocket: JSON nested ~500 deep cost seconds of CPU per body or frame (JSONValue decoding
# is worse than linear in the depth). Nesting past JSON.maxDepth (64) is refused at once.
def test_deeply_nested_json_is_refused_quickly(engines):
    engine = engines(ALL_PLUGINS)
    deep = "[" * 500 + "]" * 500
    started = time.monotonic()
    answer = requests.put(engine.url + "/api/scene", headers=engine.streamer(),
                          data='{"base_version":1,"elements":[],"pad":' + deep + "}",
                          params={}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json", answer.text
    assert "deeper than 64" in answer.json()["error"]["message"]
    with connect(f"{engine.ws_url}/ws/overlay") as ws:
        ws.send('{"type":"tts.finished","id":"x","pad":' + deep + "}")
        errors = []
        for _ in range(6):
            message = json.loads(ws.recv(timeout=5))
            if message["type"] == "error":
                errors.append(message)
                break
        assert errors and errors[0]["code"] == "invalid_json", errors
    assert time.monotonic() - started < 3
    # Nesting within the limit still works.
    fine = requests.put(engine.url + "/api/scene", headers=engine.streamer(),
                        json={"base_version": requests.get(engine.url + "/api/scene").json()["_version"],
                              "elements": [{"id": "p", "type": "text", "text": "ok"}]})
    assert fine.status_code == 200, fine.text
    alive(engine)
