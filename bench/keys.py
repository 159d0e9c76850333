#!/usr/bin/env python3
"""Moderator-key benchmark: generate+consume pairs against a release engine, on each store backend.

    python3 bench/keys.py [--seconds 10] [--workers 8] [--backends embedded,redis]

Each worker keeps one HTTP/1.1 keep-alive connection and loops: POST generate (streamer token),
POST consume (the key). Reports consumes per second and the p50/p99 latency of a whole pair.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / ".build" / "release" / "overlay-engine"
CONFIG = """
limits:
  rate:
    moderator-keys.generate: {burst: 100000000, per_minute: 100000000}
    moderator-keys.consume: {burst: 100000000, per_minute: 100000000}
plugins:
  - name: moderator-keys
    config:
      max_outstanding_keys: 100000000
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/healthz", timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"engine on {port} did not start")


def worker(port, stop_at, latencies, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers_gen = {"x-streamer-token": "bench", "content-length": "0"}
    form = {"content-type": "application/x-www-form-urlencoded"}
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        conn.request("POST", "/api/moderator-keys/generate", headers=headers_gen)
        r = conn.getresponse()
        body = r.read()
        if r.status != 201:
            errors.append(r.status)
            continue
        key = json.loads(body)["key"]
        conn.request("POST", "/api/moderator-keys/consume", body=urllib.parse.urlencode({"key": key}), headers=form)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            errors.append(r.status)
            continue
        latencies.append((time.perf_counter() - started) * 1000)


def run(backend, seconds, workers):
    work = Path(tempfile.mkdtemp())
    (work / "overlay.yaml").write_text(CONFIG)
    env = dict(os.environ, STREAMER_API_TOKEN="bench", LOG_LEVEL="warning")
    env.pop("REDIS_URL", None)
    redis = None
    if backend == "redis":
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", str(work)], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        env["REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
    port = free_port()
    env["PORT"] = str(port)
    engine = subprocess.Popen([str(ENGINE), "serve", "--config", "overlay.yaml"], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(port)
        latencies, errors = [], []
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=worker, args=(port, stop_at, latencies, errors)) for _ in range(workers)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        latencies.sort()

        def pct(q):
            return latencies[min(len(latencies) - 1, max(0, int(q * len(latencies) + 0.999) - 1))] if latencies else float("nan")

        print(f"backend={backend} workers={workers} seconds={elapsed:.1f} pairs={len(latencies)} consumes_per_s={len(latencies) / elapsed:.0f} "
              f"pair_ms_p50={pct(0.5):.2f} p99={pct(0.99):.2f} errors={len(errors)}")
    finally:
        engine.terminate()
        engine.wait()
        if redis:
            redis.terminate()
            redis.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--backends", default="embedded,redis")
    args = parser.parse_args()
    if not ENGINE.exists():
        raise SystemExit("build first: swift build -c release")
    print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
    for backend in args.backends.split(","):
        run(backend, args.seconds, args.workers)


if __name__ == "__main__":
    main()
