"""Plugin bundles over real HTTP: each plugin's web folder under /plugins/<name>/, its entry points and element
schemas in /api/plugins, its pages, props checked against the schema, and what disabling a plugin removes."""
import re
import shutil

import requests

from conftest import plugin_config, run_cli
from pages import put_scene

ALL = ({"name": "moderator-keys"}, {"name": "media"}, {"name": "tts", "config": {"mode": "browser"}}, {"name": "webrtc-signaling"})


def test_api_plugins_lists_web_entry_points_and_schemas(engines):
    engine = engines(plugin_config(*ALL))
    plugins = {p["name"]: p for p in requests.get(engine.url + "/api/plugins").json()["plugins"]}
    assert plugins["moderator-keys"]["web"] is None
    assert plugins["tts"]["web"] == {"base": "/plugins/tts/", "overlay": {"module": "/plugins/tts/overlay.js", "styles": []},
                                     "panel": {"module": "/plugins/tts/panel.js", "styles": plugins["tts"]["web"]["panel"]["styles"]},
                                     "admin": None, "pages": []}
    assert plugins["media"]["web"]["panel"]["module"] == "/plugins/media/panel.js"
    assert plugins["media"]["web"]["overlay"] is None
    webrtc = plugins["webrtc-signaling"]
    assert webrtc["web"]["pages"] == ["/publish", "/preview"]
    assert webrtc["web"]["admin"]["module"] == "/plugins/webrtc-signaling/admin.js"
    [camera] = webrtc["element_types"]
    assert camera["type"] == "webrtc" and camera["label"] == "Camera"
    assert camera["schema"]["required"] == ["room"]
    assert camera["schema"]["properties"]["room"]["pattern"] == "[A-Za-z0-9_-]{1,64}"
    assert camera["schema"]["x-order"] == ["room", "max_kbps"]  # max_kbps: the viewer-side cap (sfu quality controls)
    # Every module and style listed is really served.
    for plugin in plugins.values():
        web = plugin["web"] or {}
        for page in ("overlay", "panel", "admin"):
            if web.get(page):
                for url in [web[page]["module"], *web[page]["styles"]]:
                    answer = requests.get(engine.url + url)
                    assert answer.status_code == 200, url
                    assert answer.headers["content-type"].startswith(("text/javascript", "application/javascript", "text/css")), url


def test_web_folder_is_served_with_the_rules_of_web(engines):
    engine = engines(plugin_config(*ALL))
    first = requests.get(engine.url + "/plugins/tts/overlay.js")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers.get("etag")
    assert requests.get(engine.url + "/plugins/tts/overlay.js", headers={"if-none-match": first.headers["etag"]}).status_code == 304
    assert requests.head(engine.url + "/plugins/tts/overlay.js").status_code == 200
    assert requests.get(engine.url + "/plugins/tts/nope.js").status_code == 404
    assert requests.get(engine.url + "/plugins/tts/").status_code == 404          # no listing
    assert requests.get(engine.url + "/plugins/nobody/overlay.js").status_code == 404
    # No way out of the folder.
    for path in ["/plugins/tts/../../../../etc/passwd", "/plugins/tts/%2e%2e/%2e%2e/Package.swift",
                 "/plugins/tts/..%2f..%2fTTSPlugin.swift", "/plugins/tts/%2e%2e%2fweb/overlay.js"]:
        answer = requests.get(engine.url + path)
        assert answer.status_code in (400, 404), path
        assert "root:" not in answer.text and "import" not in answer.text[:200], path
    # The plugin's pages are served at their own paths, and the core pages name no plugin.
    publish = requests.get(engine.url + "/publish?room=cam&token=x")
    assert publish.status_code == 200 and publish.headers["content-type"].startswith("text/html")
    assert "/plugins/webrtc-signaling/" in publish.text
    assert requests.get(engine.url + "/preview?webrtc_room=cam").status_code == 200
    for page in ("/overlay", "/mod", "/admin"):
        html = requests.get(engine.url + page).text
        assert not re.search(r"tts|webrtc|camera|media\.js|publish", html, re.I), (page, html)


