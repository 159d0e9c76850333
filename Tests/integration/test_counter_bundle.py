"""The second example bundle, examples/counter-plugin (a goal bar), built out of tree as its author would, loaded
with its web folder named by `web:`: its element schema checked on scene saves, its routes and socket events, and
in Chromium the panel's Add menu, its inspector buttons and the overlay following them live.

Screenshots go to test-artifacts/ (counter-overlay.png, counter-panel.png)."""
import json
import subprocess

import pytest
import requests
from selenium.webdriver.common.by import By
from websockets.sync.client import connect

from browser import make_chrome
from conftest import ROOT, run_cli
from pages import put_scene, recv_type

EXAMPLE = ROOT / "examples" / "counter-plugin"
COUNTER_SO = EXAMPLE / ".build" / "debug" / "libcounter.so"
WEB = EXAMPLE / "web"
DEFAULTS = {"title": "Follower goal", "value": 0, "target": 100, "color": "#ffcc00", "style": "bar", "animate": True}


@pytest.fixture(scope="session")
def counter_so():
    """Built as a plugin author builds it: `swift build` in the bundle's own package."""
    result = subprocess.run(["swift", "build"], cwd=EXAMPLE, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert COUNTER_SO.exists(), f"swift build did not leave {COUNTER_SO}"
    return COUNTER_SO


def counter_config(so, rate=None, config=None):
    """moderator-keys, and the counter plugin with its web folder named by `web:`."""
    rates = {"moderator-keys.generate": {"burst": 1000, "per_minute": 100000},
             "moderator-keys.consume": {"burst": 1000, "per_minute": 100000}, **(rate or {})}
    entry = {"name": "counter", "path": str(so), "web": str(WEB), **({"config": config} if config else {})}
    return ("limits:\n  rate:\n" + "".join(f"    {name}: {json.dumps(value)}\n" for name, value in rates.items())
            + f"plugins:\n  - name: moderator-keys\n  - {json.dumps(entry)}\n")


@pytest.fixture
def engine(engines, counter_so):
    return engines(counter_config(counter_so))


def moderator(engine):
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data={"label": "goals"})
    assert key.status_code == 201, key.text
    session = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key.json()["key"]})
    assert session.status_code == 200, session.text
    return {"x-moderator-session": session.json()["session"]}


def goal(element_id="g1", **props):
    element = {"id": element_id, "type": "goal", "x": 100, "y": 900, "width": 640, "height": 120}
    if props:
        element["props"] = props
    return element


def save(engine, elements):
    """The save's response (refusals are checked too)."""
    return put_scene(engine, elements, check=False)


def stored(engine, element_id):
    scene = requests.get(engine.url + "/api/scene", headers=engine.streamer()).json()
    return next(el for el in scene["elements"] if el["id"] == element_id)


# ---------------------------------------------------------------------------------------------
# HTTP and sockets

