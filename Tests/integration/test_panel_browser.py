"""The moderator panel (/mod) and the streamer dashboard (/admin) in headless Chromium against the real engine:
key login once, a stage drag that reaches an open overlay with throttled saves, uploads that reach a second
moderator, conflicts, offline edits that survive an engine restart, and plugins that are missing.

Screenshots go to test-artifacts/ (mod.png, mod-1080.png, admin.png, overlay-from-panel.png, ...)."""
import re
import time

import pytest
import requests

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser import wait_for
from pages import (Console, element, generate_key, login, make_driver, no_overflow, panel,  # noqa: F401
                   panel_config, plugin_routes, put_scene, scene, screenshot, text_element, tiny_png, wait_for_panel, wait_saved)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers

@pytest.fixture
def engine(engines):
    return engines(panel_config())


# ---------------------------------------------------------------------------------------------
# Tests

def test_streamer_generates_a_key_in_admin_and_it_logs_a_moderator_in_once(engine, driver):
    console = Console(driver)
    driver.get(engine.url + "/admin")
    token = wait_for(lambda: driver.find_element(By.ID, "streamer-token").is_displayed() and driver.find_element(By.ID, "streamer-token"))
    token.send_keys("wrong-token")
    driver.find_element(By.ID, "token-submit").click()
    wait_for(lambda: "not the streamer token" in driver.find_element(By.ID, "token-message").text, message="the wrong token refused")
    token.clear()
    token.send_keys("streamer-secret")
    driver.find_element(By.ID, "token-submit").click()
    wait_for(lambda: driver.find_element(By.ID, "key-form").is_displayed(), message="the dashboard")
    assert driver.find_element(By.ID, "overlay-url").get_attribute("value") == engine.url + "/overlay"

    driver.find_element(By.ID, "key-label").send_keys("Alice")
    driver.find_element(By.ID, "generate-key").click()
    key = wait_for(lambda: driver.find_element(By.ID, "key-value").text.strip(), message="the new key")
    assert re.fullmatch(r"\d+:\d\d", driver.find_element(By.ID, "key-ttl").text), driver.find_element(By.ID, "key-ttl").text
    wait_for(lambda: "Alice" in driver.find_element(By.ID, "keys-table").text, message="the key listed")
    assert "Copy key" in driver.find_element(By.ID, "copy-key").text
    admin_window = driver.current_window_handle

    # The moderator, in another window: logs in with the key, and the session survives a reload.
    driver.switch_to.new_window("window")
    login(driver, engine, key)
    assert driver.find_element(By.ID, "me-label").text == "Alice"
    driver.refresh()
    wait_for_panel(driver)
    assert driver.find_element(By.ID, "me-label").text == "Alice"

    # The streamer sees the session; a screenshot of the dashboard for humans.
    driver.switch_to.window(admin_window)
    wait_for(lambda: "Alice" in driver.find_element(By.ID, "sessions-table").text, timeout=8, message="the session listed")
    wait_for(lambda: driver.find_element(By.ID, "realtime").text, message="the realtime tiles")
    screenshot(driver, "admin.png")
    driver.switch_to.window(driver.window_handles[-1])

    # Log out, then the same key a second time: refused with a clear message.
    driver.find_element(By.ID, "logout").click()
    wait_for(lambda: driver.find_element(By.ID, "login-key").is_displayed(), message="the login form after logout")
    assert "logged out" in driver.find_element(By.ID, "login-message").text
    field = driver.find_element(By.ID, "login-key")
    field.send_keys(key)
    driver.find_element(By.ID, "login-submit").click()
    message = wait_for(lambda: "already used" in (t := driver.find_element(By.ID, "login-message").text) and t,
                       message="the used-key message")
    assert "new one" in message
    assert driver.find_element(By.ID, "app").is_displayed() is False
    screenshot(driver, "mod-login-used-key.png")
    # The refused token probe and the refused second use of the key are the only console errors.
    assert console.severe(allow=[("/api/moderator-keys", "401")]) == []
    assert no_overflow(driver)


