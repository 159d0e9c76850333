"""The panel for real moderators (issue 16), in headless Chromium against the real engine binary:

- /mod and /admin on phone viewports (360-430 px): no sideways scrolling, the stage visible, the top
  bar not overlapping itself, a touch drag that moves an element and becomes one history entry with a
  readable row, a two-finger pinch that resizes; /mod at 900 px keeps the scene name and save state whole;
- history rows written by the engine ("Alice moved 'Logo'") and an honest retention note;
- a late-joining overlay timed from the frame sent to it (under a second), reported apart;
- a login link opened in a tab that already shows /mod logs in with the link's key, and the stale
  text in the field is never sent (so it cannot count toward the lockout);
- text elements with outline, shadow, vertical alignment, auto-fit and a bundled font; favicon;
  /publish with a damaged token.

Screenshots: test-artifacts/mod-phone.png, mod-phone-sheet.png, mod-phone-history.png, mod-phone-360.png,
mod-900.png, admin-phone.png, admin-phone-live.png, overlay-text.png, publish-bad-token.png."""
import time

import pytest
import requests

from conftest import BUILD, plugin_config

from selenium.webdriver.common.by import By

from browser import wait_for
from pages import (Console, element, generate_key, login, make_driver, panel, panel_config, put_scene, scene,  # noqa: F401
                   screenshot, wait_saved)

PHONE = (390, 844)

LOGO = {"id": "logo", "type": "image", "src": "/favicon.svg", "name": "Logo", "x": 200, "y": 200, "width": 600, "height": 400, "z": 1}
TITLE = {"id": "title", "type": "text", "text": "Welcome to the stream!", "name": "Title", "x": 960, "y": 700, "width": 800,
         "height": 160, "size": 120, "z": 2, "color": "#ffffff", "align": "center", "valign": "middle", "autofit": True,
         "font": "Bebas Neue", "stroke": "#000000", "stroke_width": 4, "shadow": "#000000", "shadow_blur": 8}


def phone(driver, width, height):
    """Phone viewport: device metrics, mobile layout, touch."""
    driver.set_window_size(width, height + 120)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})


@pytest.fixture
def phone_driver():
    browser = make_driver(*PHONE)
    phone(browser, *PHONE)
    try:
        yield browser
    finally:
        browser.quit()


def no_sideways_scroll(driver):
    return driver.execute_script(
        "const d = document.documentElement; return {scroll: d.scrollWidth, client: d.clientWidth,"
        " wide: [...document.querySelectorAll('body *')].filter((n) => { const r = n.getBoundingClientRect();"
        " return r.width && getComputedStyle(n).position !== 'fixed' && r.right > d.clientWidth + 1 && !n.closest('.stage-frame, .table-scroll'); })"
        ".slice(0, 5).map((n) => n.id || n.className || n.tagName)};")


def rect(driver, selector):
    return driver.execute_script("const n = document.querySelector(arguments[0]); if (!n) return null;"
                                 " const r = n.getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right, bottom: r.bottom,"
                                 " width: r.width, height: r.height, shown: !!(r.width && r.height)};", selector)


def overlaps(a, b):
    return a and b and a["shown"] and b["shown"] and a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def touch(driver, kind, points):
    driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": index, "radiusX": 4, "radiusY": 4, "force": 1} for index, (x, y) in enumerate(points)]})


def touch_drag(driver, start, end, steps=12, pause=0.05):
    touch(driver, "touchStart", [start])
    for step in range(1, steps + 1):
        t = step / steps
        touch(driver, "touchMove", [(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)])
        time.sleep(pause)
    touch(driver, "touchEnd", [])


def center(r):
    return (r["left"] + r["width"] / 2, r["top"] + r["height"] / 2)


def history(engine):
    answer = requests.get(engine.url + "/api/scene/history", headers=engine.streamer())
    assert answer.status_code == 200, answer.text
    return answer.json()


def record_patches(driver):
    """Wraps fetch to keep every PATCH body the panel sends."""
    driver.execute_script("""
      window.__patches = [];
      if (!window.__fetchWrapped) {
        window.__fetchWrapped = true;
        const original = window.fetch;
        window.fetch = function (input, init) {
          if (init && init.method === 'PATCH') { try { window.__patches.push(JSON.parse(init.body)); } catch (e) {} }
          return original.apply(this, arguments);
        };
      }""")


