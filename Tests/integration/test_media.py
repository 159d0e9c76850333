"""Media plugin through the real engine: uploads checked by their bytes, stored once by content hash,
listed and deleted by moderators, served to overlays with ranges and caching, and kept across restarts."""
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from conftest import ROOT, plugin_config
from pages import recv_type

FIXTURES = ROOT / "Tests" / "fixtures" / "media"
STREAMER = {"x-streamer-token": "streamer-secret"}
GENEROUS_RATE = "limits:\n  rate:\n    media.upload: {burst: 100000, per_minute: 1000000}\n"


# ---------------------------------------------------------------------------------------------- helpers

def media_engine(engines, rate=GENEROUS_RATE, env=None, start=True, **config):
    """An engine with moderator-keys and media (its config from keyword arguments)."""
    entry = {"name": "media", "config": config} if config else {"name": "media"}
    return engines(rate + plugin_config({"name": "moderator-keys"}, entry), env=env, start=start)


def multipart(content, filename="upload.bin", content_type="application/octet-stream", field="file", boundary=None):
    """A multipart/form-data body with one file part, built by hand so the file name can hold any bytes."""
    boundary = boundary or "onionrp" + uuid.uuid4().hex
    name = filename.encode() if isinstance(filename, str) else filename
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="'.encode() + name
            + f'"\r\nContent-Type: {content_type}\r\n\r\n'.encode())
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + content + tail, {"content-type": f"multipart/form-data; boundary={boundary}"}


def upload(engine, content, headers=STREAMER, **kwargs):
    body, content_type = multipart(content, **kwargs)
    return requests.post(engine.url + "/api/media", data=body, headers={**headers, **content_type}, timeout=120)


