"""WebRTC rooms across engines through real parts: three engines share one redis-server (the plugin's bus is Redis
pub/sub), a publisher on one engine and viewers on the others see one room, their signaling crosses engines, a
second publisher elsewhere displaces the first, the viewers of an engine killed with -9 leave the room once its
presence expires, and malformed or foreign bus messages change nothing. A real call in Chromium: /publish on one
engine, /preview on another, frames arrive."""
import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from browser import wait_for
from cluster import CLUSTER_CONFIG, Cluster
from test_webrtc import _SOCKETS, sockets  # noqa: F401  (the fixture that closes every socket of a test)

STREAMER = {"x-streamer-token": "streamer-secret"}
ROOM = "stage"
TOKEN_SECRET = "cluster-test-token-secret-0123456789abcdef"
CHROME = {"args": ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-timer-throttling",
                   "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows")}


def cluster_config(**plugin):
    """The cluster's config with the signaling plugin; every engine signs tokens with the same key."""
    limits = ("    webrtc.token: {burst: 1000, per_minute: 100000}\n    webrtc.viewer-token: {burst: 1000, per_minute: 100000}\n"
              "    webrtc.connect: {burst: 1000, per_minute: 100000}\n    webrtc.config: {burst: 1000, per_minute: 100000}\n")
    config = {"token_secret": TOKEN_SECRET, "presence_expiry_seconds": 3, **plugin}
    entry = "  - " + json.dumps({"name": "webrtc-signaling", "config": config}) + "\n"
    return CLUSTER_CONFIG.replace("limits:\n  rate:\n", "limits:\n  rate:\n" + limits) + entry


@pytest.fixture
def cluster(tmp_path):
    running = Cluster(tmp_path, size=3, config=cluster_config(replace_publisher=True))
    yield running
    running.stop()


def token(engine, role, room=ROOM):
    answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": room, "role": role, "ttl": 600})
    assert answer.status_code == 201, answer.text
    return answer.json()


def engine_id(engine):
    return requests.get(engine.url + "/api/webrtc/rooms", headers=STREAMER, timeout=5).json()["engine_id"]