def test_dragging_on_the_stage_moves_the_overlay_live_with_at_most_one_save_per_100ms(engine, driver):
    version = put_scene(engine, [text_element(), text_element("lower", x=200, y=800, width=700, text="Lower third")])
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Dragger"))
    mod_window = driver.current_window_handle

    # The overlay in a second window, watching the element's position as the overlay draws it.
    driver.switch_to.new_window("window")
    overlay_window = driver.current_window_handle
    driver.get(engine.url + "/overlay?overlay_id=panel-drag")
    wait_for(lambda: driver.execute_script("return window.overlayState && overlayState.version") >= version, message="the overlay on screen")
    driver.execute_script("""
        window.__moves = [];
        const stage = document.getElementById('stage');
        new MutationObserver(() => {
            const n = document.querySelector('[data-id="title"]');
            if (n) __moves.push({t: Date.now(), left: parseFloat(n.style.left), top: parseFloat(n.style.top)});
        }).observe(stage, {attributes: true, subtree: true, attributeFilter: ['style']});
    """)

    driver.switch_to.window(mod_window)
    # Count the saves the page makes, and when the pointer is released.
    driver.execute_script("""
        window.__saves = [];
        const original = window.fetch;
        window.fetch = function (url, init) {
            if (init && init.method === 'PATCH') {
                const record = {t0: Date.now(), url: String(url), body: JSON.parse(init.body)};
                __saves.push(record);
                return original.apply(this, arguments).then((r) => { record.t1 = Date.now(); record.status = r.status; return r; });
            }
            return original.apply(this, arguments);
        };
        document.addEventListener('pointerup', () => { window.__upAt = Date.now(); }, true);
    """)
    snap = driver.find_element(By.ID, "snap-toggle")
    snap.click()  # exact arithmetic below: no snapping
    assert snap.is_selected() is False
    node = driver.find_element(By.CSS_SELECTOR, '.ed-stage [data-id="title"]')
    scale = driver.execute_script("return document.getElementById('stage-frame').getBoundingClientRect().width / 1920")
    steps, dx, dy = 16, 14, 6
    chain = ActionChains(driver, duration=0).click_and_hold(node).pause(0.05)
    for _ in range(steps):
        chain.move_by_offset(dx, dy).pause(0.04)
    chain.release().perform()

    wait_saved(driver)
    up_at = driver.execute_script("return window.__upAt")
    saves = driver.execute_script("return window.__saves")
    during = [s for s in saves if s["t0"] < up_at]
    after = [s for s in saves if s["t0"] >= up_at]
    assert len(after) == 1, f"one final save after the release, got {len(after)}: {after}"
    assert len(during) >= 2, f"the overlay should follow during the drag: {len(during)} saves"
    starts = [s["t0"] for s in saves]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 95, f"saves closer than 100 ms: {gaps}"
    assert all(s["status"] == 200 for s in saves)
    for s in saves:
        assert s["url"].endswith("/api/scenes/main")
        assert [op["op"] for op in s["body"]["ops"]] == ["update"] and s["body"]["ops"][0]["id"] == "title"

    # The saved position is where the pointer went (in stage pixels), and the panel shows the new version.
    final = element(scene(engine), "title")
    assert final["x"] == pytest.approx(100 + steps * dx / scale, abs=2)
    assert final["y"] == pytest.approx(120 + steps * dy / scale, abs=2)
    assert element(scene(engine), "lower")["x"] == 200
    assert driver.find_element(By.ID, "scene-version").text == f"v{scene(engine)['_version']}"
    assert driver.find_element(By.ID, "insp-x").get_attribute("value") == str(int(final["x"]))
    screenshot(driver, "mod.png")

    # The overlay followed live and had the final position within 500 ms of the release.
    driver.switch_to.window(overlay_window)
    wait_for(lambda: driver.execute_script("return overlayState.version") == scene(engine)["_version"], message="the overlay caught up")
    moves = driver.execute_script("return window.__moves")
    assert any(m["t"] < up_at and m["left"] > 100 for m in moves), "the overlay did not move during the drag"
    arrived = next(m for m in moves if m["left"] == final["x"] and m["top"] == final["y"])
    assert arrived["t"] - up_at < 500, f"the overlay showed the drop {arrived['t'] - up_at} ms after the release"
    screenshot(driver, "overlay-from-panel.png")
    assert console.severe() == []

    # Keyboard: Shift+Right nudges by 10 px and saves.
    driver.switch_to.window(mod_window)
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="title"] [data-role="select"]').click()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ARROW_RIGHT).key_up(Keys.SHIFT).perform()
    wait_for(lambda: element(scene(engine), "title")["x"] == final["x"] + 10, message="the nudge saved")
    wait_saved(driver)

    # Undo goes back through the history (restore).
    driver.find_element(By.ID, "undo").click()
    wait_for(lambda: element(scene(engine), "title")["x"] == final["x"], message="undo restored the drop position")
    wait_saved(driver)
    assert console.severe() == []

    # Shift + corner handle keeps the aspect ratio (400 x 100).
    handle = driver.find_element(By.CSS_SELECTOR, '.ed-sel .ed-handle[data-handle="se"]')
    ActionChains(driver).key_down(Keys.SHIFT).click_and_hold(handle).move_by_offset(30, 4).move_by_offset(10, 4) \
        .release().key_up(Keys.SHIFT).perform()
    wait_for(lambda: element(scene(engine), "title")["width"] > 400, message="the resize saved")
    wait_saved(driver)
    resized = element(scene(engine), "title")
    assert resized["width"] / resized["height"] == pytest.approx(4, abs=0.05), resized
    assert (resized["x"], resized["y"]) == (final["x"], final["y"])  # the opposite corner stays put

    # Another moderator's edit shows up live.
    current = scene(engine)["_version"]
    answer = requests.patch(engine.url + "/api/scene", headers=engine.streamer(),
                            json={"base_version": current, "ops": [{"op": "update", "id": "lower", "fields": {"text": "From elsewhere"}}]})
    assert answer.status_code == 200
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '.ed-stage [data-id="lower"]').text == "From elsewhere", timeout=2,
             message="the remote edit on the stage")
    wait_for(lambda: "From elsewhere" in driver.find_element(By.ID, "layer-list").text, timeout=2, message="the remote edit in the layers")

    # Restack in the layer list: drag "title" above "lower" (HTML drag and drop, dispatched in the page).
    assert [el["id"] for el in scene(engine)["elements"]] == ["title", "lower"]
    driver.execute_script("""
        const list = document.getElementById('layer-list');
        const source = list.querySelector('li[data-id="title"]');
        const target = list.querySelector('li[data-id="lower"]').getBoundingClientRect();
        const data = new DataTransfer();
        const at = {bubbles: true, cancelable: true, dataTransfer: data, clientX: target.left + 10, clientY: target.top + 2};
        source.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: data}));
        list.dispatchEvent(new DragEvent('dragover', at));
        list.dispatchEvent(new DragEvent('drop', at));
        source.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: data}));
    """)
    wait_for(lambda: [el["id"] for el in scene(engine)["elements"]] == ["lower", "title"], message="the restack saved")
    wait_for(lambda: [li.get_attribute("data-id") for li in driver.find_elements(By.CSS_SELECTOR, "#layer-list li")] == ["title", "lower"],
             message="the layer list topmost first")
    assert console.severe() == []

    # The same page at 1920x1080 fits without scrollbars.
    driver.set_window_size(1920, 1080)
    time.sleep(0.3)
    assert no_overflow(driver)
    screenshot(driver, "mod-1080.png")


