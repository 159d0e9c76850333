"""What the browser and HTTP tests of the pages share: scenes over HTTP, moderator keys and login, the panel's
state, the browser console, screenshots and small fixtures of content."""
import json
import struct
import time
import zlib

import requests
from selenium.webdriver.common.by import By

from browser import make_chrome, wait_for
from conftest import BUILD, ROOT, plugin_config

ARTIFACTS = ROOT / "test-artifacts"
OPTIONAL_PLUGINS = ("media", "tts", "webrtc-signaling")


def panel_config(with_optional=True):
    """moderator-keys plus every optional plugin whose library is built (the panel must work with or without them)."""
    entries = [{"name": "moderator-keys"}]
    if with_optional:
        entries += [{"name": name} for name in OPTIONAL_PLUGINS if (BUILD / f"lib{name}.so").exists()]
    return plugin_config(*entries)


def make_driver(width=1280, height=720):
    return make_chrome(width=width, height=height, script_timeout=15)


class Console:
    """Browser console entries per window handle, read as they come (get_log drains)."""

    def __init__(self, driver):
        self.driver = driver
        self.entries = []

    def collect(self):
        self.entries += self.driver.get_log("browser")
        return self.entries

    def severe(self, allow=()):
        """SEVERE entries, minus the expected ones: `allow` holds (substring, substring...) tuples that must all match."""
        bad = []
        for entry in self.collect():
            if entry["level"] != "SEVERE":
                continue
            if any(all(part in entry["message"] for part in rule) for rule in allow):
                continue
            bad.append(entry)
        return bad


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def generate_key(engine, label="mod"):
    answer = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data={"label": label})
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


def put_scene(engine, elements, name=None, check=True):
    """Replaces a scene's elements as the streamer (the active one, or `name`).

    Returns the new version, or with `check=False` the response itself (for refusals)."""
    path = f"/api/scenes/{name}" if name else "/api/scene"
    current = requests.get(engine.url + path, headers=engine.streamer())
    base = current.json()["_version"] if current.status_code == 200 else 0
    answer = requests.put(engine.url + path, headers=engine.streamer(), json={"base_version": base, "elements": elements})
    if not check:
        return answer
    assert answer.status_code == 200, answer.text
    return answer.json()["_version"]


def scene(engine):
    return requests.get(engine.url + "/api/scene", headers=engine.streamer()).json()


def element(scene_json, element_id):
    return next((el for el in scene_json["elements"] if el["id"] == element_id), None)


def panel(driver):
    return driver.execute_script("return window.modPanel ? {version: modPanel.version, scene: modPanel.scene, save: modPanel.saveState,"
                                 " pending: modPanel.pending, connection: modPanel.connection, selected: modPanel.selected,"
                                 " plugins: modPanel.plugins} : null")


def login(driver, engine, key, url="/mod"):
    driver.get(engine.url + url)
    field = wait_for(lambda: driver.find_element(By.ID, "login-key").is_displayed() and driver.find_element(By.ID, "login-key"),
                     message="the login form")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "login-submit").click()
    wait_for_panel(driver)


def wait_for_panel(driver, timeout=10):
    """Connected, a scene shown, and the plugins' panel modules loaded (their tabs are there)."""
    return wait_for(lambda: (p := panel(driver)) and p["connection"] == "open" and p["version"] > 0 and p["plugins"]["ready"] and p,
                    timeout=timeout, message="the panel connected with a scene and its plugins")


def wait_saved(driver, timeout=10):
    return wait_for(lambda: (p := panel(driver)) and p["save"] == "saved" and p["pending"] == 0 and p, timeout=timeout,
                    message="everything saved")


def text_element(element_id="title", x=100, y=120, width=400, height=100, text="Hello chat"):
    return {"id": element_id, "type": "text", "text": text, "x": x, "y": y, "width": width, "height": height, "size": 48,
            "color": "#ffffff", "background": "#00000080", "z": 1}


def tiny_png(path, width=64, height=36):
    """A real PNG (orange gradient) written without image libraries."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (240, 120 + x, 40)) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def plugin_routes(engine):
    plugins = requests.get(engine.url + "/api/plugins").json()["plugins"]
    return {f'{r["method"]} {r["path"]}' for p in plugins for r in p.get("routes", [])}


def no_overflow(driver):
    return driver.execute_script("const d = document.documentElement; return d.scrollWidth <= innerWidth + 1 && d.scrollHeight <= innerHeight + 1")


def recv_type(ws, wanted, timeout=5.0):
    """The next socket message of type `wanted`, skipping others (hello, room.state, metrics...)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no '{wanted}' message within {timeout}s")
        message = json.loads(ws.recv(timeout=left))
        if message.get("type") == wanted:
            return message