def stored_files(engine):
    """Every file under the engine's uploads folder (temporary ones included), relative paths."""
    root = engine.workdir / "uploads"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def wait_for_no_temporary_files(engine, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leftovers = [f for f in stored_files(engine) if ".upload-" in f]
        if not leftovers:
            return
        time.sleep(0.05)
    raise AssertionError(f"temporary upload files left behind: {leftovers}")


def fixture(name):
    return (FIXTURES / name).read_bytes()


def error_of(response):
    return response.json()["error"]


def png_header(width=3, height=2):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def wav(data_bytes, seed=1):
    """A WAV header followed by `data_bytes` pseudo-random sample bytes."""
    data = random.Random(seed).randbytes(data_bytes)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt \
        + b"data" + struct.pack("<I", len(data)) + data


def webp_vp8x(width, height):
    payload = bytes([0x10, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    # An image chunk after the header: a VP8X alone is no image (the structure check refuses it).
    lossless = bytes([0x2F]) + (((height - 1) << 14) | (width - 1)).to_bytes(4, "little")
    chunk += b"VP8L" + struct.pack("<I", len(lossless)) + lossless + b"\0"
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def moderator_session(engine):
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=STREAMER).json()["key"]
    answer = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key})
    assert answer.status_code == 200, answer.text
    return answer.json()["session"]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class StreamedUpload:
    """A multipart body of `size` file bytes (a valid MP4 header, then filler) generated on the fly:
    the client never holds it in memory. It declares its length (requests sends Content-Length);
    pass `iter(body)` instead to send it chunked. `sha256` holds the file's hash once sent."""

    MP4_HEAD = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 0x200) + b"isomiso2"

    def __init__(self, size, chunk=1 << 20):
        self.boundary = "onionrp" + uuid.uuid4().hex
        self.size = size
        self.chunk = chunk
        self.head = (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
                     "Content-Type: video/mp4\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.sha256 = None

    @property
    def headers(self):
        return {"content-type": f"multipart/form-data; boundary={self.boundary}"}

    def __len__(self):
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self):
        digest = hashlib.sha256()
        yield self.head
        first = self.MP4_HEAD + struct.pack(">I", self.size - len(self.MP4_HEAD)) + b"mdat"
        digest.update(first)
        yield first
        sent = len(first)
        filler = bytes(range(256)) * (self.chunk // 256)
        while sent < self.size:
            piece = filler[: min(len(filler), self.size - sent)]
            digest.update(piece)
            yield piece
            sent += len(piece)
        self.sha256 = digest.hexdigest()
        yield self.tail


def measure_upload_rss(engine, size, chunked=False):
    """Uploads `size` streamed bytes and samples the engine's RSS meanwhile. Returns (response, before, peak, after) in KiB."""
    pid = engine.proc.pid
    # Warm up: the first upload loads code paths and allocator arenas.
    assert upload(engine, StreamedUpload.MP4_HEAD + b"\0" * 100_000).status_code in (200, 201)
    time.sleep(0.3)
    before = rss_kib(pid)
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    body = StreamedUpload(size)
    try:
        response = requests.post(engine.url + "/api/media", data=iter(body) if chunked else body,
                                 headers={**STREAMER, **body.headers}, timeout=600)
    finally:
        stop.set()
        sampler.join()
    after = rss_kib(pid)
    return response, body, before, peak[0], after


# ---------------------------------------------------------------------------------------------- signatures

ACCEPTED = [
    # fixture, mime, kind, (width, height) or None
    ("image.png", "image/png", "image", (5, 7)),
    ("image.jpg", "image/jpeg", "image", (33, 17)),
    ("image.gif", "image/gif", "image", (7, 5)),
    ("image-lossy.webp", "image/webp", "image", (8, 10)),
    ("image-lossless.webp", "image/webp", "image", (13, 3)),
    ("clip.mp4", "video/mp4", "video", None),
    ("clip.webm", "video/webm", "video", None),
    ("tone.mp3", "audio/mpeg", "audio", None),          # ID3v2 tag first
    ("tone-frames.mp3", "audio/mpeg", "audio", None),   # bare MPEG layer III frames
    ("tone.ogg", "audio/ogg", "audio", None),           # Vorbis
    ("clip.ogv", "video/ogg", "video", None),           # Theora
    ("tone.wav", "audio/wav", "audio", None),
    ("tone.m4a", "audio/mp4", "audio", None),
]


def test_each_accepted_signature_is_stored_with_its_type_and_size(engines):
    engine = media_engine(engines)
    cases = [(name, fixture(name), mime, kind, dims) for name, mime, kind, dims in ACCEPTED]
    cases.append(("vp8x.webp", webp_vp8x(640, 480), "image/webp", "image", (640, 480)))
    # A JPEG whose SOF comes after a 60 KB EXIF segment, far past the sniffed bytes: its size is read from the file.
    jpeg = fixture("image.jpg")
    exif = b"Exif\0\0" + random.Random(4).randbytes(60_000)
    cases.append(("exif.jpg", jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:], "image/jpeg", "image", (33, 17)))
    for name, data, mime, kind, dims in cases:
        # A misleading name and Content-Type: only the bytes count.
        answer = upload(engine, data, filename=f"{name}.txt", content_type="text/plain")
        assert answer.status_code == 201, (name, answer.text)
        assert answer.headers["location"] == answer.json()["media"]["url"]
        media = answer.json()["media"]
        digest = hashlib.sha256(data).hexdigest()
        assert media["mime"] == mime and media["kind"] == kind, name
        assert media["sha256"] == digest and media["id"] == digest[:32], name
        assert media["size"] == len(data) and media["url"] == f"/media/{media['id']}", name
        assert media["original_name"] == f"{name}.txt"
        assert (media["width"], media["height"]) == (dims if dims else (None, None)), name
        served = requests.get(engine.url + media["url"])
        assert served.status_code == 200 and served.content == data, name
        assert served.headers["content-type"] == mime
    listing = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    assert len(listing["media"]) == len(cases)
    assert listing["total_bytes"] == sum(len(c[1]) for c in cases)
    # Newest first.
    assert [m["original_name"] for m in listing["media"]] == [f"{c[0]}.txt" for c in reversed(cases)]
    assert requests.get(engine.url + "/api/media?kind=audio", headers=STREAMER).json()["media"][0]["kind"] == "audio"
    assert requests.get(engine.url + "/api/media?kind=text", headers=STREAMER).status_code == 400
    # Stored under the content hash with the detected extension, nothing else.
    assert len([f for f in stored_files(engine) if re.fullmatch(r"media/[0-9a-f]{64}\.(png|jpg|gif|webp|mp4|webm|mp3|ogg|ogv|wav|m4a)", f)]) == len(cases)
    assert len(stored_files(engine)) == len(cases)


