"""WebRTC signaling against the real engine: tokens, ICE/TURN config, routing between a publisher and viewers,
room state, limits, abuse handling, metrics and stats."""
import base64
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import os
import stat
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pages import put_scene, recv_type
from conftest import plugin_config, run_cli

STREAMER = {"x-streamer-token": "streamer-secret"}
LOOSE_LIMITS = """
limits:
  rate:
    webrtc.token: {burst: 1000, per_minute: 100000}
    webrtc.viewer-token: {burst: 1000, per_minute: 100000}
    webrtc.config: {burst: 1000, per_minute: 100000}
"""


def webrtc_engine(engines, env=None, limits=LOOSE_LIMITS, extra_plugins=(), **config):
    entries = [*extra_plugins, {"name": "webrtc-signaling", "config": config}]
    return engines(limits + plugin_config(*entries), env=env)


def issue(engine, room, role, ttl=None, expect=201, **kwargs):
    fields = {"room": room, "role": role}
    if ttl is not None:
        fields["ttl"] = ttl
    answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data=fields, **kwargs)
    assert answer.status_code == expect, answer.text
    return answer.json()


def token(engine, room, role, ttl=None):
    return issue(engine, room, role, ttl)["token"]


def ws_path(room, role, tok):
    return f"/ws/webrtc/{room}/{role}?token={tok}"


_SOCKETS = []


@pytest.fixture(autouse=True)
def sockets():
    """Every socket a test opens is used as a context manager and closed at the end of the test."""
    with contextlib.ExitStack() as stack:
        _SOCKETS.append(stack)
        try:
            yield stack
        finally:
            _SOCKETS.pop()


def open_ws(engine, room, role, tok=None):
    tok = tok if tok is not None else token(engine, room, role)
    return _SOCKETS[-1].enter_context(connect(engine.ws_url + ws_path(room, role, tok), open_timeout=5, close_timeout=2))