def test_listing_declares_the_goal_schema_and_the_web_modules(engine):
    listing = requests.get(engine.url + "/api/plugins").json()
    counter = next(p for p in listing["plugins"] if p["name"] == "counter")
    assert counter["web"]["overlay"] == {"module": "/plugins/counter/overlay.js", "styles": ["/plugins/counter/overlay.css"]}
    assert counter["web"]["panel"] == {"module": "/plugins/counter/panel.js",
                                        "styles": ["/plugins/counter/panel.css", "/plugins/counter/overlay.css"]}
    assert counter["web"]["admin"] is None
    [declared] = counter["element_types"]
    assert (declared["type"], declared["label"], declared["width"], declared["height"]) == ("goal", "Goal bar", 640, 120)
    schema = declared["schema"]
    assert schema["x-order"] == ["title", "value", "target", "color", "style", "animate"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["target"] == {"type": "integer", "title": "Target", "minimum": 1, "maximum": 1000000, "default": 100}
    assert schema["properties"]["style"]["enum"] == ["bar", "slim", "pill"]
    assert schema["properties"]["color"]["format"] == "color"
    routes = {(r["method"], r["path"], r["access"]) for r in counter["routes"]}
    assert {("GET", "/api/counter/{id}", "overlay"), ("POST", "/api/counter/{id}/increment", "moderator"),
            ("POST", "/api/counter/{id}/reset", "moderator")} <= routes

    # The bundle's files, served from its web folder (no listing, no way out of it).
    script = requests.get(engine.url + "/plugins/counter/overlay.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.text == (WEB / "overlay.js").read_text()
    assert requests.get(engine.url + "/plugins/counter/panel.css").status_code == 200
    assert requests.get(engine.url + "/plugins/counter/").status_code in (403, 404)
    assert requests.get(engine.url + "/plugins/counter/missing.js").status_code == 404


def test_defaults_are_filled_in_on_save(engine):
    answer = save(engine, [goal("g1", value=5, title="Subs"), goal("g2")])
    assert answer.status_code == 200, answer.text
    assert stored(engine, "g1")["props"] == {**DEFAULTS, "value": 5, "title": "Subs"}
    assert stored(engine, "g2")["props"] == DEFAULTS


def test_a_flat_update_changes_only_the_properties_it_sends(engine):
    assert save(engine, [goal("g1", value=5, title="Subs", target=50)]).status_code == 200
    base = requests.get(engine.url + "/api/scene").json()["_version"]
    # The top-level form of a property (as `room` for webrtc elements) merges into props...
    patched = requests.patch(engine.url + "/api/scene", headers=engine.streamer(),
                             json={"base_version": base, "ops": [{"op": "update", "id": "g1", "fields": {"value": 7}}]})
    assert patched.status_code == 200, patched.text
    assert stored(engine, "g1")["props"] == {**DEFAULTS, "value": 7, "title": "Subs", "target": 50}
    # ...is checked like props...
    refused = requests.patch(engine.url + "/api/scene", headers=engine.streamer(),
                             json={"base_version": patched.json()["_version"],
                                   "ops": [{"op": "update", "id": "g1", "fields": {"target": 0}}]})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "props.target", refused.text
    # ...while sending props replaces them (defaults fill the rest).
    replaced = requests.patch(engine.url + "/api/scene", headers=engine.streamer(),
                              json={"base_version": patched.json()["_version"],
                                    "ops": [{"op": "update", "id": "g1", "fields": {"props": {"value": 1}}}]})
    assert replaced.status_code == 200, replaced.text
    assert stored(engine, "g1")["props"] == {**DEFAULTS, "value": 1}


@pytest.mark.parametrize("props, field", [
    ({"value": "x"}, "props.value"),
    ({"value": 1.5}, "props.value"),
    ({"value": -1}, "props.value"),
    ({"target": -1}, "props.target"),
    ({"target": 0}, "props.target"),
    ({"colour": "red"}, "props.colour"),
    ({"color": "nope"}, "props.color"),
    ({"style": "ring"}, "props.style"),
    ({"animate": "yes"}, "props.animate"),
    ({"title": "x" * 61}, "props.title"),
])
def test_bad_props_are_refused_naming_the_field(engine, props, field):
    answer = save(engine, [goal("bad", **props)])
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_scene"
    assert error["field"] == field and error["element"] == "bad", error
    assert field in error["message"]


def test_moderators_change_the_value_and_every_page_hears_it(engine):
    assert save(engine, [goal("g1", value=5)]).status_code == 200
    headers = moderator(engine)
    base = engine.url + "/api/counter/g1"
    # Before any change the value is the element's start value.
    assert requests.get(base).json() == {"id": "g1", "value": 5}

    with connect(engine.ws_url + "/ws/overlay") as overlay:
        assert requests.post(base + "/increment").status_code == 401
        assert requests.post(base + "/increment", headers=engine.streamer()).json() == {"id": "g1", "value": 6}
        assert recv_type(overlay, "counter.changed") == {"type": "counter.changed", "id": "g1", "value": 6}
        assert requests.post(base + "/increment", headers=headers, json={"by": 10}).json()["value"] == 16
        assert recv_type(overlay, "counter.changed")["value"] == 16

        for body, field in (({"by": 0}, "by"), ({"by": 101}, "by"), ({"by": -101}, "by")):
            refused = requests.post(base + "/increment", headers=headers, json=body)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_field", refused.text
        assert requests.post(base + "/increment", headers=headers, json={"by": "x"}).json()["error"]["code"] == "invalid_json"
        assert requests.post(engine.url + "/api/counter/a*b/increment", headers=headers).status_code == 400

        # Kept within 0...maximum; reset sets a value (0 without a body).
        assert requests.post(base + "/increment", headers=headers, json={"by": -100}).json()["value"] == 0
        assert requests.post(base + "/reset", headers=headers, json={"value": 42}).json()["value"] == 42
        assert requests.post(base + "/reset", headers=headers, json={"value": 2000000}).status_code == 400
        assert recv_type(overlay, "counter.changed")["value"] == 0
        assert recv_type(overlay, "counter.changed")["value"] == 42

    # A page that connects gets every stored value at once; panels hear changes too.
    with connect(engine.ws_url + f"/ws/moderator?session={headers['x-moderator-session']}") as panel:
        assert recv_type(panel, "counter.values")["values"] == {"g1": 42}
        requests.post(engine.url + "/api/counter/g2/increment", headers=headers)
        assert recv_type(panel, "counter.changed") == {"type": "counter.changed", "id": "g2", "value": 1}

    # The values live in the plugin's store: they survive a restart.
    engine.stop()
    engine.start()
    assert requests.get(base).json()["value"] == 42
    metrics = requests.get(engine.url + "/metrics").text
    assert 'onionrp_plugin_counter_changes_total{plugin="counter"}' in metrics


def test_changes_are_rate_limited_per_client(engines, counter_so):
    engine = engines(counter_config(counter_so, rate={"counter.change": {"burst": 3, "per_minute": 1}}))
    headers = moderator(engine)
    answers = [requests.post(engine.url + "/api/counter/g1/increment", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_bad_plugin_config_stops_start_up(workdir, counter_so):
    (workdir / "o.yaml").write_text(counter_config(counter_so, config={"max_step": 0}))
    result = run_cli("serve", "--config", "o.yaml", workdir=workdir, env={"PORT": "0"}, timeout=30)
    assert result.returncode != 0
    assert "max_step" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# In Chromium: the panel adds a goal bar and presses its buttons; the overlay follows live.

def test_panel_adds_a_goal_and_its_buttons_move_the_overlay_bar(engine):
    from browser import wait_for
    from pages import Console, generate_key, login, put_scene, screenshot, wait_saved

    version = put_scene(engine, [])
    driver = make_chrome(width=1280, height=720, script_timeout=15)
    try:
        console = Console(driver)
        login(driver, engine, generate_key(engine, "Goals"))
        mod_window = driver.current_window_handle
        driver.switch_to.new_window("window")
        overlay_window = driver.current_window_handle
        driver.get(engine.url + "/overlay?overlay_id=counter-test")
        wait_for(lambda: driver.execute_script("return window.overlayState && overlayState.version") >= version,
                 message="the overlay on screen")
        wait_for(lambda: "counter" in driver.execute_script("return (window.onionPlugins || {}).loaded || []"),
                 message="the counter overlay module loaded")

        # The Add menu lists the plugin's element type by its label.
        driver.switch_to.window(mod_window)
        wait_for(lambda: "counter" in driver.execute_script("return (window.onionPlugins || {}).loaded || []"),
                 message="the counter panel module loaded")
        add = wait_for(lambda: add_entry(driver, "Goal bar"), message="the Goal bar entry in the Add menu")
        add.click()
        wait_saved(driver)
        element = wait_for(lambda: next((el for el in requests.get(engine.url + "/api/scene", headers=engine.streamer())
                                         .json()["elements"] if el["type"] == "goal"), None), message="the goal saved")
        assert element["props"] == DEFAULTS, element
        goal_id = element["id"]
        saved_version = scene_version(engine)

        # The overlay draws it: title, "0 / 100", an empty bar.
        driver.switch_to.window(overlay_window)
        wait_for(lambda: overlay_goal(driver, goal_id)["count"] == "0 / 100", message="the goal on the overlay")
        drawn = overlay_goal(driver, goal_id)
        assert drawn["title"] == "Follower goal" and drawn["fill"] == 0 and drawn["transition"].startswith("width")

        # The inspector's buttons: +1 three times and +10 once.
        driver.switch_to.window(mod_window)
        inspector = wait_for(lambda: visible(driver, ".cp-panel"), message="the goal inspector")
        for step in ("1", "1", "1", "10"):
            inspector.find_element(By.CSS_SELECTOR, f'button[data-step="{step}"]').click()
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".cp-panel-value").text == "13 / 100", message="the panel at 13")
        # The editor's stage draws the goal as the overlay does (the plugin's stage preview), live too.
        wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('.cp-goal')].map((n) => n.closest('[data-id]').dataset.id + ' ' + "
            "n.querySelector('.cp-count').textContent).join()") == f"{goal_id} 13 / 100", message="the stage preview at 13")
        screenshot(driver, "counter-panel.png")

        # ... reach the overlay live: the text at once, the bar once its transition is over.
        driver.switch_to.window(overlay_window)
        wait_for(lambda: overlay_goal(driver, goal_id)["count"] == "13 / 100", message="the overlay at 13")
        assert overlay_goal(driver, goal_id)["fill"] == 13
        wait_for(lambda: abs(overlay_goal(driver, goal_id)["share"] - 0.13) < 0.01, message="the bar at 13%")
        screenshot(driver, "counter-overlay.png")
        assert requests.get(engine.url + f"/api/counter/{goal_id}").json()["value"] == 13

        # Reset empties it again; the scene itself never changed (the value lives in the plugin's store).
        driver.switch_to.window(mod_window)
        driver.find_element(By.CSS_SELECTOR, '.cp-panel button[data-action="reset"]').click()
        driver.switch_to.window(overlay_window)
        wait_for(lambda: overlay_goal(driver, goal_id)["count"] == "0 / 100", message="the overlay reset")
        assert scene_version(engine) == saved_version
        assert console.severe() == []
    except Exception:
        screenshot(driver, "counter-failed.png")
        raise
    finally:
        driver.quit()


