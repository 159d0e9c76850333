#!/usr/bin/env python3
"""Media upload benchmark: the engine's memory (VmRSS) while a large file is uploaded, and the throughput.

Starts an engine on loopback with the media plugin, uploads one file of --size-mb MiB (a valid MP4
header followed by filler, generated on the fly so the client never holds it), samples the engine's
RSS every 20 ms, checks the stored file's SHA-256, and prints before / peak / after RSS and MB/s.
Exits 1 when the peak is 100 MiB or more above the RSS before the upload.

    python3 bench/media-upload-rss.py                       # builds release, 300 MiB upload
    python3 bench/media-upload-rss.py --size-mb 500 --chunked
    python3 bench/media-upload-rss.py --build-dir .build/debug --no-build
"""
import argparse
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
BOUND_MIB = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Upload:
    """A multipart body whose file part is `size` bytes: an MP4 `ftyp` box, an `mdat` header, then filler
    (all 256 byte values, so the body has the CR bytes real media has). Iterating generates it."""

    def __init__(self, size, chunk=1 << 20):
        self.size, self.chunk = size, chunk
        self.boundary = "bench" + uuid.uuid4().hex
        self.head = (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.mp4"\r\n'
                     "Content-Type: video/mp4\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.sha256 = None

    def __len__(self):
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self):
        digest = hashlib.sha256()
        yield self.head
        ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 0x200) + b"isomiso2"
        first = ftyp + struct.pack(">I", self.size - len(ftyp)) + b"mdat"
        digest.update(first)
        yield first
        sent, filler = len(first), bytes(range(256)) * (self.chunk // 256)
        while sent < self.size:
            piece = filler[: min(len(filler), self.size - sent)]
            digest.update(piece)
            yield piece
            sent += len(piece)
        self.sha256 = digest.hexdigest()
        yield self.tail


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=300, help="file size in MiB (default 300)")
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "release"), help="folder with overlay-engine and libmedia.so")
    parser.add_argument("--no-build", action="store_true", help="do not run swift build first")
    parser.add_argument("--chunked", action="store_true", help="send without Content-Length (chunked transfer encoding)")
    args = parser.parse_args()

    build = Path(args.build_dir).resolve()
    if not args.no_build:
        configuration = "release" if build.name == "release" else "debug"
        for product in ("overlay-engine", "media"):
            subprocess.run(["swift", "build", "-c", configuration, "--product", product], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
    engine_bin = build / "overlay-engine"
    if not engine_bin.exists() or not (build / "libmedia.so").exists():
        sys.exit(f"missing {engine_bin} or libmedia.so; build them or pass --build-dir")

    size = args.size_mb << 20
    work = Path(tempfile.mkdtemp(prefix="media-bench-"))
    port = free_port()
    (work / "overlay.yaml").write_text(
        "limits:\n  rate:\n    media.upload: {burst: 1000, per_minute: 100000}\n"
        "plugins:\n  - name: media\n    config:\n"
        f"      max_video_bytes: {size + (64 << 20)}\n      quota_bytes: {2 * size + (64 << 20)}\n")
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "STREAMER_API_TOKEN": TOKEN, "LOG_LEVEL": "warning"}
    env.pop("REDIS_URL", None)
    env.pop("PLUGINS_DIR", None)
    log = open(work / "engine.log", "wb")
    engine = subprocess.Popen([str(engine_bin), "serve", "--config", "overlay.yaml"], cwd=work, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    headers = {"x-streamer-token": TOKEN}
    try:
        for _ in range(200):
            try:
                if requests.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            sys.exit(f"engine did not start; see {work / 'engine.log'}")

        # Warm-up: code paths, allocator arenas, the first socket.
        warm = Upload(4 << 20)
        assert requests.post(url + "/api/media", data=warm, headers={**headers, "content-type": f"multipart/form-data; boundary={warm.boundary}"}).ok
        time.sleep(0.5)
        before = rss_kib(engine.pid)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(engine.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        body = Upload(size)
        started = time.monotonic()
        try:
            answer = requests.post(url + "/api/media", data=iter(body) if args.chunked else body, timeout=3600,
                                   headers={**headers, "content-type": f"multipart/form-data; boundary={body.boundary}"})
        finally:
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
        time.sleep(0.5)
        after = rss_kib(engine.pid)
        if answer.status_code != 201:
            sys.exit(f"upload failed: {answer.status_code} {answer.text}")
        media = answer.json()["media"]
        if media["sha256"] != body.sha256 or media["size"] != size:
            sys.exit(f"stored file differs: {media}")
        stored = work / "uploads" / "media" / f"{media['sha256']}.mp4"

        growth = (peak[0] - before) / 1024
        print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}; engine: {engine_bin}")
        print(f"upload: {args.size_mb} MiB {'chunked' if args.chunked else 'with Content-Length'}, stored {stored.stat().st_size} bytes, sha256 ok")
        print(f"RSS before: {before / 1024:.1f} MiB")
        print(f"RSS peak:   {peak[0] / 1024:.1f} MiB (+{growth:.1f} MiB, bound {BOUND_MIB} MiB)")
        print(f"RSS after:  {after / 1024:.1f} MiB")
        print(f"time: {elapsed:.2f} s, {size / elapsed / 1e6:.1f} MB/s ({size / elapsed / (1 << 20):.1f} MiB/s)")
        return 0 if growth < BOUND_MIB else 1
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(timeout=20)
        except subprocess.TimeoutExpired:
            engine.kill()
        log.close()
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()


if __name__ == "__main__":
    sys.exit(main())
