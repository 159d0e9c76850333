"""HTTP and WebSocket fuzzing of the real engine (issue 11, "a standing defence").

Walks every route the engine serves (its own and every route and socket listed by GET /api/plugins)
with malformed methods, paths, path parameters, headers and bodies, as anonymous, overlay, moderator
and streamer, over raw sockets, plus malformed WebSocket upgrades and frames. After each batch it
checks that the process is alive, /healthz answers, no request got a 500, and RSS stays bounded.

Bounded and reproducible: HTTP_FUZZ_SECONDS (default 75) and HTTP_FUZZ_SEED (default: random, printed).
Against a sanitizer build: ONIONRP_BUILD_DIR=.build-asan/debug SWIFT_BACKTRACE=enable=no
ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=8.
When the engine dies, the request that killed it is recorded, the engine is restarted and fuzzing
goes on, so one run lists every distinct problem; they are written to
test-artifacts/http-fuzz/findings.txt and the test fails listing them.
"""
import json
import os
import random
import socket
import struct
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT

SECONDS = float(os.environ.get("HTTP_FUZZ_SECONDS", "75"))
BATCH = 40
# An AddressSanitizer build holds freed memory in quarantine: give it ASAN_OPTIONS=quarantine_size_mb=8 or a larger limit.
RSS_GROWTH_LIMIT_MB = float(os.environ.get("HTTP_FUZZ_RSS_GROWTH_MB", "200"))
OVERLAY_TOKEN = "overlay-secret"

CONFIG = """
limits:
  rate:
    moderator-keys.generate: {burst: 100000, per_minute: 1000000}
    moderator-keys.consume: {burst: 100000, per_minute: 1000000}
    scene.save: {burst: 100000, per_minute: 1000000}
    media.upload: {burst: 100000, per_minute: 1000000}
plugins:
  - name: moderator-keys
    config: {max_failures: 100000, max_outstanding_keys: 100000}
  - name: media
    config: {max_image_bytes: 1MB, max_video_bytes: 1MB, max_audio_bytes: 1MB}
  - name: tts
    config: {mode: browser}
  - name: webrtc-signaling
"""

# The engine's own routes (GET /api/plugins lists the plugins' routes).
ENGINE_ROUTES = [
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/api/plugins"),
    ("GET", "/api/scene"), ("PUT", "/api/scene"), ("PATCH", "/api/scene"),
    ("GET", "/api/scenes"), ("GET", "/api/scenes/{name}"), ("PUT", "/api/scenes/{name}"), ("PATCH", "/api/scenes/{name}"),
    ("DELETE", "/api/scenes/{name}"), ("POST", "/api/scenes/{name}/activate"),
    ("GET", "/api/scene/history"), ("POST", "/api/scene/restore"), ("POST", "/api/overlay/applied"),
    ("GET", "/api/metrics/realtime"), ("GET", "/overlay"), ("GET", "/mod"), ("GET", "/admin"), ("GET", "/"),
]
ENGINE_SOCKETS = ["/ws/overlay", "/ws/moderator"]

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get", "FOO", "G\x00T", "PRI"]
PARAMS = ["main", "..", ".", "%2e%2e", "%2E", "%00", "a%00b", "a" * 300, "a" * 5000, "ünï", "%C3%BC", "%ff%fe", "a%2Fb",
          "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f", "_active", ".hidden", "-", "0", "-1", "9" * 40, "%", "%%", "a b",
          "studio", "0123456789abcdef0123456789abcdef", "日本語", "\\..\\", "CON", "a.json", "~", "%0d%0aX:1"]
CONTENT_TYPES = [";", "", " ", ";;", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                 "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=",
                 "multipart/form-data; boundary=" + "x" * 300, "multipart/form-data; boundary=\"\"",
                 "multipart/form-data; boundary=b", "text/plain; charset=ü", "\x7f", "a/b; c=\"unterminated",
                 "application/json;;;;;charset", "*/*", "image/png"]
FIELDS = ["base_version", "elements", "ops", "key", "streamer_id", "label", "text", "lang", "rate", "pitch", "volume",
          "room", "role", "ttl", "version", "overlay_id", "scene", "width", "height", "id", "type", "file", "force"]


