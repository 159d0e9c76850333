"""Delta frames and resume on one engine: `scene.patch` for clients that take it, exactly the missed versions for a
client that reconnects with the version it holds, `scene.full` when that is not possible."""
import requests
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import plugin_config
from pages import put_scene, recv_type, scene
from scene_client import SceneClient


def text(element_id, x=0, text="hi"):
    return {"id": element_id, "type": "text", "x": x, "y": 10, "text": text}


def patch_scene(engine, ops, base=None):
    base = base if base is not None else scene(engine)["_version"]
    answer = requests.patch(engine.url + "/api/scene", headers=engine.streamer(), json={"base_version": base, "ops": ops})
    assert answer.status_code == 200, answer.text
    return answer.json()["_version"]


def test_patches_carry_only_the_changed_elements_and_rebuild_the_scene(engines):
    engine = engines(plugin_config())
    put_scene(engine, [text(f"e{i}", x=i) for i in range(20)])
    client = SceneClient(engine.ws_url).open()
    client.pump(until_version=scene(engine)["_version"])
    assert client.kinds == ["scene.full"]

    moved = patch_scene(engine, [{"op": "update", "id": "e3", "fields": {"x": 333}}])
    message = client.pump(until=lambda m: m.get("type") == "scene.patch")
    assert message["version"] == moved and message["base_version"] == moved - 1
    assert [e["id"] for e in message["patch"]["upsert"]] == ["e3"] and message["patch"]["remove"] == []
    assert "order" not in message["patch"] or message["patch"]["order"] is None
    assert message["epoch"] and message["epoch"] == client.epoch

    # add, remove, restack: each a patch, and the result is the engine's scene exactly
    patch_scene(engine, [{"op": "add", "element": text("new", text="added")}])
    patch_scene(engine, [{"op": "remove", "id": "e0"}])
    patch_scene(engine, [{"op": "move", "id": "e5", "index": 0}])
    latest = scene(engine)
    client.pump(until_version=latest["_version"])
    assert client.kinds[1:] == ["scene.patch"] * 4
    assert client.scene["elements"] == latest["elements"]
    assert [e["id"] for e in client.scene["elements"]][:2] == ["e5", "e1"]

    # a patch is smaller than the full frame it replaces
    full = client.bytes
    assert full < len(str(latest)) * 2

    # clients that did not ask for patches still get scene.full only
    plain = SceneClient(engine.ws_url, patches=False).open()
    plain.pump(until_version=latest["_version"])
    patch_scene(engine, [{"op": "update", "id": "e3", "fields": {"x": 1}}])
    plain.pump(until_version=latest["_version"] + 1)
    assert plain.kinds == ["scene.full", "scene.full"]
    client.close()
    plain.close()


def test_reconnect_with_since_replays_exactly_the_missed_versions(engines):
    engine = engines(plugin_config())
    put_scene(engine, [text("a"), text("b")])
    client = SceneClient(engine.ws_url, query="overlay_id=obs-1").open()
    client.pump(until_version=scene(engine)["_version"])
    client.close()
    held = client.version
    missed = [patch_scene(engine, [{"op": "update", "id": "a", "fields": {"x": step}}]) for step in range(5)]
    client.open(resume=True)
    resumed = client.pump(until=lambda m: m.get("type") == "scene.resumed")
    assert client.versions[-5:] == missed and client.kinds[-5:] == ["scene.patch"] * 5
    assert resumed["from"] == held and resumed["version"] == missed[-1] and resumed["replayed"] == 5
    assert client.scene["elements"] == scene(engine)["elements"]

    # up to date: nothing is replayed, only scene.resumed
    client.close()
    client.open(resume=True)
    resumed = client.pump(until=lambda m: m.get("type") == "scene.resumed")
    assert resumed["replayed"] == 0 and client.versions[-1] == missed[-1]
    client.close()


def test_resume_falls_back_to_full_for_another_epoch_or_an_unknown_version(engines):
    engine = engines(plugin_config())
    put_scene(engine, [text("a")])
    version = scene(engine)["_version"]
    with connect(f"{engine.ws_url}/ws/overlay?patches=1&since={version}&epoch=not-this-engine") as ws:
        full = recv_type(ws, "scene.full")
        assert full["version"] == version and full["epoch"] != "not-this-engine"
    # a version this engine never sent (a restarted engine's replay log is empty): full
    with connect(f"{engine.ws_url}/ws/overlay?patches=1&since={version - 1}&epoch={full['epoch']}") as ws:
        assert recv_type(ws, "scene.full")["version"] == version
    # a version from the future: full
    with connect(f"{engine.ws_url}/ws/overlay?patches=1&since={version + 50}&epoch={full['epoch']}") as ws:
        assert recv_type(ws, "scene.full")["version"] == version


def test_activating_another_scene_sends_it_in_full(engines):
    engine = engines(plugin_config())
    put_scene(engine, [text("a")])
    put_scene(engine, [text("other")], name="second")
    client = SceneClient(engine.ws_url).open()
    client.pump(until_version=scene(engine)["_version"])
    answer = requests.post(engine.url + "/api/scenes/second/activate", headers=engine.streamer())
    assert answer.status_code == 200, answer.text
    client.pump(until_version=answer.json()["_version"])
    assert client.kinds[-1] == "scene.full" and client.scene["name"] == "second"


@pytest.mark.parametrize("query", ["patches=maybe", "since=-1", "since=abc", "since=1&epoch=" + "x" * 65])
def test_bad_socket_options_are_refused_with_4400(engines, query):
    engine = engines(plugin_config())
    with connect(f"{engine.ws_url}/ws/overlay?{query}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4400
    assert requests.get(engine.url + "/healthz").status_code == 200
