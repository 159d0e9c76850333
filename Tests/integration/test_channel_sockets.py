"""The engine's channel sockets (/ws/overlay, /ws/moderator) at the WebSocket frame level.

They are served by a channel handler on the event loop (no task per socket), so everything Hummingbird's WebSocket
handler did for them is the engine's now: fragments, control frames, the close handshake, keep-alive pings, the
message size limit, the order of messages, and plain GETs. These tests speak raw frames over a TCP socket.
"""

import base64
import json
import os
import socket
import struct
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def frame(opcode, payload=b"", fin=True, rsv=0):
    """A masked client frame."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([first, 0x80 | n])
    elif n < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A WebSocket client that answers nothing by itself (no pongs, no close replies)."""

    def __init__(self, engine, path="/ws/overlay"):
        self.sock = socket.create_connection(("127.0.0.1", engine.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed during the handshake: {self.buffer!r}"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _need(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the engine closed the connection")
            self.buffer += chunk

    def read_frame(self):
        """(opcode, payload) of the next server frame (server frames are not masked)."""
        self._need(2)
        first, second = self.buffer[0], self.buffer[1]
        assert second & 0x80 == 0, "a server frame must not be masked"
        n, offset = second & 0x7F, 2
        if n == 126:
            self._need(4)
            n, offset = struct.unpack(">H", self.buffer[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, offset = struct.unpack(">Q", self.buffer[2:10])[0], 10
        self._need(offset + n)
        payload = self.buffer[offset:offset + n]
        self.buffer = self.buffer[offset + n:]
        return first & 0x0F, payload

    def read_until(self, wanted, limit=50):
        """Frames up to and including the first with opcode `wanted`, text frames decoded."""
        seen = []
        for _ in range(limit):
            opcode, payload = self.read_frame()
            seen.append((opcode, json.loads(payload) if opcode == 1 else payload))
            if opcode == wanted:
                return seen
        raise AssertionError(f"no frame with opcode {wanted} in {seen}")

    def texts_until(self, message_type, limit=50):
        for _ in range(limit):
            opcode, payload = self.read_frame()
            if opcode == 1 and json.loads(payload)["type"] == message_type:
                return json.loads(payload)
        raise AssertionError(f"no {message_type}")

    def send(self, data):
        self.sock.sendall(data)

    def closed_by_peer(self, timeout=5.0):
        """True once the engine closed TCP (after any frames still buffered)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def close_code(payload):
    return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None


def test_a_plain_get_on_a_socket_path_is_426_with_a_json_error(engines):
    engine = engines("plugins: []\n")
    for path in ("/ws/overlay", "/ws/moderator"):
        answer = requests.get(f"{engine.url}{path}", timeout=5)
        assert answer.status_code == 426, answer.text
        assert answer.headers["upgrade"] == "websocket"
        assert answer.json()["error"]["code"] == "upgrade_required"


def test_an_upgrade_on_a_path_without_a_socket_is_400_with_a_json_error(engines):
    engine = engines("plugins: []\n")
    sock = socket.create_connection(("127.0.0.1", engine.port), timeout=5)
    sock.sendall(b"GET /ws/nothing-here HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "upgrade_refused"
    assert requests.get(f"{engine.url}/healthz", timeout=5).status_code == 200


def test_fragments_make_one_message_and_messages_are_answered_in_order(engines):
    engine = engines("plugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    # One message in three fragments, a ping frame between two of them (control frames may interleave).
    ws.send(frame(1, b'{"type":', fin=False) + frame(9, b"between") + frame(0, b'"pi', fin=False) + frame(0, b'ng"}'))
    seen = ws.read_until(1)
    assert seen[0] == (10, b"between"), seen
    assert seen[-1][1]["type"] == "pong"
    # Twenty messages at once: twenty answers, in order (an unknown type names itself in its error).
    ws.send(b"".join(frame(1, json.dumps({"type": f"nothing.{i}"}).encode()) for i in range(20)))
    events = [ws.texts_until("error")["event"] for _ in range(20)]
    assert events == [f"nothing.{i}" for i in range(20)]
    ws.close()


def test_fragments_over_the_limit_close_with_1009(engines):
    engine = engines("limits:\n  ws_max_message_bytes: 4096\nplugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    ws.send(frame(1, b"x" * 3000, fin=False) + frame(0, b"x" * 3000, fin=False))
    opcode, payload = ws.read_until(8)[-1]
    assert close_code(payload) == 1009
    assert ws.closed_by_peer()


def test_a_binary_message_gets_an_error_frame_and_the_socket_stays(engines):
    engine = engines("plugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    ws.send(frame(2, b"\x00\x01\x02"))
    assert ws.texts_until("error")["code"] == "binary_not_supported"
    ws.send(frame(1, b'{"type":"ping"}'))
    assert ws.texts_until("pong")["type"] == "pong"
    ws.close()


@pytest.mark.parametrize("bad", [
    frame(0, b"a continuation without a message"),
    frame(1, b'{"type":"ping"}', rsv=4),
    frame(9, b"p", fin=False),
    frame(3, b"reserved opcode"),
], ids=["continuation", "reserved-bits", "fragmented-ping", "reserved-opcode"])
def test_protocol_errors_close_with_1002(engines, bad):
    engine = engines("plugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    ws.send(bad)
    opcode, payload = ws.read_until(8)[-1]
    assert close_code(payload) == 1002
    assert ws.closed_by_peer()
    assert requests.get(f"{engine.url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("body, answer", [
    (struct.pack(">H", 4000) + b"bye", 1000),
    (b"", 1000),
    (b"\x03", 1002),
    (struct.pack(">H", 999), 1002),
    (struct.pack(">H", 1000) + b"\xff\xfe", 1002),
], ids=["private-code", "no-code", "one-byte", "invalid-code", "bad-utf8-reason"])
def test_the_engine_answers_a_close_and_ends_the_connection(engines, body, answer):
    engine = engines("plugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    ws.send(frame(8, body))
    opcode, payload = ws.read_until(8)[-1]
    assert close_code(payload) == answer
    assert ws.closed_by_peer()
    # The hub forgot the socket.
    deadline = time.time() + 5
    while time.time() < deadline:
        metrics = requests.get(f"{engine.url}/metrics", timeout=5).text
        if 'onionrp_ws_connections{channel="overlay"} 0' in metrics:
            break
        time.sleep(0.1)
    assert 'onionrp_ws_connections{channel="overlay"} 0' in metrics


def overlay_sockets(engine):
    for line in requests.get(f"{engine.url}/metrics", timeout=5).text.splitlines():
        if line.startswith('onionrp_ws_connections{channel="overlay"}'):
            return float(line.split()[1])
    return None


@pytest.mark.parametrize("unread", [False, True], ids=["fin", "reset-with-unread-data"])
def test_a_peer_that_drops_the_tcp_connection_is_forgotten_at_once(engines, unread):
    """A client gone without a close frame (tab closed, process killed): the server allows remote half-closure, so
    the peer's FIN arrives as an event, not as an inactive channel. Regression: the socket stayed counted (and held)
    until the next keep-alive ping, up to ws_ping_seconds later."""
    engine = engines("limits:\n  ws_ping_seconds: 60\nplugins: []\n")
    ws = RawSocket(engine)
    if not unread:
        ws.texts_until("scene.full")
    else:
        time.sleep(0.3)  # the hello and the scene wait unread: close() then resets the connection
    assert overlay_sockets(engine) == 1
    ws.sock.close()
    deadline = time.time() + 3
    while time.time() < deadline and overlay_sockets(engine) != 0:
        time.sleep(0.05)
    assert overlay_sockets(engine) == 0, "the engine still holds a socket whose peer is gone"
    assert requests.get(f"{engine.url}/healthz", timeout=5).status_code == 200


def test_a_peer_that_never_answers_pings_is_closed_with_1001_and_one_that_does_stays(engines):
    engine = engines("limits:\n  ws_ping_seconds: 1\nplugins: []\n")
    # The websockets client answers pings by itself.
    with connect(f"{engine.ws_url}/ws/overlay") as answering:
        silent = RawSocket(engine)
        silent.texts_until("scene.full")
        started = time.time()
        seen = silent.read_until(8, limit=20)
        assert any(opcode == 9 for opcode, _ in seen), seen
        code, reason = close_code(seen[-1][1]), seen[-1][1][2:].decode()
        assert (code, reason) == (1001, "Ping timeout")
        assert 1.5 < time.time() - started < 6
        assert silent.closed_by_peer()
        # The answering client is still served.
        answering.send(json.dumps({"type": "ping"}))
        while json.loads(answering.recv(timeout=5))["type"] != "pong":
            pass


def test_a_refused_socket_is_closed_with_its_code_and_the_refusal_reason(engines):
    engine = engines("plugins: []\n")
    ws = RawSocket(engine, "/ws/moderator")
    opcode, payload = ws.read_frame()
    assert opcode == 8 and close_code(payload) == 4401, payload
    assert payload[2:].decode()
    # The client answers the close: the engine ends the connection.
    ws.send(frame(8, payload[:2]))
    assert ws.closed_by_peer()


def test_a_socket_outlives_the_http_timeouts(engines):
    """Once upgraded, the connection guard stops timing HTTP phases: only the keep-alive ping judges a socket."""
    engine = engines("server:\n  header_timeout_seconds: 1\n  idle_timeout_seconds: 1\nplugins: []\n")
    ws = RawSocket(engine)
    ws.texts_until("scene.full")
    time.sleep(3)
    ws.send(frame(1, b'{"type":"ping"}'))
    assert ws.texts_until("pong")["type"] == "pong"
    ws.close()
