"""Moderator access on both backends: one-time keys, sessions, rate limits, origin checks, Redis outages."""
import concurrent.futures
import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

LOOSE = """
limits:
  rate:
    moderator-keys.generate: {burst: 1000, per_minute: 100000}
    moderator-keys.consume: {burst: 1000, per_minute: 100000}
plugins:
  - name: moderator-keys
    config:
      max_failures: 1000
"""


def generate(engine, **fields):
    answer = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), data=fields)
    assert answer.status_code == 201, answer.text
    return answer.json()


def consume(engine, key):
    return requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key})


def test_generate_and_consume_once(engines, backend):
    engine = engines(LOOSE, env=backend["env"])
    assert requests.post(engine.url + "/api/moderator-keys/generate").status_code == 401
    wrong = requests.post(engine.url + "/api/moderator-keys/generate", headers={"x-streamer-token": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    created = generate(engine, streamer_id="onion")
    assert created["ttl_seconds"] == 600 and created["streamer_id"] == "onion" and len(created["key"]) >= 22
    # JSON bodies are accepted too.
    as_json = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), json={"streamer_id": "j"})
    assert as_json.status_code == 201
    first = consume(engine, created["key"])
    assert first.status_code == 200, first.text
    session = first.json()
    assert len(session["session"]) >= 22 and session["streamer_id"] == "onion"
    again = consume(engine, created["key"])
    unknown = consume(engine, "not-a-key")
    assert again.status_code == unknown.status_code == 401
    assert again.json() == unknown.json(), "used and unknown keys must look the same"
    assert requests.post(engine.url + "/api/moderator-keys/consume", data={}).status_code == 400
    me = requests.get(engine.url + "/api/moderator/me", headers={"x-moderator-session": session["session"]})
    assert me.status_code == 200 and me.json()["id"] == session["session_id"]


def test_key_expires_after_ttl(engines, backend):
    engine = engines(LOOSE, env={**backend["env"], "MODERATOR_KEY_TTL_SECONDS": "1"})
    key = generate(engine)["key"]
    assert generate(engine)["ttl_seconds"] == 1
    time.sleep(1.5)
    assert consume(engine, key).status_code == 401


def test_concurrent_consumes_of_one_key_give_exactly_one_session(engines, backend):
    engine = engines(LOOSE, env=backend["env"])
    key = generate(engine)["key"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: consume(engine, key).status_code, range(200)))
    assert results.count(200) == 1, results
    assert results.count(401) == 199


def test_session_slides_expires_and_revocation_closes_sockets(engines, backend):
    engine = engines(LOOSE, env={**backend["env"], "MODERATOR_SESSION_TTL_SECONDS": "2"})
    session = consume(engine, generate(engine)["key"]).json()
    headers = {"x-moderator-session": session["session"]}
    for _ in range(4):  # 4 s of use with a 2 s TTL: it slides
        assert requests.get(engine.url + "/api/moderator/me", headers=headers).status_code == 200
        time.sleep(1)
    time.sleep(2.6)  # idle past the TTL
    expired = requests.get(engine.url + "/api/moderator/me", headers=headers)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "session_invalid"

    live = consume(engine, generate(engine)["key"]).json()
    with connect(engine.ws_url + f"/ws/moderator?session={live['session']}") as moderator:
        assert json.loads(moderator.recv(timeout=5))["type"] == "hello"
        listed = requests.get(engine.url + "/api/moderator-sessions", headers=engine.streamer()).json()["sessions"]
        assert live["session_id"] in [s["id"] for s in listed]
        assert requests.delete(engine.url + f"/api/moderator-sessions/{live['session_id']}", headers=engine.streamer()).status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                moderator.recv(timeout=5)
        assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason == "session revoked"
    with connect(engine.ws_url + f"/ws/moderator?session={live['session']}") as refused:
        with pytest.raises(ConnectionClosed) as closed:
            refused.recv(timeout=5)
        assert closed.value.rcvd.code == 4401 and "unknown, expired or revoked" in closed.value.rcvd.reason


def test_list_and_revoke_keys_and_logout(engines, backend):
    engine = engines(LOOSE, env=backend["env"])
    created = generate(engine, label="for anna")
    keys = requests.get(engine.url + "/api/moderator-keys", headers=engine.streamer()).json()["keys"]
    assert [k["id"] for k in keys] == [created["id"]] and keys[0]["label"] == "for anna"
    assert created["key"] not in json.dumps(keys), "listing never shows the secret"
    assert requests.delete(engine.url + f"/api/moderator-keys/{created['id']}", headers=engine.streamer()).status_code == 200
    assert consume(engine, created["key"]).status_code == 401
    session = consume(engine, generate(engine)["key"]).json()["session"]
    assert requests.post(engine.url + "/api/moderator/logout", headers={"x-moderator-session": session}).status_code == 200
    assert requests.get(engine.url + "/api/moderator/me", headers={"x-moderator-session": session}).status_code == 401
    # A moderator cannot do what only the streamer may.
    other = consume(engine, generate(engine)["key"]).json()["session"]
    forbidden = requests.get(engine.url + "/api/moderator-keys", headers={"x-moderator-session": other})
    assert forbidden.status_code == 403


