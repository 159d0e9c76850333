"""A camera element in the panel's editor shows the room live once it has a publisher (issue 16): /publish with
Chromium's fake camera in one window, /mod in another, through the real engine. Screenshot: test-artifacts/mod-camera.png."""
import requests

from conftest import BUILD, plugin_config

import pytest

from browser import make_chrome
from browser import wait_for
from pages import generate_key, login, put_scene, screenshot

ROOM = "panel-cam"


def test_camera_element_shows_a_live_thumbnail_in_the_editor(engines):
    if not (BUILD / "libwebrtc-signaling.so").exists():
        pytest.skip("webrtc-signaling not built")
    engine = engines(plugin_config({"name": "moderator-keys"}, {"name": "webrtc-signaling", "config": {}}))
    put_scene(engine, [{"id": "cam", "type": "webrtc", "room": ROOM, "x": 100, "y": 100, "width": 960, "height": 540, "name": "Cam"}])
    driver = make_chrome("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-timer-throttling",
                         "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows", script_timeout=15)
    try:
        login(driver, engine, generate_key(engine))
        # No publisher yet: the box names the room and says so.
        wait_for(lambda: "no publisher yet" in driver.find_element("css selector", '.ed-el[data-id="cam"] .ed-camera-label').text,
                 timeout=10, message="the waiting label")
        mod_window = driver.current_window_handle
        token = requests.post(engine.url + "/api/webrtc/token", headers=engine.streamer(), data={"room": ROOM, "role": "publisher"})
        assert token.status_code == 201, token.text
        driver.switch_to.new_window("window")
        driver.get(engine.url + token.json()["url"])
        wait_for(lambda: driver.execute_script("return window.publisherState && publisherState.socket === 'open'"), message="the publisher")
        driver.switch_to.window(mod_window)
        frames = wait_for(lambda: driver.execute_script(
            "const n = document.querySelector('.ed-el[data-id=\"cam\"]'); const v = n && n.querySelector('video');"
            " return n && n.classList.contains('ed-camera-live') && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames"),
            timeout=25, message="a live thumbnail in the editor")
        assert frames > 0
        screenshot(driver, "mod-camera.png")
    finally:
        driver.quit()