REFUSED = [
    # what, bytes, declared name and type, detected type named in the 415
    ("windows executable", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\0" * 48 + b"PE\0\0" + b"\0" * 200,
     "setup.png", "image/png", "application/x-msdownload"),
    ("html page", b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><script>alert(1)</script></body></html>\n",
     "page.png", "image/png", "text/html"),
    ("svg renamed .png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>\n',
     "logo.png", "image/png", "image/svg+xml"),
    ("svg with prolog and comment", b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
     b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg"/>', "logo.gif", "image/gif", "image/svg+xml"),
    ("matroska is not webm", None, "clip.webm", "video/webm", "video/x-matroska"),
    ("pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "doc.mp3", "audio/mpeg", "application/pdf"),
    ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\0" * 40, "a.mp4", "video/mp4", "application/zip"),
    ("elf", b"\x7fELF\x02\x01\x01" + b"\0" * 60, "a.wav", "audio/wav", "application/x-executable"),
    ("plain text", b"just some notes\n" * 20, "notes.ogg", "audio/ogg", "text/plain"),
    ("random bytes", b"\x00\x13\x37" + random.Random(7).randbytes(3000), "noise.png", "image/png", "unknown"),
    ("flac", b"fLaC\x80\x00\x00\x22" + b"\x10\x00" * 17 + b"\xff\xf8" + b"\0" * 64, "tone.mp3", "audio/mpeg", "audio/flac"),
    ("avif", struct.pack(">I", 28) + b"ftypavif\0\0\0\0avifmif1miaf" + b"\0" * 100, "a.mp4", "video/mp4", "image/avif"),
    ("quicktime", struct.pack(">I", 20) + b"ftypqt  \0\0\0\0qt  " + b"\0" * 100, "a.mp4", "video/mp4", "video/quicktime"),
    ("aac adts", bytes([0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC]) * 40, "a.mp3", "audio/mpeg", "audio/aac"),
    ("bmp", b"BM" + struct.pack("<I", 70) + b"\0\0\0\0" + struct.pack("<I", 54) + b"\0" * 60, "a.png", "image/png", "image/bmp"),
    ("gzip", b"\x1f\x8b\x08\x00" + b"\0" * 40, "a.webm", "video/webm", "application/gzip"),
]


@pytest.fixture(scope="module")
def refused_cases():
    return [(what, data if data is not None else fixture("clip.mkv"), name, ctype, detected)
            for what, data, name, ctype, detected in REFUSED]


def test_other_content_is_refused_naming_the_detected_type(engines, refused_cases):
    engine = media_engine(engines)
    for what, data, name, ctype, detected in refused_cases:
        answer = upload(engine, data, filename=name, content_type=ctype)
        assert answer.status_code == 415, (what, answer.text)
        error = error_of(answer)
        assert error["code"] == "unsupported_media_type", what
        assert error["detected"] == detected, (what, error)
        assert f"detected {detected}" in error["message"], (what, error["message"])
    assert stored_files(engine) == []
    assert requests.get(engine.url + "/api/media", headers=STREAMER).json()["media"] == []


def test_a_refused_large_file_stops_early_and_leaves_nothing(engines):
    engine = media_engine(engines)
    # 8 MiB of HTML: refused once the first bytes are sniffed; its temporary file is removed.
    answer = upload(engine, b"<html><body>" + b"x" * (8 << 20))
    assert answer.status_code == 415 and error_of(answer)["detected"] == "text/html"
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == []


# ---------------------------------------------------------------------------------------------- limits

def test_size_limits_per_kind_and_quota(engines):
    engine = media_engine(engines, max_image_bytes="256KiB", max_audio_bytes=600_000, quota_bytes="1MiB")
    # An image over its limit, with Content-Length...
    big_png = png_header() + random.Random(3).randbytes(1 << 20)
    answer = upload(engine, big_png)
    assert answer.status_code == 413, answer.text
    assert error_of(answer)["code"] == "payload_too_large" and "max_image_bytes" in error_of(answer)["message"]
    assert error_of(answer)["limit"] == 256 << 10
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == []

    # ...and streamed without a length (chunked): stopped once past the limit, partial file removed.
    body, content_type = multipart(big_png)
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    answer = requests.post(engine.url + "/api/media", data=chunks, headers={**STREAMER, **content_type})
    assert answer.status_code == 413 and "max_image_bytes" in error_of(answer)["message"]
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == []

    # An audio file under its own (larger) limit is fine: limits are per kind.
    first = upload(engine, wav(500_000, seed=1))
    assert first.status_code == 201, first.text
    # The quota counts every stored file: a second 500 KB file does not fit in 1 MiB.
    second = upload(engine, wav(560_000, seed=2))
    assert second.status_code == 413, second.text
    assert "quota_bytes" in error_of(second)["message"]
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == [f"media/{first.json()['media']['sha256']}.wav"]
    listing = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    assert listing["total_bytes"] == first.json()["media"]["size"] and listing["quota_bytes"] == 1 << 20
    assert listing["max_bytes"] == {"image": 256 << 10, "video": 1 << 30, "audio": 600_000}


def raw_request(engine, head: bytes, body_parts, read=True):
    """Sends a request over a plain socket (to lie about lengths or hang up mid-body); returns the status line."""
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as s:
        s.sendall(head)
        for part in body_parts:
            s.sendall(part)
        if not read:
            return None
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def test_declared_length_past_the_limits_is_refused_before_reading(engines):
    engine = media_engine(engines, max_video_bytes="1MiB", max_image_bytes="8MiB", max_audio_bytes="1MiB")
    # Past every limit: refused before any of the body is read.
    head = (f"POST /api/media HTTP/1.1\r\nHost: x\r\nx-streamer-token: streamer-secret\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {50 << 20}\r\nConnection: close\r\n\r\n").encode()
    assert raw_request(engine, head, [b"--b\r\n"]) == "HTTP/1.1 413 Payload Too Large"
    # Past the video limit only: refused as soon as the first bytes show a video, long before the body ends.
    head = head.replace(str(50 << 20).encode(), str(3 << 20).encode())
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n'
    assert raw_request(engine, head, [part, StreamedUpload.MP4_HEAD + b"\0" * (64 << 10)]) == "HTTP/1.1 413 Payload Too Large"
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == []


def test_client_hanging_up_mid_upload_leaves_no_file(engines):
    engine = media_engine(engines)
    boundary = "hangup"
    part_head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n').encode()
    head = (f"POST /api/media HTTP/1.1\r\nHost: x\r\nx-streamer-token: streamer-secret\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {20 << 20}\r\n\r\n").encode()
    raw_request(engine, head, [part_head, png_header(), b"\0" * (2 << 20)], read=False)
    # The partial file existed while the body arrived; once the peer is gone it is removed.
    wait_for_no_temporary_files(engine)
    assert stored_files(engine) == []
    assert requests.get(engine.url + "/healthz").status_code == 200
    assert requests.get(engine.url + "/api/media", headers=STREAMER).json()["media"] == []


def send_in_pieces(engine, body, content_type, phase):
    """POSTs `body` over a socket in pieces of 1-37 bytes with short pauses, so the server reads it in
    many small chunks split at varying offsets. Returns (status, JSON answer)."""
    head = (f"POST /api/media HTTP/1.1\r\nHost: x\r\nx-streamer-token: streamer-secret\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", engine.port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head)
        offset, size = 0, phase
        while offset < len(body):
            s.sendall(body[offset:offset + size])
            offset += size
            size = size % 37 + 1
            time.sleep(0.001)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_delimiter_lookalikes_in_the_file_are_content_wherever_chunks_split(engines):
    """The file's bytes are everything up to the real delimiter, however the body is cut into chunks:
    every proper prefix of CRLF--boundary and near misses inside the file are content."""
    engine = media_engine(engines)
    boundary = "Bd" + uuid.uuid4().hex[:10]
    delimiter = b"\r\n--" + boundary.encode()
    lookalikes = [delimiter[:k] for k in range(1, len(delimiter))]
    lookalikes += [b"\r\r\n--" + boundary.encode()[:-1] + b"!", b"\r\n-\r\n--", delimiter[:-1] + b"\r" + delimiter[:-2],
                   b"\r\n--" + boundary.encode().upper(), b"\n--" + boundary.encode(), b"\r\r\r\n\r\n"]
    filler = random.Random(11).randbytes(300)
    for phase in (1, 7, 19):
        # A WAV: its bytes after the header are not checked, so any look-alike can be inside.
        content = wav(0) + bytes([phase]) + b"".join(l + filler[: 13 * i % 97] for i, l in enumerate(lookalikes * 3))
        content += delimiter[:-1]  # a look-alike right before the real delimiter
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="tricky.png"\r\n\r\n'.encode()
                + content + delimiter + b"--\r\n")
        status, answer = send_in_pieces(engine, body, f"multipart/form-data; boundary={boundary}", phase)
        assert status == 201, answer
        assert answer["media"]["sha256"] == hashlib.sha256(content).hexdigest(), phase
        assert answer["media"]["size"] == len(content)
        assert requests.get(engine.url + answer["media"]["url"]).content == content
    # The same file in one piece, after a field, with a preamble and an epilogue.
    content = wav(0) + b"".join(lookalikes) * 50
    body = (b"preamble\r\n--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\n\r\n--'
            + boundary.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="t.png"\r\n\r\n'
            + content + delimiter + b"--\r\nepilogue")
    answer = requests.post(engine.url + "/api/media", data=body,
                           headers={**STREAMER, "content-type": f'multipart/form-data; boundary="{boundary}"'})
    assert answer.status_code == 201, answer.text
    assert answer.json()["media"]["sha256"] == hashlib.sha256(content).hexdigest()


def test_malformed_uploads_get_clear_errors(engines):
    engine = media_engine(engines)
    post = lambda body, ctype: requests.post(engine.url + "/api/media", data=body, headers={**STREAMER, "content-type": ctype})

    answer = post(b'{"file": "x"}', "application/json")
    assert answer.status_code == 415 and "multipart/form-data" in error_of(answer)["message"]
    answer = requests.post(engine.url + "/api/media", data=b"raw", headers=STREAMER)
    assert answer.status_code == 415
    answer = post(b"--x\r\n", "multipart/form-data")
    assert answer.status_code == 400 and error_of(answer)["code"] == "invalid_multipart"
    answer = post(b"nothing that looks like a part", "multipart/form-data; boundary=abc")
    assert answer.status_code == 400 and error_of(answer)["code"] == "invalid_multipart"

    # A form without the field 'file'.
    body, ctype = multipart(fixture("image.png"), field="picture")
    answer = post(body, ctype["content-type"])
    assert answer.status_code == 400 and error_of(answer)["field"] == "file"
    # An empty file.
    body, ctype = multipart(b"")
    answer = post(body, ctype["content-type"])
    assert answer.status_code == 400 and "empty" in error_of(answer)["message"]
    # A body cut before the closing boundary.
    body, ctype = multipart(fixture("image.png"))
    answer = post(body[:-30], ctype["content-type"])
    assert answer.status_code == 400 and error_of(answer)["code"] == "upload_incomplete"
    # Two file parts.
    two = (b'--two\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + fixture("image.png")
           + b'\r\n--two\r\nContent-Disposition: form-data; name="file"; filename="b.gif"\r\n\r\n' + fixture("image.gif")
           + b"\r\n--two--\r\n")
    answer = post(two, "multipart/form-data; boundary=two")
    assert answer.status_code == 400 and "one file" in error_of(answer)["message"]
    # Other fields besides the file are fine; an oversized form besides the file is not.
    extra = b'--mix\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    body, ctype = multipart(fixture("image.gif"), boundary="mix")
    assert post(extra + body, ctype["content-type"]).status_code == 201
    flood = b'--mix\r\nContent-Disposition: form-data; name="note"\r\n\r\n' + b"y" * (200 << 10) + b"\r\n"
    answer = post(flood + body, ctype["content-type"])
    assert answer.status_code == 413 and "max_form_bytes" in error_of(answer)["message"]
    wait_for_no_temporary_files(engine)
    assert len(stored_files(engine)) == 1


# ---------------------------------------------------------------------------------------------- names and dedup

def test_client_file_name_is_sanitised_metadata_and_never_a_path(engines):
    engine = media_engine(engines, max_name_length=40)
    evil = b"../../etc/\x01ev\x1bil\xe2\x80\xae\x7f  name.png"
    answer = upload(engine, fixture("image.png"), filename=evil)
    assert answer.status_code == 201, answer.text
    media = answer.json()["media"]
    assert media["original_name"] == "evil name.png"
    assert stored_files(engine) == [f"media/{media['sha256']}.png"]
    assert not any("evil" in p.name or p.name == "etc" for p in engine.workdir.rglob("*"))

    # Windows paths, RFC 8187 names, long names (shortened, extension kept), and names of nothing but dots.
    cases = [
        (b"C:\\Users\\me\\Desktop\\clip.webm", "clip.webm", fixture("clip.webm")),
        (b"x" * 300 + b".wav", "x" * 36 + ".wav", fixture("tone.wav")),
        (b"..", None, fixture("tone.ogg")),
    ]
    for raw, expected, data in cases:
        got = upload(engine, data, filename=raw)
        assert got.status_code == 201 and got.json()["media"]["original_name"] == expected, (raw, got.text)
    body = (b'--u\r\nContent-Disposition: form-data; name="file"; filename="fallback.mp3"; '
            b"filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%82%AC.mp3\r\n\r\n" + fixture("tone.mp3") + b"\r\n--u--\r\n")
    got = requests.post(engine.url + "/api/media", data=body, headers={**STREAMER, "content-type": "multipart/form-data; boundary=u"})
    assert got.status_code == 201 and got.json()["media"]["original_name"] == "résumé €.mp3"


def test_same_content_is_stored_once(engines):
    engine = media_engine(engines)
    first = upload(engine, fixture("clip.mp4"), filename="first.mp4")
    second = upload(engine, fixture("clip.mp4"), filename="second name.mp4")
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert second.status_code == 200 and second.json()["duplicate"] is True
    assert second.json()["media"] == first.json()["media"]  # the existing record, first name kept
    assert stored_files(engine) == [f"media/{first.json()['media']['sha256']}.mp4"]
    assert len(requests.get(engine.url + "/api/media", headers=STREAMER).json()["media"]) == 1


def test_concurrent_uploads_store_one_copy_and_never_pass_the_quota(engines):
    from concurrent.futures import ThreadPoolExecutor
    engine = media_engine(engines, quota_bytes=3_100_000)
    # Four copies of one file at once: one is stored, three answer with it. (Each needs room in the
    # quota until it is hashed, so identical uploads racing a nearly full library can get 413.)
    same = wav(500_000, seed=21)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: upload(engine, same), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.text for a in answers]
    assert len({a.json()["media"]["id"] for a in answers}) == 1
    assert len(stored_files(engine)) == 1

    # 0.5 MB is stored; four different 1 MB files arrive at once and two fit the 3.1 MB quota:
    # room is reserved when an upload starts, so two finish rather than all four failing half-way.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda seed: upload(engine, wav(1_000_000, seed=seed)), range(30, 34)))
    assert sorted(a.status_code for a in answers) == [201, 201, 413, 413], [a.text for a in answers]
    assert all("quota_bytes" in error_of(a)["message"] for a in answers if a.status_code == 413)
    wait_for_no_temporary_files(engine)
    listing = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    assert len(listing["media"]) == 3 == len(stored_files(engine))
    assert listing["total_bytes"] == 500_044 + 2 * 1_000_044 <= 3_100_000


