#!/usr/bin/env python3
"""Failover benchmark: three release engines on one redis-server (AOF always) behind nginx, N overlay sockets spread
by nginx, a saver at a steady rate through nginx; one engine is killed with -9. Prints how long its overlays took to
be back on the latest version (reconnect through nginx + replay of what they missed), how many versions they
replayed, and how many got a full scene instead.
    bench/failover.py [overlays] [saves-per-second]
Uses the helpers of Tests/integration (cluster.py, scene_client.py) and ONIONRP_BUILD_DIR (default .build/release)."""
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ONIONRP_BUILD_DIR", str(ROOT / ".build" / "release"))
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

import requests  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from cluster import Cluster  # noqa: E402
from scene_client import SceneClient  # noqa: E402

STREAMER = {"x-streamer-token": "streamer-secret"}


def main():
    overlays = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as folder:
        cluster = Cluster(Path(folder), env={"LOG_LEVEL": "warning"})
        try:
            run(cluster, overlays, rate)
        finally:
            cluster.stop()


def run(cluster, overlays, rate):
    url = cluster.nginx.url
    base = requests.get(url + "/api/scene", headers=STREAMER).json()["_version"]
    requests.put(url + "/api/scene", headers=STREAMER,
                 json={"base_version": base, "elements": [{"id": "w", "type": "text", "text": "x"}]}).raise_for_status()
    clients = []
    lost = {}
    back = {}
    lock = threading.Lock()
    stop = threading.Event()

    def read(client):
        while not stop.is_set():
            try:
                client.handle(client.ws.recv(timeout=0.5))
                if client in lost and client not in back and client.version >= latest[0]:
                    with lock:
                        back[client] = time.monotonic()
            except TimeoutError:
                continue
            except ConnectionClosed:
                with lock:
                    lost.setdefault(client, time.monotonic())
                while not stop.is_set():
                    try:
                        client.open(resume=True)
                        break
                    except Exception:
                        time.sleep(0.05)

    for index in range(overlays):
        client = SceneClient(cluster.nginx.ws_url, query=f"overlay_id=f{index}").open()
        clients.append(client)
    latest = [0]
    threads = [threading.Thread(target=read, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    victim = cluster.engines[0]
    per_engine = cluster.overlays_per_engine()
    step = 0
    killed_at = None
    started = time.monotonic()
    while time.monotonic() - started < 12:
        step += 1
        if killed_at is None and time.monotonic() - started > 4:
            cluster.kill(victim)
            killed_at = time.monotonic()
        for _ in range(10):
            try:
                current = requests.get(url + "/api/scene", headers=STREAMER, timeout=5).json()["_version"]
                answer = requests.patch(url + "/api/scene", headers=STREAMER, timeout=5,
                                        json={"base_version": current, "ops": [{"op": "update", "id": "w", "fields": {"x": step}}]})
                if answer.status_code == 200:
                    latest[0] = max(latest[0], answer.json()["_version"])
                    break
            except requests.RequestException:
                pass
        time.sleep(1 / rate)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(c.version < latest[0] for c in clients):
        time.sleep(0.1)
    stop.set()
    moved = [c for c in clients if c in lost]
    delays = sorted(back[c] - killed_at for c in moved if c in back)
    replayed = [sum(r["replayed"] for r in c.resumed) for c in moved]
    full_after = sum(1 for c in moved if not c.resumed)
    def pct(values, q):
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
    print(f"machine: {os.cpu_count()} cores; overlays={overlays} on engines {per_engine}; saves ~{rate}/s through nginx")
    print(f"killed engine 0 (-9) with {per_engine[0]} overlays; {len(moved)} reconnected, {len(delays)} back on the latest version")
    print(f"time from kill to latest version: p50={pct(delays, 0.5) * 1000:.0f} ms p99={pct(delays, 0.99) * 1000:.0f} ms max={(delays[-1] if delays else float('nan')) * 1000:.0f} ms")
    print(f"versions replayed per reconnected overlay: max={max(replayed or [0])}; got a full scene instead: {full_after}")
    gaps = sum(1 for c in clients if c.versions != sorted(set(c.versions)))
    print(f"overlays with a version out of order or twice: {gaps}; all on the latest ({latest[0]}): {all(c.version >= latest[0] for c in clients)}")


if __name__ == "__main__":
    main()
