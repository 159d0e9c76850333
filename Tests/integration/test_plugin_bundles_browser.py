"""Plugin bundles in headless Chromium against the real engine (docs/plugin-bundles.md): /overlay, /mod and /admin
load each plugin's web module from /api/plugins. With tts, webrtc-signaling or media disabled in turn the pages load
without console errors, never request the disabled plugin's files (they are 404) and show none of its UI; with all
enabled every tab, Add entry, renderer and the schema-made inspector is there; a module that throws or hangs is
isolated, named in window.onionPlugins, the panel's health strip and the overlay's ?debug=1 box.

Screenshots: test-artifacts/mod-plugins-failed.png, mod-schema-inspector.png."""
import time

import pytest
import requests

from conftest import BUILD, plugin_config

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser import wait_for
from pages import Console, generate_key, login, panel, put_scene, scene, screenshot, wait_saved

OPTIONAL = ("tts", "webrtc-signaling", "media")
# What each plugin adds to the pages: panel tabs, Add entries, admin cards, overlay hooks.
UI = {
    "tts": {"tabs": ["tab-btn-tts"], "add": [], "cards": [], "overlay": "window.overlayTTS"},
    "webrtc-signaling": {"tabs": ["tab-btn-camera"], "add": ["add-webrtc"], "cards": ["camera-card"], "overlay": "window.overlayWebRTC"},
    "media": {"tabs": ["tab-btn-media"], "add": [], "cards": [], "overlay": None},
}
STREAMER = {"x-streamer-token": "streamer-secret"}




def built(name):
    return (BUILD / f"lib{name}.so").exists()


def config(disabled=(), web=None):
    """moderator-keys plus every optional plugin; `disabled` ones with enabled: false, `web` {name: folder}."""
    entries = [{"name": "moderator-keys"}]
    for name in OPTIONAL:
        entry = {"name": name, "config": {}}
        if name in disabled:
            entry["enabled"] = False
        if web and name in web:
            entry["web"] = str(web[name])
        entries.append(entry)
    return plugin_config(*entries)


def requested(driver):
    """Every URL the page fetched (documents, modules, styles, API calls)."""
    return driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)"
                                 ".concat(performance.getEntriesByType('navigation').map((e) => e.name))")


def plugins(driver):
    return driver.execute_script("return window.onionPlugins ? JSON.parse(JSON.stringify(window.onionPlugins)) : null")


def wait_plugins(driver, timeout=12):
    return wait_for(lambda: (p := plugins(driver)) and p["ready"] and p, timeout=timeout, message="the plugins loaded")


def open_admin(driver, engine):
    driver.get(engine.url + "/admin")
    token = wait_for(lambda: driver.find_element(By.ID, "streamer-token").is_displayed() and driver.find_element(By.ID, "streamer-token"),
                     message="the token gate")
    token.send_keys("streamer-secret", Keys.ENTER)
    wait_for(lambda: driver.execute_script("return document.body.dataset.plugins === 'ready'"), message="the dashboard's plugins")


def present(driver, element_id):
    return bool(driver.find_elements(By.ID, element_id))


@pytest.mark.parametrize("disabled", OPTIONAL)
def test_a_disabled_plugin_is_never_loaded_and_the_pages_work_without_it(engines, driver, disabled):
    if not all(built(name) for name in OPTIONAL):
        pytest.skip("the optional plugins are not built")
    engine = engines(config(disabled=(disabled,)))
    listing = requests.get(engine.url + "/api/plugins").json()
    names = [p["name"] for p in listing["plugins"]]
    assert disabled not in names
    # Nothing of it is served, not even by guessing the path.
    for path in ("overlay.js", "panel.js", "admin.js", "web/panel.js"):
        assert requests.get(engine.url + f"/plugins/{disabled}/{path}").status_code == 404
    enabled = [name for name in OPTIONAL if name != disabled]
    console = Console(driver)

    # Overlay: the others' overlay modules load; nothing of the disabled one is requested.
    driver.get(engine.url + "/overlay?debug=1&overlay_id=bundles")
    status = wait_plugins(driver)
    overlay_modules = [p["name"] for p in listing["plugins"] if (p.get("web") or {}).get("overlay")]
    assert status["loaded"] == overlay_modules and status["failed"] == [], status
    wait_for(lambda: driver.execute_script("return window.overlayState && overlayState.connected"), message="the overlay socket")
    assert not [url for url in requested(driver) if f"/plugins/{disabled}/" in url]
    for name in OPTIONAL:
        hook = UI[name]["overlay"]
        if hook:
            assert driver.execute_script(f"return !!{hook}") == (name != disabled), name
    assert console.severe() == []

    # Panel: the others' tabs and Add entries, none of the disabled one's.
    login(driver, engine, generate_key(engine, f"without {disabled}"))
    state = panel(driver)["plugins"]
    assert state["failed"] == [] and set(state["loaded"]) == {n for n in enabled if n in names}, state
    for name in OPTIONAL:
        for element_id in UI[name]["tabs"] + UI[name]["add"]:
            assert present(driver, element_id) == (name != disabled), element_id
    assert not [url for url in requested(driver) if f"/plugins/{disabled}/" in url]
    # The core still edits: a text element is added and saved.
    driver.find_element(By.ID, "add-text").click()
    wait_for(lambda: any(el["type"] == "text" for el in scene(engine)["elements"]), message="the text saved")
    wait_saved(driver)
    assert console.severe() == []

    # Dashboard: its cards, and the plugin table.
    open_admin(driver, engine)
    for name in OPTIONAL:
        for element_id in UI[name]["cards"]:
            assert present(driver, element_id) == (name != disabled), element_id
    assert not driver.find_elements(By.CSS_SELECTOR, f'#plugins-table tr[data-plugin="{disabled}"]')
    assert not [url for url in requested(driver) if f"/plugins/{disabled}/" in url]
    assert console.severe() == []