def test_an_upload_shows_progress_lands_in_the_library_and_in_a_second_moderators_panel(engine, driver, tmp_path):
    routes = plugin_routes(engine)
    if "POST /api/media" not in routes or "GET /api/media" not in routes:
        pytest.skip("the media plugin does not serve /api/media in this build yet")
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Uploader"))
    driver.find_element(By.ID, "tab-btn-media").click()
    wait_for(lambda: driver.find_element(By.ID, "media-grid").is_displayed(), message="the library")

    # The second moderator has their own browser (the same profile would share the first one's session).
    other = make_driver()
    try:
        login(other, engine, generate_key(engine, "Watcher"))
        other.find_element(By.ID, "tab-btn-media").click()
        wait_for(lambda: other.find_element(By.ID, "media-grid").is_displayed(), message="the second library")
        upload_and_check(engine, driver, other, tmp_path, console)
        assert Console(other).severe() == []
    finally:
        other.quit()


def upload_and_check(engine, driver, other, tmp_path, console):
    driver.execute_script("""
        window.__progress = [];
        new MutationObserver(() => {
            for (const row of document.querySelectorAll('#upload-list .upload')) {
                __progress.push({pct: row.querySelector('.pct').textContent, state: row.dataset.state,
                                 bar: row.querySelector('progress') ? row.querySelector('progress').value : null});
            }
        }).observe(document.getElementById('upload-list'), {subtree: true, childList: true, characterData: true, attributes: true});
    """)
    image = tiny_png(tmp_path / "panel-logo.png")
    driver.find_element(By.ID, "media-file").send_keys(str(image))
    card = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#media-grid .media-card"), message="the card in the library")
    media_id = card.get_attribute("data-id")
    assert "panel-logo.png" in card.text and "image" in card.text.lower()
    progress = driver.execute_script("return window.__progress")
    assert progress and progress[-1]["state"] == "done" and progress[-1]["pct"] == "100%", progress
    assert driver.find_element(By.CSS_SELECTOR, "#upload-list .upload progress") is not None
    wait_for(lambda: driver.execute_script(
        "const i = document.querySelector('#media-grid .media-card img'); return i && i.complete && i.naturalWidth > 0"),
        message="the thumbnail loaded")
    screenshot(driver, "mod-media.png")

    # The second moderator sees it without reloading (socket media.added).
    wait_for(lambda: other.find_element(By.CSS_SELECTOR, f'#media-grid .media-card[data-id="{media_id}"]'),
             message="the upload in the second panel")

    # One click adds it to the scene.
    card.find_element(By.CSS_SELECTOR, '[data-action="add"]').click()
    wait_for(lambda: any(el.get("media") == media_id and el["type"] == "image" for el in scene(engine)["elements"]),
             message="the image in the scene")
    wait_saved(driver)
    wait_for(lambda: driver.execute_script(
        "const i = document.querySelector('.ed-stage img[data-type=\"image\"]'); return i && i.complete && i.naturalWidth > 0"),
        message="the image drawn on the stage")
    assert console.severe() == []

    # Deleting a file in use: the engine's 409 names the element, and a second confirmation deletes anyway.
    card.find_element(By.CSS_SELECTOR, '[data-action="delete"]').click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "dialog[open] button[value=ok]"), message="the confirmation").click()
    in_use = wait_for(lambda: "in use" in (d := driver.find_element(By.CSS_SELECTOR, "dialog[open]")).text and d, message="the in-use warning")
    assert "main/" in in_use.text
    in_use.find_element(By.CSS_SELECTOR, "button[value=ok]").click()
    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, f'#media-grid .media-card[data-id="{media_id}"]'), message="the card gone")
    wait_for(lambda: not other.find_elements(By.CSS_SELECTOR, f'#media-grid .media-card[data-id="{media_id}"]'),
             message="the card gone in the second panel")
    # The element stays, marked as missing on the stage, without requesting the deleted file.
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".ed-stage img.ed-missing"), message="the missing-media marker")
    assert console.severe(allow=[("/api/media/", "409")]) == []