# ---------------------------------------------------------------------------------------------

def test_mod_on_a_phone_touch_drag_is_one_history_entry(engines, phone_driver):
    engine = engines(panel_config())
    put_scene(engine, [LOGO, TITLE])
    driver = phone_driver
    console = Console(driver)
    login(driver, engine, generate_key(engine, label="Alice"))
    time.sleep(0.5)

    scroll = no_sideways_scroll(driver)
    assert scroll["scroll"] <= scroll["client"], scroll
    stage = rect(driver, "#stage-frame")
    assert stage["shown"] and stage["width"] >= 340 and stage["top"] >= 0 and stage["bottom"] <= PHONE[1], stage
    # The top bar does not draw over itself: the LIVE badge, undo/redo, save state and log out are apart.
    parts = ["#live-badge", "#undo", "#redo", "#save-state", "#logout", "#scene-select", "#scene-history"]
    rects = {name: rect(driver, name) for name in parts}
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            assert not overlaps(rects[a], rects[b]), (a, b, rects[a], rects[b])
    # The inspector is a sheet: closed it leaves the stage and the layers free.
    sheet = rect(driver, "#sheet")
    assert sheet["height"] < 60 and sheet["bottom"] <= PHONE[1] + 1, sheet
    screenshot(driver, "mod-phone.png")

    before = history(engine)["versions"]
    logo = rect(driver, '.ed-el[data-id="logo"]')
    start = center(logo)
    record_patches(driver)
    touch_drag(driver, start, (start[0] + 60, start[1] + 25))
    wait_saved(driver)
    moved = element(scene(engine), "logo")
    assert moved["x"] > LOGO["x"] + 100 and moved["y"] > LOGO["y"] + 30, moved
    patches = driver.execute_script("return window.__patches")
    assert patches and len({p.get("group") for p in patches}) == 1 and patches[0].get("group"), patches
    after = history(engine)["versions"]
    new = [v for v in after if v["version"] > before[0]["version"]]
    assert len(new) == 1, [v["summary"] for v in new]
    assert new[0]["summary"] == "Alice moved 'Logo'", new[0]
    assert new[0]["saves"] == len(patches)
    assert new[0]["changes"][0]["fields"] == ["x", "y"]

    # The history dialog shows the engine's row ("You" for our own) and says what is kept.
    driver.find_element(By.ID, "scene-history").click()
    first = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "table.history tbody tr .history-summary"), message="history rows")
    assert first.text == "You moved 'Logo'", first.text
    note = driver.find_element(By.ID, "history-retention").text
    assert "latest 50 changes" in note and "7 days" in note and "nothing is lost" not in note, note
    scroll = no_sideways_scroll(driver)
    assert scroll["scroll"] <= scroll["client"], scroll
    screenshot(driver, "mod-phone-history.png")
    driver.find_element(By.CSS_SELECTOR, "dialog[open] button[type=submit]").click()

    # Tapping a tab opens the sheet with the inspector of the selected element.
    assert panel(driver)["selected"] == "logo"
    driver.find_element(By.ID, "tab-btn-props").click()
    wait_for(lambda: rect(driver, "#sheet")["height"] > 300, message="the sheet open")
    assert driver.find_element(By.ID, "insp-x").get_attribute("value") == str(moved["x"])
    scroll = no_sideways_scroll(driver)
    assert scroll["scroll"] <= scroll["client"], scroll
    screenshot(driver, "mod-phone-sheet.png")
    driver.find_element(By.ID, "sheet-toggle").click()
    wait_for(lambda: rect(driver, "#sheet")["height"] < 60, message="the sheet closed")

    # A two-finger pinch on the selected element resizes it: one more entry, "resized".
    logo = rect(driver, '.ed-el[data-id="logo"]')
    c = center(logo)
    touch(driver, "touchStart", [(c[0] - 20, c[1])])
    touch(driver, "touchStart", [(c[0] - 20, c[1]), (c[0] + 20, c[1])])
    for step in range(1, 8):
        touch(driver, "touchMove", [(c[0] - 20 - step * 4, c[1]), (c[0] + 20 + step * 4, c[1])])
        time.sleep(0.04)
    touch(driver, "touchEnd", [])
    wait_saved(driver)
    pinched = element(scene(engine), "logo")
    assert pinched["width"] > moved["width"] * 1.5, pinched
    assert abs(pinched["width"] / pinched["height"] - 1.5) < 0.02, pinched
    newest = history(engine)["versions"][0]
    assert newest["summary"] == "Alice resized 'Logo'" and newest["version"] == pinched["_version"] if "_version" in pinched else True
    assert console.severe() == []