def test_all_plugins_enabled_bring_their_tabs_renderers_and_schema_inspector(engines, driver):
    if not all(built(name) for name in OPTIONAL):
        pytest.skip("the optional plugins are not built")
    engine = engines(config())
    put_scene(engine, [{"id": "cam", "type": "webrtc", "room": "cam1", "x": 100, "y": 100, "width": 640, "height": 360, "name": "Cam"},
                       {"id": "title", "type": "text", "text": "Hello", "x": 10, "y": 10, "width": 300, "height": 80}])
    stored = next(el for el in scene(engine)["elements"] if el["id"] == "cam")
    assert stored["props"]["room"] == "cam1"  # the engine moved the top-level room into props
    console = Console(driver)

    driver.get(engine.url + "/overlay?overlay_id=bundles-all")
    status = wait_plugins(driver)
    assert {"tts", "webrtc-signaling"} <= set(status["loaded"]) and status["failed"] == []
    # The webrtc element is drawn by the plugin's renderer (a viewer of its room), text by the core.
    wait_for(lambda: driver.execute_script(
        "const n = document.querySelector('.ov-el[data-id=\"cam\"]'); return n && n.classList.contains('ov-webrtc-live')"),
        message="the camera element drawn by the plugin")
    wait_for(lambda: driver.execute_script("return overlayWebRTC.views.size") == 1, message="one room view")
    assert driver.execute_script("return [...overlayWebRTC.views][0].room") == "cam1"
    assert driver.execute_script("return !!window.overlayTTS")
    assert console.severe() == []

    login(driver, engine, generate_key(engine, "Everything"))
    assert set(panel(driver)["plugins"]["loaded"]) == set(OPTIONAL)
    for element_id in ("tab-btn-media", "tab-btn-tts", "tab-btn-camera", "add-webrtc", "add-image", "add-video"):
        assert present(driver, element_id), element_id
    driver.find_element(By.ID, "tab-btn-tts").click()
    assert driver.find_element(By.ID, "tts-text").is_displayed()
    driver.find_element(By.ID, "tab-btn-camera").click()
    wait_for(lambda: driver.find_element(By.ID, "camera-rooms").is_displayed(), message="the camera tab")
    driver.find_element(By.ID, "tab-btn-media").click()
    wait_for(lambda: driver.find_element(By.ID, "media-grid").is_displayed(), message="the media tab")

    # The camera element's inspector is made from the type's schema: props.room, saved into props.
    driver.find_element(By.ID, "tab-btn-layers").click()
    driver.find_element(By.CSS_SELECTOR, '#layer-list li[data-id="cam"] [data-role="select"]').click()
    driver.find_element(By.ID, "tab-btn-props").click()
    field = wait_for(lambda: driver.find_element(By.ID, "insp-props-room"), message="the schema field")
    assert field.get_attribute("value") == "cam1"
    assert "Room" in driver.find_element(By.CSS_SELECTOR, 'label[for="insp-props-room"]').text
    field.clear()
    field.send_keys("bad room!", Keys.ENTER)
    assert "match" in driver.find_element(By.ID, "insp-props-room-error").text.lower() or \
        driver.find_element(By.ID, "insp-props-room").get_attribute("aria-invalid") == "true"
    field = driver.find_element(By.ID, "insp-props-room")
    field.clear()
    field.send_keys("cam2", Keys.ENTER)
    wait_for(lambda: next(el for el in scene(engine)["elements"] if el["id"] == "cam")["props"]["room"] == "cam2",
             message="props.room saved")
    wait_saved(driver)
    screenshot(driver, "mod-schema-inspector.png")

    # A save the engine refuses names the field: a notice, and the field is marked.
    driver.execute_script("""
        const original = window.fetch;
        window.fetch = function (url, init) {
            if (init && init.method === 'PATCH' && typeof init.body === 'string') init = {...init, body: init.body.replace('"cam3"', '"bad room!"')};
            return original.call(this, url, init);
        };""")
    field = driver.find_element(By.ID, "insp-props-room")
    field.clear()
    field.send_keys("cam3", Keys.ENTER)
    notice = wait_for(lambda: [n for n in driver.find_elements(By.CSS_SELECTOR, ".notice") if "props.room" in n.get_attribute("textContent")],
                      message="the refused save's notice")
    assert notice
    wait_for(lambda: driver.find_element(By.ID, "insp-props-room").get_attribute("aria-invalid") == "true", message="the field marked")
    assert next(el for el in scene(engine)["elements"] if el["id"] == "cam")["props"]["room"] == "cam2"

    # The Add menu's Camera entry (the plugin's own: it asks for the room) adds an element with props.room.
    driver.find_element(By.ID, "tab-btn-layers").click()
    driver.find_element(By.ID, "add-webrtc").click()
    room = wait_for(lambda: driver.find_element(By.ID, "dialog-input"), message="the room dialog")
    room.send_keys("cam9", Keys.ENTER)
    added = wait_for(lambda: [el for el in scene(engine)["elements"] if el["type"] == "webrtc" and el.get("props", {}).get("room") == "cam9"],
                     message="the new camera element")
    assert added[0]["width"] > 0 and added[0]["height"] > 0
    assert console.severe(allow=[("/api/scenes/", "400")]) == []

    open_admin(driver, engine)
    assert present(driver, "camera-card")
    assert console.severe(allow=[("/api/scenes/", "400")]) == []  # (the refused save's entry may come late)


