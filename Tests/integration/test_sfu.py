"""`sfu` mode of the webrtc-signaling plugin against a real Janus (no browser): the configuration's checks, tokens that
never reach Janus, what pages are (not) told, the errors a page gets when Janus refuses or is down. The media tests
with Chromium are in test_sfu_browser.py (`make test-sfu`)."""
import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import free_port, plugin_config, run_cli
from janus import JanusServer, janus_available, sfu_config
from pages import recv_type

pytestmark = pytest.mark.skipif(not janus_available(), reason="needs Debian's janus package (make test-deps)")

STREAMER = {"x-streamer-token": "streamer-secret"}
LIMITS = "limits:\n  rate:\n    webrtc.token: {burst: 1000, per_minute: 100000}\n    webrtc.connect: {burst: 1000, per_minute: 100000}\n"
ROOM = "sfu-room"


@pytest.fixture
def janus():
    server = JanusServer().start()
    yield server
    server.cleanup()


def engine_for(engines, config):
    return engines(LIMITS + plugin_config({"name": "webrtc-signaling", "config": config}))


def issue(engine, role, room=ROOM, ttl=600):
    answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": room, "role": role, "ttl": ttl})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def refused(engine, path):
    """The close code of a socket the engine refuses (it upgrades, then closes at once)."""
    with connect(engine.ws_url + path, open_timeout=5, close_timeout=2) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    return closed.value.rcvd.code


def test_sfu_settings_are_checked_at_start(workdir):
    cases = [
        ({"mode": "sfu"}, "mode: sfu needs janus_url"),
        ({"mode": "sfu", "janus_url": "https://janus.example/janus"}, "must be an http:// URL"),
        ({"mode": "sfu", "janus_url": "http://127.0.0.1:8088/janus?x=1"}, "must be an http:// URL"),
        ({"mode": "sfu", "janus_url": "http://127.0.0.1:8088/janus", "janus_api_secret": "short"}, "janus_api_secret"),
        ({"mode": "sfu", "janus_url": "http://127.0.0.1:8088/janus", "janus_admin_url": "http://127.0.0.1:7088/admin"},
         "janus_admin_secret is empty"),
        ({"mode": "mesh"}, "mode"),
        ({"default_preset": "4k"}, "default_preset"),
        ({"presets": {"tiny": {"width": 8, "height": 8, "fps": 30, "bitrate_kbps": 100}}, "default_preset": "tiny"}, "width"),
        ({"presets": {"hd": {"width": 1280, "height": 720, "fps": 30}}, "default_preset": "hd"}, "bitrate_kbps"),
        ({"janus_rooms": {"cam": 0}}, "janus_rooms"),
        ({"janus_rooms": {"a": 5, "b": 5}}, "same Janus room id"),
        ({"viewer_max_bitrate_kbps": -1}, "viewer_max_bitrate_kbps"),
    ]
    for config, expected in cases:
        (workdir / "overlay.yaml").write_text(plugin_config({"name": "webrtc-signaling", "config": config}))
        result = run_cli("serve", "--config", str(workdir / "overlay.yaml"), workdir=workdir,
                         env={"PORT": str(free_port()), "HOST": "127.0.0.1", "STREAMER_API_TOKEN": "streamer-secret"}, timeout=30)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"{config} started:\n{output}"
        assert "webrtc-signaling" in output and expected in output, f"{config}: expected '{expected}' in:\n{output}"
    # The environment overrides are checked the same way.
    (workdir / "overlay.yaml").write_text(plugin_config({"name": "webrtc-signaling", "config": {}}))
    result = run_cli("serve", "--config", str(workdir / "overlay.yaml"), workdir=workdir,
                     env={"PORT": str(free_port()), "HOST": "127.0.0.1", "STREAMER_API_TOKEN": "streamer-secret",
                          "WEBRTC_MODE": "sfu"}, timeout=30)
    assert result.returncode != 0 and "janus_url" in result.stdout + result.stderr