def test_a_conflicting_save_shows_a_notice_and_the_servers_scene(engine, driver):
    put_scene(engine, [text_element("box", x=300, y=300, text="Conflict me")])
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Racer"))
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="box"] [data-role="select"]').click()
    wait_for(lambda: panel(driver)["selected"] == "box")
    # A slow network: the panel's saves take 800 ms to leave the browser.
    driver.execute_script("""
        const original = window.fetch;
        window.fetch = function (url, init) {
            if (init && init.method === 'PATCH') return new Promise((r) => setTimeout(r, 800)).then(() => original(url, init));
            return original.apply(this, arguments);
        };
    """)
    base = scene(engine)["_version"]
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()  # the panel edits box (x 301), based on `base`
    wait_for(lambda: panel(driver)["save"] == "saving", message="the save on its way")
    # Meanwhile another client moves the same element.
    answer = requests.patch(engine.url + "/api/scene", headers=engine.streamer(),
                            json={"base_version": base, "ops": [{"op": "update", "id": "box", "fields": {"x": 777, "text": "Theirs"}}]})
    assert answer.status_code == 200, answer.text
    theirs = answer.json()["_version"]

    notice = wait_for(lambda: "not saved" in (t := driver.find_element(By.CSS_SELECTOR, ".notice-conflict").get_attribute("textContent")) and t,
                      timeout=5, message="the conflict notice")
    assert "'box'" in notice
    wait_saved(driver)
    # The panel shows the server's scene: their x and text, their version.
    assert element(scene(engine), "box")["x"] == 777
    assert driver.execute_script("return modPanel.element('box').x") == 777
    assert driver.find_element(By.CSS_SELECTOR, '.ed-stage [data-id="box"]').get_attribute("style").find("left: 777px") >= 0
    assert driver.find_element(By.CSS_SELECTOR, '.ed-stage [data-id="box"]').text == "Theirs"
    assert driver.find_element(By.ID, "insp-x").get_attribute("value") == "777"
    assert driver.find_element(By.ID, "scene-version").text == f"v{theirs}"
    screenshot(driver, "mod-conflict.png")
    assert console.severe(allow=[("/api/scenes/main", "409")]) == []

    # Editing again afterwards works normally (arrows nudge; in the layer list Up/Down move between layers).
    ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()
    wait_for(lambda: element(scene(engine), "box")["x"] == 776, message="the next edit saved")