def scene_version(engine):
    return requests.get(engine.url + "/api/scene", headers=engine.streamer()).json()["_version"]


def add_entry(driver, label):
    """The visible Add control labelled `label` (a button of the add bar, or an item of an opened Add menu)."""
    for button in driver.find_elements(By.XPATH, f'//button[normalize-space()="{label}" or @aria-label="Add {label}"]'):
        if button.is_displayed():
            return button
    # A menu that must be opened first.
    for opener in driver.find_elements(By.XPATH, '//button[normalize-space()="Add" or normalize-space()="More" or @aria-haspopup]'):
        if opener.is_displayed() and "Add" in (opener.text + (opener.get_attribute("aria-label") or "")):
            opener.click()
            break
    return None


def visible(driver, selector):
    return next((node for node in driver.find_elements(By.CSS_SELECTOR, selector) if node.is_displayed()), None)


def overlay_goal(driver, goal_id):
    return driver.execute_script("""
        const node = document.querySelector(`[data-id="${arguments[0]}"]`);
        if (!node || !node.querySelector('.cp-fill')) return {count: null};
        const fill = node.querySelector('.cp-fill'), track = node.querySelector('.cp-track');
        return {title: node.querySelector('.cp-title').textContent, count: node.querySelector('.cp-count').textContent,
                fill: parseFloat(fill.style.width), share: fill.getBoundingClientRect().width / track.getBoundingClientRect().width,
                transition: getComputedStyle(fill).transitionProperty + ' ' + getComputedStyle(fill).transitionDuration};
    """, goal_id)