def recv(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


def drain(ws, quiet=0.3):
    """Every message that arrives until the socket is quiet for `quiet` seconds."""
    out = []
    while True:
        try:
            out.append(recv(ws, quiet))
        except TimeoutError:
            return out


def expect_only_pong(ws):
    """Nothing queued for this socket but the answer to a ping: proves no stray message was routed to it."""
    ws.send(json.dumps({"type": "ping", "ts": 7}))
    message = recv(ws)
    assert message["type"] == "pong" and message["ts"] == 7, message
    return message


def close_code(engine, path, timeout=5.0):
    """Opens a socket that the engine refuses, and returns the close code and reason."""
    with connect(engine.ws_url + path, open_timeout=5, close_timeout=2) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ws.recv(timeout=timeout)
        return closed.value.rcvd.code, closed.value.rcvd.reason


def join(engine, room, role, tok=None):
    """Opens a socket and returns it with its room.joined message and the first room.state."""
    ws = open_ws(engine, room, role, tok)
    joined = recv(ws)
    assert joined["type"] == "room.joined", joined
    state = recv(ws)
    assert state["type"] == "room.state", state
    return ws, joined, state


def stats(engine, room, expect=200):
    answer = requests.get(engine.url + f"/api/webrtc/rooms/{room}/stats", headers=STREAMER)
    assert answer.status_code == expect, answer.text
    return answer.json()


# ---------------------------------------------------------------------------------------------
# Routing


def test_routing_between_one_publisher_and_three_viewers(engines):
    engine = webrtc_engine(engines)
    publisher, joined, state = join(engine, "studio", "publisher")
    pid = joined["peer_id"]
    assert joined["role"] == "publisher" and pid.startswith("p-") and joined["viewer_id"] is None
    assert state["publisher"] is True and state["publisher_id"] == pid and state["viewers"] == []

    viewers = {}
    for _ in range(3):
        ws, joined, state = join(engine, "studio", "viewer")
        vid = joined["viewer_id"]
        assert vid.startswith("v-") and joined["peer_id"] == vid and joined["publisher_id"] == pid
        assert vid in state["viewers"] and state["publisher_id"] == pid
        viewers[vid] = ws
    assert len(viewers) == 3
    # The publisher heard of each join, in order, with the full list.
    joins = [m for m in drain(publisher) if m["type"] == "room.state"]
    assert [m["peer_id"] for m in joins] == list(viewers)
    assert joins[-1]["viewers"] == list(viewers) and joins[-1]["viewer_count"] == 3
    assert [m["seq"] for m in joins] == sorted(m["seq"] for m in joins)
    for ws in viewers.values():
        drain(ws, 0.1)

    # Publisher -> each viewer: an offer and a candidate, addressed with `to`.
    for vid in viewers:
        publisher.send(json.dumps({"type": "offer", "to": vid, "sdp": f"v=0 offer-for-{vid}", "pc_id": f"pc-{vid}"}))
        publisher.send(json.dumps({"type": "ice-candidate", "to": vid, "pc_id": f"pc-{vid}",
                                   "candidate": {"candidate": f"candidate:1 1 udp 1 10.0.0.1 9 typ host {vid}",
                                                 "sdpMid": "0", "sdpMLineIndex": 0}}))
    for vid, ws in viewers.items():
        offer = recv(ws)
        assert offer == {"type": "offer", "to": vid, "from": pid, "sdp": f"v=0 offer-for-{vid}", "pc_id": f"pc-{vid}"}
        candidate = recv(ws)
        assert candidate["type"] == "ice-candidate" and candidate["from"] == pid and candidate["candidate"]["candidate"].endswith(vid)
        expect_only_pong(ws)  # nothing meant for another viewer arrived here

    # Each viewer -> the publisher: answer, candidate (also the end-of-candidates null), keyframe request.
    for vid, ws in viewers.items():
        ws.send(json.dumps({"type": "answer", "sdp": f"v=0 answer-from-{vid}", "pc_id": f"pc-{vid}"}))
        ws.send(json.dumps({"type": "ice-candidate", "candidate": None, "pc_id": f"pc-{vid}"}))
        ws.send(json.dumps({"type": "viewer.request-keyframe", "reason": "test"}))
    got = [recv(publisher) for _ in range(9)]
    for vid in viewers:
        mine = [m for m in got if m["from"] == vid]
        assert [m["type"] for m in mine] == ["answer", "ice-candidate", "viewer.request-keyframe"]
        assert mine[0]["sdp"] == f"v=0 answer-from-{vid}" and mine[1]["candidate"] is None
        assert mine[2]["reason"] == "test" and "to" not in mine[0]
    expect_only_pong(publisher)

    room = stats(engine, "studio")
    assert room["publisher"]["id"] == pid and [v["id"] for v in room["viewers"]] == list(viewers)
    assert room["messages_by_type"]["offer"] == 3 and room["messages_by_type"]["answer"] == 3
    assert room["messages_by_type"]["ice-candidate"] == 6 and room["messages_by_type"]["viewer.request-keyframe"] == 3
    assert room["messages_forwarded"] == 15 and room["errors"] == 0
    for ws in [publisher, *viewers.values()]:
        ws.close()


def test_from_cannot_be_forged_and_roles_cannot_swap(engines):
    engine = webrtc_engine(engines)
    publisher, joined, _ = join(engine, "forge", "publisher")
    pid = joined["peer_id"]
    alice, alice_joined, _ = join(engine, "forge", "viewer")
    bob, bob_joined, _ = join(engine, "forge", "viewer")
    a, b = alice_joined["viewer_id"], bob_joined["viewer_id"]
    for ws in (publisher, alice, bob):
        drain(ws, 0.1)

    # A viewer pretending to be another viewer, or the publisher: the server sets `from`.
    alice.send(json.dumps({"type": "answer", "sdp": "v=0 x", "from": b}))
    alice.send(json.dumps({"type": "ice-candidate", "candidate": "candidate:x", "from": pid}))
    first, second = recv(publisher), recv(publisher)
    assert first["from"] == a and second["from"] == a

    # A viewer cannot address another viewer: its message goes to the publisher only, `to` removed.
    alice.send(json.dumps({"type": "answer", "sdp": "v=0 y", "to": b}))
    routed = recv(publisher)
    assert routed["from"] == a and "to" not in routed
    expect_only_pong(bob)

    # The publisher's own `from` is replaced too.
    publisher.send(json.dumps({"type": "offer", "to": b, "sdp": "v=0 z", "from": a}))
    assert recv(bob)["from"] == pid

    # Viewer-only and publisher-only types.
    alice.send(json.dumps({"type": "offer", "to": b, "sdp": "v=0"}))
    error = recv(alice)
    assert error["type"] == "error" and error["code"] == "type_not_allowed" and error["event"] == "offer"
    publisher.send(json.dumps({"type": "answer", "to": a, "sdp": "v=0"}))
    assert recv(publisher)["code"] == "type_not_allowed"
    publisher.send(json.dumps({"type": "viewer.metrics", "fps": 30}))
    assert recv(publisher)["code"] == "type_not_allowed"
    expect_only_pong(bob)
    for ws in (publisher, alice, bob):
        ws.close()


# ---------------------------------------------------------------------------------------------
# Tokens


def test_bad_expired_and_mismatched_tokens_are_refused(engines, tmp_path):
    engine = webrtc_engine(engines)
    good = token(engine, "cam", "viewer")
    # The genuine token works.
    ws, _, _ = join(engine, "cam", "viewer", good)
    ws.close()

    tampered_signature = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    payload, signature = good.rsplit(".", 1)
    other_room_same_signature = payload.replace(".cam.", ".cax.") + "." + signature
    longer_expiry = payload.rsplit(".", 2)
    forged_expiry = f"{longer_expiry[0]}.{int(longer_expiry[1]) + 100000}.{longer_expiry[2]}.{signature}"
    for bad in (tampered_signature, other_room_same_signature, forged_expiry, "garbage", "a.b.c.d.e.f", "x" * 300, ""):
        code, reason = close_code(engine, ws_path("cam", "viewer", bad))
        assert code == 4401, (bad, code, reason)
    code, reason = close_code(engine, "/ws/webrtc/cam/viewer")
    assert code == 4401 and "token" in reason

    # A token of another engine (another secret) is refused.
    other = webrtc_engine(engines)
    foreign = token(other, "cam", "viewer")
    assert close_code(engine, ws_path("cam", "viewer", foreign))[0] == 4401

    # Expired.
    short = token(engine, "cam", "viewer", ttl=1)
    time.sleep(2.1)
    code, reason = close_code(engine, ws_path("cam", "viewer", short))
    assert code == 4401 and "expired" in reason

    # Wrong room, wrong role.
    code, reason = close_code(engine, ws_path("other-room", "viewer", good))
    assert code == 4403 and "room" in reason
    code, reason = close_code(engine, ws_path("cam", "publisher", good))
    assert code == 4403 and "viewer" in reason
    publisher_token = token(engine, "cam", "publisher")
    assert close_code(engine, ws_path("cam", "viewer", publisher_token))[0] == 4403

    # Nothing of those refusals created a room.
    assert requests.get(engine.url + "/api/webrtc/rooms", headers=STREAMER).json()["rooms"] == []


def test_token_route_needs_the_streamer_and_validates_its_fields(engines):
    engine = webrtc_engine(engines, extra_plugins=({"name": "moderator-keys"},), token_ttl_seconds=600, max_token_ttl_seconds=7200)
    url = engine.url + "/api/webrtc/token"
    assert requests.post(url, data={"room": "cam", "role": "viewer"}).status_code == 401
    wrong = requests.post(url, data={"room": "cam", "role": "viewer"}, headers={"x-streamer-token": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    # A moderator session is not enough.
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=STREAMER).json()["key"]
    session = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key}).json()["session"]
    assert requests.post(url, data={"room": "cam", "role": "viewer"}, headers={"x-moderator-session": session}).status_code == 403

    before = time.time()
    form = issue(engine, "cam", "publisher")
    assert form["room"] == "cam" and form["role"] == "publisher" and form["ttl_seconds"] == 600
    assert form["url"] == f"/publish?room=cam&token={form['token']}"
    assert form["public_url"].endswith(form["url"]) and form["public_url"].startswith("http")
    as_json = requests.post(url, headers=STREAMER, json={"room": "cam", "role": "viewer", "ttl": 120})
    assert as_json.status_code == 201, as_json.text
    viewer = as_json.json()
    assert viewer["url"] == f"/preview?webrtc_room=cam&token={viewer['token']}" and viewer["ttl_seconds"] == 120
    # The token carries its room, role and expiry in clear (the pages read them), signed.
    version, role, room, expiry, _nonce, _signature = viewer["token"].split(".")
    assert (version, role, room) == ("v1", "viewer", "cam") and before + 119 <= int(expiry) <= time.time() + 121

    for fields, code in (({"room": "cam", "role": "admin"}, 400), ({"room": "cam"}, 400), ({"role": "viewer"}, 400),
                         ({"room": "cam", "role": "viewer", "ttl": "0"}, 400), ({"room": "cam", "role": "viewer", "ttl": "7201"}, 400),
                         ({"room": "cam", "role": "viewer", "ttl": "1.5"}, 400), ({"room": "cam", "role": "viewer", "ttl": "soon"}, 400)):
        answer = requests.post(url, headers=STREAMER, data=fields)
        assert answer.status_code == code, (fields, answer.text)
        assert answer.json()["error"]["code"] in ("invalid_field", "invalid_room")
    assert issue(engine, "cam", "viewer", ttl="7200")["ttl_seconds"] == 7200


