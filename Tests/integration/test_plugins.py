"""Plugins load through dlopen from overlay.yaml, answer over real HTTP and real WebSockets, and bad ones stop start-up."""
import json

import requests
from websockets.sync.client import connect

from conftest import API_VERSION, BUILD, plugin_config, run_cli
from pages import recv_type


def test_example_and_in_repo_plugin_load_and_serve(engines, hello_so):
    engine = engines(plugin_config(
        {"name": "moderator-keys"},
        {"name": "hello", "path": str(hello_so), "config": {"greeting": "privet"}},
    ))
    listing = requests.get(engine.url + "/api/plugins").json()
    assert [p["name"] for p in listing["plugins"]] == ["moderator-keys", "hello"]
    hello = listing["plugins"][1]
    assert hello["api_version"] == listing["api_version"] == API_VERSION
    # Where the libraries are on the server is the streamer's business only (hardening #20).
    assert "file" not in hello
    as_streamer = requests.get(engine.url + "/api/plugins", headers=engine.streamer()).json()
    assert as_streamer["plugins"][1]["file"] == str(hello_so)
    assert requests.get(engine.url + "/api/plugins", headers={"x-streamer-token": "wrong"}).json()["plugins"][1].get("file") is None
    assert {"method": "GET", "path": "/api/hello", "access": "public", "summary": "a greeting"} in hello["routes"]
    assert hello["events"] == ["hello.ping (overlay)"]

    answer = requests.get(engine.url + "/api/hello", params={"name": "chat"})
    assert answer.status_code == 200
    assert answer.json() == {"greeting": "privet", "name": "chat", "caller": "anonymous"}
    assert answer.headers["x-request-id"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    # HEAD is served wherever GET is.
    assert requests.head(engine.url + "/api/hello").status_code == 200

    # The in-repo plugin answers too (its access check runs in the engine before the handler).
    assert requests.post(engine.url + "/api/moderator-keys/generate").status_code == 401
    created = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer())
    assert created.status_code == 201 and len(created.json()["key"]) >= 22

    # One line per loaded plugin and the URL it listens on.
    logs = engine.logs()
    assert f"loaded plugin moderator-keys 1.0.0 (PluginAPI {API_VERSION})" in logs
    assert f"loaded plugin hello 1.0.0 (PluginAPI {API_VERSION}) from {hello_so}" in logs
    assert f"listening on http://127.0.0.1:{engine.port}" in logs

    # Plugin metrics reach /metrics.
    metrics = requests.get(engine.url + "/metrics").text
    # GET and HEAD each ran the handler once.
    assert 'onionrp_plugin_hello_greetings_total{plugin="hello"} 2' in metrics


def test_plugin_event_handler_receives_websocket_event(engines, hello_so):
    engine = engines(plugin_config({"name": "hello", "path": str(hello_so)}))
    with connect(engine.ws_url + "/ws/overlay?overlay_id=obs-1") as overlay:
        hello = recv_type(overlay, "hello")
        assert hello["channel"] == "overlay"
        overlay.send(json.dumps({"type": "hello.ping", "text": "from obs"}))
        pong = recv_type(overlay, "hello.pong")
        assert pong == {"type": "hello.pong", "greeting": "hello", "text": "from obs", "connection": hello["connection_id"]}
        # Unknown events and malformed frames get an error frame, not a crash.
        overlay.send(json.dumps({"type": "nope"}))
        assert recv_type(overlay, "error")["code"] == "unknown_event"
        overlay.send("not json")
        assert recv_type(overlay, "error")["code"] == "invalid_message"
        overlay.send(json.dumps({"type": "hello.ping", "text": 5}))
        assert recv_type(overlay, "error")["code"] == "invalid_json"
        overlay.send(json.dumps({"type": "ping"}))
        assert recv_type(overlay, "pong")["server_ts"] > 0


def test_plugins_command_prints_table(workdir, hello_so):
    (workdir / "o.yaml").write_text(plugin_config({"name": "moderator-keys"}, {"name": "hello", "path": str(hello_so)}))
    result = run_cli("plugins", "--config", "o.yaml", workdir=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "API", "FILE"]
    assert lines[1].split() == ["moderator-keys", "1.0.0", API_VERSION, str(BUILD.resolve() / "libmoderator-keys.so")] or \
        lines[1].split()[:3] == ["moderator-keys", "1.0.0", API_VERSION]
    assert lines[2].split() == ["hello", "1.0.0", API_VERSION, str(hello_so)]
    assert any("POST   /api/moderator-keys/consume  [public]" in line for line in lines)
    assert any("EVENT  hello.ping (overlay)" in line for line in lines)