@pytest.mark.parametrize("width", [360, 430])
def test_mod_phone_widths_have_no_sideways_scroll(engines, width):
    engine = engines(panel_config())
    put_scene(engine, [LOGO, TITLE])
    driver = make_driver(width, 800)
    try:
        phone(driver, width, 800)
        login(driver, engine, generate_key(engine, label="Bob"))
        time.sleep(0.4)
        scroll = no_sideways_scroll(driver)
        assert scroll["scroll"] <= scroll["client"], scroll
        stage = rect(driver, "#stage-frame")
        assert stage["width"] >= width - 24, stage
        # The plugin tabs are reachable.
        for tab in ("#tab-btn-layers", "#tab-btn-media", "#tab-btn-props", "#tab-btn-tts", "#tab-btn-camera"):
            r = rect(driver, tab)
            assert r["shown"] and r["right"] <= width + 1, (tab, r)
        if width == 360:
            screenshot(driver, "mod-phone-360.png")
    finally:
        driver.quit()


def test_mod_at_900_keeps_scene_name_and_save_state_whole(engines):
    engine = engines(panel_config())
    put_scene(engine, [LOGO])
    requests.put(engine.url + "/api/scenes/intermission-long-name", headers=engine.streamer(), json={"base_version": 0, "elements": []})
    driver = make_driver(900, 700)
    try:
        login(driver, engine, generate_key(engine))
        driver.execute_script("document.querySelector('#scene-select').value = 'intermission-long-name';"
                              "document.querySelector('#scene-select').dispatchEvent(new Event('change'))")
        wait_for(lambda: panel(driver)["scene"] == "intermission-long-name", message="the other scene")
        sizes = driver.execute_script("""
          const s = document.querySelector('#save-state'), sel = document.querySelector('#scene-select');
          const ctx = document.createElement('canvas').getContext('2d'); ctx.font = getComputedStyle(sel).font;
          return {save: [s.scrollWidth, s.clientWidth], select: sel.getBoundingClientRect().width,
                  text: ctx.measureText(sel.selectedOptions[0].textContent).width,
                  page: [document.documentElement.scrollWidth, document.documentElement.clientWidth]};""")
        assert sizes["save"][0] <= sizes["save"][1], sizes
        assert sizes["select"] >= sizes["text"] + 36, sizes  # the name and the arrow
        assert sizes["page"][0] <= sizes["page"][1], sizes
        assert not overlaps(rect(driver, "#live-badge"), rect(driver, "#undo"))
        screenshot(driver, "mod-900.png")
    finally:
        driver.quit()


def test_admin_on_a_phone_is_one_column(engines, phone_driver):
    engine = engines(panel_config())
    driver = phone_driver
    driver.get(engine.url + "/admin")
    field = wait_for(lambda: driver.find_element(By.ID, "streamer-token"), message="the token gate")
    field.send_keys("streamer-secret")
    driver.find_element(By.ID, "token-submit").click()
    wait_for(lambda: driver.find_element(By.ID, "dashboard").is_displayed(), message="the dashboard")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#realtime .tile"), message="the live tiles")
    time.sleep(0.3)
    scroll = no_sideways_scroll(driver)
    assert scroll["scroll"] <= scroll["client"], scroll
    cards = driver.execute_script("return [...document.querySelectorAll('main.dash > .card')].map((c) => { const r = c.getBoundingClientRect(); return [r.left, r.width]; })")
    assert len({round(left) for left, _ in cards}) == 1, cards  # one column
    # Live tiles: two per row, none alone on its row.
    tops = driver.execute_script("return [...document.querySelectorAll('#realtime .tile')].map((t) => Math.round(t.getBoundingClientRect().top))")
    rows = {}
    for top in tops:
        rows[top] = rows.get(top, 0) + 1
    assert set(rows.values()) == {2}, rows
    screenshot(driver, "admin-phone.png")
    driver.execute_script("document.getElementById('rt-title').scrollIntoView()")
    screenshot(driver, "admin-phone-live.png")
    # The favicon exists (no 404 on / and /admin).
    for path in ("/favicon.ico", "/favicon.svg"):
        assert requests.get(engine.url + path).status_code == 200, path