def wav(n=64):
    data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
            + b"data" + struct.pack("<I", len(data)) + data)


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def exchange(port, data: bytes, timeout=2.0, half_close=False):
    """Sends raw bytes; returns (status or None, answer bytes). Connection errors count as no answer."""
    out = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if len(out) > 1 << 20:
                    break
    except OSError:
        pass
    line = out.split(b"\r\n", 1)[0].split(b" ")
    status = int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") and line[1].isdigit() else None
    return status, out


class Fuzzer:
    def __init__(self, engines, rng):
        self.engines = engines
        self.rng = rng
        self.findings = {}
        self.requests_sent = 0
        self.start_engine()

    # -- the engine and its credentials

    def start_engine(self):
        self.engine = self.engines(CONFIG, env={"OVERLAY_TOKEN": OVERLAY_TOKEN})
        url = self.engine.url
        streamer = {"x-streamer-token": "streamer-secret"}
        key = requests.post(url + "/api/moderator-keys/generate", headers=streamer, timeout=10).json()["key"]
        session = requests.post(url + "/api/moderator-keys/consume", data={"key": key}, timeout=10).json()["session"]
        self.roles = {
            "anonymous": {},
            "overlay": {"x-overlay-token": OVERLAY_TOKEN},
            "moderator": {"x-moderator-session": session},
            "streamer": streamer,
        }
        upload = requests.post(url + "/api/media", headers=self.roles["moderator"],
                               files={"file": ("a.wav", wav(300), "audio/wav")}, timeout=10)
        assert upload.status_code == 201, upload.text
        self.media_id = upload.json()["media"]["id"]
        token = requests.post(url + "/api/webrtc/token", headers=streamer, json={"room": "studio", "role": "publisher"}, timeout=10)
        assert token.status_code == 201, token.text
        self.room_token = token.json()["token"]
        listing = requests.get(url + "/api/plugins", timeout=10).json()
        self.routes = list(ENGINE_ROUTES)
        self.sockets = list(ENGINE_SOCKETS)
        for plugin in listing.get("plugins", []):
            self.routes += [(r["method"], r["path"]) for r in plugin.get("routes", [])]
            self.sockets += [r["path"] for r in plugin.get("websockets", [])]
        self.rss_base = rss_mb(self.engine.proc.pid)

    def record(self, kind, key, request: bytes, detail=""):
        """One finding per (kind, key); keeps the first reproduction."""
        if (kind, key) not in self.findings:
            self.findings[(kind, key)] = (request, detail)
            print(f"FINDING {kind} {key}: {detail[:300]}\n  request: {request[:600]!r}")

    def crash_summary(self):
        """The fatal error and the crashed thread's first frames from the engine's log."""
        lines = self.engine.logs().splitlines()
        out = [line for line in lines if "Fatal error" in line or "runtime failure" in line or "ERROR: AddressSanitizer" in line][:3]
        for index, line in enumerate(lines):
            if (line.startswith("Thread") and line.endswith("crashed:")) or line.startswith("    #0 "):
                out += [l.strip()[:220] for l in lines[index:index + 14] if l.strip()]
                break
        return "\n".join(out) or "\n".join(lines[-40:])

    def dead(self, data: bytes):
        """True (and the engine restarted) when the process died; the Swift backtracer takes a moment, so a
        request that got no answer waits for /healthz or for the exit."""
        proc = self.engine.proc
        if data is not None and proc.poll() is None:
            try:
                if requests.get(self.engine.url + "/healthz", timeout=1).status_code == 200:
                    return False
            except requests.RequestException:
                pass
            try:
                proc.wait(timeout=8)
            except Exception:
                return False
        return proc.poll() is not None

    def send(self, label, data: bytes, half_close=False):
        self.requests_sent += 1
        status, answer = exchange(self.engine.port, data, half_close=half_close)
        if self.engine.proc.poll() is not None or (status is None and self.dead(data)):
            self.record("engine-died", label, data, f"exit {self.engine.proc.returncode}:\n{self.crash_summary()}")
            self.engine.stop()
            self.start_engine()
            return None, b""
        if status == 500:
            body = answer.split(b"\r\n\r\n", 1)[-1][:300].decode("latin-1")
            self.record("status-500", label, data, body)
        return status, answer

    def check_health(self):
        engine = self.engine
        if engine.proc.poll() is not None:
            self.record("engine-died", "between requests", b"", self.crash_summary())
            engine.stop()
            self.start_engine()
            return
        try:
            ok = requests.get(engine.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException as error:
            ok = False
            self.record("healthz", "no answer", b"", str(error))
        if not ok:
            self.record("healthz", "not 200", b"", "")
        rss = rss_mb(engine.proc.pid)
        if rss > self.rss_base + RSS_GROWTH_LIMIT_MB:
            self.record("rss", "growth", b"", f"RSS {rss:.0f} MB, started at {self.rss_base:.0f} MB")

    # -- generators

    def choice(self, items):
        return self.rng.choice(items)

    def path_for(self, template):
        path = template
        while "{" in path:
            start = path.index("{")
            end = path.index("}", start)
            name = path[start + 1:end]
            if name == "id" and self.rng.random() < 0.3:
                value = self.media_id
            elif name == "room" and self.rng.random() < 0.3:
                value = "studio"
            else:
                value = self.choice(PARAMS)
            path = path[:start] + value + path[end + 1:]
        roll = self.rng.random()
        if roll < 0.1:
            path += "?" + self.choice(["session=x", "token=" + OVERLAY_TOKEN, "scene=..", "force=true", "kind=%00", "a=" + "b" * 3000,
                                       "&&&==", "%zz", "overlay_id=" + "x" * 500])
        elif roll < 0.15:
            path = self.choice(["/..", "//", "/./", "/%2e%2e/"]) + path.lstrip("/")
        elif roll < 0.18:
            path = path + "/" + self.choice(PARAMS)
        return path

    def json_value(self, depth=0):
        roll = self.rng.random()
        if depth > 3 or roll < 0.35:
            return self.choice([None, True, False, 0, -1, 1.5, 1e308, -1e308, 2 ** 63, 2 ** 64 + 1, 9007199254740993, "", "x" * 3000,
                                "..", "\u202e", "a\u0000b", "studio", "publisher", "viewer", "main", 7, 0.0000001])
        if roll < 0.6:
            return [self.json_value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.choice(FIELDS): self.json_value(depth + 1) for _ in range(self.rng.randint(0, 5))}

    def body(self):
        kind = self.rng.randint(0, 11)
        if kind == 0:
            return b"", "empty"
        if kind == 1:
            return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 2000))), "random bytes"
        if kind == 2:
            return json.dumps(self.json_value()).encode()[: self.rng.randint(1, 400)], "broken json"
        if kind == 3:
            depth = self.choice([100, 1000, 10000, 100000])
            return (self.choice([b"[", b'{"a":']) * depth), f"deep nesting {depth}"
        if kind == 4:
            return self.choice([b"1e999999", b"-1e999999", b"1" * 5000, b'{"base_version": 1e400, "elements": []}',
                                b'{"version": 18446744073709551616}', b'{"ttl": -9223372036854775809}', b"NaN", b'{"x": Infinity}']), "huge numbers"
        if kind == 5:
            return json.dumps({name: self.json_value(2) for name in self.rng.sample(FIELDS, 4)}).encode(), "wrong types"
        if kind == 6:
            return "&".join(f"{self.choice(FIELDS)}={self.choice(PARAMS)}" for _ in range(4)).encode(), "form"
        if kind == 7:
            return json.dumps({"base_version": self.choice([0, 1, 7, -1, 2 ** 53]), "ops": [
                {"op": self.choice(["add", "update", "remove", "reorder", "move", "x"]), "id": self.choice(PARAMS),
                 "index": self.choice([0, -1, 10 ** 9, 1.5]), "element": self.json_value(1), "fields": self.json_value(1),
                 "ids": self.json_value(1)}]}).encode(), "scene patch"
        if kind == 8:
            return json.dumps({"base_version": self.choice([0, 7]), "elements": [
                {"id": self.choice(PARAMS), "type": self.choice(["text", "image", "webrtc", "video", "x"]),
                 "text": "t", "room": self.choice(PARAMS), "src": "/a", "props": self.json_value(1)}]}).encode(), "scene put"
        if kind == 9:
            name = self.choice([b"Content-Disposition", b"X\xc3\xa9", b"\xff", b"content-disposition", b"", b" "])
            part = self.choice([b'form-data; name="file"; filename="../../a.wav"', b"form-data; name=file", b"form-data",
                                b'form-data; name="file"; filename*=UTF-8\'\'%ff%fe.wav', b"\xff"])
            content = self.choice([wav(100), b"\x89PNG\r\n\x1a\n<html>", b"", b"\r\n--b\r", b"GIF89a" + b"\x00" * 40])
            return (b"--b\r\n" + name + b": " + part + b"\r\n\r\n" + content + b"\r\n--b" + self.choice([b"--\r\n", b"\r\n", b""])), "multipart"
        if kind == 10:
            return json.dumps(self.json_value()).encode(), "json"
        return json.dumps({"text": self.choice(["hi", "x" * 5000, "", "\u0000"]), "lang": self.choice(PARAMS),
                           "rate": self.json_value(3), "room": self.choice(PARAMS), "role": self.choice(["publisher", "viewer", "x", 1]),
                           "ttl": self.json_value(3), "key": self.choice(PARAMS)}).encode(), "plugin body"

    def request(self):
        method, template = self.choice(self.routes)
        role = self.choice(list(self.roles))
        if self.rng.random() < 0.2:
            method = self.choice(METHODS)
        path = self.path_for(template)
        body, body_kind = self.body()
        headers = [("Host", "127.0.0.1"), ("Connection", "close")] + list(self.roles[role].items())
        notes = [role, body_kind]
        half_close = False
        length_mode = self.rng.random()
        if self.rng.random() < 0.6:
            headers.append(("Content-Type", self.choice(CONTENT_TYPES)))
        if self.rng.random() < 0.3:
            name, value = self.choice([
                ("Range", self.choice(["bytes=0-", "bytes=-1", "bytes=99999999999999999999-", "bytes=5-1", "bytes=0-0,1-1", "bytes=-0", "x"])),
                ("If-Modified-Since", self.choice(["Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov -2147483648 08:49:37 GMT",
                                                   "Sun, 99 Foo 99999999999 99:99:99 GMT", "x"])),
                ("If-None-Match", self.choice(["*", 'W/"x"', '"' * 100])),
                ("If-Range", self.choice(['"x"', "Sun, 06 Nov 1994 08:49:37 GMT"])),
                ("Origin", self.choice(["http://evil.example", "null", "\xff"])),
                ("X-Forwarded-For", self.choice(["1.2.3.4, ::1", "x" * 1000, ""])),
                ("Authorization", self.choice(["Bearer ", "Bearer " + "x" * 5000, "Basic Og=="])),
                ("Expect", self.choice(["100-continue", "x"])),
                ("Accept-Encoding", "gzip;q=" + "9" * 100),
                ("Upgrade", "websocket"),
            ])
            headers.append((name, value))
            notes.append(name)
        if self.rng.random() < 0.05:
            headers.append(("X-Huge", "a" * self.choice([8000, 70000, 300000])))
            notes.append("huge header")
        if self.rng.random() < 0.03:
            headers += [(f"X-H{i}", "v") for i in range(self.choice([100, 1000]))]
            notes.append("many headers")
        if length_mode < 0.7:
            headers.append(("Content-Length", str(len(body))))
            wire_body = body
        elif length_mode < 0.8:
            headers.append(("Transfer-Encoding", "chunked"))
            wire_body = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
            notes.append("chunked")
        elif length_mode < 0.9:
            value = self.choice(["-1", "abc", "99999999999999999999", "1, 2", f"{len(body) + 10}", "0x10", " 5", "+5"])
            headers.append(("Content-Length", value))
            wire_body = body
            half_close = True
            notes.append(f"Content-Length {value}")
        else:
            value = self.choice(["xchunked", "chunked, gzip", "gzip", "chunked\x00", "identity", "chunked;x"])
            headers.append(("Transfer-Encoding", value))
            if self.rng.random() < 0.5:
                headers.append(("Content-Length", str(len(body))))
            wire_body = self.choice([b"zz\r\n", b"ffffffffffffffffff\r\nx\r\n", b"5;ext=\x00\r\nhello\r\n0\r\n\r\n", body])
            half_close = True
            notes.append(f"Transfer-Encoding {value!r}")
        version = "HTTP/1.1" if self.rng.random() < 0.95 else self.choice(["HTTP/1.0", "HTTP/2.0", "HTTP/9", "HTTPS/1.1", ""])
        head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        data = head.encode("utf-8", "surrogateescape") + wire_body
        label = f"{method} {template} ({', '.join(notes)})"
        return label, data, half_close

    def raw_malformed(self):
        """Requests that are broken at the HTTP syntax level."""
        return self.choice([
            b"\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nkey\r\n0\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50,
            b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://evil.example/api/plugins HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
            bytes(self.rng.getrandbits(8) for _ in range(300)),
        ])

    # -- WebSockets

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        if n < 126:
            header = bytes([first, (0x80 if mask else 0) | n])
        elif n < 65536:
            header = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack(">H", n)
        else:
            header = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack(">Q", n)
        if not mask:
            return header + payload
        key = os.urandom(4)
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def websocket(self):
        path = self.choice(self.sockets)
        path = path.replace("{room}", self.choice(["studio", "studio", "..", "a" * 100, "%00"]))
        query = self.choice(["", "?session=" + self.roles["moderator"]["x-moderator-session"], "?token=" + self.room_token,
                             "?token=" + OVERLAY_TOKEN, "?token=bad", "?overlay_id=" + "x" * 300, "?session=bad"])
        key = self.choice(["dGhlIHNhbXBsZSBub25jZQ==", "short", "", "dGhlIHNhbXBsZSBub25jZQ==, x"])
        version = self.choice(["13", "13", "8", "x"])
        headers = {"Host": "127.0.0.1", "Upgrade": self.choice(["websocket", "websocket", "WebSocket", "h2c"]),
                   "Connection": self.choice(["Upgrade", "upgrade, keep-alive", "close"]), "Sec-WebSocket-Key": key,
                   "Sec-WebSocket-Version": version}
        if self.rng.random() < 0.3:
            headers["Origin"] = self.choice(["http://evil.example", "null"])
        if self.rng.random() < 0.3:
            del headers[self.choice(list(headers))]
        head = f"GET {path}{query} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        frames = []
        for _ in range(self.rng.randint(1, 6)):
            frames.append(self.choice([
                self.frame(1, json.dumps(self.json_value()).encode()),
                self.frame(1, json.dumps({"type": self.choice(["ping", "overlay.applied", "offer", "answer", "ice-candidate",
                                                                "publisher.metrics", "viewer.metrics", "tts.finished", "tts.capabilities"]),
                                          **{self.choice(FIELDS + ["sdp", "candidate", "to", "fps"]): self.json_value(2) for _ in range(3)}}).encode()),
                self.frame(1, b"\xff\xfe invalid utf-8"),
                self.frame(2, os.urandom(50)),
                self.frame(1, b"x" * 70000),
                self.frame(1, b"", length=2 ** 62),
                self.frame(9, b"p" * 200),                # control frame over 125 bytes
                self.frame(9, b"p", fin=False),           # fragmented control frame
                self.frame(1, b'{"type":', fin=False) + self.frame(0, b'"ping"}'),
                self.frame(0, b"continuation without start"),
                self.frame(3, b"reserved opcode"),
                self.frame(1, b'{"type":"ping"}', rsv=7),
                self.frame(1, b'{"type":"ping"}', mask=False),
                self.frame(8, b"\x03"),                   # close with a 1-byte body
                self.frame(8, struct.pack(">H", 999) + b"bad code"),
                self.frame(8, struct.pack(">H", 1000) + b"\xff"),
                os.urandom(self.rng.randint(1, 100)),
            ]))
        data = head.encode("utf-8", "surrogateescape") + b"".join(frames)
        return f"WS {path.split('?')[0]}{query[:9]}", data


