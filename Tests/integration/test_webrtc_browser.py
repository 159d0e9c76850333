"""A real WebRTC stream in headless Chromium through the real engine: /publish (fake camera) to /preview, to a webrtc
element of a normal scene on /overlay, with media metrics from both sides, keyframe requests and viewer reconnects."""
import time

import pytest
import requests

from conftest import ROOT, plugin_config

from browser import wait_for

ARTIFACTS = ROOT / "test-artifacts"
STREAMER = {"x-streamer-token": "streamer-secret"}
ROOM = "browser-cam"

CHROME = {"args": ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-timer-throttling",
                   "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows")}


@pytest.fixture
def engine(engines):
    limits = "limits:\n  rate:\n    webrtc.token: {burst: 100, per_minute: 1000}\n    webrtc.viewer-token: {burst: 100, per_minute: 1000}\n"
    return engines(limits + plugin_config({"name": "webrtc-signaling", "config": {}}))


def issue(engine, role, ttl=600):
    answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": ROOM, "role": role, "ttl": ttl})
    assert answer.status_code == 201, answer.text
    return answer.json()


def video(driver, selector):
    return driver.execute_script("""
        const v = document.querySelector(arguments[0]);
        if (!v) return null;
        const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: -1};
        const r = v.getBoundingClientRect();
        return {width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames, paused: v.paused,
                boxWidth: r.width, boxHeight: r.height};
    """, selector)


def viewer_info(driver, expression):
    return driver.execute_script(f"""
        const view = {expression};
        return view ? {{state: view.state, viewerId: view.viewerId, pcId: view.pcId, reconnects: view.reconnects,
                        error: view.lastError, sample: view.lastSample}} : null;
    """)


def stats(engine):
    answer = requests.get(engine.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER)
    return answer.json() if answer.status_code == 200 else None


def frames_advance(driver, selector, seconds=1.0):
    first = video(driver, selector)["frames"]
    time.sleep(seconds)
    second = video(driver, selector)["frames"]
    return second > first > 0