def test_an_edit_made_while_the_engine_is_down_is_kept_and_saved_after_reconnecting(engines, redis_server, driver):
    # Sessions must outlive the engine process: the Redis store keeps them (the embedded one does not).
    engine = engines(panel_config(), env={"REDIS_URL": redis_server.url})
    put_scene(engine, [text_element("keep", x=50, y=60, text="Survivor")])
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Offline"))
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="keep"] [data-role="select"]').click()
    engine.stop()
    wait_for(lambda: panel(driver)["connection"] in ("closed", "connecting"), message="the panel noticing the engine is gone")
    banner = wait_for(lambda: (b := driver.find_element(By.ID, "offline-banner")).is_displayed() and b, message="the offline banner")
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).send_keys(Keys.ARROW_RIGHT).perform()
    wait_for(lambda: panel(driver)["save"] == "offline" and panel(driver)["pending"] > 0, message="the edit kept as unsent")
    assert "unsaved change" in banner.text
    assert "kept" in driver.find_element(By.ID, "save-state").text
    assert driver.execute_script("return modPanel.element('keep').x") == 52  # still shown
    screenshot(driver, "mod-offline.png")

    engine.start()
    reconnect = driver.find_element(By.ID, "reconnect-now")
    if reconnect.is_displayed():  # "Reconnect now" skips the backoff (unless the panel got there first)
        try:
            reconnect.click()
        except Exception:
            pass
    wait_for_panel(driver, timeout=15)
    wait_saved(driver, timeout=10)
    assert element(scene(engine), "keep")["x"] == 52
    assert not driver.find_element(By.ID, "offline-banner").is_displayed()
    # The engine being down shows up as refused connections in the console; nothing else may.
    assert console.severe(allow=[("ERR_CONNECTION_REFUSED",), ("WebSocket connection to",)]) == []


