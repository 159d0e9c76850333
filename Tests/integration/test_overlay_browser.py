"""The overlay page in headless Chromium against the real engine: live updates keep the same playing video node,
acknowledgements reach the realtime metrics, unknown element types and events do not break the page."""
import shutil
import time

import pytest
import requests

from conftest import ROOT, plugin_config

from browser import wait_for
from pages import put_scene

VIDEO = ROOT / "Tests" / "fixtures" / "loop.webm"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def web_dir(tmp_path):
    """A copy of web/ with the video fixture at /loop.webm."""
    assert VIDEO.exists(), f"missing video fixture {VIDEO}"
    folder = tmp_path / "web"
    shutil.copytree(ROOT / "web", folder)
    shutil.copy(VIDEO, folder / "loop.webm")
    return folder


@pytest.fixture
def engine(engines, web_dir):
    return engines(plugin_config(), env={"WEB_DIR": str(web_dir)})


CHROME = {"width": 1920, "height": 1080}


def patch_scene(engine, base_version, ops):
    answer = requests.patch(engine.url + "/api/scene", headers=engine.streamer(), json={"base_version": base_version, "ops": ops})
    assert answer.status_code == 200, answer.text
    return answer.json()["_version"]


def overlay_state(driver):
    return driver.execute_script("return window.overlayState ? {connected: overlayState.connected, "
                                 "version: overlayState.version, overlayId: overlayState.overlayId} : null")


def video_info(driver, element_id):
    return driver.execute_script("""
        const v = document.querySelector(`video[data-id="${arguments[0]}"]`);
        if (!v) return null;
        const r = v.getBoundingClientRect();
        const stage = document.getElementById('stage').getBoundingClientRect();
        return {t: v.currentTime, scale: stage.width / 1920, stage_left: stage.left, paused: v.paused, ready: v.readyState, left: r.left, width: r.width,
                visibility: getComputedStyle(v).visibility, marker: v.__marker || null,
                drops: v.__drops || 0, reloads: v.__reloads || 0, count: document.querySelectorAll(`[data-id="${arguments[0]}"]`).length};
    """, element_id)


def severe_logs(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def video_element(element_id="v1", x=100, width=480):
    return {"id": element_id, "type": "video", "src": "/loop.webm", "x": x, "y": 100, "width": width, "height": 360,
            "loop": True, "muted": True, "z": 1}


def test_live_update_keeps_the_playing_video_node_and_is_acknowledged(engine, driver):
    version = put_scene(engine, [video_element(),
                                 {"id": "caption", "type": "text", "text": "Hello stream", "x": 100, "y": 500, "width": 600,
                                  "height": 80, "size": 40, "color": "#ffffff", "background": "#00000080", "z": 2}])
    driver.get(engine.url + "/overlay?overlay_id=browser-test")
    wait_for(lambda: (overlay_state(driver) or {}).get("version") == version, message="the first version on screen")
    assert overlay_state(driver) == {"connected": True, "version": version, "overlayId": "browser-test"}

    # Playing, and early enough in the 4 s clip that the loop does not wrap during the measurement.
    def playing_early():
        info = video_info(driver, "v1")
        return info and not info["paused"] and 0.3 < info["t"] < 2.0 and info
    before = wait_for(playing_early, timeout=12, message="the video playing")
    assert before["visibility"] == "visible" and before["count"] == 1

    # Mark the node, and watch it: a drop of currentTime or a new load would mean it restarted.
    driver.execute_script("""
        const v = document.querySelector('video[data-id="v1"]');
        v.__marker = 'same';
        v.__drops = 0; v.__reloads = 0; v.__last = v.currentTime;
        for (const name of ['emptied', 'loadstart', 'abort']) v.addEventListener(name, () => { v.__reloads += 1; });
        const sample = () => {
            if (v.currentTime + 0.05 < v.__last) v.__drops += 1;
            v.__last = v.currentTime;
            requestAnimationFrame(sample);
        };
        requestAnimationFrame(sample);
    """)
    before = video_info(driver, "v1")

    new_version = patch_scene(engine, version, [{"op": "update", "id": "v1", "fields": {"x": 700, "width": 640}}])
    assert new_version > version
    after = wait_for(lambda: (info := video_info(driver, "v1")) and info["left"] != before["left"]
                     and overlay_state(driver)["version"] == new_version and info, message="the move on screen")

    assert after["marker"] == "same", "the video node was replaced"
    assert after["count"] == 1
    assert after["width"] > before["width"]
    assert after["reloads"] == 0, "the video was reloaded"
    assert after["drops"] == 0, "currentTime went backwards: the video restarted"
    assert after["t"] > before["t"] and not after["paused"]
    # Moved by 600 stage pixels (the stage is scaled to the viewport, which headless makes a bit shorter than 1080).
    assert 0.5 < after["scale"] <= 1
    assert after["left"] - before["left"] == pytest.approx(600 * after["scale"], abs=2)

    # Hiding keeps the node and its playback too.
    hidden_version = patch_scene(engine, new_version, [{"op": "update", "id": "v1", "fields": {"visible": False}}])
    hidden = wait_for(lambda: overlay_state(driver)["version"] == hidden_version and video_info(driver, "v1"), message="hidden")
    assert hidden["visibility"] == "hidden" and hidden["marker"] == "same" and hidden["reloads"] == 0

    def acknowledged():
        realtime = requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()
        row = next((o for o in realtime["overlays"] if o["overlay_id"] == "browser-test"), None)
        return row if row and row["applied_version"] == hidden_version else None
    row = wait_for(acknowledged, timeout=5, message="the acknowledgement in /api/metrics/realtime")
    assert row["connected"] is True and row["lag_versions"] == 0

    # The same page with ?debug=1: the corner box shows the state; screenshot for humans.
    shown = patch_scene(engine, hidden_version, [{"op": "update", "id": "v1", "fields": {"visible": True}}])
    driver.get(engine.url + "/overlay?overlay_id=browser-debug&debug=1")
    wait_for(lambda: (overlay_state(driver) or {}).get("version") == shown, message="the debug page on screen")
    wait_for(lambda: (info := video_info(driver, "v1")) and info["t"] > 0.3, message="the video playing in debug mode")
    box = driver.execute_script("const b = document.getElementById('ov-debug'); return b ? b.textContent : null")
    assert box and "browser-debug" in box and f"version {shown}" in box and "open" in box
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "overlay.png"))
    assert severe_logs(driver) == []