def test_disabled_plugin_serves_nothing_and_its_element_type_is_unknown(engines):
    engine = engines(plugin_config({"name": "moderator-keys"}, {"name": "media"}, {"name": "tts", "enabled": False},
                                   {"name": "webrtc-signaling", "enabled": False}))
    names = [p["name"] for p in requests.get(engine.url + "/api/plugins").json()["plugins"]]
    assert names == ["moderator-keys", "media"]
    for path in ["/plugins/tts/overlay.js", "/plugins/tts/panel.js", "/plugins/webrtc-signaling/overlay.js",
                 "/plugins/webrtc-signaling/publish.html", "/publish", "/preview"]:
        assert requests.get(engine.url + path).status_code == 404, path
    refused = put_scene(engine, [{"id": "cam", "type": "webrtc", "props": {"room": "studio"}}], check=False)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_scene" and "'webrtc' is not a known element type" in error["message"]
    # The core still works without them.
    assert put_scene(engine, [{"id": "t", "type": "text", "text": "hi"}], check=False).status_code == 200
    assert requests.get(engine.url + "/overlay").status_code == 200


def test_props_are_checked_against_the_schema_with_the_flat_form_accepted(engines):
    engine = engines(plugin_config(*ALL))
    saved = put_scene(engine, [{"id": "cam", "type": "webrtc", "room": "studio", "x": 10}], check=False)
    assert saved.status_code == 200, saved.text
    element = requests.get(engine.url + "/api/scene").json()["elements"][0]
    assert element["props"] == {"room": "studio"} and "room" not in element
    for elements, field, text in [
        ([{"id": "cam", "type": "webrtc"}], "props.room", "is required for webrtc"),
        ([{"id": "cam", "type": "webrtc", "props": {"room": "no spaces"}}], "props.room", "must match"),
        ([{"id": "cam", "type": "webrtc", "props": {"room": 5}}], "props.room", "must be a string"),
        ([{"id": "cam", "type": "webrtc", "props": {"room": "a", "extra": 1}}], "props.extra", "is not a property of webrtc"),
    ]:
        answer = put_scene(engine, elements, check=False)
        assert answer.status_code == 400, elements
        error = answer.json()["error"]
        assert error["code"] == "invalid_scene"
        assert (error["field"], error["element"]) == (field, "cam"), error
        assert text in error["message"], error
    # PATCH updates are checked too, in the flat form as well.
    base = requests.get(engine.url + "/api/scene").json()["_version"]
    patched = requests.patch(engine.url + "/api/scenes/main", headers=engine.streamer(),
                             json={"base_version": base, "ops": [{"op": "update", "id": "cam", "fields": {"room": "bad room"}}]})
    assert patched.status_code == 400 and patched.json()["error"]["field"] == "props.room"
    patched = requests.patch(engine.url + "/api/scenes/main", headers=engine.streamer(),
                             json={"base_version": base, "ops": [{"op": "update", "id": "cam", "fields": {"room": "lobby"}}]})
    assert patched.status_code == 200, patched.text
    assert requests.get(engine.url + "/api/scene").json()["elements"][0]["props"] == {"room": "lobby"}


def test_scenes_saved_with_a_top_level_room_keep_it_after_upgrade(engines):
    engine = engines(plugin_config(*ALL))
    assert put_scene(engine, [{"id": "cam", "type": "webrtc", "room": "studio"}], check=False).status_code == 200
    engine.stop()
    # Rewrite the stored versions the way the previous release wrote them: room beside the core fields.
    changed = 0
    for file in (engine.workdir / "data" / "scenes" / "main").glob("*.json"):
        text = file.read_text()
        new = text.replace('"props":{"room":"studio"}', '"room":"studio"')
        changed += new != text
        file.write_text(new)
    assert changed, "the stored scene format changed; update this test"
    engine.start()
    element = requests.get(engine.url + "/api/scene").json()["elements"][0]
    assert element["props"] == {"room": "studio"}
    # The overlay's viewer-token check reads the migrated room.
    token = requests.post(engine.url + "/api/webrtc/rooms/studio/viewer-token")
    assert token.status_code == 201, token.text
    assert requests.post(engine.url + "/api/webrtc/rooms/other/viewer-token").status_code == 403