def test_token_route_is_rate_limited(engines):
    engine = webrtc_engine(engines, limits="limits:\n  rate:\n    webrtc.token: {burst: 3, per_minute: 1}\n")
    codes = [requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": "r", "role": "viewer"}).status_code
             for _ in range(5)]
    assert codes[:3] == [201, 201, 201] and codes[3:] == [429, 429]
    limited = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": "r", "role": "viewer"})
    assert int(limited.headers["retry-after"]) >= 1


def test_opening_sockets_is_rate_limited(engines):
    engine = webrtc_engine(engines, limits=LOOSE_LIMITS + "    webrtc.connect: {burst: 2, per_minute: 1}\n")
    viewer = token(engine, "cam", "viewer")
    for _ in range(2):
        with connect(engine.ws_url + ws_path("cam", "viewer", viewer)) as ws:
            recv_type(ws, "room.state")
    code, reason = close_code(engine, ws_path("cam", "viewer", viewer))
    assert code == 4429 and "retry after" in reason


def test_room_names_are_validated(engines):
    engine = webrtc_engine(engines)
    for room in ("", "a b", "x" * 65, "caméra", "a.b", "../etc", "a/b", "room!", "a%20b"):
        answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": room, "role": "viewer"})
        assert answer.status_code == 400, (room, answer.text)
        assert answer.json()["error"]["code"] == "invalid_room"
    for room in ("a", "x" * 64, "Cam_1-main", "0"):
        assert issue(engine, room, "viewer")["room"] == room
    good = token(engine, "cam", "viewer")
    for room in ("a.b", "x" * 65, "caméra"):
        code, reason = close_code(engine, ws_path(requests.utils.quote(room), "viewer", good))
        assert code == 4400 and "room" in reason, (room, code, reason)
    assert requests.get(engine.url + "/api/webrtc/rooms/a.b/stats", headers=STREAMER).status_code == 400
    assert requests.get(engine.url + "/api/webrtc/config?room=a%20b").status_code == 400
    assert requests.post(engine.url + "/api/webrtc/rooms/a.b/viewer-token", headers=STREAMER).status_code == 400