def test_late_joining_overlay_reports_apply_latency_under_a_second(engines):
    engine = engines(panel_config())
    put_scene(engine, [LOGO, TITLE])
    time.sleep(3)  # the version was broadcast 3 s before this overlay opens
    driver = make_driver(960, 540)
    try:
        driver.get(engine.url + "/overlay?overlay_id=late-obs")
        wait_for(lambda: driver.execute_script("return window.overlayState && window.overlayState.appliedVersion") == scene(engine)["_version"],
                 message="the overlay drew the scene")

        def row():
            m = requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()
            found = next((o for o in m["overlays"] if o["overlay_id"] == "late-obs"), None)
            return found and found["last_latency_ms"] is not None and (found, m)
        found, metrics = wait_for(row, message="the late join's acknowledgement")
        assert found["last_latency_ms"] < 1000 and found["last_latency_kind"] == "late_join", found
        assert metrics["late_join_latency_ms"]["p95"] < 1000 and metrics["late_joins_total"] >= 1, metrics["late_join_latency_ms"]
        assert metrics["ack_latency_ms"]["samples"] == 0, "a late join is no sample of live edits"
        # A live edit afterwards is timed from its broadcast.
        put_scene(engine, [dict(LOGO, x=400), TITLE])
        version = scene(engine)["_version"]

        def live():
            m = requests.get(engine.url + "/api/metrics/realtime", headers=engine.streamer()).json()
            found = next((o for o in m["overlays"] if o["overlay_id"] == "late-obs"), None)
            return found and found["applied_version"] == version and found["last_latency_kind"] == "live" and (found, m)
        found, metrics = wait_for(live, message="the live edit's acknowledgement")
        assert found["last_latency_ms"] < 1000 and metrics["ack_latency_ms"]["p95"] < 1000, metrics["ack_latency_ms"]
        screenshot(driver, "overlay-text.png")
        # The bundled font is served by the engine and used by the title; auto-fit shrank it into its box.
        text = driver.execute_script("""
          const n = document.querySelector('.ov-text'); const s = getComputedStyle(n);
          return {family: s.fontFamily, size: parseFloat(s.fontSize), stroke: s.webkitTextStroke || s.getPropertyValue('-webkit-text-stroke-width'),
                  shadow: s.textShadow, justify: s.justifyContent, fits: n.scrollHeight <= n.clientHeight + 1 && n.scrollWidth <= n.clientWidth + 1,
                  loaded: document.fonts.check('40px "Bebas Neue"')};""")
        assert "Bebas Neue" in text["family"] and text["fits"] and text["justify"] == "center" and text["shadow"] != "none", text
        assert text["size"] <= 120 and text["loaded"], text
        assert requests.get(engine.url + "/fonts/bebas-neue.woff2").status_code == 200
    finally:
        driver.quit()


