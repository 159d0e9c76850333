#!/usr/bin/env python3
"""Start-up time: process start to the first answered request, with the shipped config (every plugin).

    python3 bench/startup.py [--runs 10] [--build-dir .build/release]
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once(engine, config):
    work = Path(tempfile.mkdtemp())
    port = free_port()
    env = dict(os.environ, PORT=str(port), STREAMER_API_TOKEN="bench", WEB_DIR=str(ROOT / "web"), LOG_LEVEL="warning")
    env.pop("REDIS_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen([str(engine), "serve", "--config", str(config)], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/api/plugins")
                if c.getresponse().status == 200:
                    return (time.perf_counter() - started) * 1000
            except OSError:
                time.sleep(0.002)
            if proc.poll() is not None:
                raise SystemExit("engine exited")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "release"))
    args = parser.parse_args()
    engine = Path(args.build_dir) / "overlay-engine"
    times = [once(engine, ROOT / "config" / "overlay.yaml") for _ in range(args.runs)]
    print(f"start-up to first answered GET /api/plugins ({args.runs} runs, {engine}): "
          f"median {statistics.median(times):.0f} ms, min {min(times):.0f} ms, max {max(times):.0f} ms")


if __name__ == "__main__":
    main()