def test_signing_secret_is_generated_once_kept_private_and_survives_a_restart(engines):
    engine = webrtc_engine(engines)
    secret = engine.workdir / "data" / "plugins" / "webrtc-signaling" / "token-secret"
    assert secret.exists() and stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    content = secret.read_text()
    assert len(content.strip()) >= 40
    kept = token(engine, "cam", "viewer")
    engine.stop()
    engine.start()
    assert secret.read_text() == content
    ws, joined, _ = join(engine, "cam", "viewer", kept)
    assert joined["viewer_id"].startswith("v-")
    ws.close()


def test_token_secret_from_the_environment(engines):
    env = {"WEBRTC_TOKEN_SECRET": "an-environment-secret-of-at-least-32-bytes"}
    first = webrtc_engine(engines, env=env)
    second = webrtc_engine(engines, env=env)
    shared = token(first, "cam", "viewer")
    ws, _, _ = join(second, "cam", "viewer", shared)  # the same secret verifies on the other engine
    ws.close()
    assert not (first.workdir / "data" / "plugins" / "webrtc-signaling" / "token-secret").exists()


# ---------------------------------------------------------------------------------------------
# Viewer tokens for overlays


def test_overlay_gets_short_lived_viewer_tokens_for_rooms_of_the_scene(engines):
    engine = webrtc_engine(engines, env={"OVERLAY_TOKEN": "overlay-secret"}, overlay_token_ttl_seconds=30)
    url = engine.url + "/api/webrtc/rooms/{}/viewer-token"
    overlay = {"x-overlay-token": "overlay-secret"}
    assert requests.post(url.format("cam")).status_code == 401
    assert requests.post(url.format("cam"), headers={"x-overlay-token": "wrong"}).status_code == 401
    refused = requests.post(url.format("cam"), headers=overlay)
    assert refused.status_code == 403 and "scene" in refused.json()["error"]["message"]

    put_scene(engine, [{"id": "camera", "type": "webrtc", "room": "cam", "x": 0, "y": 0, "width": 640, "height": 360}])
    answer = requests.post(url.format("cam"), headers=overlay)
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    assert issued["role"] == "viewer" and issued["room"] == "cam" and issued["ttl_seconds"] == 30
    ws, joined, _ = join(engine, "cam", "viewer", issued["token"])
    assert joined["token_expires_at"] <= time.time() + 31
    ws.close()
    # Also with ?token= (how a page without headers would do it).
    assert requests.post(url.format("cam") + "?token=overlay-secret").status_code == 201
    # Another room is still not the overlay's; the streamer may get any.
    assert requests.post(url.format("other"), headers=overlay).status_code == 403
    assert requests.post(url.format("other"), headers=STREAMER).status_code == 201


def test_overlay_rooms_any(engines):
    engine = webrtc_engine(engines, overlay_rooms="any")
    assert requests.post(engine.url + "/api/webrtc/rooms/anything/viewer-token").status_code == 201


# ---------------------------------------------------------------------------------------------
# Room state, publishers, limits


