#!/usr/bin/env python3
"""Engine memory under connection churn and idle connections (hardening issue).

    python3 bench/ws-churn.py [--build-dir .build/release] [--cycles 20000] [--idle 15000]

1. Starts the engine (embedded store, no plugins) on a loopback port and reads its RSS.
2. Opens and closes `--cycles` WebSocket connections (half accepted overlay sockets, half refused
   `/ws/moderator?session=bad` ones), `--threads` at a time; reads RSS after every quarter and
   again once they are all closed.
3. Holds `--idle` plain TCP connections that send nothing, checks that `/healthz` still answers,
   reads RSS, closes them, waits, reads RSS again.

Prints one line per reading; the figures go into docs/PERFORMANCE.md.
"""
import argparse
import base64
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def handshake(port, path):
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no upgrade: {data[:80]!r}")
    return s


def one_cycle(port, refused):
    s = handshake(port, "/ws/moderator?session=bad" if refused else "/ws/overlay?overlay_id=churn")
    try:
        # A masked close frame (1000), then wait for the server's close or EOF.
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8"))
        s.sendall(b"\x88\x82" + mask + payload)
        s.settimeout(5)
        while s.recv(4096):
            pass
    except OSError:
        pass
    finally:
        s.close()


def churn(port, cycles, threads):
    counter = iter(range(cycles))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            try:
                one_cycle(port, refused=n % 2 == 1)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(str(e))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def healthz(port, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
        return r.status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=str(ROOT / ".build" / "release"))
    ap.add_argument("--cycles", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--idle", type=int, default=15000)
    ap.add_argument("--max-connections", type=int, default=0, help="server.max_connections (0: the default)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="ws-churn-"))
    port = free_port()
    extra = f"  max_connections: {args.max_connections}\n" if args.max_connections else ""
    (work / "overlay.yaml").write_text(f"server:\n  host: 127.0.0.1\n  port: {port}\n{extra}plugins: []\n")
    env = dict(os.environ, STREAMER_API_TOKEN="bench", WEB_DIR=str(ROOT / "web"), LOG_LEVEL="warning")
    env.pop("REDIS_URL", None)
    engine = Path(args.build_dir).resolve() / "overlay-engine"
    proc = subprocess.Popen([str(engine), "serve", "--config", str(work / "overlay.yaml")], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                healthz(port, 0.5)
                break
            except OSError:
                time.sleep(0.05)
        # Warm up so that the first reading is the plateau, not the empty process.
        churn(port, 500, args.threads)
        time.sleep(1)
        base = rss_kib(proc.pid)
        print(f"engine {engine} pid {proc.pid}")
        print(f"rss after warm-up (500 cycles): {base / 1024:.1f} MiB")
        started = time.monotonic()
        done = 0
        step = 5000
        while done < args.cycles:
            n = min(step, args.cycles - done)
            errors = churn(port, n, args.threads)
            done += n
            print(f"  after {done} connect/close cycles: rss {rss_kib(proc.pid) / 1024:.1f} MiB, "
                  f"fds {fds(proc.pid)}, errors {len(errors)}{' e.g. ' + errors[0] if errors else ''}")
        elapsed = time.monotonic() - started
        time.sleep(2)
        after = rss_kib(proc.pid)
        print(f"rss 2 s after {done} cycles ({done / elapsed:.0f} cycles/s): {after / 1024:.1f} MiB "
              f"({(after - base) * 1024 / max(done, 1):.0f} bytes per cycle)")

        if args.idle:
            held = []
            refused = 0
            for _ in range(args.idle):
                try:
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                except OSError:
                    refused += 1
            time.sleep(1)
            t0 = time.monotonic()
            try:
                status = healthz(port, 5)
            except OSError as e:
                status = f"failed: {e}"
            print(f"holding {len(held)} idle TCP connections ({refused} not opened): rss {rss_kib(proc.pid) / 1024:.1f} MiB, "
                  f"fds {fds(proc.pid)}, /healthz {status} in {(time.monotonic() - t0) * 1000:.0f} ms")
            for s in held:
                s.close()
            for wait in (3, 15):
                time.sleep(wait if wait == 3 else wait - 3)
                print(f"{wait} s after closing them: rss {rss_kib(proc.pid) / 1024:.1f} MiB, fds {fds(proc.pid)}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