def test_the_panel_works_without_the_optional_plugins(engines, driver):
    engine = engines(panel_config(with_optional=False))
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Minimal"))
    # Their tabs and Add entries are simply not there.
    for missing in ("tab-btn-media", "tab-btn-tts", "tab-btn-camera", "add-webrtc"):
        assert not driver.find_elements(By.ID, missing), missing
    assert panel(driver)["plugins"] == {"loaded": [], "failed": [], "ready": True}
    # Text still works: add one, it is saved.
    driver.find_element(By.ID, "tab-btn-props").click()
    driver.find_element(By.CSS_SELECTOR, "#tab-btn-layers").click()
    driver.find_element(By.ID, "add-text").click()
    wait_for(lambda: any(el["type"] == "text" for el in scene(engine)["elements"]), message="the text saved")
    wait_saved(driver)
    time.sleep(2.2)  # one health poll more
    assert console.severe() == []


def test_scenes_tts_presets_and_camera_from_the_panel(engine, driver):
    put_scene(engine, [text_element("logo", text="Main scene")])
    routes = plugin_routes(engine)
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Director"))

    # A new scene as a copy of the current one, edited, then live.
    driver.find_element(By.ID, "scene-new").click()
    field = wait_for(lambda: driver.find_element(By.ID, "dialog-input"), message="the new-scene dialog")
    field.send_keys("brb")
    driver.find_element(By.ID, "new-scene-copy").click()
    field.send_keys(Keys.ENTER)
    wait_for(lambda: panel(driver)["scene"] == "brb", message="editing the new scene")
    brb = requests.get(engine.url + "/api/scenes/brb", headers=engine.streamer()).json()
    assert [el["id"] for el in brb["elements"]] == ["logo"]
    assert requests.get(engine.url + "/api/scenes").json()["active"] == "main"
    assert "Live: main" in driver.find_element(By.ID, "live-badge").text
    driver.find_element(By.ID, "scene-activate").click()
    wait_for(lambda: requests.get(engine.url + "/api/scenes").json()["active"] == "brb", message="brb live")
    wait_for(lambda: driver.find_element(By.ID, "live-badge").text.lower() == "live", message="the live badge")
    # Editing the live scene goes to brb, not main.
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="logo"] [data-role="visible"]').click()
    wait_for(lambda: element(requests.get(engine.url + "/api/scenes/brb").json(), "logo").get("visible") is False,
             message="the hide saved to brb")
    assert element(requests.get(engine.url + "/api/scenes/main").json(), "logo").get("visible", True) is True

    if "POST /api/tts/speak" in routes:
        driver.find_element(By.ID, "tab-btn-tts").click()
        text = driver.find_element(By.ID, "tts-text")
        text.send_keys("Thanks for the raid")
        lang = driver.find_element(By.ID, "tts-lang")
        lang.clear()
        lang.send_keys("en-GB")
        text.send_keys(Keys.CONTROL, Keys.ENTER)
        wait_for(lambda: "Thanks for the raid" in driver.find_element(By.ID, "tts-queue").text, message="the utterance in the queue")
        assert driver.find_element(By.ID, "tts-text").get_attribute("value") == ""
        # A preset, kept across reloads.
        driver.find_element(By.XPATH, "//button[text()='Save preset']").click()
        preset = wait_for(lambda: driver.find_element(By.ID, "dialog-input"), message="the preset dialog")
        preset.send_keys("British")
        preset.send_keys(Keys.ENTER)
        wait_for(lambda: "British" in driver.find_element(By.ID, "tts-presets").text, message="the preset chip")
        screenshot(driver, "mod-tts.png")
        driver.find_element(By.CSS_SELECTOR, "#tts-queue button").click()  # skip
        wait_for(lambda: "Thanks for the raid" not in driver.find_element(By.ID, "tts-queue").text, message="skipped")
        driver.refresh()
        wait_for_panel(driver)
        driver.find_element(By.ID, "tab-btn-tts").click()
        assert "British" in driver.find_element(By.ID, "tts-presets").text

    if "GET /api/webrtc/rooms" in routes:
        driver.find_element(By.ID, "tab-btn-camera").click()
        wait_for(lambda: "No camera rooms" in driver.find_element(By.ID, "camera-note").text, message="the empty room list")
        assert not driver.find_elements(By.ID, "camera-new-room")  # publisher links are the streamer's
    assert console.severe() == []

    if "POST /api/webrtc/token" in routes:
        driver.get(engine.url + "/admin")
        token = wait_for(lambda: driver.find_element(By.ID, "streamer-token").is_displayed() and driver.find_element(By.ID, "streamer-token"))
        token.send_keys("streamer-secret", Keys.ENTER)
        room = wait_for(lambda: driver.find_element(By.ID, "camera-new-room"), message="the camera card")
        room.send_keys("cam1", Keys.ENTER)
        wait_for(lambda: any("cam1" in n.get_attribute("textContent") and "ublisher link" in n.get_attribute("textContent")
                             for n in driver.find_elements(By.CSS_SELECTOR, ".notice")), message="the publisher link notice")
        assert console.severe() == []


