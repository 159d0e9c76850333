"""Scale-out through real parts: three engines share one redis-server (AOF, fsync always) behind nginx, which
spreads overlay sockets across them. Saves go to random engines at once; every overlay gets every version exactly
once, in order, also when its engine is killed (-9) and it reconnects through nginx to another one; a Redis killed
and restarted loses no answered save; a revocation on one engine closes the session's sockets on the others."""
import json
import random
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from browser import wait_for
from cluster import Cluster
from scene_client import SceneClient

STREAMER = {"x-streamer-token": "streamer-secret"}


@pytest.fixture
def cluster(tmp_path):
    running = Cluster(tmp_path)
    yield running
    running.stop()


def alive(cluster):
    return [engine for engine in cluster.engines if engine.proc.poll() is None]


def save(url, element_id, x, retries=20):
    """A PATCH of one element on the engine at `url`; returns the answered version, or None when it failed."""
    for _ in range(retries):
        try:
            base = requests.get(url + "/api/scene", headers=STREAMER, timeout=5).json()["_version"]
            answer = requests.patch(url + "/api/scene", headers=STREAMER, timeout=10,
                                    json={"base_version": base, "ops": [{"op": "update", "id": element_id, "fields": {"x": x}}]})
        except (requests.RequestException, ValueError, KeyError):
            time.sleep(0.05)
            continue
        if answer.status_code == 200:
            return answer.json()["_version"]
        assert answer.status_code in (409, 502, 503), answer.text
        time.sleep(0.05)
    return None