def test_rate_limits_answer_429_with_retry_after(engines, backend):
    engine = engines("""
limits:
  rate:
    moderator-keys.generate: {burst: 2, per_minute: 6}
plugins:
  - name: moderator-keys
    config:
      max_failures: 3
      failure_window_seconds: 120
security:
  trusted_proxies: [127.0.0.1]
""", env=backend["env"])
    codes = [requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer()).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    limited = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer())
    assert limited.headers["retry-after"] == "10" and limited.json()["error"]["code"] == "rate_limited"
    # Behind a trusted proxy, each forwarded client has its own bucket.
    other = requests.post(engine.url + "/api/moderator-keys/generate", headers={**engine.streamer(), "x-forwarded-for": "203.0.113.9"})
    assert other.status_code == 201
    # Login failures: three wrong keys, then even attempts are refused for the window.
    fails = [consume(engine, f"wrong-{i}").status_code for i in range(4)]
    assert fails == [401, 401, 401, 429]


def test_forwarded_for_is_ignored_from_untrusted_peers(engines):
    engine = engines(LOOSE.replace("burst: 1000, per_minute: 100000}\n    moderator-keys.consume", "burst: 1, per_minute: 1}\n    moderator-keys.consume"))
    assert requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer()).status_code == 201
    spoofed = requests.post(engine.url + "/api/moderator-keys/generate", headers={**engine.streamer(), "x-forwarded-for": "198.51.100.7"})
    assert spoofed.status_code == 429


def test_origin_checked_only_when_strict(engines):
    relaxed = engines(LOOSE)
    evil = {"origin": "https://evil.example"}
    assert requests.post(relaxed.url + "/api/moderator-keys/generate", headers={**relaxed.streamer(), **evil}).status_code == 201
    with connect(relaxed.ws_url + "/ws/overlay", additional_headers=evil):
        pass
    strict = engines(LOOSE, env={"ENABLE_STRICT_ORIGIN": "true", "ALLOWED_ORIGINS": "https://studio.example, http://127.0.0.1"})
    refused = requests.post(strict.url + "/api/moderator-keys/generate", headers={**strict.streamer(), **evil})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_forbidden"
    allowed = requests.post(strict.url + "/api/moderator-keys/generate", headers={**strict.streamer(), "origin": "https://studio.example"})
    assert allowed.status_code == 201
    assert requests.get(strict.url + "/api/scene", headers=evil).status_code == 200, "reads are not state-changing"
    # The engine's own pages are same-origin and always allowed, listed or not.
    same = requests.post(strict.url + "/api/moderator-keys/generate", headers={**strict.streamer(), "origin": strict.url})
    assert same.status_code == 201
    # A refused socket is closed at once with 4000 + status, so a browser can read why.
    with connect(strict.ws_url + "/ws/overlay", additional_headers=evil) as refused_socket:
        with pytest.raises(ConnectionClosed) as closed:
            refused_socket.recv(timeout=5)
    assert closed.value.rcvd.code == 4403 and "ALLOWED_ORIGINS" in closed.value.rcvd.reason
    with connect(strict.ws_url + "/ws/overlay", additional_headers={"origin": "http://127.0.0.1"}):
        pass


def test_redis_outage_gives_fast_503_and_recovers(engines, redis_server):
    engine = engines(LOOSE, env={"REDIS_URL": redis_server.url})
    assert requests.get(engine.url + "/readyz").json()["store"] == "redis"
    assert generate(engine)["key"]
    redis_server.stop()
    started = time.monotonic()
    down = requests.post(engine.url + "/api/moderator-keys/generate", headers=engine.streamer(), timeout=5)
    assert time.monotonic() - started < 1.0
    assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable"
    for _ in range(5):
        assert requests.post(engine.url + "/api/moderator-keys/consume", data={"key": "x"}, timeout=5).status_code == 503
    ready = requests.get(engine.url + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    # Things that do not need the store keep working.
    assert requests.get(engine.url + "/api/scene").status_code == 200
    assert requests.get(engine.url + "/healthz").status_code == 200
    redis_server.start()
    deadline = time.monotonic() + 5
    while requests.get(engine.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    key = generate(engine)["key"]
    assert consume(engine, key).status_code == 200
    logs = engine.logs()
    assert logs.count("is unavailable") == 1, "an outage is logged once, not per request"
    assert "is reachable again" in logs


def test_redis_holds_no_raw_key_or_session(engines, redis_server):
    engine = engines(LOOSE, env={"REDIS_URL": redis_server.url})
    key = generate(engine, streamer_id="s1")["key"]
    spare = generate(engine)["key"]
    session = consume(engine, key).json()["session"]
    dump = ""
    for name in redis_server.cli("--scan").split():
        kind = redis_server.cli("type", name).strip()
        value = redis_server.cli("get", name) if kind == "string" else redis_server.cli("hgetall", name)
        dump += name + "\n" + value
    assert "engine:session:" in dump and "plugin:moderator-keys:key:" in dump
    for secret in (key, spare, session):
        assert secret not in dump


def test_embedded_store_keeps_keys_and_sessions_across_restart(engines):
    engine = engines(LOOSE)
    session = consume(engine, generate(engine)["key"]).json()["session"]
    spare = generate(engine)["key"]
    engine.stop()  # graceful: the snapshot is written on shutdown
    engine.start()
    assert requests.get(engine.url + "/api/moderator/me", headers={"x-moderator-session": session}).status_code == 200
    assert consume(engine, spare).status_code == 200
    # After kill -9 the last second may be lost, not more: wait for the periodic snapshot.
    late = generate(engine)["key"]
    time.sleep(1.5)
    engine.proc.kill()
    engine.proc.wait()
    engine.start()
    assert consume(engine, late).status_code == 200
    on_disk = (engine.workdir / "data" / "store.json").read_text()
    assert all(secret not in on_disk for secret in (session, spare, late)), "no raw secret on disk"
