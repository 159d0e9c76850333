"""Fixtures that run the real engine binary on a loopback port with a config written per test."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ONIONRP_BUILD_DIR", ROOT / ".build" / "debug"))
ENGINE = BUILD / "overlay-engine"
HELLO_SO = ROOT / "examples" / "hello-plugin" / ".build" / "debug" / "libhello.so"
# The PluginAPI version the sources declare ("major.minor"), read from the one place it is written.
API_VERSION = ".".join(re.search(r"PluginAPIVersion\(major: (\d+), minor: (\d+)\) }",
                                 (ROOT / "Sources" / "PluginAPI" / "Plugin.swift").read_text()).groups())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One engine process serving a config in its own folder."""

    def __init__(self, workdir: Path, config: str, env=None):
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "overlay.yaml"
        self.config_path.write_text(config)
        self.env = dict(os.environ)
        self.env.update({"PORT": str(self.port), "HOST": "127.0.0.1", "LOG_LEVEL": "info",
                         "STREAMER_API_TOKEN": "streamer-secret", "WEB_DIR": str(ROOT / "web")})
        for key in ("REDIS_URL", "PLUGINS_DIR"):
            self.env.pop(key, None)
        self.env.update(env or {})
        self.log_path = workdir / "engine.log"
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait=True, timeout=20):
        self.log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([str(ENGINE), "serve", "--config", str(self.config_path)], cwd=self.workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"engine exited with {self.proc.returncode}:\n{self.logs()}")
                try:
                    if requests.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                        self.ready_after = time.monotonic() - self.started_at
                        return self
                except requests.RequestException:
                    time.sleep(0.05)
            raise AssertionError(f"engine did not answer within {timeout}s:\n{self.logs()}")
        return self

    def wait_exit(self, timeout=20):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self):
        if self.proc is not None and self.proc.poll() is None:
            # The engine writes its log lines in batches, at most 50 ms apart (warnings and errors at once).
            time.sleep(0.15)
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def streamer(self):
        return {"x-streamer-token": "streamer-secret"}


def run_cli(*args, workdir, env=None, timeout=60):
    environment = dict(os.environ)
    for key in ("REDIS_URL", "PLUGINS_DIR"):
        environment.pop(key, None)
    environment.update(env or {})
    return subprocess.run([str(ENGINE), *args], cwd=workdir, capture_output=True, text=True, env=environment, timeout=timeout)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture
def engines(tmp_path):
    started = []

    def make(config: str, env=None, start=True):
        folder = tmp_path / f"engine{len(started)}"
        folder.mkdir()
        engine = Engine(folder, config, env)
        started.append(engine)
        if start:
            engine.start()
        return engine

    yield make
    for engine in started:
        engine.stop()


def plugin_config(*entries):
    """YAML for a plugins list; entries are dicts (name, path, enabled, config)."""
    return "plugins:\n" + "".join(f"  - {json.dumps(entry)}\n" for entry in entries)


@pytest.fixture(scope="session")
def hello_so():
    """The example plugin, built here as a plugin author would build it: its own package, `swift build`."""
    result = subprocess.run(["swift", "build"], cwd=ROOT / "examples" / "hello-plugin", capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert HELLO_SO.exists(), f"swift build did not leave {HELLO_SO}"
    return HELLO_SO


@pytest.fixture(scope="session")
def mismatched_hello_so(tmp_path_factory):
    """The example plugin compiled against a copy of PluginAPI whose version is 99.0."""
    base = tmp_path_factory.mktemp("mismatch")
    api = base / "PluginAPI"
    shutil.copytree(ROOT / "Sources" / "PluginAPI", api, ignore=shutil.ignore_patterns(".build"))
    plugin_swift = api / "Plugin.swift"
    text = plugin_swift.read_text()
    marker = f"PluginAPIVersion(major: {API_VERSION.replace('.', ', minor: ')}) }}"
    assert marker in text, "the PluginAPI version literal moved; update this fixture"
    plugin_swift.write_text(text.replace(marker, "PluginAPIVersion(major: 99, minor: 0) }"))
    hello = base / "hello"
    shutil.copytree(ROOT / "examples" / "hello-plugin", hello, ignore=shutil.ignore_patterns(".build"))
    manifest = hello / "Package.swift"
    manifest.write_text(manifest.read_text().replace('.package(path: "../../Sources/PluginAPI")', f'.package(path: "{api}")'))
    result = subprocess.run(["swift", "build"], cwd=hello, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return hello / ".build" / "debug" / "libhello.so"


class RedisServer:
    """A throw-away redis-server on a free loopback port that a test can stop and start again."""

    # Persistence: none by default; DurableRedis (cluster.py) turns the append-only file on.
    persistence = ("--appendonly", "no")

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      *self.persistence, "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10).stdout


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
def backend(request, tmp_path):
    """Environment for the engine: the embedded store, or a real redis-server started for this test."""
    if request.param == "embedded":
        yield {"name": "embedded", "env": {}, "redis": None}
        return
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    yield {"name": "redis", "env": {"REDIS_URL": server.url}, "redis": server}
    server.stop()


@pytest.fixture
def driver(request):
    """A headless Chromium for one test, closed after it. A test module sets `CHROME = {...}` for its own
    arguments (`args`, `width`, `height`, `script_timeout`), e.g. the fake camera flags of the WebRTC tests."""
    from browser import make_chrome
    settings = dict(getattr(request.module, "CHROME", {}))
    browser = make_chrome(*settings.pop("args", ()), **{"script_timeout": 15, **settings})
    try:
        yield browser
    finally:
        browser.quit()