def write_module(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_a_module_that_throws_or_hangs_is_isolated_and_listed_as_failed(engines, driver, tmp_path):
    if not all(built(name) for name in OPTIONAL):
        pytest.skip("the optional plugins are not built")
    # tts: a panel module that adds a tab and then throws (the tab is taken away again), an overlay module that
    # throws on import. media: a panel module whose setup never finishes.
    tts_web = tmp_path / "tts-web"
    write_module(tts_web, "overlay.js", 'throw new Error("tts overlay broken on purpose");\nexport default function setup() {}\n')
    write_module(tts_web, "panel.js", 'export default function setup(api) {\n'
                                      '  api.addTab({id: "half-done", label: "Half", render(c) { c.textContent = "x"; }});\n'
                                      '  throw new Error("tts panel broken on purpose");\n}\n')
    media_web = tmp_path / "media-web"
    write_module(media_web, "panel.js", "export default function setup() { return new Promise(() => {}); }\n")
    for folder in (tts_web, media_web):
        write_module(folder, "panel.css", "/* declared by the plugin */\n")
    engine = engines(config(web={"tts": tts_web, "media": media_web}))
    console = Console(driver)

    driver.get(engine.url + "/overlay?debug=1&overlay_id=bundles-broken")
    status = wait_plugins(driver)
    assert [f["name"] for f in status["failed"]] == ["tts"] and "webrtc-signaling" in status["loaded"], status
    wait_for(lambda: "plugin tts failed" in driver.find_element(By.ID, "ov-debug").text, message="the failure in the debug box")
    # The overlay still shows the scene and acknowledges it.
    put_scene(engine, [{"id": "t", "type": "text", "text": "Still here", "x": 0, "y": 0, "width": 400, "height": 100}])
    wait_for(lambda: driver.execute_script("return overlayState.version") == scene(engine)["_version"], message="the scene applied")
    errors = console.severe()
    assert errors and all("tts" in e["message"] for e in errors), errors

    login(driver, engine, generate_key(engine, "Broken"), )
    state = wait_for(lambda: (p := panel(driver)["plugins"]) and len(p["failed"]) == 2 and p, timeout=12, message="both failures")
    failed = {f["name"]: f["error"] for f in state["failed"]}
    assert "broken on purpose" in failed["tts"] and "longer than" in failed["media"], failed
    assert "webrtc-signaling" in state["loaded"]
    strip = driver.find_element(By.ID, "health-plugins")
    assert strip.is_displayed() and "tts" in strip.text and "media" in strip.text, strip.text
    assert not present(driver, "tab-btn-half-done") and not present(driver, "tab-btn-tts") and not present(driver, "tab-btn-media")
    assert present(driver, "tab-btn-camera") and present(driver, "add-webrtc")
    # Everything else keeps working.
    driver.find_element(By.ID, "add-text").click()
    wait_for(lambda: sum(el["type"] == "text" for el in scene(engine)["elements"]) == 2, message="the text saved")
    screenshot(driver, "mod-plugins-failed.png")
    errors = console.severe()
    assert errors and all("tts" in e["message"] or "media" in e["message"] for e in errors), errors


def test_without_api_plugins_the_pages_run_their_core(engines, driver):
    if not all(built(name) for name in OPTIONAL):
        pytest.skip("the optional plugins are not built")
    engine = engines(config())
    put_scene(engine, [{"id": "t", "type": "text", "text": "Core only", "x": 0, "y": 0, "width": 400, "height": 100}])
    # The browser cannot reach /api/plugins (an engine behind a proxy that drops it, a network error).
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/api/plugins*"]})
    console = Console(driver)

    driver.get(engine.url + "/overlay?overlay_id=no-listing")
    status = wait_plugins(driver)
    assert status["loaded"] == [] and status["failed"] == []
    wait_for(lambda: driver.execute_script("return overlayState.version") == scene(engine)["_version"], message="the scene applied")
    assert driver.execute_script("return document.querySelector('[data-id=\"t\"]').textContent") == "Core only"

    login(driver, engine, generate_key(engine, "No listing"))
    for missing in ("tab-btn-media", "tab-btn-tts", "tab-btn-camera", "add-webrtc"):
        assert not present(driver, missing), missing
    driver.find_element(By.ID, "add-text").click()
    wait_for(lambda: sum(el["type"] == "text" for el in scene(engine)["elements"]) == 2, message="the text saved")
    assert not [url for url in requested(driver) if "/plugins/" in url and "/api/plugins" not in url]
    # Only the blocked request itself shows up in the console.
    assert console.severe(allow=[("/api/plugins", "ERR_BLOCKED_BY_CLIENT")]) == []


def test_an_element_that_loads_asynchronously_holds_the_version_until_it_is_ready(engines, driver, tmp_path):
    if not built("webrtc-signaling"):
        pytest.skip("webrtc-signaling not built")
    # The webrtc type drawn by a test module: each element stays loading until the page releases it.
    web = tmp_path / "webrtc-web"
    write_module(web, "overlay.js", """
        export default function setup(api) {
          window.release = {};
          api.registerElementType("webrtc", {
            create(el) {
              const node = document.createElement("div");
              node.className = "slow";
              return {node};
            },
            update(rec, el) {
              if (rec.tracked) return;
              rec.tracked = true;
              api.trackLoad(rec, new Promise((resolve, reject) => { window.release[el.id] = {resolve, reject}; }), 8000);
            },
          });
        }
    """)
    for name in ("panel.js", "admin.js"):
        write_module(web, name, "export default function setup() {}\n")
    for name in ("publish.html", "preview.html"):
        write_module(web, name, "<!doctype html><title>stub</title>\n")
    write_module(web, "camera.css", "/* declared by the plugin */\n")
    engine = engines(plugin_config({"name": "moderator-keys"}, {"name": "webrtc-signaling", "config": {}, "web": str(web)}))
    first = put_scene(engine, [{"id": "t", "type": "text", "text": "x", "x": 0, "y": 0, "width": 100, "height": 50}])
    driver.get(engine.url + "/overlay?overlay_id=slow&debug=1")
    wait_plugins(driver)
    wait_for(lambda: driver.execute_script("return overlayState.version") == first, message="the first version")

    second = put_scene(engine, [{"id": "cam", "type": "webrtc", "props": {"room": "a"}, "x": 0, "y": 0, "width": 100, "height": 50}])
    wait_for(lambda: driver.execute_script("return !!(window.release && release.cam)"), message="the element created")
    time.sleep(0.6)
    shown = driver.execute_script("const n = document.querySelector('.slow'); return {v: overlayState.version, vis: getComputedStyle(n).visibility}")
    assert shown == {"v": first, "vis": "hidden"}, "acknowledged before the element loaded"
    driver.execute_script("release.cam.resolve()")
    wait_for(lambda: driver.execute_script("return overlayState.version") == second, message="the version acknowledged once loaded")
    assert driver.execute_script("return getComputedStyle(document.querySelector('.slow')).visibility") == "visible"

    # A load that fails counts as done too (like a media element that failed): reported in the debug box.
    third = put_scene(engine, [{"id": "cam2", "type": "webrtc", "props": {"room": "b"}, "x": 0, "y": 0, "width": 100, "height": 50}])
    wait_for(lambda: driver.execute_script("return !!release.cam2"), message="the second element created")
    driver.execute_script("release.cam2.reject(new Error('camera gone'))")
    wait_for(lambda: driver.execute_script("return overlayState.version") == third, message="acknowledged after the failure")
    assert "camera gone" in driver.find_element(By.ID, "ov-debug").text