def test_room_state_on_join_and_leave_and_empty_rooms_are_dropped(engines):
    engine = webrtc_engine(engines, max_viewers_per_room=5)
    v1, j1, s1 = join(engine, "hall", "viewer")
    a = j1["viewer_id"]
    assert j1["publisher_id"] is None
    assert s1 == {**s1, "type": "room.state", "room": "hall", "event": "join", "peer_id": a, "role": "viewer", "publisher": False,
                  "publisher_id": None, "viewers": [a], "viewer_count": 1, "max_viewers": 5}
    assert isinstance(s1["seq"], int) and isinstance(s1["server_ts"], int)

    publisher, jp, sp = join(engine, "hall", "publisher")
    pid = jp["peer_id"]
    assert sp["event"] == "join" and sp["publisher"] is True and sp["viewers"] == [a]
    seen = recv_type(v1, "room.state")
    assert seen["event"] == "join" and seen["role"] == "publisher" and seen["publisher_id"] == pid and seen["seq"] > s1["seq"]

    v2, j2, _ = join(engine, "hall", "viewer")
    b = j2["viewer_id"]
    assert recv_type(publisher, "room.state")["viewers"] == [a, b]
    assert recv_type(v1, "room.state")["viewers"] == [a, b]

    v1.close()
    for ws in (publisher, v2):
        left = recv_type(ws, "room.state")
        assert left["event"] == "leave" and left["peer_id"] == a and left["role"] == "viewer" and left["viewers"] == [b]
    assert [v["id"] for v in stats(engine, "hall")["viewers"]] == [b]

    publisher.close()
    gone = recv_type(v2, "room.state")
    assert gone["event"] == "leave" and gone["role"] == "publisher" and gone["publisher"] is False and gone["publisher_id"] is None
    assert stats(engine, "hall")["publisher"] is None
    # The viewer's messages for the publisher now get an error that does not count as abuse.
    v2.send(json.dumps({"type": "answer", "sdp": "v=0"}))
    assert recv(v2)["code"] == "no_publisher"

    v2.close()
    deadline = time.monotonic() + 5
    while requests.get(engine.url + "/api/webrtc/rooms", headers=STREAMER).json()["rooms"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests.get(engine.url + "/api/webrtc/rooms", headers=STREAMER).json()["rooms"] == []
    missing = requests.get(engine.url + "/api/webrtc/rooms/hall/stats", headers=STREAMER)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "room_not_found"


def test_concurrent_joins_and_leaves_give_every_peer_the_same_ordered_state(engines):
    engine = webrtc_engine(engines, max_viewers_per_room=40)
    publisher, _, _ = join(engine, "crowd", "publisher")
    tokens = [token(engine, "crowd", "viewer") for _ in range(20)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        joined = list(pool.map(lambda tok: join(engine, "crowd", "viewer", tok), tokens))
    ids = {j["viewer_id"] for _, j, _ in joined}
    assert len(ids) == 20
    # Half of them leave at once.
    leaving, staying = joined[:10], joined[10:]
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda entry: entry[0].close(), leaving))
    remaining = {j["viewer_id"] for _, j, _ in staying}

    def final_state(ws, quiet=0.1):
        states = [m for m in drain(ws, quiet) if m["type"] == "room.state"]
        seqs = [m["seq"] for m in states]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        return states[-1]
    last = final_state(publisher, 0.5)  # quiet for 0.5 s: every leave was handled
    assert set(last["viewers"]) == remaining and last["viewer_count"] == 10
    for ws, _, _ in staying:
        mine = final_state(ws)
        assert mine["seq"] == last["seq"] and mine["viewers"] == last["viewers"]
    assert {v["id"] for v in stats(engine, "crowd")["viewers"]} == remaining


def test_second_publisher_is_refused_by_default(engines):
    engine = webrtc_engine(engines)
    first, j1, _ = join(engine, "solo", "publisher")
    viewer, jv, _ = join(engine, "solo", "viewer")
    drain(first, 0.2)
    code, reason = close_code(engine, ws_path("solo", "publisher", token(engine, "solo", "publisher")))
    assert code == 4409 and "already has a publisher" in reason
    for ws in (first, viewer):
        state = recv_type(ws, "room.state")
        assert state["event"] == "publisher-refused" and state["publisher_id"] == j1["peer_id"]
    # The first publisher still routes.
    first.send(json.dumps({"type": "offer", "to": jv["viewer_id"], "sdp": "v=0"}))
    assert recv_type(viewer, "offer")["from"] == j1["peer_id"]
    assert stats(engine, "solo")["publishers_refused"] == 1
    first.close()
    viewer.close()


def test_second_publisher_replaces_the_first_when_configured(engines):
    engine = webrtc_engine(engines, replace_publisher=True)
    first, j1, _ = join(engine, "swap", "publisher")
    viewer, jv, _ = join(engine, "swap", "viewer")
    vid = jv["viewer_id"]
    drain(first, 0.2)
    second, j2, s2 = join(engine, "swap", "publisher")
    assert j2["peer_id"] != j1["peer_id"]
    assert s2["event"] == "publisher-replaced" and s2["publisher_id"] == j2["peer_id"] and s2["viewers"] == [vid]
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = recv(first)
            assert message["type"] == "room.state"  # it may hear of its replacement before the close
    assert closed.value.rcvd.code == 4410 and "replaced" in closed.value.rcvd.reason
    state = recv_type(viewer, "room.state")
    assert state["event"] == "publisher-replaced" and state["publisher_id"] == j2["peer_id"]
    # The replaced publisher leaving did not empty the room's publisher slot.
    time.sleep(0.2)
    room = stats(engine, "swap")
    assert room["publisher"]["id"] == j2["peer_id"] and room["publishers_replaced"] == 1
    second.send(json.dumps({"type": "offer", "to": vid, "sdp": "v=0 new"}))
    assert recv_type(viewer, "offer")["from"] == j2["peer_id"]
    viewer.send(json.dumps({"type": "answer", "sdp": "v=0 back"}))
    assert recv_type(second, "answer")["from"] == vid
    second.close()
    viewer.close()