def test_login_link_into_an_open_mod_tab(engines, driver):
    config = plugin_config({"name": "moderator-keys", "config": {"max_failures": 1}})
    engine = engines(config)
    driver.get(engine.url + "/mod")
    field = wait_for(lambda: driver.find_element(By.ID, "login-key").is_displayed() and driver.find_element(By.ID, "login-key"),
                     message="the login form")
    field.send_keys("an-old-key-the-moderator-pasted")
    driver.execute_script("""
      window.__consumed = [];
      const original = window.fetch;
      window.fetch = function (input, init) {
        if (String(input).includes('/api/moderator-keys/consume')) window.__consumed.push(String(init && init.body));
        return original.apply(this, arguments);
      };""")
    key = generate_key(engine, label="Carol")
    # Opening the link in the same tab changes only the fragment: no reload, a hashchange.
    driver.get(engine.url + "/mod#key=" + key)
    wait_for(lambda: driver.find_element(By.ID, "login-key").get_attribute("value") == key, message="the link's key in the field")
    assert driver.execute_script("return location.hash") == ""
    assert "filled in from your link" in driver.find_element(By.ID, "login-message").text
    driver.find_element(By.ID, "login-submit").click()
    wait_for(lambda: (p := panel(driver)) and p["connection"] == "open", message="logged in")
    consumed = driver.execute_script("return window.__consumed")
    assert len(consumed) == 1 and "an-old-key" not in consumed[0], consumed
    # Nothing was counted against this address: with max_failures 1, one wrong key is still a plain 401.
    wrong = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": "wrong"})
    assert wrong.status_code == 401, wrong.text
    # A link opened in a tab that is already logged in leaves the key unused.
    spare = generate_key(engine, label="Dan")
    driver.get(engine.url + "/mod#key=" + spare)
    wait_for(lambda: "already logged in" in driver.find_element(By.ID, "notices").text, message="the already-logged-in notice")
    keys = requests.get(engine.url + "/api/moderator-keys", headers=engine.streamer()).json()
    assert "Dan" in str(keys), keys  # still unused
    assert driver.execute_script("return location.hash") == ""


def test_publish_with_a_damaged_token_says_so_and_hides_the_controls(engines, driver):
    engine = engines(panel_config())
    if not (BUILD / "libwebrtc-signaling.so").exists():
        pytest.skip("webrtc-signaling not built")
    driver.get(engine.url + "/publish?room=cam1&token=v1.publisher.cam1.notanumber")
    status = wait_for(lambda: (t := driver.find_element(By.ID, "status").text) and "damaged" in t and t, message="the status")
    assert "incomplete" not in status
    assert not driver.find_element(By.ID, "controls").is_displayed()
    assert not driver.find_element(By.ID, "viewers-card").is_displayed()
    assert "?" not in driver.find_element(By.TAG_NAME, "main").text.split("Token valid until")[-1][:3]
    screenshot(driver, "publish-bad-token.png")


def test_a_burst_of_nudges_and_typing_in_one_field_are_one_entry_each(engines, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    engine = engines(panel_config())
    put_scene(engine, [LOGO, TITLE])
    login(driver, engine, generate_key(engine, label="Alice"))
    start = history(engine)["versions"][0]["version"]
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="logo"] [data-role="select"]').click()
    for _ in range(6):
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
        time.sleep(0.15)  # each nudge saves on its own (100 ms spacing)
    wait_for(lambda: element(scene(engine), "logo")["x"] == LOGO["x"] + 6, message="the nudges saved")
    wait_saved(driver)
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="title"] [data-role="select"]').click()
    field = wait_for(lambda: driver.find_element(By.ID, "insp-text"), message="the text field")
    field.send_keys(Keys.END)
    for char in " now live":
        field.send_keys(char)
        time.sleep(0.5 if char == " " else 0.05)  # pauses longer than the typing debounce: several saves
    wait_for(lambda: element(scene(engine), "title")["text"] == "Welcome to the stream! now live", message="the text saved")
    wait_saved(driver)
    rows = [v for v in history(engine)["versions"] if v["version"] > start]
    assert [v["summary"] for v in rows] == ["Alice edited the text of 'Title'", "Alice moved 'Logo'"], [(v["summary"], v["saves"]) for v in rows]
    assert rows[1]["saves"] >= 3 and rows[0]["saves"] >= 2, [(v["summary"], v["saves"]) for v in rows]
    # Undo takes back the typing, then the nudges (their "before" versions were never merged away).
    driver.find_element(By.ID, "undo").click()
    wait_for(lambda: element(scene(engine), "title")["text"] == "Welcome to the stream!", message="undo of the typing")
    wait_saved(driver)
    driver.find_element(By.ID, "undo").click()
    wait_for(lambda: element(scene(engine), "logo")["x"] == LOGO["x"], message="undo of the nudges")
