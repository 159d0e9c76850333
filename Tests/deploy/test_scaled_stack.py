"""The compose stack with three engines (compose.yaml's `scale` profile, WEB_REPLICAS=3): nginx spreads the
overlay sockets over web, web-2 and web-3, which share the one Redis; a save through any of them reaches every
overlay, and an engine that is killed loses only its sockets."""
import json
import time

import pytest
import requests

from test_stack import PROJECT, ROOT, Stack


class ScaledStack(Stack):
    def __init__(self):
        super().__init__()
        self.env["WEB_REPLICAS"] = "3"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))

    def compose(self, *args, timeout=240, check=True):
        import subprocess
        import sys
        command = [sys.executable, "-m", "podman_compose", "--env-file", str(self.env_file), "-p", PROJECT,
                   "--profile", "scale", "-f", str(ROOT / "compose.yaml"), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result


@pytest.fixture(scope="module")
def scaled():
    stack = ScaledStack()
    stack.compose("down", "-v", "-t", "5", check=False)
    try:
        stack.up(timeout=240)
        yield stack
    finally:
        stack.compose("down", "-v", "-t", "20", check=False, timeout=180)


def engines_report(stack, want, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        report = stack.get("/api/metrics/realtime", headers=stack.streamer()).json()
        if len(report.get("engines", [])) >= want:
            return report
        assert time.monotonic() < deadline, report.get("engines")
        time.sleep(0.5)


def test_three_engines_share_the_scenes_and_every_overlay_gets_every_save(scaled):
    report = engines_report(scaled, 3)
    assert len({engine["engine_id"] for engine in report["engines"]}) == 3
    sockets = [scaled.ws(f"/ws/overlay?overlay_id=scaled-{i}&patches=1") for i in range(9)]
    try:
        for ws in sockets:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            assert json.loads(ws.recv(timeout=10))["type"] == "scene.full"
        report = engines_report(scaled, 3)
        deadline = time.monotonic() + 15
        while sum(engine["overlays_connected"] for engine in report["engines"]) < 9 and time.monotonic() < deadline:
            time.sleep(0.5)
            report = engines_report(scaled, 3)
        assert all(engine["overlays_connected"] >= 1 for engine in report["engines"]), report["engines"]
        versions = []
        for step in range(6):
            base = scaled.get("/api/scene", headers=scaled.streamer()).json()["_version"]
            answer = requests.patch(scaled.base + "/api/scene", verify=False, timeout=30,
                                    headers={**scaled.streamer(), "Origin": scaled.origin},
                                    json={"base_version": base, "ops": [{"op": "add", "element": {"id": f"s{step}", "type": "text", "text": "x"}}]})
            assert answer.status_code == 200, answer.text
            versions.append(answer.json()["_version"])
        for ws in sockets:
            got = []
            while not got or got[-1] < versions[-1]:
                message = json.loads(ws.recv(timeout=15))
                if message["type"] in ("scene.full", "scene.patch"):
                    got.append(message["version"])
            assert got == versions
    finally:
        for ws in sockets:
            ws.close()
