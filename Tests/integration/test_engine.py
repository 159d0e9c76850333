"""Engine basics over real HTTP: health, readiness, metrics, errors, static pages, graceful shutdown."""
import json
import signal
import socket
import time

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import plugin_config


def test_health_ready_metrics_and_errors(engines):
    engine = engines(plugin_config({"name": "moderator-keys"}))
    assert requests.get(engine.url + "/healthz").json() == {"status": "ok"}
    ready = requests.get(engine.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["store"] == "embedded"
    assert ready.json()["plugins"] == ["moderator-keys"]

    missing = requests.get(engine.url + "/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "/api/nothing-here" in missing.json()["error"]["message"]

    metrics = requests.get(engine.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "onionrp_ws_connections" in metrics.text


def test_static_pages_have_types_and_cache_headers(engines):
    engine = engines(plugin_config())
    index = requests.get(engine.url + "/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    assert "etag" in {k.lower() for k in index.headers}
    again = requests.get(engine.url + "/", headers={"if-none-match": index.headers["etag"]})
    assert again.status_code == 304
    css = requests.get(engine.url + "/css/common.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_bad_input_gets_json_errors_not_crashes(engines):
    engine = engines(plugin_config({"name": "moderator-keys"}))
    token = engine.streamer()
    wrong = requests.post(engine.url + "/api/moderator-keys/generate", headers={"x-streamer-token": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    bad_json = requests.post(engine.url + "/api/moderator-keys/generate", headers={**token, "content-type": "application/json"}, data="{")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    huge = requests.post(engine.url + "/api/moderator-keys/generate", headers=token, data="streamer_id=" + "x" * (70 * 1024))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    long_field = requests.post(engine.url + "/api/moderator-keys/generate", headers=token, data={"streamer_id": "x" * 65})
    assert long_field.status_code == 400 and "streamer_id" in long_field.json()["error"]["message"]
    weird_type = requests.post(engine.url + "/api/moderator-keys/generate", headers={**token, "content-type": "text/csv"}, data="a,b")
    assert weird_type.status_code == 415
    assert requests.get(engine.url + "/healthz").status_code == 200


def test_sigterm_with_websocket_client_connected_stops_cleanly(engines):
    engine = engines(plugin_config({"name": "moderator-keys"}))
    with connect(engine.ws_url + "/ws/overlay") as overlay:
        assert json.loads(overlay.recv(timeout=5))["type"] == "hello"
        started = time.monotonic()
        engine.proc.send_signal(signal.SIGTERM)
        code = None
        try:
            while True:
                overlay.recv(timeout=10)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        assert code == 1001
        assert engine.wait_exit(timeout=15) == 0
        elapsed = time.monotonic() - started
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    logs = engine.logs()
    assert "shutting down: closing 1 sockets" in logs
    assert "plugin moderator-keys stopped" in logs
    assert "engine stopped" in logs


def test_route_body_limit_holds_for_declared_and_streamed_bodies(engines):
    engine = engines("limits:\n  max_body_bytes: 2048\n" + plugin_config({"name": "moderator-keys"}))
    declared = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data="streamer_id=" + "x" * 4096)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(8):
            yield b"x" * 1024
    streamed = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data=chunks())
    assert streamed.status_code == 413
    assert requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data="streamer_id=ok").status_code == 201


def test_expect_100_continue_is_answered_before_the_body(engines):
    engine = engines(plugin_config({"name": "moderator-keys"}))
    body = b"streamer_id=curl"
    with socket.create_connection(("127.0.0.1", engine.port), timeout=5) as sock:
        sock.sendall((f"POST /api/moderator-keys/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nx-streamer-token: streamer-secret\r\n"
                      f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                      "Expect: 100-continue\r\n\r\n").encode())
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(body)
        final = b""
        while b"\r\n\r\n" not in final:
            final += sock.recv(4096)
        assert final.startswith(b"HTTP/1.1 201"), final


def test_log_lines_keep_their_format_and_arrive_in_batches(engines):
    """Request lines (written by the engine's buffered handler directly) and other lines share one format."""
    import re
    engine = engines("plugins: []\n")
    answer = requests.get(engine.url + "/healthz?probe=1", timeout=5)
    request_id = answer.headers["x-request-id"]
    requests.get(engine.url + "/no/such/page", timeout=5)
    logs = engine.logs()  # waits out the 50 ms batching
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    assert re.search(rf"^{stamp} info onionrp: hb\.request\.id={request_id} ms=\d+\.\d\d status=200 \[Engine\] GET /healthz 200$",
                     logs, re.M), logs[-2000:]
    assert re.search(rf"^{stamp} info onionrp: hb\.request\.id=[0-9a-f]+ ms=\d+\.\d\d status=404 \[Engine\] GET /no/such/page 404$",
                     logs, re.M), logs[-2000:]
    assert re.search(rf"^{stamp} notice onionrp: \[Engine\] listening on http://", logs, re.M), logs[:2000]