def test_unknown_element_types_and_events_are_ignored_and_nothing_else_is_drawn(engine, driver):
    version = put_scene(engine, [video_element()])
    driver.get(engine.url + "/overlay?overlay_id=browser-unknown")
    wait_for(lambda: (overlay_state(driver) or {}).get("version") == version, message="the first version on screen")

    # The engine refuses unknown element types unless a plugin declares them, so feed the page's own dispatcher
    # (the function its socket uses) a scene with a plugin type, plus events nobody handles and junk.
    injected = version + 1000
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/js/overlay.js').then((overlay) => {
            overlay.handleMessage({type: 'tts.speak', text: 'hi', voice: 'x'});
            overlay.handleMessage({type: 'some.plugin.event', payload: {deep: [1, 2, 3]}});
            overlay.handleMessage({type: 42});
            overlay.handleMessage(null);
            overlay.handleMessage({type: 'scene.full', version: arguments[0] + 5, active: false, scene: {elements: []}});
            overlay.handleMessage({type: 'scene.full', version: arguments[0], active: true, action: 'patch', scene: {
                name: 'main', width: 1920, height: 1080, _version: arguments[0], elements: [
                    {id: 'v1', type: 'video', src: '/loop.webm', x: 300, y: 100, width: 480, height: 360, loop: true, muted: true},
                    {id: 'p1', type: 'chat-wall', x: 10, y: 10, width: 300, height: 300, props: {title: 'not drawn'}},
                    {id: 'bad', x: 5},
                ]}});
            overlay.handleMessage({type: 'scene.full', version: arguments[0] - 1, active: true, scene: {elements: []}});
            // A real round trip: the engine answers an event it has no handler for with an error frame.
            overlay.send({type: 'tts.unknown-from-page'});
            done(true);
        }, (err) => done(String(err)));
    """, injected)
    wait_for(lambda: overlay_state(driver)["version"] == injected, message="the injected version on screen")
    page = driver.execute_script("""
        const p = document.querySelector('[data-id="p1"]');
        const v = document.querySelector('video[data-id="v1"]');
        const stage = document.getElementById('stage').getBoundingClientRect();
        return {plugin: p ? getComputedStyle(p).display : null, pluginText: p ? p.textContent : null,
                video: v ? (v.getBoundingClientRect().left - stage.left) / (stage.width / 1920) : null, text: document.body.innerText,
                scrollbars: document.documentElement.scrollHeight > innerHeight || document.documentElement.scrollWidth > innerWidth,
                debug: !!document.getElementById('ov-debug'), bg: getComputedStyle(document.body).backgroundColor};
    """)
    assert page["plugin"] == "none" and page["pluginText"] == ""
    assert page["video"] == pytest.approx(300, abs=2)
    assert page["text"].strip() == "", "the overlay drew text without ?debug=1"
    assert page["scrollbars"] is False and page["debug"] is False
    assert page["bg"] in ("rgba(0, 0, 0, 0)", "transparent")

    # A plugin renderer registered later takes over the element of its type (the hook TTS/WebRTC/plugins use).
    drawn = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/js/overlay.js').then((overlay) => {
            overlay.registerElementType('chat-wall', {
                create() { const node = document.createElement('div'); node.style.background = '#ff000080'; return {node}; },
                update(rec, el) { rec.node.dataset.title = el.props.title; },
            });
            const nodes = document.querySelectorAll('[data-id="p1"]');
            done({count: nodes.length, display: getComputedStyle(nodes[0]).display, title: nodes[0].dataset.title || null});
        }, (err) => done(String(err)));
    """)
    assert drawn == {"count": 1, "display": "block", "title": "not drawn"}
    time.sleep(0.3)  # let the engine's error frame for the unknown event arrive
    assert overlay_state(driver)["connected"] is True
    assert severe_logs(driver) == []