def test_check_config_accepts_good_and_lists_every_problem(workdir, hello_so):
    (workdir / "good.yaml").write_text(plugin_config({"name": "hello", "path": str(hello_so)}))
    good = run_cli("check-config", "--config", "good.yaml", workdir=workdir)
    assert good.returncode == 0, good.stderr
    assert "OK, 1 plugin(s) loaded: hello" in good.stdout

    (workdir / "bad.yaml").write_text(
        "server:\n"
        "  port: eighty\n"
        "  hots: x\n"
        "security:\n"
        "  strict_origin: sometimes\n"
        "plugins:\n"
        "  - name: hello\n"
        "    enabeld: true\n")
    bad = run_cli("check-config", "--config", "bad.yaml", workdir=workdir)
    assert bad.returncode != 0
    err = bad.stderr
    assert "bad.yaml:2:" in err and "server.port" in err
    assert "bad.yaml:3:" in err and "unknown key 'hots'" in err
    assert "bad.yaml:5:" in err and "security.strict_origin" in err
    assert "bad.yaml:8:" in err and "unknown key 'enabeld'" in err


def start_failure(workdir, config):
    (workdir / "o.yaml").write_text(config)
    result = run_cli("serve", "--config", "o.yaml", workdir=workdir, env={"PORT": "0"}, timeout=30)
    assert result.returncode != 0, "start-up should have failed"
    return result.stdout + result.stderr


def test_version_mismatch_is_refused_with_both_versions(workdir, mismatched_hello_so):
    out = start_failure(workdir, plugin_config({"name": "hello", "path": str(mismatched_hello_so)}))
    assert f"plugin 'hello' ({mismatched_hello_so}): version mismatch: built against PluginAPI 99.0, the engine runs PluginAPI {API_VERSION}" in out
    assert "listening on" not in out


def test_missing_library_fails_startup(workdir):
    out = start_failure(workdir, plugin_config({"name": "ghost", "path": "/nonexistent/libghost.so"}))
    assert "plugin 'ghost' (/nonexistent/libghost.so): file missing" in out


def test_default_path_is_plugins_dir_and_library_name(workdir):
    out = start_failure(workdir, plugin_config({"name": "chat-bridge"}))
    assert f"plugin 'chat-bridge' ({BUILD.resolve() / 'libchat-bridge.so'}): file missing" in out


def test_library_without_entry_symbol_fails_startup(workdir):
    not_a_plugin = BUILD / "libPluginAPI.so"
    out = start_failure(workdir, plugin_config({"name": "fake", "path": str(not_a_plugin)}))
    assert f"plugin 'fake' ({not_a_plugin}): not a plugin: the library has no 'onionrp_plugin_entry' symbol" in out


def test_two_plugins_claiming_one_route_fail_startup(workdir, hello_so):
    out = start_failure(workdir, plugin_config(
        {"name": "moderator-keys"},
        {"name": "hello", "path": str(hello_so), "config": {"route": "/api/moderator/me"}},
    ))
    assert f"plugin 'hello' ({hello_so}): route clash: GET /api/moderator/me is already registered by plugin 'moderator-keys'" in out
    assert "listening on" not in out


def test_plugin_cannot_take_engine_route(workdir, hello_so):
    out = start_failure(workdir, plugin_config({"name": "hello", "path": str(hello_so), "config": {"route": "/healthz"}}))
    assert "route clash: GET /healthz is already registered by the engine" in out


def test_bad_plugin_config_names_line_and_key(workdir, hello_so):
    out = start_failure(workdir,
                        "plugins:\n"
                        f"  - name: hello\n    path: {hello_so}\n"
                        "    config:\n"
                        "      greeting: hi\n"
                        "      colour: red\n")
    assert f"plugin 'hello' ({hello_so}): bad config: o.yaml:6: key 'plugins[0].config.colour': unknown key 'colour'" in out


def test_every_problem_of_a_plugin_config_is_listed(workdir, hello_so):
    out = start_failure(workdir,
                        "plugins:\n"
                        f"  - name: hello\n    path: {hello_so}\n"
                        "    config:\n"
                        "      greeting: [not, text]\n"
                        "      route: {}\n")
    assert "bad config: o.yaml:5: key 'plugins[0].config.greeting'" in out
    assert "bad config: o.yaml:6: key 'plugins[0].config.route'" in out


def test_plugin_setup_error_fails_startup(workdir, hello_so):
    out = start_failure(workdir, plugin_config({"name": "hello", "path": str(hello_so), "config": {"greeting": ""}}))
    assert f"plugin 'hello' ({hello_so}): set-up threw: bad_request: greeting must not be empty" in out


def test_name_mismatch_is_refused(workdir, hello_so):
    out = start_failure(workdir, plugin_config({"name": "greeter", "path": str(hello_so)}))
    assert "the library holds plugin 'hello', not 'greeter'" in out