class Reader(threading.Thread):
    """Reads one overlay socket and, like the overlay page, reconnects through the proxy with the version it holds."""

    def __init__(self, cluster, index):
        super().__init__(daemon=True)
        self.client = SceneClient(cluster.nginx.ws_url, query=f"overlay_id=obs-{index}")
        self.stop = threading.Event()
        self.target = None
        self.reconnects = 0
        self.error = None

    def run(self):
        try:
            self.client.open()
            while True:
                if self.stop.is_set() and self.target is not None and self.client.version >= self.target:
                    return
                try:
                    self.client.handle(self.client.ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    while True:
                        try:
                            self.client.open(resume=True)
                            self.reconnects += 1
                            break
                        except Exception:
                            time.sleep(0.1)
        except Exception as error:  # reported by the test
            self.error = error

    def finish(self, target, timeout=30):
        self.target = target
        self.stop.set()
        self.join(timeout)
        assert self.error is None, f"{self.client.query}: {self.error!r}"
        assert not self.is_alive(), f"{self.client.query} stuck at {self.client.version}, wanted {target}"
        self.client.close()


def start_readers(cluster, count):
    readers = [Reader(cluster, index) for index in range(count)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 20
    while any(reader.client.version == 0 and reader.error is None for reader in readers):
        assert time.monotonic() < deadline, "overlays did not get their first scene"
        time.sleep(0.05)
    return readers


def prepare_scene(cluster, savers):
    url = cluster.engines[0].url
    elements = [{"id": f"w{i}", "type": "text", "text": f"writer {i}", "x": 0, "y": 40 * i} for i in range(savers)]
    base = requests.get(url + "/api/scene", headers=STREAMER).json()["_version"]
    answer = requests.put(url + "/api/scene", headers=STREAMER, json={"base_version": base, "elements": elements})
    assert answer.status_code == 200, answer.text


def check_exactly_once(cluster, readers, answered):
    log = cluster.redis.stream_versions()
    assert len(set(answered)) == len(answered), "two saves were answered with the same version"
    assert set(answered) <= set(log), "an answered save is missing from the shared log"
    for reader in readers:
        got = reader.client.versions
        assert got == sorted(set(got)), f"{reader.client.query}: versions out of order or repeated: {got}"
        expected = [v for v in log if v >= got[0]]
        assert got == expected, (f"{reader.client.query} (reconnected {reader.reconnects}x) missed "
                                 f"{sorted(set(expected) - set(got))}")


def test_saves_on_random_engines_reach_every_overlay_once_in_order(cluster):
    savers, per_saver = 4, 25
    prepare_scene(cluster, savers)
    readers = start_readers(cluster, 30)
    spread = cluster.overlays_per_engine()
    assert all(count >= 5 for count in spread), f"nginx did not spread the overlays: {spread}"

    answered = []
    lock = threading.Lock()

    def writer(index):
        for step in range(per_saver):
            version = save(random.choice(cluster.engines).url, f"w{index}", step + 1)
            assert version is not None
            with lock:
                answered.append(version)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(savers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answered) == savers * per_saver
    for reader in readers:
        reader.finish(max(answered))
    check_exactly_once(cluster, readers, answered)

    # Every engine holds the same scene; the writers' last values all landed (rebased, none lost).
    scenes = [requests.get(engine.url + "/api/scene", headers=STREAMER).json() for engine in cluster.engines]
    assert all(scene == scenes[0] for scene in scenes)
    assert {e["id"]: e["x"] for e in scenes[0]["elements"]} == {f"w{i}": per_saver for i in range(savers)}
    for reader in readers:
        assert reader.client.scene["elements"] == scenes[0]["elements"]
    assert sum(reader.client.kinds.count("scene.patch") for reader in readers) > 0


def test_kill_9_an_engine_mid_traffic_and_its_overlays_catch_up_elsewhere(cluster):
    prepare_scene(cluster, 2)
    readers = start_readers(cluster, 24)
    victim = cluster.engines[0]
    on_victim = cluster.overlays_per_engine()[0]
    assert on_victim >= 4
    answered = []
    killed = threading.Event()

    def writer(index):
        for step in range(40):
            if step == 15 and index == 0:
                cluster.kill(victim)
                killed.set()
            version = save(cluster.nginx.url, f"w{index}", step + 1)
            if version is not None:
                answered.append(version)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert killed.is_set() and len(answered) >= 70
    last = max(cluster.redis.stream_versions())
    for reader in readers:
        reader.finish(last)
    check_exactly_once(cluster, readers, answered)
    moved = [reader for reader in readers if reader.reconnects]
    assert len(moved) >= on_victim, f"{on_victim} overlays were on the killed engine, {len(moved)} reconnected"
    assert all(reader.client.resumed for reader in moved), "a reconnected overlay got a full scene instead of its missed versions"
    assert all(reader.client.version == last for reader in readers)


def test_redis_killed_and_restarted_loses_no_answered_save(cluster):
    prepare_scene(cluster, 1)
    readers = start_readers(cluster, 6)
    answered = [save(random.choice(cluster.engines).url, "w0", step) for step in range(1, 21)]
    assert None not in answered
    cluster.redis.kill()
    down = requests.patch(cluster.engines[1].url + "/api/scene", headers=STREAMER, timeout=10,
                          json={"base_version": answered[-1], "ops": [{"op": "update", "id": "w0", "fields": {"x": 999}}]})
    assert down.status_code == 503 and down.json()["error"]["code"] == "storage_failed"
    assert down.headers.get("retry-after")
    cluster.redis.start()
    for engine in cluster.engines:
        deadline = time.monotonic() + 20
        while requests.get(engine.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "engine did not see redis again"
            time.sleep(0.1)
    assert set(answered) <= set(cluster.redis.stream_versions())
    for engine in cluster.engines:
        assert requests.get(engine.url + "/api/scene", headers=STREAMER).json()["_version"] >= answered[-1]
    more = [save(random.choice(cluster.engines).url, "w0", 100 + step) for step in range(5)]
    assert None not in more and min(more) > max(answered)
    for reader in readers:
        reader.finish(max(more))
    check_exactly_once(cluster, readers, answered + more)


def test_revoking_on_one_engine_closes_the_sessions_sockets_on_the_others(cluster):
    first, second, third = cluster.engines
    key = requests.post(first.url + "/api/moderator-keys/generate", headers=STREAMER, data={"label": "mod"}).json()["key"]
    session = requests.post(second.url + "/api/moderator-keys/consume", data={"key": key}).json()
    sockets = [connect(engine.ws_url + f"/ws/moderator?session={session['session']}").__enter__() for engine in (second, third)]
    for ws in sockets:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    answer = requests.delete(first.url + f"/api/moderator-sessions/{session['session_id']}", headers=STREAMER)
    assert answer.status_code == 200
    for ws in sockets:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=8)
        # "session revoked" is the bus's close; the periodic sweep would say "session expired".
        assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason == "session revoked"


def test_realtime_metrics_cover_every_engine(cluster):
    prepare_scene(cluster, 1)
    readers = start_readers(cluster, 9)
    version = save(cluster.engines[2].url, "w0", 5)
    deadline = time.monotonic() + 15
    while True:
        report = requests.get(cluster.engines[0].url + "/api/metrics/realtime", headers=STREAMER).json()
        if report["cluster"]["overlays_connected"] == 9 and len(report["engines"]) == 3:
            break
        assert time.monotonic() < deadline, report["engines"]
        time.sleep(0.3)
    assert report["engine_id"] in {e["engine_id"] for e in report["engines"]}
    assert sum(e["overlays_connected"] for e in report["engines"]) == 9
    assert all(e["overlays_connected"] >= 1 for e in report["engines"])
    assert report["overlays_connected"] == next(e for e in report["engines"] if e["engine_id"] == report["engine_id"])["overlays_connected"]
    for reader in readers:
        reader.finish(version)


def test_the_overlay_page_resumes_on_another_engine_after_its_engine_dies(cluster, driver):
    prepare_scene(cluster, 1)
    driver.get(cluster.nginx.url + "/overlay?overlay_id=browser-1")
    first = requests.get(cluster.engines[0].url + "/api/scene", headers=STREAMER).json()["_version"]
    wait_for(lambda: driver.execute_script("return window.overlayState.version") == first, timeout=15)
    assert driver.execute_script("return window.overlayState.epoch")
    counts = cluster.overlays_per_engine()
    victim = cluster.engines[counts.index(1)]
    cluster.kill(victim)
    survivor = next(engine for engine in cluster.engines if engine is not victim)
    versions = [save(survivor.url, "w0", 10 + step) for step in range(3)]
    wait_for(lambda: driver.execute_script("return window.overlayState.version") == versions[-1], timeout=20)
    assert driver.execute_script("return window.overlayState.resumes") >= 1
    assert driver.execute_script("return window.overlayState.scene.elements[0].x") == 12


def test_a_save_based_on_a_version_made_through_another_engine_a_moment_ago_is_not_refused(cluster):
    prepare_scene(cluster, 1)
    first, second, third = cluster.engines
    for step in range(20):
        a, b = (first, second) if step % 2 else (second, third)
        version = save(a.url, "w0", step)
        # At once, on another engine that may not have installed `version` yet: it reads the log before judging.
        answer = requests.patch(b.url + "/api/scene", headers=STREAMER,
                                json={"base_version": version, "ops": [{"op": "update", "id": "w0", "fields": {"y": step}}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["_version"] > version
    # A base from the future is still refused, after one look at the log.
    future = requests.patch(first.url + "/api/scene", headers=STREAMER,
                            json={"base_version": 10**9, "ops": [{"op": "update", "id": "w0", "fields": {"y": 1}}]})
    assert future.status_code == 409, future.text


def test_a_redis_that_lost_everything_gets_the_scenes_back_under_a_new_epoch(cluster):
    prepare_scene(cluster, 1)
    readers = start_readers(cluster, 6)
    before = save(cluster.engines[0].url, "w0", 7)
    old_epoch = cluster.redis.cli("GET", "onionrp:scenes:epoch").strip()
    cluster.redis.cli("FLUSHALL")
    # The next save finds the ledger empty: the engine writes its scenes back, versions keep growing, a new epoch.
    after = save(cluster.engines[1].url, "w0", 8)
    assert after is not None and after > before
    new_epoch = cluster.redis.cli("GET", "onionrp:scenes:epoch").strip()
    assert new_epoch and new_epoch != old_epoch
    scene = requests.get(cluster.engines[2].url + "/api/scene", headers=STREAMER).json()
    deadline = time.monotonic() + 15
    while scene["_version"] < after:
        assert time.monotonic() < deadline, scene
        time.sleep(0.2)
        scene = requests.get(cluster.engines[2].url + "/api/scene", headers=STREAMER).json()
    assert scene["elements"][0]["x"] == 8
    # Every engine notices the new epoch (its follower checks it after each read) and sends the scene in full.
    deadline = time.monotonic() + 15
    while any(reader.client.epoch != new_epoch for reader in readers):
        assert time.monotonic() < deadline, [reader.client.epoch for reader in readers]
        time.sleep(0.2)
    for reader in readers:
        reader.finish(after)
        assert reader.client.scene["elements"][0]["x"] == 8


def test_an_engine_started_before_its_redis_serves_and_loads_the_scenes_when_redis_comes(tmp_path, engines):
    from cluster import CLUSTER_CONFIG, DurableRedis
    redis = DurableRedis(tmp_path)
    engine = engines(CLUSTER_CONFIG, env={"REDIS_URL": redis.url})
    try:
        assert requests.get(engine.url + "/readyz").status_code == 503
        waiting = requests.get(engine.url + "/api/scene", headers=STREAMER)
        assert waiting.status_code == 503 and waiting.json()["error"]["code"] == "store_unavailable"
        assert waiting.headers.get("retry-after")
        client = SceneClient(engine.ws_url).open()
        redis.start()
        client.pump(until_version=1, timeout=20)
        assert client.kinds == ["scene.full"] and client.scene["name"] == "main"
        assert requests.get(engine.url + "/api/scene", headers=STREAMER).status_code == 200
        client.close()
    finally:
        redis.stop()