def severe(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_camera_reaches_the_preview_and_a_scene_element(engine, driver):
    started = time.monotonic()
    publisher = issue(engine, "publisher")
    viewer = issue(engine, "viewer")
    assert viewer["url"].startswith(f"/preview?webrtc_room={ROOM}&token=")

    # Window 1: the camera page.
    driver.get(engine.url + publisher["url"])
    publish_window = driver.current_window_handle
    wait_for(lambda: driver.execute_script("return window.publisherState && publisherState.socket === 'open' "
                                           "&& publisherState.source === 'camera'"), message="the publisher live")
    wait_for(lambda: (video(driver, "#local") or {}).get("width", 0) > 0, timeout=5, message="the local camera preview")

    # Window 2: the overlay in viewer mode.
    driver.switch_to.new_window("window")
    preview_window = driver.current_window_handle
    opened = time.monotonic()
    driver.get(engine.url + viewer["url"])
    first = wait_for(lambda: (v := video(driver, "video.ov-webrtc-preview")) and v["width"] > 0 and v["frames"] > 0 and v,
                     timeout=20, message="the first decoded frame in the preview")
    first_frame_seconds = time.monotonic() - opened
    assert first["width"] >= 320 and first["height"] >= 180 and not first["paused"]
    # Full stage: the preview video fills the window (the stage is scaled to it).
    assert first["boxWidth"] >= 1000
    assert wait_for(lambda: frames_advance(driver, "video.ov-webrtc-preview"), timeout=5, message="frames advancing")
    preview = viewer_info(driver, "window.overlayWebRTC.preview")
    assert preview["state"] == "playing" and preview["viewerId"].startswith("v-")

    # Both sides report fps above zero; the stats route has them.
    def both_sides():
        room = stats(engine)
        if not room or not room["publisher"] or not room["publisher"]["latest"]:
            return None
        ours = next((v for v in room["viewers"] if v["id"] == preview["viewerId"]), None)
        if not ours or not ours["latest"]:
            return None
        if (room["publisher"]["latest"].get("fps") or 0) > 0 and (ours["latest"].get("fps") or 0) > 0:
            return room, ours
        return None
    room, ours = wait_for(both_sides, timeout=15, interval=0.5, message="fps from the publisher and the viewer in the stats")
    assert ours["latest"]["width"] > 0 and ours["latest"]["state"] == "connected" and "rtt_ms" in ours["latest"]
    assert room["publisher"]["connections"][preview["viewerId"]]["fps"] > 0
    assert room["publisher"]["source"] == "camera" and room["summary"]["viewer_fps_avg"] > 0
    metrics = requests.get(engine.url + "/metrics").text
    assert f'onionrp_plugin_webrtc_viewer_fps_avg{{plugin="webrtc-signaling",room="{ROOM}"}}' in metrics
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "preview.png"))

    # A keyframe request: the publisher restarts this viewer's connection and the picture comes back.
    before_pc = preview["pcId"]
    asked = time.monotonic()
    driver.execute_script("window.overlayWebRTC.preview.requestKeyframe('test', true)")
    wait_for(lambda: (info := viewer_info(driver, "window.overlayWebRTC.preview")) and info["pcId"] not in (None, before_pc),
             timeout=10, message="a new connection after the keyframe request")
    wait_for(lambda: frames_advance(driver, "video.ov-webrtc-preview", 0.5), timeout=10, message="frames after the keyframe request")
    keyframe_seconds = time.monotonic() - asked

    # A viewer that reconnects (its socket dropped) gets a new id and a picture again.
    old_id = preview["viewerId"]
    dropped = time.monotonic()
    driver.execute_script("window.overlayWebRTC.preview.ws.close()")
    wait_for(lambda: (info := viewer_info(driver, "window.overlayWebRTC.preview")) and info["viewerId"] != old_id
             and info["state"] == "playing", timeout=15, message="the viewer back after a reconnect")
    assert wait_for(lambda: frames_advance(driver, "video.ov-webrtc-preview", 0.5), timeout=5, message="frames after reconnecting")
    reconnect_seconds = time.monotonic() - dropped

    # Window 3: a normal overlay with a webrtc element in the scene gets its own viewer token from the overlay route.
    current = requests.get(engine.url + "/api/scene", headers=STREAMER).json()
    answer = requests.put(engine.url + "/api/scene", headers=STREAMER, json={"base_version": current["_version"], "elements": [
        {"id": "cam", "type": "webrtc", "room": ROOM, "x": 1200, "y": 600, "width": 640, "height": 360}]})
    assert answer.status_code == 200, answer.text
    driver.switch_to.new_window("window")
    driver.get(engine.url + "/overlay?overlay_id=webrtc-element")
    element = wait_for(lambda: (v := video(driver, '[data-id="cam"] video')) and v["width"] > 0 and v["frames"] > 0 and v,
                       timeout=20, message="the webrtc element playing")
    assert 200 < element["boxWidth"] < 700  # in its box, not full stage
    assert wait_for(lambda: frames_advance(driver, '[data-id="cam"] video'), timeout=5, message="element frames advancing")
    assert driver.execute_script("return document.querySelector('video.ov-webrtc-preview')") is None
    overlay_errors = severe(driver)

    # The publisher page shows both viewers.
    driver.switch_to.window(publish_window)
    wait_for(lambda: driver.execute_script("return publisherState.viewers.length") == 2, timeout=5, message="two viewers")
    assert driver.execute_script("return publisherState.live") is True
    publisher_errors = severe(driver)
    # The preview page draws the scene too: its element of the same room shows the preview's stream (no second connection).
    driver.switch_to.window(preview_window)
    mirrored = wait_for(lambda: (v := video(driver, '[data-id="cam"] video')) and v["width"] > 0 and v["frames"] > 0 and v,
                        timeout=10, message="the scene element of the preview's room in the preview")
    assert mirrored["boxWidth"] < 700
    preview_errors = severe(driver)
    assert overlay_errors == [] and publisher_errors == [] and preview_errors == []

    total = time.monotonic() - started
    print(f"\nwebrtc timings: first frame {first_frame_seconds:.2f}s after opening /preview, keyframe restart "
          f"{keyframe_seconds:.2f}s, viewer reconnect {reconnect_seconds:.2f}s, whole test {total:.1f}s")
    assert first_frame_seconds < 15 and keyframe_seconds < 10 and reconnect_seconds < 15