def test_viewer_and_room_limits(engines):
    engine = webrtc_engine(engines, max_viewers_per_room=2, max_rooms=1)
    a, _, _ = join(engine, "one", "viewer")
    b, _, _ = join(engine, "one", "viewer")
    code, reason = close_code(engine, ws_path("one", "viewer", token(engine, "one", "viewer")))
    assert code == 4429 and "viewers" in reason
    code, reason = close_code(engine, ws_path("two", "viewer", token(engine, "two", "viewer")))
    assert code == 4429 and "rooms" in reason
    b.close()
    time.sleep(0.3)
    c, _, _ = join(engine, "one", "viewer")  # room for one more again
    for ws in (a, c):
        ws.close()


def test_idle_sockets_are_closed_and_pings_keep_them_open(engines):
    engine = webrtc_engine(engines, idle_timeout_seconds=2)
    quiet, _, _ = join(engine, "idle", "viewer")
    chatty, _, _ = join(engine, "idle", "viewer")
    started = time.monotonic()
    closed_code = None
    while time.monotonic() - started < 6 and closed_code is None:
        chatty.send(json.dumps({"type": "ping"}))
        drain(chatty, 0.05)
        try:
            quiet.recv(timeout=0.5)
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            closed_code = closed.rcvd.code
    assert closed_code == 4408
    assert 1.5 < time.monotonic() - started < 4.5
    left = recv_type(chatty, "room.state")
    assert left["event"] == "leave" and left["viewer_count"] == 1
    expect_only_pong(chatty)
    chatty.close()


# ---------------------------------------------------------------------------------------------
# Bad messages


def test_oversize_disallowed_and_malformed_messages_get_errors_and_abuse_closes(engines):
    engine = webrtc_engine(engines, max_message_bytes=2048, max_errors=7)
    publisher, _, _ = join(engine, "bad", "publisher")
    viewer, jv, _ = join(engine, "bad", "viewer")
    vid = jv["viewer_id"]
    drain(publisher, 0.2)

    # An SDP over the limit.
    publisher.send(json.dumps({"type": "offer", "to": vid, "sdp": "v=0 " + "a" * 3000}))
    error = recv(publisher)
    assert error["type"] == "error" and error["code"] == "message_too_large" and "2048" in error["message"]
    # A race (the viewer is gone) is answered but is not abuse.
    for _ in range(8):
        publisher.send(json.dumps({"type": "offer", "to": "v-nobody", "sdp": "v=0"}))
        assert recv(publisher)["code"] == "unknown_peer"
    for bad, code in ((json.dumps({"type": "room.state", "viewers": []}), "type_not_allowed"),
                      ("not json", "invalid_message"),
                      (json.dumps(["offer"]), "invalid_message"),
                      (json.dumps({"type": "offer", "to": vid}), "invalid_field")):
        publisher.send(bad)
        assert recv(publisher)["code"] == code
    publisher.send(b"\x00binary")
    assert recv(publisher)["code"] == "binary_not_supported"
    # Nothing of that reached the viewer.
    expect_only_pong(viewer)
    # The seventh violation closes the socket.
    publisher.send(json.dumps({"type": "hack"}))
    assert recv(publisher)["code"] == "type_not_allowed"
    with pytest.raises(ConnectionClosed) as closed:
        publisher.recv(timeout=5)
    assert closed.value.rcvd.code == 1008 and "protocol errors" in closed.value.rcvd.reason
    left = recv_type(viewer, "room.state")
    assert left["event"] == "leave" and left["publisher"] is False

    # Viewer-side validation.
    for bad, code in ((json.dumps({"type": "ice-candidate", "candidate": 5}), "invalid_field"),
                      (json.dumps({"type": "answer", "sdp": ""}), "invalid_field"),
                      (json.dumps({"type": "viewer.metrics", "fps": "fast"}), "invalid_json"),
                      (json.dumps({"type": "viewer.metrics", "fps": -1}), "invalid_json"),
                      (json.dumps({"type": "viewer.metrics", "packet_loss_pct": 150}), "invalid_json"),
                      (json.dumps({"type": 5}), "invalid_message")):
        viewer.send(bad)
        assert recv(viewer)["code"] == code, bad
    room = stats(engine, "bad")
    assert room["errors"] >= 6 and room["viewers"][0]["errors"] == 6 and room["publisher"] is None
    viewer.close()


def test_message_rate_limit_per_socket(engines):
    engine = webrtc_engine(engines, messages_per_second=5, message_burst=10, max_errors=1000)
    viewer, _, _ = join(engine, "fast", "viewer")
    for index in range(30):
        viewer.send(json.dumps({"type": "ping", "ts": index}))
    answers = drain(viewer, 0.5)
    pongs = [m for m in answers if m["type"] == "pong"]
    limited = [m for m in answers if m.get("code") == "rate_limited"]
    # A burst of 10, plus 5 a second for however long sending took (a loaded machine is slower).
    assert 10 <= len(pongs) <= 16 and len(pongs) + len(limited) == 30
    viewer.close()