@pytest.fixture
def http_fuzzer(engines):
    """A Fuzzer on a fresh engine with every shipped plugin; the seed comes from HTTP_FUZZ_SEED or is random."""
    seed = int(os.environ.get("HTTP_FUZZ_SEED", str(random.SystemRandom().randrange(1 << 32))))
    print(f"\nHTTP fuzz seed: {seed} (rerun with HTTP_FUZZ_SEED={seed}); {SECONDS:.0f} s")
    return Fuzzer(engines, random.Random(seed))


def test_http_and_websocket_fuzz(http_fuzzer):
    fuzzer = http_fuzzer
    deadline = time.monotonic() + SECONDS
    # Probes for bugs known to have killed the engine, so that each run checks them whatever the seed.
    def req(method, path, headers, body=b""):
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    def moderator():
        return {"x-moderator-session": fuzzer.roles["moderator"]["x-moderator-session"]}

    # Probes for bugs that have killed the engine, checked on every run whatever the seed (built when sent:
    # a restarted engine has a new session and media id).
    known = [
        ("Content-Type ';' on consume", lambda: req("POST", "/api/moderator-keys/consume", {"Content-Type": ";"}, b"key=a")),
        ("PUT /api/scenes/..", lambda: req("PUT", "/api/scenes/..", {"Content-Type": "application/json", **moderator()},
                                           b'{"base_version": 0, "elements": []}')),
        ("If-Modified-Since year overflow", lambda: req("GET", f"/media/{fuzzer.media_id}", {
            "x-overlay-token": OVERLAY_TOKEN, "If-Modified-Since": "Sun, 06 Nov -2147483648 08:49:37 GMT"})),
        ("multipart part header name with a byte >= 0x80", lambda: req(
            "POST", "/api/media", {"Content-Type": "multipart/form-data; boundary=b", **moderator()},
            b'--b\r\nContent-Disposition: form-data; name="file"\r\nX\xc3\xa9: 1\r\n\r\nRIFF\r\n--b--\r\n')),
        ("Transfer-Encoding xchunked", lambda: b"POST /api/moderator-keys/consume HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                              b"Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ]
    for label, build in known:
        fuzzer.send(label, build(), half_close="xchunked" in label)
    fuzzer.check_health()

    batches = 0
    while time.monotonic() < deadline:
        for _ in range(BATCH):
            roll = fuzzer.rng.random()
            if roll < 0.8:
                label, data, half_close = fuzzer.request()
                fuzzer.send(label, data, half_close)
            elif roll < 0.9:
                data = fuzzer.raw_malformed()
                fuzzer.send("malformed: " + data[:40].decode("latin-1"), data, half_close=True)
            else:
                label, data = fuzzer.websocket()
                fuzzer.send(label, data, half_close=fuzzer.rng.random() < 0.5)
            if time.monotonic() >= deadline:
                break
        fuzzer.check_health()
        batches += 1

    rss = rss_mb(fuzzer.engine.proc.pid)
    print(f"HTTP fuzz: {fuzzer.requests_sent} requests in {batches} batches; RSS {fuzzer.rss_base:.0f} -> {rss:.0f} MB; "
          f"{len(fuzzer.findings)} finding(s)")
    report = []
    for (kind, key), (request, detail) in sorted(fuzzer.findings.items()):
        report.append(f"== {kind}: {key}\n{detail[:1500]}\nrequest ({len(request)} bytes): {request[:1500]!r}\n")
    artifacts = ROOT / "test-artifacts" / "http-fuzz"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "findings.txt").write_text("\n".join(report) or "no findings\n")
    assert not fuzzer.findings, (f"{len(fuzzer.findings)} problem(s) (seed in the output; details in "
                                 f"test-artifacts/http-fuzz/findings.txt):\n" + "\n".join(r[:800] for r in report))