def test_a_revoked_session_returns_to_the_login_with_a_message_and_keeps_unsaved_edits(engine, driver):
    put_scene(engine, [text_element("kept", x=10, y=10, text="Kept")])
    console = Console(driver)
    login(driver, engine, generate_key(engine, "Revoked"))
    session_id = driver.execute_script("return JSON.parse(localStorage.getItem('onionrp.mod.session')).session_id")
    # An edit on its way (a slow network) when the streamer logs this moderator out.
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="kept"] [data-role="select"]').click()
    driver.execute_script("""
        const original = window.fetch;
        window.fetch = function (url, init) {
            if (init && init.method === 'PATCH') return new Promise((r) => setTimeout(r, 600)).then(() => original(url, init));
            return original.apply(this, arguments);
        };
    """)
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
    wait_for(lambda: panel(driver)["save"] == "saving", message="the save on its way")
    assert requests.delete(f"{engine.url}/api/moderator-sessions/{session_id}", headers=engine.streamer()).status_code == 200
    message = wait_for(lambda: driver.find_element(By.ID, "login-key").is_displayed() and driver.find_element(By.ID, "login-message").text,
                       message="the login view after the revocation")
    assert "expired or was revoked" in message and "new key" in message
    assert driver.execute_script("return localStorage.getItem('onionrp.mod.session')") is None
    assert element(scene(engine), "kept")["x"] == 10

    # Back with a new key: the panel offers the edit that was not saved, and applies it.
    field = driver.find_element(By.ID, "login-key")
    field.send_keys(generate_key(engine, "Revoked again"))
    driver.find_element(By.ID, "login-submit").click()
    wait_for_panel(driver)
    offer = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '.notice[data-key="unsaved"]'), message="the unsaved-changes offer")
    assert "not saved" in offer.get_attribute("textContent")
    offer.find_element(By.XPATH, ".//button[text()='Apply now']").click()
    wait_for(lambda: element(scene(engine), "kept")["x"] == 11, message="the recovered edit saved")
    # The refused session's socket and calls made in the same instant are the only errors allowed.
    assert console.severe(allow=[("/api/", "401")]) == []