# ---------------------------------------------------------------------------------------------
# Metrics


def test_stats_and_prometheus_after_metrics_messages(engines):
    engine = webrtc_engine(engines, metrics_history=3)
    publisher, jp, _ = join(engine, "live", "publisher")
    viewer, jv, _ = join(engine, "live", "viewer")
    other, jo, _ = join(engine, "live", "viewer")
    vid = jv["viewer_id"]
    for ws in (publisher, viewer):
        drain(ws, 0.1)

    for index in range(5):
        publisher.send(json.dumps({
            "type": "publisher.metrics", "source": "camera", "fps": 30 + index, "width": 1280, "height": 720, "bitrate_kbps": 2500.5,
            "frames_dropped": 2, "quality_limitation": "none", "unknown_field": {"ignored": True},
            "peers": [{"viewer_id": vid, "fps": 29, "bitrate_kbps": 1200, "packet_loss_pct": 0.5, "jitter_ms": 3, "rtt_ms": 12,
                       "state": "connected"},
                      {"viewer_id": "v-gone", "fps": 1}]}))
        viewer.send(json.dumps({"type": "viewer.metrics", "fps": 24 + index, "width": 1280, "height": 720, "bitrate_kbps": 1100,
                                "packets_lost": 3, "packet_loss_pct": 0.25, "jitter_ms": 4.5, "rtt_ms": 11, "frames_dropped": 1,
                                "frames": 100 * index, "freeze_count": 0, "state": "connected", "codec": "video/VP8"}))
    other.send(json.dumps({"type": "viewer.metrics", "fps": 10, "packet_loss_pct": 2, "rtt_ms": 40, "jitter_ms": 9, "frames_dropped": 5}))

    # Forwarded to each viewer, with its own connection's figures.
    forwarded = recv_type(viewer, "publisher.metrics")
    assert forwarded["from"] == jp["peer_id"] and forwarded["source"] == "camera" and forwarded["summary"]["fps"] == 30
    assert forwarded["connection"]["fps"] == 29 and forwarded["connection"]["rtt_ms"] == 12
    assert "unknown_field" not in forwarded["summary"]
    assert recv_type(other, "publisher.metrics")["connection"] is None
    expect_only_pong(publisher)  # viewer.metrics are not forwarded to the publisher
    time.sleep(0.2)

    room = stats(engine, "live")
    pub = room["publisher"]
    assert pub["latest"]["fps"] == 34 and pub["latest"]["bitrate_kbps"] == 2500.5 and pub["source"] == "camera"
    assert pub["samples"] == 5 and [h["fps"] for h in pub["history"]] == [32, 33, 34]
    assert pub["connections"][vid]["packet_loss_pct"] == 0.5 and "v-gone" not in pub["connections"]
    mine = next(v for v in room["viewers"] if v["id"] == vid)
    assert mine["latest"]["fps"] == 28 and mine["latest"]["codec"] == "video/VP8" and mine["samples"] == 5
    assert len(mine["history"]) == 3 and all("at" in h for h in mine["history"])
    assert mine["messages_in"] == 5 and mine["errors"] == 0
    summary = room["summary"]
    assert summary["publisher_fps"] == 34 and summary["viewer_fps_avg"] == 19
    assert summary["viewer_packet_loss_pct_max"] == 2 and summary["viewer_rtt_ms_max"] == 40 and summary["viewer_frames_dropped"] == 6
    assert room["messages_by_type"] == {"publisher.metrics": 5, "viewer.metrics": 6, "ping": 1}

    listing = requests.get(engine.url + "/api/webrtc/rooms", headers=STREAMER).json()
    assert listing["rooms"] == [summary]

    text = requests.get(engine.url + "/metrics").text
    def value(name, room="live"):
        for line in text.splitlines():
            if line.startswith(f"onionrp_plugin_{name}{{") and f'room="{room}"' in line:
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} for {room} not in /metrics")
    assert value("webrtc_publisher_fps") == 34 and value("webrtc_viewer_fps_avg") == 19
    assert value("webrtc_room_viewers") == 2 and value("webrtc_room_publisher") == 1
    assert 'onionrp_plugin_webrtc_messages_total{' in text

    # Moderators only.
    assert requests.get(engine.url + "/api/webrtc/rooms/live/stats").status_code == 401
    assert requests.get(engine.url + "/api/webrtc/rooms").status_code == 401
    for ws in (publisher, viewer, other):
        ws.close()