# ---------------------------------------------------------------------------------------------- serving

def test_ranges_etag_and_head(engines):
    engine = media_engine(engines)
    data = wav(200_000, seed=5)  # larger than one 64 KiB read
    media = upload(engine, data).json()["media"]
    url, size = engine.url + media["url"], len(data)

    whole = requests.get(url)
    assert whole.status_code == 200 and whole.content == data
    headers = whole.headers
    assert headers["content-type"] == "audio/wav"
    assert headers["etag"] == f'"{media["sha256"]}"'
    assert headers["accept-ranges"] == "bytes"
    assert headers["x-content-type-options"] == "nosniff"
    assert "immutable" in headers["cache-control"] and "max-age=31536000" in headers["cache-control"]
    assert headers["last-modified"].endswith(" GMT")
    assert int(headers["content-length"]) == size

    def ranged(spec, **extra):
        return requests.get(url, headers={"range": spec, **extra})

    first = ranged("bytes=0-99")
    assert first.status_code == 206 and first.content == data[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{size}" and first.headers["content-length"] == "100"
    middle = ranged("bytes=70000-140000")  # spans read chunks
    assert middle.status_code == 206 and middle.content == data[70000:140001]
    suffix = ranged("bytes=-500")
    assert suffix.status_code == 206 and suffix.content == data[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
    tail = ranged(f"bytes={size - 10}-")
    assert tail.status_code == 206 and tail.content == data[-10:]
    clamped = ranged(f"bytes={size - 5}-{size + 1000}")
    assert clamped.status_code == 206 and clamped.content == data[-5:]
    for spec in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        refused = ranged(spec)
        assert refused.status_code == 416, spec
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert error_of(refused)["code"] == "range_not_satisfiable"
    # Several ranges: the whole file (documented); malformed or foreign units: ignored.
    for spec in ("bytes=0-1,5-9", "bytes=9-2", "items=0-5", "bytes=abc"):
        full = ranged(spec)
        assert full.status_code == 200 and full.content == data, spec

    # Conditional requests.
    etag = headers["etag"]
    for tag in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        cached = requests.get(url, headers={"if-none-match": tag})
        assert cached.status_code == 304 and cached.content == b"", tag
        assert cached.headers["etag"] == etag
    assert requests.get(url, headers={"if-none-match": '"other"'}).status_code == 200
    assert requests.get(url, headers={"if-modified-since": headers["last-modified"]}).status_code == 304
    assert requests.get(url, headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert ranged("bytes=0-9", **{"if-range": etag}).status_code == 206
    stale = ranged("bytes=0-9", **{"if-range": '"old"'})
    assert stale.status_code == 200 and stale.content == data

    # HEAD: the headers of GET, no body.
    head = requests.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size) and head.headers["etag"] == etag
    head_range = requests.head(url, headers={"range": "bytes=0-99"})
    assert head_range.status_code == 206 and head_range.headers["content-length"] == "100"
    assert head_range.headers["content-range"] == f"bytes 0-99/{size}"

    # Unknown and malformed ids.
    for bad in ("0" * 32, "not-an-id", media["id"][:31], media["sha256"]):
        assert requests.get(engine.url + f"/media/{bad}").status_code == 404, bad
    # The connection stays usable after a ranged response (keep-alive framing is right).
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(url, headers={"range": "bytes=1-2"}).content == data[1:3]
            assert session.head(url).status_code == 200
            assert session.get(url, headers={"if-none-match": etag}).status_code == 304
        assert session.get(url).content == data


def test_overlay_token_guards_files_when_configured(engines):
    engine = media_engine(engines, env={"OVERLAY_TOKEN": "ov-secret"})
    media = upload(engine, fixture("image.gif")).json()["media"]
    url = engine.url + media["url"]
    assert requests.get(url).status_code == 401
    assert requests.get(url, params={"token": "wrong"}).status_code == 401
    answer = requests.get(url, params={"token": "ov-secret"})
    assert answer.status_code == 200 and answer.content == fixture("image.gif")


# ---------------------------------------------------------------------------------------------- deleting

def test_delete_refuses_while_a_scene_uses_the_file_unless_forced(engines):
    engine = media_engine(engines)
    media = upload(engine, fixture("clip.webm")).json()["media"]
    spare = upload(engine, fixture("tone.ogg")).json()["media"]
    scene = requests.get(engine.url + "/api/scene", headers=STREAMER).json()
    put = requests.put(engine.url + "/api/scene", headers=STREAMER, json={
        "base_version": scene["_version"], "elements": [{"id": "v", "type": "video", "media": media["id"]}]})
    assert put.status_code == 200, put.text

    refused = requests.delete(engine.url + f"/api/media/{media['id']}", headers=STREAMER)
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "media_in_use"
    assert len(error["elements"]) == 1 and error["elements"][0].endswith("/v"), error
    assert error["elements"][0] in error["message"]
    detail = requests.get(engine.url + f"/api/media/{media['id']}", headers=STREAMER).json()
    assert detail["elements"] == error["elements"] and detail["media"]["id"] == media["id"]
    assert requests.get(engine.url + media["url"]).status_code == 200
    assert requests.delete(engine.url + f"/api/media/{media['id']}?force=maybe", headers=STREAMER).status_code == 400

    forced = requests.delete(engine.url + f"/api/media/{media['id']}?force=true", headers=STREAMER)
    assert forced.status_code == 200 and forced.json() == {"deleted": media["id"], "elements": error["elements"]}
    assert requests.get(engine.url + media["url"]).status_code == 404
    assert requests.get(engine.url + f"/api/media/{media['id']}", headers=STREAMER).status_code == 404
    assert requests.delete(engine.url + f"/api/media/{media['id']}", headers=STREAMER).status_code == 404
    assert stored_files(engine) == [f"media/{spare['sha256']}.ogg"]
    # A file no scene uses is deleted without force.
    assert requests.delete(engine.url + f"/api/media/{spare['id']}", headers=STREAMER).status_code == 200
    assert stored_files(engine) == []
    listing = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    assert listing["media"] == [] and listing["total_bytes"] == 0


# ---------------------------------------------------------------------------------------------- access, events, limits

def test_access_moderator_sessions_and_live_library_events(engines):
    engine = media_engine(engines)
    assert upload(engine, fixture("image.png"), headers={}).status_code == 401
    assert upload(engine, fixture("image.png"), headers={"x-streamer-token": "wrong"}).status_code == 401
    assert requests.get(engine.url + "/api/media").status_code == 401
    assert requests.delete(engine.url + "/api/media/" + "0" * 32).status_code == 401
    assert stored_files(engine) == []

    session = moderator_session(engine)
    moderator = {"x-moderator-session": session}
    with connect(engine.ws_url + f"/ws/moderator?session={session}") as panel:
        recv_type(panel, "hello")
        answer = upload(engine, fixture("image.png"), headers=moderator, filename="mod.png")
        assert answer.status_code == 201, answer.text
        media = answer.json()["media"]
        assert media["uploaded_by"].startswith("moderator:")
        added = recv_type(panel, "media.added")
        assert added["media"] == media
        assert requests.get(engine.url + "/api/media", headers=moderator).json()["media"][0]["id"] == media["id"]
        # A duplicate adds nothing to the library, so no event.
        assert upload(engine, fixture("image.png"), headers=moderator).json()["duplicate"] is True
        assert requests.delete(engine.url + f"/api/media/{media['id']}", headers=moderator).status_code == 200
        removed = recv_type(panel, "media.removed")
        assert removed == {"type": "media.removed", "id": media["id"]}
    # Overlays read files without credentials when no overlay token is configured.
    other = upload(engine, fixture("image.gif"), headers=moderator).json()["media"]
    assert requests.get(engine.url + other["url"]).status_code == 200


def test_upload_rate_limit_answers_429_with_retry_after(engines):
    engine = media_engine(engines, rate="limits:\n  rate:\n    media.upload: {burst: 2, per_minute: 1}\n")
    assert upload(engine, fixture("image.png")).status_code == 201
    assert upload(engine, fixture("image.gif")).status_code == 201
    limited = upload(engine, fixture("tone.wav"))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1 and error_of(limited)["code"] == "rate_limited"
    assert len(stored_files(engine)) == 2


def test_metrics_count_uploads_rejections_and_bytes(engines):
    engine = media_engine(engines)
    assert upload(engine, fixture("image.png")).status_code == 201
    assert upload(engine, fixture("image.png")).status_code == 200
    assert upload(engine, b"MZ" + b"\0" * 100).status_code == 415
    text = requests.get(engine.url + "/metrics").text

    def value(name, **labels):
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} {labels} in /metrics")

    assert value("onionrp_plugin_media_uploads_total", result="stored") == 1
    assert value("onionrp_plugin_media_uploads_total", result="duplicate") == 1
    assert value("onionrp_plugin_media_uploads_rejected_total", reason="unsupported_type") == 1
    assert value("onionrp_plugin_media_stored_bytes") == len(fixture("image.png"))
    assert value("onionrp_plugin_media_files") == 1


# ---------------------------------------------------------------------------------------------- persistence

def test_library_survives_restart_and_recovers_from_crash_leftovers(engines):
    engine = media_engine(engines)
    png = upload(engine, fixture("image.png"), filename="kept.png").json()["media"]
    wav_media = upload(engine, fixture("tone.wav"), filename="kept.wav").json()["media"]
    gone = upload(engine, fixture("clip.mp4"), filename="gone.mp4").json()["media"]
    before = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    engine.stop()
    metadata = engine.workdir / "data" / "plugins" / "media" / "library.json"
    assert metadata.exists()

    engine.start()
    assert requests.get(engine.url + "/api/media", headers=STREAMER).json() == before
    assert requests.get(engine.url + png["url"]).content == fixture("image.png")
    engine.stop()

    # What a crash can leave: a temporary file of a dead process, a stored file without a record
    # (stopped between rename and metadata save), a record without a file (between unlink and save).
    media_dir = engine.workdir / "uploads" / "media"
    (media_dir / ".upload-999999999-deadbeef.part").write_bytes(b"partial")
    orphan = fixture("tone.ogg")
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    (media_dir / f"{orphan_sha}.ogg").write_bytes(orphan)
    (media_dir / f"{gone['sha256']}.mp4").unlink()
    (media_dir / ("f" * 64 + ".png")).write_bytes(b"not what the name says")
    engine.start()
    listing = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    ids = {m["id"]: m for m in listing["media"]}
    assert set(ids) == {png["id"], wav_media["id"], orphan_sha[:32]}
    assert ids[png["id"]]["original_name"] == "kept.png"
    assert ids[orphan_sha[:32]]["original_name"] is None and ids[orphan_sha[:32]]["mime"] == "audio/ogg"
    assert listing["total_bytes"] == png["size"] + wav_media["size"] + len(orphan)
    assert not (media_dir / ".upload-999999999-deadbeef.part").exists()
    assert (media_dir / ("f" * 64 + ".png")).exists()  # unknown content is left alone, not served
    assert requests.get(engine.url + "/media/" + "f" * 32).status_code == 404
    assert requests.get(engine.url + f"/media/{orphan_sha[:32]}").content == orphan
    engine.stop()

    # A damaged metadata file: a copy is kept, the library is rebuilt from the files.
    metadata.write_text("{ not json")
    engine.start()
    rebuilt = requests.get(engine.url + "/api/media", headers=STREAMER).json()
    assert {m["id"] for m in rebuilt["media"]} == set(ids)
    assert list(metadata.parent.glob("library.json.damaged-*"))
    # The next change saves the rebuilt library.
    assert upload(engine, fixture("image.gif")).status_code == 201
    saved = json.loads(metadata.read_text())
    assert saved["version"] == 1 and len(saved["media"]) == 4


# ---------------------------------------------------------------------------------------------- memory

def test_large_upload_keeps_engine_memory_flat(engines):
    engine = media_engine(engines, max_video_bytes="2GiB", quota_bytes="4GiB")
    size = 100 << 20
    response, body, before, peak, after = measure_upload_rss(engine, size)
    assert response.status_code == 201, response.text
    media = response.json()["media"]
    assert media["size"] == size and media["sha256"] == body.sha256 and media["mime"] == "video/mp4"
    growth_mib = (peak - before) / 1024
    print(f"RSS before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB (+{growth_mib:.1f}), after {after / 1024:.1f} MiB")
    assert growth_mib < 100, f"engine RSS grew by {growth_mib:.1f} MiB during a {size >> 20} MiB upload"
    # The stored file is the upload, byte for byte (checked by hash, read back in ranges).
    tail = requests.get(engine.url + media["url"], headers={"range": "bytes=-4096"})
    assert tail.status_code == 206 and len(tail.content) == 4096
    wait_for_no_temporary_files(engine)

    # Chunked (no Content-Length) works the same way.
    response, body, before, peak, _ = measure_upload_rss(engine, 20 << 20, chunked=True)
    assert response.status_code == 201 and response.json()["media"]["sha256"] == body.sha256
    assert (peak - before) / 1024 < 100


def test_accel_redirect_prefix_hands_authorized_requests_to_the_proxy(engines):
    """accel_redirect_prefix: the engine authorizes GET /media/<id> and answers with X-Accel-Redirect
    naming the stored file under the prefix (nginx maps it to <uploads>/media/) and no body."""
    engine = media_engine(engines, env={"OVERLAY_TOKEN": "overlay-secret"}, accel_redirect_prefix="/_onionrp_media/")
    data = wav(50_000, seed=11)
    media = upload(engine, data).json()["media"]
    url = engine.url + media["url"]
    answer = requests.get(url, params={"token": "overlay-secret"}, headers={"range": "bytes=0-9"})
    assert answer.status_code == 200 and answer.content == b""
    redirect = answer.headers["x-accel-redirect"]
    assert redirect == f"/_onionrp_media/{media['sha256']}.wav"
    assert (engine.workdir / "uploads" / "media" / redirect.removeprefix("/_onionrp_media/")).read_bytes() == data
    assert answer.headers["content-type"] == "audio/wav"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in answer.headers["cache-control"]
    assert requests.head(url, params={"token": "overlay-secret"}).headers["x-accel-redirect"] == redirect
    # Not authorized or unknown: no redirect, the engine's own error.
    refused = requests.get(url)
    assert refused.status_code == 401 and "x-accel-redirect" not in refused.headers
    missing = requests.get(engine.url + "/media/" + "0" * 64, params={"token": "overlay-secret"})
    assert missing.status_code == 404 and "x-accel-redirect" not in missing.headers


@pytest.mark.parametrize("prefix", ["media/", "/media", "/../x/", "/a b/"])
def test_accel_redirect_prefix_must_be_a_slash_delimited_path(engines, prefix):
    engine = media_engine(engines, start=False, accel_redirect_prefix=prefix)
    engine.start(wait=False)
    assert engine.wait_exit() != 0
    assert "accel_redirect_prefix" in engine.logs()


def test_accel_redirect_prefix_makes_stored_files_readable_by_the_proxy(engines):
    """nginx's workers run as another user than the engine: with the option on, new files are stored
    0644 and files stored before are made readable at start-up (without it they stay 0600)."""
    engine = media_engine(engines)
    old = upload(engine, wav(20_000, seed=12)).json()["media"]
    media_dir = engine.workdir / "uploads" / "media"
    assert (media_dir / f"{old['sha256']}.wav").stat().st_mode & 0o777 == 0o600
    engine.stop()
    engine.config_path.write_text(GENEROUS_RATE + plugin_config(
        {"name": "moderator-keys"}, {"name": "media", "config": {"accel_redirect_prefix": "/_onionrp_media/"}}))
    engine.start()
    assert (media_dir / f"{old['sha256']}.wav").stat().st_mode & 0o777 == 0o644
    new = upload(engine, wav(20_000, seed=13)).json()["media"]
    assert (media_dir / f"{new['sha256']}.wav").stat().st_mode & 0o777 == 0o644
