"""Scene sync over the wire: saves, conflicts, broadcast order, slow clients, acknowledgements, persistence."""
import base64
import contextlib
import json
import os
import signal
import socket
import time

import requests
from websockets.sync.client import connect



SCENE_CONFIG = """
limits:
  ws_send_timeout_seconds: 2
  ws_outbound_queue: 16
plugins:
  - name: moderator-keys
"""


def save(engine, ops, base=None, expect=200):
    if base is None:
        base = requests.get(engine.url + "/api/scene").json()["_version"]
    answer = requests.patch(engine.url + "/api/scene", headers=engine.streamer(), json={"base_version": base, "ops": ops})
    assert answer.status_code == expect, answer.text
    return answer.json()


def text(id, **fields):
    return {"id": id, "type": "text", "text": fields.pop("text", id), **fields}


def scene_frames(ws, until_version, timeout=10):
    """scene.full frames until one with `until_version` arrives."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == "scene.full":
            frames.append(message)
            if message["version"] >= until_version:
                return frames
    raise AssertionError(f"version {until_version} never arrived; got {[f['version'] for f in frames]}")


def test_overlay_gets_scene_on_connect_and_every_save_in_order(engines):
    engine = engines(SCENE_CONFIG)
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(engine.ws_url + f"/ws/overlay?overlay_id=o{i}")) for i in range(3)]
        initial = [scene_frames(ws, 1)[-1] for ws in sockets]
        assert all(frame["scene"]["name"] == "main" and frame["active"] for frame in initial)
        version = save(engine, [{"op": "add", "element": text("t", x=0)}])["_version"]
        for x in range(1, 21):
            version = save(engine, [{"op": "update", "id": "t", "fields": {"x": x}}], base=version)["_version"]
        for ws in sockets:
            frames = scene_frames(ws, version)
            versions = [frame["version"] for frame in frames]
            assert versions == sorted(set(versions)), f"versions must only grow: {versions}"
            assert frames[-1]["scene"]["elements"][0]["x"] == 20
            assert frames[-1]["scene"]["_version"] == version
            assert frames[-1]["server_ts"] > 0


def test_moderator_channel_gets_scene_full_too(engines):
    engine = engines(SCENE_CONFIG)
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer()).json()["key"]
    session = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key}).json()["session"]
    with connect(engine.ws_url + f"/ws/moderator?session={session}") as moderator:
        scene_frames(moderator, 1)
        answer = requests.patch(engine.url + "/api/scene", headers={"x-moderator-session": session},
                                json={"base_version": 1, "ops": [{"op": "add", "element": text("m")}]})
        assert answer.status_code == 200, answer.text
        assert scene_frames(moderator, 2)[-1]["scene"]["elements"][0]["id"] == "m"


def test_api_errors_conflicts_history_restore_and_activation(engines):
    engine = engines(SCENE_CONFIG)
    h = engine.streamer()
    assert requests.patch(engine.url + "/api/scene", json={"base_version": 1, "ops": []}).status_code == 401
    # Overlays may read without credentials when no overlay token is configured.
    assert requests.get(engine.url + "/api/scene").json()["_version"] == 1

    bad = requests.put(engine.url + "/api/scene", headers=h, json={"base_version": 1, "elements": [{"id": "a", "type": "text", "text": "x", "opacity": 3}]})
    assert bad.status_code == 400
    assert bad.json()["error"] == {"code": "invalid_scene", "message": "element 'a': opacity must be between 0.0 and 1.0, got 3.0",
                                   "element": "a", "field": "opacity"}
    assert requests.put(engine.url + "/api/scene", headers=h, data="{nope").json()["error"]["code"] == "invalid_json"

    v2 = requests.put(engine.url + "/api/scene", headers=h, json={"base_version": 1, "elements": [text("a"), text("b")]}).json()["_version"]
    stale = requests.put(engine.url + "/api/scene", headers=h, json={"base_version": 1, "elements": []})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_conflict"
    assert stale.json()["error"]["scene"]["_version"] == v2
    assert [e["id"] for e in stale.json()["error"]["scene"]["elements"]] == ["a", "b"]

    v3 = save(engine, [{"op": "remove", "id": "b"}], base=v2)["_version"]
    history = requests.get(engine.url + "/api/scene/history", headers=h).json()
    assert [entry["version"] for entry in history["versions"]][:3] == [v3, v2, 1]
    restored = requests.post(engine.url + "/api/scene/restore", headers=h, json={"version": v2}).json()
    assert restored["_version"] == v3 + 1 and [e["id"] for e in restored["elements"]] == ["a", "b"]

    # A second scene, then switch the overlay to it.
    created = requests.put(engine.url + "/api/scenes/brb", headers=h, json={"base_version": 0, "elements": [text("brb")]})
    assert created.status_code == 200, created.text
    with connect(engine.ws_url + "/ws/overlay") as overlay:
        scene_frames(overlay, restored["_version"])
        activated = requests.post(engine.url + "/api/scenes/brb/activate", headers=h).json()
        frame = scene_frames(overlay, activated["_version"])[-1]
        assert frame["scene"]["name"] == "brb" and frame["version"] > restored["_version"]
    listing = requests.get(engine.url + "/api/scenes").json()
    assert listing["active"] == "brb" and {s["name"] for s in listing["scenes"]} == {"main", "brb"}
    assert requests.delete(engine.url + "/api/scenes/brb", headers=h).status_code == 409
    assert requests.get(engine.url + "/api/scenes/nope").status_code == 404
    assert requests.get(engine.url + "/api/scenes/bad%20name").status_code == 400


def test_scene_get_answers_304_while_unchanged_and_new_bytes_and_etag_after_a_save(engines):
    engine = engines(SCENE_CONFIG)
    h = engine.streamer()
    first = requests.get(engine.url + "/api/scene")
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag == f'"v{first.json()["_version"]}"'
    assert first.headers["cache-control"] == "no-cache" and first.headers["content-type"].startswith("application/json")

    unchanged = requests.get(engine.url + "/api/scene", headers={"if-none-match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    # A list of tags, a weak tag and * match; another version does not.
    assert requests.get(engine.url + "/api/scene", headers={"if-none-match": f'"v0", W/{etag}'}).status_code == 304
    assert requests.get(engine.url + "/api/scene", headers={"if-none-match": "*"}).status_code == 304
    assert requests.get(engine.url + "/api/scene", headers={"if-none-match": '"v999999"'}).status_code == 200

    saved = requests.patch(engine.url + "/api/scene", headers=h,
                           json={"base_version": first.json()["_version"], "ops": [{"op": "add", "element": text("t", x=7)}]})
    assert saved.status_code == 200, saved.text
    after = requests.get(engine.url + "/api/scene", headers={"if-none-match": etag})
    assert after.status_code == 200 and after.headers["etag"] == f'"v{saved.json()["_version"]}"' != etag
    # The new version: what the save answered, byte for byte the same on every GET until the next change.
    assert after.json() == saved.json() and after.json()["elements"][0]["x"] == 7
    assert requests.get(engine.url + "/api/scene").content == after.content
    named = requests.get(engine.url + "/api/scenes/main", headers={"if-none-match": after.headers["etag"]})
    assert named.status_code == 304 and named.headers["etag"] == after.headers["etag"]

    # Activating another scene gives it a new version, so the active scene's tag changes too.
    assert requests.put(engine.url + "/api/scenes/brb", headers=h, json={"base_version": 0, "elements": [text("brb")]}).status_code == 200
    activated = requests.post(engine.url + "/api/scenes/brb/activate", headers=h).json()
    switched = requests.get(engine.url + "/api/scene", headers={"if-none-match": after.headers["etag"]})
    assert switched.status_code == 200 and switched.json()["name"] == "brb"
    assert switched.headers["etag"] == f'"v{activated["_version"]}"'


def test_scene_get_needs_the_overlay_token_even_for_a_304(engines):
    engine = engines(SCENE_CONFIG, env={"OVERLAY_TOKEN": "ov-secret"})
    first = requests.get(engine.url + "/api/scene?token=ov-secret")
    assert first.status_code == 200
    refused = requests.get(engine.url + "/api/scene", headers={"if-none-match": first.headers["etag"]})
    assert refused.status_code == 401


def test_scene_get_takes_every_credential_the_other_routes_take(engines):
    """GET /api/scene has a route of its own (not the plugin bridge); it judges credentials as every route does."""
    engine = engines(SCENE_CONFIG, env={"OVERLAY_TOKEN": "ov-secret"})
    for headers, query in [({"x-overlay-token": "ov-secret"}, ""), ({}, "?overlay_token=ov-secret"),
                           ({"x-streamer-token": engine.streamer()["x-streamer-token"]}, "")]:
        answer = requests.get(engine.url + "/api/scene" + query, headers=headers)
        assert answer.status_code == 200, (headers, query, answer.text)
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["cache-control"] == "no-cache"
    wrong = requests.get(engine.url + "/api/scene", headers={"x-streamer-token": "wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    stale = requests.get(engine.url + "/api/scene?token=ov-secret", headers={"x-moderator-session": "no-such-session"})
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "session_invalid"
    head = requests.head(engine.url + "/api/scene?token=ov-secret")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"].startswith('"v')


def test_acknowledgements_show_in_realtime_metrics(engines):
    engine = engines(SCENE_CONFIG)
    with connect(engine.ws_url + "/ws/overlay?overlay_id=obs-main") as overlay:
        scene_frames(overlay, 1)
        version = save(engine, [{"op": "add", "element": text("a")}])["_version"]
        scene_frames(overlay, version)
        overlay.send(json.dumps({"type": "overlay.applied", "version": version}))
        lagging = requests.post(engine.url + "/api/overlay/applied", json={"overlay_id": "obs-old", "version": 1})
        assert lagging.status_code == 200
        assert requests.post(engine.url + "/api/overlay/applied", json={"overlay_id": "x", "version": 10**9}).status_code == 400
        deadline = time.monotonic() + 5
        while True:
            live = requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()
            rows = {row["overlay_id"]: row for row in live["overlays"]}
            if rows.get("obs-main", {}).get("applied_version") == version or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert rows["obs-main"]["connected"] and rows["obs-main"]["lag_versions"] == 0
        assert rows["obs-old"]["applied_version"] == 1 and rows["obs-old"]["lag_versions"] == version - 1
        assert live["overlays_connected"] == 1 and live["latest_version"] == version
        assert live["ack_latency_ms"]["samples"] >= 1 and live["ack_latency_ms"]["p50"] is not None
        assert live["saves_total"] == 1
        metrics = requests.get(engine.url + "/metrics").text
        assert "onionrp_overlay_ack_latency_seconds_count" in metrics
        assert 'onionrp_scene_version{scene="main"}' in metrics
    assert requests.get(engine.url + "/api/metrics/realtime").status_code == 401


def stuck_overlay(engine):
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", engine.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/overlay?overlay_id=stuck HTTP/1.1\r\nHost: 127.0.0.1:{engine.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


def test_a_client_that_stops_reading_does_not_delay_the_others(engines):
    engine = engines(SCENE_CONFIG)
    stuck = stuck_overlay(engine)
    try:
        big = "x" * 1900
        version = save(engine, [{"op": "add", "element": text(f"e{i}", text=big)} for i in range(60)])["_version"]
        with connect(engine.ws_url + "/ws/overlay?overlay_id=fast", max_size=None) as fast:
            scene_frames(fast, version)
            delays = []
            for x in range(40):
                started = time.monotonic()
                version = save(engine, [{"op": "update", "id": "e0", "fields": {"x": x}}], base=version)["_version"]
                scene_frames(fast, version)
                delays.append(time.monotonic() - started)
            # Generous bound: each save reaches the reading client well under a second even though another
            # client has ~120 KB frames piling up unread.
            assert max(delays) < 1.0, f"slowest save-to-receive {max(delays):.3f}s"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            live = requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()
            if live["frames"]["clients_dropped"] >= 1:
                break
            time.sleep(0.2)
        assert live["frames"]["clients_dropped"] >= 1, live["frames"]
        assert "dropped a stuck client" in engine.logs()
    finally:
        stuck.close()


PATIENT_CONFIG = SCENE_CONFIG.replace("ws_send_timeout_seconds: 2", "ws_send_timeout_seconds: 60")


def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_scene_versions(sock, until_version, timeout=20):
    """Reads a raw client's frames (after its handshake answer) until scene.full `until_version`; the versions seen."""
    sock.settimeout(timeout)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += recv_exact(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    versions = []
    while True:
        first, second = recv_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(recv_exact(sock, 2), "big")
        elif length == 127:
            length = int.from_bytes(recv_exact(sock, 8), "big")
        payload = recv_exact(sock, length)
        if first & 0x0F == 1 and payload.startswith(b'{"type":"scene.full"'):
            versions.append(json.loads(payload)["version"])
            if versions[-1] >= until_version:
                return versions


def masked_text(payload: bytes) -> bytes:
    """A client text frame (clients must mask)."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def realtime_frames(engine):
    return requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()["frames"]


def big_scene_and_a_client_that_does_not_read(engine):
    """A ~120 KB scene (60 elements of 1,900 characters), then a raw overlay client that never reads."""
    version = save(engine, [{"op": "add", "element": text(f"e{i}", text="x" * 1900)} for i in range(60)])["_version"]
    client = stuck_overlay(engine)
    time.sleep(0.3)
    return version, client


def test_a_slow_reader_gets_every_version_in_order_or_coalesced_and_ends_on_the_newest(engines):
    engine = engines(PATIENT_CONFIG)
    version, slow = big_scene_and_a_client_that_does_not_read(engine)
    try:
        # ~120 KB frames while the client reads nothing: once the socket and the engine's buffer are full, the
        # queued scene.full is replaced by each newer one instead of piling up.
        for x in range(40):
            version = save(engine, [{"op": "update", "id": "e0", "fields": {"x": x}}], base=version)["_version"]
        assert realtime_frames(engine)["frames_coalesced"] >= 1
        versions = read_scene_versions(slow, version)
        assert versions == sorted(set(versions)) and versions[-1] == version
        assert len(versions) < 41, "older versions should have been coalesced"
        assert realtime_frames(engine)["clients_dropped"] == 0
    finally:
        slow.close()


def test_a_client_that_sends_but_never_reads_is_dropped_when_its_queue_overflows(engines):
    engine = engines(PATIENT_CONFIG)
    version, stuck = big_scene_and_a_client_that_does_not_read(engine)
    try:
        # Fill the socket until the engine starts coalescing (its buffer is full), then ask for error answers,
        # which are not coalesced: past ws_outbound_queue (16) queued frames the client is dropped.
        for x in range(80):
            version = save(engine, [{"op": "update", "id": "e0", "fields": {"x": x}}], base=version)["_version"]
            if realtime_frames(engine)["frames_coalesced"] >= 1:
                break
        assert realtime_frames(engine)["frames_coalesced"] >= 1
        for _ in range(40):
            stuck.sendall(masked_text(b'{"type":"no.such.event"}'))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and realtime_frames(engine)["clients_dropped"] < 1:
            time.sleep(0.1)
        assert realtime_frames(engine)["clients_dropped"] == 1
        assert "dropped a stuck client" in engine.logs() and "queue_full" in engine.logs()
    finally:
        stuck.close()


def test_scene_survives_restart_and_kill_9(engines):
    engine = engines(SCENE_CONFIG)
    version = save(engine, [{"op": "add", "element": text("keep", x=1)}])["_version"]
    engine.stop()
    engine.start()
    scene = requests.get(engine.url + "/api/scene").json()
    assert scene["_version"] == version and scene["elements"][0]["id"] == "keep"

    # kill -9 right after saves were answered: the last answered save is there, versions never go back.
    for x in range(2, 30):
        version = save(engine, [{"op": "update", "id": "keep", "fields": {"x": x}}], base=version)["_version"]
    engine.proc.send_signal(signal.SIGKILL)
    engine.proc.wait()
    engine.start()
    scene = requests.get(engine.url + "/api/scene").json()
    assert scene["_version"] == version
    assert scene["elements"][0]["x"] == 29
    after = save(engine, [{"op": "update", "id": "keep", "fields": {"y": 5}}], base=version)
    assert after["_version"] == version + 1