def test_room_labels_on_metrics_are_bounded(engines):
    engine = webrtc_engine(engines, metrics_room_labels=2)
    sockets = [join(engine, f"room{index}", "viewer")[0] for index in range(4)]
    text = requests.get(engine.url + "/metrics").text
    labelled = {line.split('room="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith("onionrp_plugin_webrtc_room_viewers{")}
    assert labelled == {"room0", "room1"}
    assert any(line.startswith("onionrp_plugin_webrtc_rooms{") and float(line.rsplit(" ", 1)[1]) == 4 for line in text.splitlines())
    for ws in sockets:
        ws.close()


# ---------------------------------------------------------------------------------------------
# ICE configuration


def turn_password(secret, username):
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_turn_rest_credentials_are_short_lived_and_verifiable(engines):
    secret = "coturn-static-auth-secret-for-tests"
    engine = webrtc_engine(engines, stun_urls=["stun:stun.example.org:3478"],
                           turn_urls=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
                           turn_secret=secret, turn_credential_ttl_seconds=600)
    url = engine.url + "/api/webrtc/config"
    # Without a room token: STUN only (no relay for strangers).
    public = requests.get(url)
    assert public.status_code == 200 and public.headers["cache-control"] == "no-store"
    body = public.json()
    assert body["ice_servers"] == [{"urls": ["stun:stun.example.org:3478"]}] and body["turn"] == "token_required"

    viewer_token = token(engine, "cam", "viewer")
    for query in (f"?token={viewer_token}", f"?room=cam&token={viewer_token}"):
        before = int(time.time())
        body = requests.get(url + query).json()
        after = int(time.time())
        assert body["turn"] == "rest" and body["turn_ttl_seconds"] == 600 and body["ice_transport_policy"] == "all"
        stun, turn = body["ice_servers"]
        assert stun == {"urls": ["stun:stun.example.org:3478"]}
        assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
        expiry, room = turn["username"].split(":")
        assert room == "cam" and before + 600 <= int(expiry) <= after + 600
        assert turn["credential"] == turn_password(secret, turn["username"])
    # A token for another room, or a bad token.
    assert requests.get(url + f"?room=other&token={viewer_token}").status_code == 403
    assert requests.get(url + "?token=nope").status_code == 401
    assert secret not in requests.get(url + f"?token={viewer_token}").text


def test_turn_without_token_requirement_static_credentials_and_env_overrides(engines):
    open_engine = webrtc_engine(engines, turn_urls=["turn:t.example.org"], turn_secret="0123456789abcdef0123", turn_requires_token=False)
    body = requests.get(open_engine.url + "/api/webrtc/config").json()
    (turn,) = body["ice_servers"]
    assert ":" not in turn["username"] and turn["credential"] == turn_password("0123456789abcdef0123", turn["username"])
    body = requests.get(open_engine.url + "/api/webrtc/config?room=stage").json()
    assert body["ice_servers"][0]["username"].endswith(":stage")

    static = webrtc_engine(engines, turn_urls=["turn:t.example.org"], turn_username="u", turn_password="p", turn_requires_token=False)
    body = requests.get(static.url + "/api/webrtc/config").json()
    assert body["turn"] == "static" and body["ice_servers"] == [{"urls": ["turn:t.example.org"], "username": "u", "credential": "p"}]

    env = {"WEBRTC_STUN_URLS": "stun:a.example:3478, stun:b.example:3478", "WEBRTC_TURN_URLS": "turn:env.example:3478",
           "WEBRTC_TURN_SECRET": "secret-from-the-environment"}
    overridden = webrtc_engine(engines, env=env, stun_urls=["stun:file.example"])
    tok = token(overridden, "cam", "publisher")
    body = requests.get(overridden.url + f"/api/webrtc/config?token={tok}").json()
    assert body["ice_servers"][0] == {"urls": ["stun:a.example:3478", "stun:b.example:3478"]}
    assert body["ice_servers"][1]["urls"] == ["turn:env.example:3478"]
    assert body["ice_servers"][1]["credential"] == turn_password("secret-from-the-environment", body["ice_servers"][1]["username"])

    nothing = webrtc_engine(engines)
    assert requests.get(nothing.url + "/api/webrtc/config").json() == {"ice_servers": [], "ice_transport_policy": "all", "turn": "none"}


@pytest.mark.parametrize("config, message", [
    ({"turn_urls": ["turn:x.example"]}, "no credentials"),
    ({"stun_urls": ["http://x.example"]}, "must start with stun:"),
    ({"overlay_rooms": "everywhere"}, "expected 'scene' or 'any'"),
    ({"max_viewers_per_room": 0}, "max_viewers_per_room"),
    ({"token_ttl_seconds": 100, "max_token_ttl_seconds": 10}, "token_ttl_seconds"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"token_secret": "short"}, "at least 32 bytes"),
])
def test_bad_configuration_stops_start_up_with_a_clear_message(workdir, config, message):
    path = workdir / "overlay.yaml"
    path.write_text(plugin_config({"name": "webrtc-signaling", "config": config}))
    result = run_cli("check-config", "--config", str(path), workdir=workdir)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout + result.stderr