class Socket:
    """A signaling socket that keeps every message it reads."""

    def __init__(self, engine, role, room=ROOM):
        self.ws = _SOCKETS[-1].enter_context(connect(
            engine.ws_url + f"/ws/webrtc/{room}/{role}?token={token(engine, role, room)['token']}", open_timeout=5, close_timeout=2))
        self.messages = []
        self.closed = None
        self.joined = self.wait(lambda m: m["type"] == "room.joined")
        self.id = self.joined["peer_id"]

    def read(self, timeout):
        try:
            message = json.loads(self.ws.recv(timeout=timeout))
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            self.closed = closed.rcvd
            raise
        self.messages.append(message)
        return message

    def wait(self, predicate, timeout=20.0, what="a message"):
        for message in self.messages:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.read(max(0.05, deadline - time.monotonic()))
            if message is not None and predicate(message):
                return message
        raise AssertionError(f"no {what} within {timeout}s; got {self.messages[-5:]}")

    def state(self):
        states = [m for m in self.messages if m["type"] == "room.state"]
        return states[-1] if states else None

    def wait_state(self, predicate, what, timeout=20.0):
        """Reads until the newest room.state satisfies `predicate` (older states may have been overtaken)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state is not None and predicate(state):
                return state
            assert time.monotonic() < deadline, f"room.state never showed {what}; last: {state}"
            self.read(0.2)

    def send(self, **message):
        self.ws.send(json.dumps(message))

    def close(self):
        self.ws.close()


def members(state):
    return state["publisher_id"], set(state["viewers"])


def test_a_room_spans_engines(cluster):
    a, b, c = cluster.engines
    ids = {engine_id(engine): name for engine, name in ((a, "a"), (b, "b"), (c, "c"))}
    assert len(ids) == 3
    publisher = Socket(a, "publisher")
    viewer_b = Socket(b, "viewer")
    viewer_c = Socket(c, "viewer")
    everyone = (publisher.id, {viewer_b.id, viewer_c.id})
    for socket in (publisher, viewer_b, viewer_c):
        socket.wait_state(lambda s: members(s) == everyone, "the publisher on A and the viewers on B and C")
    for socket in (publisher, viewer_b, viewer_c):
        seqs = [m["seq"] for m in socket.messages if m["type"] == "room.state"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs

    # Signaling crosses engines both ways, with `from` set by the engine of the sender.
    publisher.send(type="offer", to=viewer_b.id, sdp="v=0 offer-b", pc_id="pc1")
    offer = viewer_b.wait(lambda m: m["type"] == "offer", what="the offer on B")
    assert offer["from"] == publisher.id and offer["sdp"] == "v=0 offer-b" and offer["pc_id"] == "pc1"
    viewer_b.send(type="answer", sdp="v=0 answer-b", pc_id="pc1", **{"from": "forged"})
    answer = publisher.wait(lambda m: m["type"] == "answer", what="the answer on A")
    assert answer["from"] == viewer_b.id and answer["sdp"] == "v=0 answer-b" and "to" not in answer
    publisher.send(type="ice-candidate", to=viewer_c.id, candidate={"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
    candidate = viewer_c.wait(lambda m: m["type"] == "ice-candidate", what="the candidate on C")
    assert candidate["from"] == publisher.id and candidate["candidate"]["candidate"].startswith("candidate:1")
    viewer_c.send(type="ice-candidate", candidate=None)
    publisher.wait(lambda m: m["type"] == "ice-candidate" and m["from"] == viewer_c.id, what="C's candidate on A")
    # Metrics from the publisher reach every viewer, each with its own connection.
    publisher.send(type="publisher.metrics", fps=30, source="camera",
                   peers=[{"viewer_id": viewer_b.id, "fps": 29}, {"viewer_id": viewer_c.id, "fps": 28}])
    assert viewer_b.wait(lambda m: m["type"] == "publisher.metrics")["connection"]["fps"] == 29
    assert viewer_c.wait(lambda m: m["type"] == "publisher.metrics")["connection"]["fps"] == 28
    assert not [m for s in (publisher, viewer_b, viewer_c) for m in s.messages if m["type"] == "error"]

    # Any engine's stats list every peer with the engine it is on.
    def stats_everywhere():
        rooms = [requests.get(e.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER, timeout=5).json() for e in (a, b, c)]
        return rooms if all(r.get("viewer_count") == 2 for r in rooms) else None
    for room in wait_for(stats_everywhere, timeout=10, message="stats on every engine"):
        assert ids[room["publisher"]["engine"]] == "a"
        assert {v["id"]: ids[v["engine"]] for v in room["viewers"]} == {viewer_b.id: "b", viewer_c.id: "c"}
    listing = requests.get(b.url + "/api/webrtc/rooms", headers=STREAMER, timeout=5).json()
    assert [(r["room"], r["publisher"], r["viewers"]) for r in listing["rooms"]] == [(ROOM, True, 2)]

    # A second publisher on C displaces A's (replace_publisher): A's socket closes with 4410, everyone follows.
    second = Socket(c, "publisher")
    with pytest.raises(ConnectionClosed):
        publisher.wait(lambda m: False, timeout=20, what="the close of the displaced publisher")
    assert publisher.closed.code == 4410
    for socket in (viewer_b, viewer_c, second):
        socket.wait_state(lambda s: s["publisher_id"] == second.id and set(s["viewers"]) == everyone[1], "the new publisher")
    assert viewer_b.state()["event"] in ("publisher-replaced", "join")
    viewer_b.send(type="answer", sdp="v=0 to-the-new-one")
    assert second.wait(lambda m: m["type"] == "answer")["from"] == viewer_b.id

    # Engine B dies (-9): once its presence expires, its viewer leaves the room everywhere.
    cluster.kill(b)
    for socket in (second, viewer_c):
        socket.wait_state(lambda s: members(s) == (second.id, {viewer_c.id}), "B's viewer gone", timeout=30)
    assert second.state()["event"] == "leave" and second.state()["peer_id"] == viewer_b.id
    for socket in (second, viewer_c):
        socket.close()


def test_bad_bus_messages_change_nothing(cluster):
    a, b, _ = cluster.engines
    publisher = Socket(a, "publisher")
    viewer = Socket(b, "viewer")
    publisher.wait_state(lambda s: set(s["viewers"]) == {viewer.id}, "the viewer")
    before = len(publisher.messages)
    channel = "onionrp:bus:webrtc-signaling:"
    good_peer = {"id": "v-forged", "role": "viewer", "joined_at": 1}
    for topic, payload in [
        ("rooms", "no-space-at-all"),
        ("rooms", "e1 {not json"),
        ("rooms", "e1 " + json.dumps({"kind": "join", "v": 1, "room": "bad room", "peer": good_peer})),
        ("rooms", "e1 " + json.dumps({"kind": "join", "v": 1, "room": ROOM, "peer": {**good_peer, "role": "king"}})),
        ("rooms", "e1 " + json.dumps({"kind": "join", "v": 7, "room": ROOM, "peer": good_peer})),
        ("rooms", "e1 " + json.dumps({"kind": "presence", "v": 1, "rooms": [{"room": ROOM, "peers": "lots"}]})),
        ("rooms", "e1 " + "[" * 5000),
        ("rooms", "bad/engine " + json.dumps({"kind": "join", "v": 1, "room": ROOM, "peer": good_peer})),
        (f"signal.{engine_id(a)}", "e1 " + json.dumps({"kind": "signal", "v": 1, "room": ROOM,
                                                       "frames": [{"to": publisher.id, "frame": "{\"type\":\"offer\"}"}]})),
        (f"signal.{engine_id(a)}", "e1 " + json.dumps({"kind": "signal", "v": 1, "room": ROOM,
                                                       "frames": [{"to": publisher.id, "frame": "not json"}]})),
        (f"signal.{engine_id(a)}", "e1 " + json.dumps({"kind": "signal", "v": 1, "room": ROOM, "frames": 5})),
    ]:
        cluster.redis.cli("PUBLISH", channel + topic, payload)
    # Still one publisher and one viewer; the sockets still work; the engines are up.
    publisher.send(type="ping", ts=1)
    publisher.wait(lambda m: m["type"] == "pong", what="a pong after the junk")
    new = [m for m in publisher.messages[before:] if m["type"] not in ("pong",)]
    assert new == [], new
    assert members(publisher.state()) == (publisher.id, {viewer.id})
    for engine in cluster.engines:
        assert engine.proc.poll() is None
        assert requests.get(engine.url + "/healthz", timeout=5).status_code == 200
    room = requests.get(a.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER, timeout=5).json()
    assert [v["id"] for v in room["viewers"]] == [viewer.id]
    # A well-formed join from an engine that does not exist shows up, then expires with its silence.
    cluster.redis.cli("PUBLISH", channel + "rooms", "ghost " + json.dumps({"kind": "join", "v": 1, "n": 1, "room": ROOM, "peer": good_peer}))
    publisher.wait_state(lambda s: "v-forged" in s["viewers"], "the ghost's viewer")
    publisher.wait_state(lambda s: set(s["viewers"]) == {viewer.id}, "the ghost's viewer expired", timeout=30)
    publisher.close()
    viewer.close()


def video(driver, selector):
    return driver.execute_script("""
        const v = document.querySelector(arguments[0]);
        if (!v) return null;
        const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: -1};
        return {width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames, paused: v.paused};
    """, selector)


def test_a_call_in_chromium_with_publisher_and_viewer_on_different_engines(tmp_path, driver):
    cluster = Cluster(tmp_path, size=2, config=cluster_config())
    try:
        a, b = cluster.engines
        driver.get(a.url + token(a, "publisher")["url"])
        publish_window = driver.current_window_handle
        wait_for(lambda: driver.execute_script("return window.publisherState && publisherState.socket === 'open' "
                                               "&& publisherState.source === 'camera'"), timeout=15, message="the publisher live on A")
        driver.switch_to.new_window("window")
        driver.get(b.url + token(a, "viewer")["url"])  # a token from A works on B: the engines share the key
        first = wait_for(lambda: (v := video(driver, "video.ov-webrtc-preview")) and v["width"] > 0 and v["frames"] > 0 and v,
                         timeout=30, message="the first decoded frame on B")
        assert not first["paused"]
        later = wait_for(lambda: (v := video(driver, "video.ov-webrtc-preview")) and v["frames"] > first["frames"] and v,
                         timeout=10, message="frames advancing")
        assert later["width"] >= 320
        viewer_id = driver.execute_script("return window.overlayWebRTC.preview.viewerId")
        ids = {engine_id(a): "a", engine_id(b): "b"}

        def media_on_both_sides():
            room = requests.get(a.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER, timeout=5).json()
            viewer = next((v for v in room.get("viewers", []) if v["id"] == viewer_id), None)
            connection = ((room.get("publisher") or {}).get("connections") or {}).get(viewer_id) or {}
            if viewer and (viewer.get("latest") or {}).get("fps") and connection.get("fps"):
                return room, viewer
            return None
        room, viewer = wait_for(media_on_both_sides, timeout=20, interval=0.5, message="the viewer's fps in A's stats")
        assert ids[room["publisher"]["engine"]] == "a" and ids[viewer["engine"]] == "b"
        driver.switch_to.window(publish_window)
        assert driver.execute_script("return publisherState.viewers.length") == 1
    finally:
        cluster.stop()