def test_declared_web_files_must_exist(engines, tmp_path):
    empty = tmp_path / "empty-web"
    empty.mkdir()
    engine = engines(plugin_config({"name": "tts", "web": str(empty)}), start=False)
    engine.start(wait=False)
    assert engine.wait_exit() != 0
    logs = engine.logs()
    assert "plugin 'tts'" in logs and "web file 'overlay.js' is missing from " + str(empty) in logs
    missing = engines(plugin_config({"name": "tts", "web": str(tmp_path / "nowhere")}), start=False)
    missing.start(wait=False)
    assert missing.wait_exit() != 0
    assert "(plugins[].web) does not exist" in missing.logs()


def test_a_web_key_replaces_the_shipped_folder(engines, tmp_path):
    own = tmp_path / "tts-web"
    own.mkdir()
    (own / "overlay.js").write_text("export default function setup(api) { globalThis.customSpeaker = true; }\n")
    (own / "panel.js").write_text("export default function setup(api) {}\n")
    (own / "panel.css").write_text(".tts-own {}\n")
    engine = engines(plugin_config({"name": "tts", "web": str(own), "config": {"mode": "browser"}}))
    assert "customSpeaker" in requests.get(engine.url + "/plugins/tts/overlay.js").text


def test_a_plugin_from_another_toolchain_is_refused_before_dlopen(workdir, hello_so, tmp_path):
    data = bytearray(hello_so.read_bytes())
    found = re.search(rb"swiftlang/llvm-project\.git ([0-9a-f]{40})", data)
    assert found, "the plugin carries no toolchain stamp in .comment"
    start = found.start(1)
    data[start:start + 40] = b"0" * 40
    other = tmp_path / "libhello.so"
    other.write_bytes(bytes(data))
    (workdir / "o.yaml").write_text(plugin_config({"name": "hello", "path": str(other)}))
    result = run_cli("check-config", "--config", "o.yaml", workdir=workdir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"plugin 'hello' ({other}): built by another Swift toolchain" in output, output
    assert "0000000000000000000000000000000000000000" in output
    # The unmodified library still loads.
    (workdir / "ok.yaml").write_text(plugin_config({"name": "hello", "path": str(hello_so)}))
    assert run_cli("check-config", "--config", "ok.yaml", workdir=workdir).returncode == 0


def test_plugins_command_lists_web_entries_and_pages(workdir):
    (workdir / "o.yaml").write_text(plugin_config(*ALL))
    result = run_cli("plugins", "--config", "o.yaml", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "ELEMENT webrtc (Camera)" in result.stdout
    assert "WEB     overlay: /plugins/tts/overlay.js" in result.stdout
    assert "PAGE    /publish" in result.stdout


def test_a_web_folder_beside_the_library_belongs_to_a_lone_library_only(engines, hello_so, tmp_path):
    bundle = tmp_path / "hello-bundle"
    (bundle / "web").mkdir(parents=True)
    (bundle / "web" / "note.txt").write_text("bundle file\n")
    shutil.copy(hello_so, bundle / "libhello.so")
    engine = engines(plugin_config({"name": "hello", "path": str(bundle / "libhello.so")}))
    hello = requests.get(engine.url + "/api/plugins").json()["plugins"][0]
    assert hello["web"]["base"] == "/plugins/hello/"
    assert requests.get(engine.url + "/plugins/hello/note.txt").text == "bundle file\n"
    engine.stop()
    # A second library in the folder: the web folder could be either's, so neither gets it.
    shutil.copy(hello_so, bundle / "libother.so")
    engine = engines(plugin_config({"name": "hello", "path": str(bundle / "libhello.so")}))
    assert requests.get(engine.url + "/api/plugins").json()["plugins"][0]["web"] is None
    assert requests.get(engine.url + "/plugins/hello/note.txt").status_code == 404