def test_bad_tokens_never_reach_janus_and_pages_never_see_its_secrets(engines, janus):
    engine = engine_for(engines, sfu_config(janus))
    publisher = issue(engine, "publisher")
    viewer = issue(engine, "viewer")
    expired = issue(engine, "viewer", ttl=1)
    forged = publisher[:-4] + ("AAAA" if not publisher.endswith("AAAA") else "BBBB")
    other_room = issue(engine, "publisher", room="elsewhere")
    time.sleep(1.1)
    for path, code in [
        (f"/ws/webrtc/{ROOM}/publisher", 4401),
        (f"/ws/webrtc/{ROOM}/publisher?token=garbage", 4401),
        (f"/ws/webrtc/{ROOM}/publisher?token={forged}", 4401),
        (f"/ws/webrtc/{ROOM}/viewer?token={expired}", 4401),
        (f"/ws/webrtc/{ROOM}/publisher?token={viewer}", 4403),
        (f"/ws/webrtc/{ROOM}/publisher?token={other_room}", 4403),
        (f"/ws/webrtc/bad.room/viewer?token={viewer}", 4400),
    ]:
        assert refused(engine, path) == code, path
    # None of them made the engine open a Janus session, let alone a handle or a room.
    assert janus.sessions() == []

    # A genuine publisher is told the mode and the presets, and nothing about Janus.
    with connect(engine.ws_url + f"/ws/webrtc/{ROOM}/publisher?token={publisher}", open_timeout=5, close_timeout=2) as ws:
        joined = recv_type(ws, "room.joined")
        assert joined["mode"] == "sfu" and joined["simulcast"] is True
        assert joined["default_preset"] == "720p" and joined["presets"]["720p"] == {
            "width": 1280, "height": 720, "fps": 30, "bitrate_kbps": 2500}
        text = json.dumps(joined)
        for secret in (janus.api_secret, janus.admin_secret, janus.room_admin_key, str(janus.http_port), "janus"):
            assert secret not in text
        # In sfu mode the publisher's offer goes to the media server, not to a viewer.
        ws.send(json.dumps({"type": "offer", "to": "v-1234567890", "pc_id": "p:1", "sdp": "v=0"}))
        error = recv_type(ws, "error")
        assert error["code"] == "invalid_field" and '"to": "sfu"' in error["message"]
        ws.send(json.dumps({"type": "offer", "to": "sfu", "sdp": "v=0"}))
        assert recv_type(ws, "error")["code"] == "invalid_field"  # no pc_id
        # An offer Janus refuses (not a real SDP): the page gets `sfu_unavailable`; the engine stays up.
        ws.send(json.dumps({"type": "offer", "to": "sfu", "pc_id": "p:2", "sdp": "v=0\r\nnot an sdp\r\n"}))
        error = recv_type(ws, "error", timeout=15)
        assert error["code"] == "sfu_unavailable" and error["event"] == "offer" and error["pc_id"] == "p:2"
        for secret in (janus.api_secret, janus.admin_secret, janus.room_admin_key):
            assert secret not in json.dumps(error)
    # That genuine offer is what made the engine talk to Janus: one session, with our api secret.
    assert len(janus.sessions()) == 1
    assert requests.get(engine.url + "/healthz").status_code == 200

    # Viewer settings: checked, then kept (sfu: no publisher needed).
    with connect(engine.ws_url + f"/ws/webrtc/{ROOM}/viewer?token={issue(engine, 'viewer')}", open_timeout=5, close_timeout=2) as ws:
        assert recv_type(ws, "room.joined")["mode"] == "sfu"
        ws.send(json.dumps({"type": "viewer.settings", "max_bitrate_kbps": "fast"}))
        assert recv_type(ws, "error")["code"] == "invalid_field"
        ws.send(json.dumps({"type": "viewer.settings", "max_bitrate_kbps": 800}))
        ws.send(json.dumps({"type": "answer", "sdp": "v=0"}))  # no pc_id
        assert recv_type(ws, "error")["code"] == "invalid_field"
        stats = requests.get(engine.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER).json()
        assert stats["mode"] == "sfu" and stats["janus"]["janus_room"] >= 1 and stats["janus"]["subscriptions"] == 0
        # What this engine asked of Janus so far: the refused offer's session, room and handle, nothing more.
        asked = stats["janus"]["engine_requests"]
        assert asked["session"] == 1 and asked["create"] == 1 and asked["joinandconfigure"] == 1 and asked["errors"] >= 1 and "join" not in asked

    # The static files of the pages carry no Janus setting either.
    for page in ("/plugins/webrtc-signaling/publish.js", "/plugins/webrtc-signaling/viewer.js", "/publish"):
        body = requests.get(engine.url + page).text
        assert janus.api_secret not in body and janus.room_admin_key not in body


def test_janus_down_is_an_error_frame_not_a_crash(engines):
    port = free_port()  # nothing listens there
    engine = engine_for(engines, {"mode": "sfu", "janus_url": f"http://127.0.0.1:{port}/janus", "janus_timeout_seconds": 2})
    with connect(engine.ws_url + f"/ws/webrtc/{ROOM}/publisher?token={issue(engine, 'publisher')}", open_timeout=5,
                 close_timeout=2) as ws:
        recv_type(ws, "room.joined")
        ws.send(json.dumps({"type": "offer", "to": "sfu", "pc_id": "p:1", "sdp": "v=0"}))
        error = recv_type(ws, "error", timeout=10)
        assert error["code"] == "sfu_unavailable" and "connect" in error["message"]
        ws.send(json.dumps({"type": "ping", "ts": 1}))
        assert recv_type(ws, "pong")["ts"] == 1
    assert requests.get(engine.url + "/healthz").status_code == 200
    assert "sfu: janus publish failed" in engine.logs()


def test_p2p_stays_the_default(engines):
    engine = engine_for(engines, {})
    with connect(engine.ws_url + f"/ws/webrtc/{ROOM}/viewer?token={issue(engine, 'viewer')}", open_timeout=5, close_timeout=2) as ws:
        joined = recv_type(ws, "room.joined")
        assert joined["mode"] == "p2p" and joined["simulcast"] is False and "720p" in joined["presets"]
