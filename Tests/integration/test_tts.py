"""The TTS plugin against the real engine: validation, access, rate limit, the queue protocol over real sockets,
server-rendered speech with espeak-ng (WAV files, cache, range/ETag), auto mode, render timeouts and concurrency."""
import json
import re
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from conftest import plugin_config

ESPEAK = Path("/usr/bin/espeak-ng")
needs_espeak = pytest.mark.skipif(not ESPEAK.exists(), reason="needs espeak-ng")
LOOSE = {"burst": 10000, "per_minute": 1000000}
STREAMER = {"x-streamer-token": "streamer-secret"}


def tts_yaml(rate=None, **config):
    """Engine config: moderator keys plus tts with `config`, and the tts.speak rate limit."""
    limits = rate or LOOSE
    return (f"limits:\n  rate:\n    tts.speak: {json.dumps(limits)}\n"
            + plugin_config({"name": "moderator-keys"}, {"name": "tts", "config": config}))


def speak(engine, headers=None, **body):
    return requests.post(engine.url + "/api/tts/speak", headers=STREAMER if headers is None else headers, json=body, timeout=30)


def spoken(engine, **body):
    answer = speak(engine, **body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def moderator_session(engine):
    key = requests.post(engine.url + "/api/moderator-keys/generate", headers=STREAMER).json()["key"]
    answer = requests.post(engine.url + "/api/moderator-keys/consume", data={"key": key})
    assert answer.status_code == 200, answer.text
    return answer.json()["session"]


def next_event(ws, wanted, timeout=5.0):
    """The next frame whose type is `wanted` (a string or a set), skipping the others."""
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted} within {timeout}s")
        message = json.loads(ws.recv(timeout=left))
        if message.get("type") in wanted:
            return message


def next_speak(ws, id_, timeout=5.0):
    """The `tts.speak` frame of utterance `id_`, skipping the others (e.g. what the engine replays on connect)."""
    deadline = time.monotonic() + timeout
    while True:
        event = next_event(ws, "tts.speak", timeout=max(0.05, deadline - time.monotonic()))
        if event["id"] == id_:
            return event


def queue_until(ws, predicate, timeout=5.0):
    """`tts.queue` frames until one satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = next_event(ws, "tts.queue", timeout=max(0.05, deadline - time.monotonic()))
        except (AssertionError, TimeoutError):
            break
        if predicate(last):
            return last
    raise AssertionError(f"the queue never matched; last frame: {last}")


def no_event(ws, wanted, wait=0.4):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            return
        assert message.get("type") != wanted, f"unexpected {message}"


def metric(engine, name, labels=None):
    """The value of one series on /metrics (0 when absent)."""
    text = requests.get(engine.url + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        if labels and not all(f'{k}="{v}"' in (match.group(2) or "") for k, v in labels.items()):
            continue
        total += float(match.group(3))
    return total


def parse_wav(data):
    """channels, sample rate, bits, data bytes from a RIFF/WAVE file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        if chunk == b"fmt ":
            audio_format, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            assert audio_format == 1
            fmt = (channels, rate, bits)
        elif chunk == b"data":
            assert fmt, "data before fmt"
            return {"channels": fmt[0], "rate": fmt[1], "bits": fmt[2], "data": len(body),
                    "seconds": len(body) / (fmt[0] * fmt[1] * fmt[2] // 8)}
        offset += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def cache_dir(engine):
    return engine.workdir / "data" / "plugins" / "tts" / "cache"


# ---------------------------------------------------------------------------------------------------------------
# Validation and access


BAD_BODIES = [
    ({}, "text"),
    ({"text": None}, "text"),
    ({"text": 5}, "text"),
    ({"text": "   \n\t "}, "text"),
    ({"text": "x" * 121}, "text"),
    ({"text": "bell\u0007"}, "text"),
    ({"text": "?!..."}, "text"),
    ({"text": "oh DARN it"}, "text"),
    ({"text": "a Bad\n  phrase here"}, "text"),
    ({"text": "hi", "lang": 5}, "lang"),
    ({"text": "hi", "lang": "en_US"}, "lang"),
    ({"text": "hi", "lang": "e"}, "lang"),
    ({"text": "hi", "lang": "en-"}, "lang"),
    ({"text": "hi", "lang": "12-US"}, "lang"),
    ({"text": "hi", "lang": "en US"}, "lang"),
    ({"text": "hi", "lang": "en-" + "a" * 40}, "lang"),
    ({"text": "hi", "rate": 0.05}, "rate"),
    ({"text": "hi", "rate": 4.5}, "rate"),
    ({"text": "hi", "rate": "1"}, "rate"),
    ({"text": "hi", "rate": True}, "rate"),
    ({"text": "hi", "pitch": -0.1}, "pitch"),
    ({"text": "hi", "pitch": 2.01}, "pitch"),
    ({"text": "hi", "pitch": [1]}, "pitch"),
    ({"text": "hi", "volume": 1.5}, "volume"),
    ({"text": "hi", "volume": -1}, "volume"),
    ({"text": "hi", "voice": ""}, "voice"),
    ({"text": "hi", "voice": 7}, "voice"),
    ({"text": "hi", "voice": "v" * 41}, "voice"),
    ({"text": "hi", "voice": "a\u0000b"}, "voice"),
    ({"text": "hi", "speed": 1}, "speed"),
    ({"text": "hi", "Text": "x"}, "Text"),
]


def test_every_field_is_validated_and_named(engines):
    engine = engines(tts_yaml(mode="browser", max_text_length=120, max_voice_length=40,
                              blocklist=["darn", "bad phrase"]))
    for body, field in BAD_BODIES:
        answer = speak(engine, **body)
        assert answer.status_code == 400, (body, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_field" and error["field"] == field, (body, error)
        assert error["message"].startswith(field + ":"), error
        assert "darn" not in answer.text.lower() and "phrase" not in answer.text.lower(), "the blocklist leaked"

    # Bodies that are not one JSON object.
    for raw, content_type in ((b"[1]", "application/json"), (b'"hi"', "application/json"), (b"{", "application/json"),
                              (b"", "application/json"), (b"null", "application/json")):
        answer = requests.post(engine.url + "/api/tts/speak", headers={**STREAMER, "content-type": content_type}, data=raw)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json", (raw, answer.text)
    form = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, data={"text": "hi"})
    assert form.status_code == 415
    huge = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": "x" * 100_000})
    assert huge.status_code == 413

    # Whole words only, nulls mean defaults, the edges of every range are accepted.
    assert spoken(engine, text="darnation is fine")["mode"] == "browser"
    assert speak(engine, text="ok", lang=None, rate=None, pitch=None, volume=None, voice=None).status_code == 202
    assert speak(engine, text="ok", rate=0.1, pitch=0, volume=0).status_code == 202
    assert speak(engine, text="ok", rate=4, pitch=2, volume=1, voice="Google русский").status_code == 202
    assert speak(engine, text="x" * 120).status_code == 202


def test_access_levels(engines):
    engine = engines(tts_yaml(mode="browser"))
    for method, path in (("post", "/api/tts/speak"), ("get", "/api/tts/queue"), ("post", "/api/tts/skip"),
                         ("post", "/api/tts/clear"), ("get", "/api/tts/voices")):
        anonymous = requests.request(method, engine.url + path, json={"text": "hi"})
        assert anonymous.status_code == 401, (path, anonymous.text)
        wrong = requests.request(method, engine.url + path, json={"text": "hi"}, headers={"x-streamer-token": "nope"})
        assert wrong.status_code == 401
        stale = requests.request(method, engine.url + path, json={"text": "hi"}, headers={"x-moderator-session": "not-a-session"})
        assert stale.status_code == 401
    session = moderator_session(engine)
    answer = speak(engine, headers={"x-moderator-session": session}, text="from a moderator")
    assert answer.status_code == 202, answer.text
    queue = requests.get(engine.url + "/api/tts/queue", headers={"x-moderator-session": session}).json()
    assert queue["type"] == "tts.queue" and queue["current"]["requested_by"] == "moderator"


def test_rate_limit_answers_429_with_retry_after(engines):
    engine = engines(tts_yaml(rate={"burst": 3, "per_minute": 1}, mode="browser"))
    statuses = [speak(engine, text=f"number {i}") for i in range(5)]
    assert [a.status_code for a in statuses[:3]] == [202, 202, 202]
    limited = statuses[3]
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_bad_configuration_stops_start_up(engines):
    for config, key in (({"mode": "loud"}, "mode"), ({"rate": {"min": 3, "max": 2}}, "rate"),
                        ({"max_concurrent_renders": 0}, "max_concurrent_renders"), ({"colour": "red"}, "colour"),
                        ({"default_lang": "english language"}, "default_lang")):
        engine = engines(tts_yaml(**config), start=False)
        engine.start(wait=False)
        assert engine.wait_exit(timeout=20) != 0
        assert key in engine.logs(), engine.logs()
    engine = engines(tts_yaml(mode="server", espeak_path="/nonexistent/espeak-ng"), start=False)
    engine.start(wait=False)
    assert engine.wait_exit(timeout=20) != 0
    assert "espeak" in engine.logs()


# ---------------------------------------------------------------------------------------------------------------
# The queue protocol over sockets


def test_overlay_gets_speak_events_in_order_and_moderators_follow_the_queue(engines):
    engine = engines(tts_yaml(mode="browser"))
    session = moderator_session(engine)
    with connect(engine.ws_url + "/ws/overlay?overlay_id=tts-test") as overlay, \
            connect(engine.ws_url + f"/ws/moderator?session={session}") as moderator:
        first = next_event(moderator, "tts.queue")
        assert first["current"] is None and first["queue"] == []
        next_event(overlay, "hello")

        bodies = [
            {"text": "First, in Russian: привет", "lang": "ru-ru", "rate": 1.5, "pitch": 0.5, "volume": 0.25, "voice": "Milena"},
            {"text": "Second one", "lang": "en-US"},
            {"text": "Third\nline", "lang": "zh-hant-tw", "rate": 0.5},
        ]
        answers = [spoken(engine, **body) for body in bodies]
        assert [a["position"] for a in answers] == [0, 1, 2]
        assert all(a["mode"] == "browser" and "audio_url" not in a and a["overlays"] == 1 for a in answers)
        assert len({a["id"] for a in answers}) == 3

        events = [next_event(overlay, "tts.speak") for _ in bodies]
        assert [e["id"] for e in events] == [a["id"] for a in answers]
        assert events[0] == {"type": "tts.speak", "id": answers[0]["id"], "text": "First, in Russian: привет", "lang": "ru-RU",
                             "rate": 1.5, "pitch": 0.5, "volume": 0.25, "voice": "Milena"}
        assert events[1] == {"type": "tts.speak", "id": answers[1]["id"], "text": "Second one", "lang": "en-US",
                             "rate": 1, "pitch": 1, "volume": 1}
        assert events[2]["text"] == "Third line" and events[2]["lang"] == "zh-Hant-TW" and "audio_url" not in events[2]

        state = queue_until(moderator, lambda q: len(q["queue"]) == 2)
        assert state["current"]["id"] == answers[0]["id"] and state["current"]["state"] == "pending"
        assert [q["id"] for q in state["queue"]] == [answers[1]["id"], answers[2]["id"]]
        assert requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json() == state

        # The overlay reports; the queue follows.
        overlay.send(json.dumps({"type": "tts.started", "id": answers[0]["id"]}))
        speaking = queue_until(moderator, lambda q: q["current"] and q["current"]["state"] == "speaking")
        assert speaking["current"]["id"] == answers[0]["id"] and speaking["current"]["started_at"]
        overlay.send(json.dumps({"type": "tts.finished", "id": answers[0]["id"]}))
        moved = queue_until(moderator, lambda q: q["current"] and q["current"]["id"] == answers[1]["id"])
        assert [q["id"] for q in moved["queue"]] == [answers[2]["id"]]

        # Reports about unknown ids are ignored; malformed ones get an error frame.
        overlay.send(json.dumps({"type": "tts.finished", "id": "never-queued"}))
        overlay.send(json.dumps({"type": "tts.started", "id": 42}))
        error = next_event(overlay, "error")
        assert error["event"] == "tts.started" and "id" in error["message"]

        # Skip the current one: the overlay is told, the next one becomes current.
        skipped = requests.post(engine.url + "/api/tts/skip", headers=STREAMER)
        assert skipped.status_code == 200 and skipped.json() == {"skipped": answers[1]["id"]}
        assert next_event(overlay, "tts.skip") == {"type": "tts.skip", "id": answers[1]["id"]}
        queue_until(moderator, lambda q: q["current"] and q["current"]["id"] == answers[2]["id"] and q["queue"] == [])

        # Skip by id, unknown ids and fields.
        more = spoken(engine, text="fourth")
        assert more["position"] == 1
        assert next_event(overlay, "tts.speak")["id"] == more["id"]
        assert requests.post(engine.url + "/api/tts/skip", headers=STREAMER, json={"id": "nope"}).status_code == 404
        bad = requests.post(engine.url + "/api/tts/skip", headers=STREAMER, json={"id": "x", "all": True})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "all"
        assert requests.post(engine.url + "/api/tts/skip", headers=STREAMER, json={"id": 3}).status_code == 400
        by_id = requests.post(engine.url + "/api/tts/skip", headers=STREAMER, json={"id": more["id"]})
        assert by_id.json() == {"skipped": more["id"]}
        assert next_event(overlay, "tts.skip")["id"] == more["id"]

        # A failure report from the overlay drops it too.
        overlay.send(json.dumps({"type": "tts.failed", "id": answers[2]["id"], "reason": "no_voice"}))
        queue_until(moderator, lambda q: q["current"] is None and q["queue"] == [])
        assert requests.post(engine.url + "/api/tts/skip", headers=STREAMER).status_code == 404

        # Clear: everything goes, the overlay is told.
        ids = [spoken(engine, text=f"clear me {i}")["id"] for i in range(3)]
        assert [next_event(overlay, "tts.speak")["id"] for _ in ids] == ids
        cleared = requests.post(engine.url + "/api/tts/clear", headers=STREAMER)
        assert cleared.status_code == 200 and cleared.json() == {"cleared": 3}
        assert next_event(overlay, "tts.clear") == {"type": "tts.clear"}
        queue_until(moderator, lambda q: q["current"] is None and q["queue"] == [])

    assert metric(engine, "onionrp_plugin_tts_utterances_queued_total") == 7
    assert metric(engine, "onionrp_plugin_tts_utterances_spoken_total") == 1
    assert metric(engine, "onionrp_plugin_tts_utterances_failed_total", {"reason": "overlay"}) == 1
    assert metric(engine, "onionrp_plugin_tts_utterances_skipped_total") == 5


def test_a_new_moderator_panel_gets_the_queue_and_the_queue_is_bounded(engines):
    engine = engines(tts_yaml(mode="browser", max_queue_length=3))
    ids = [spoken(engine, text=f"item {i}")["id"] for i in range(3)]
    full = speak(engine, text="one too many")
    assert full.status_code == 409 and full.json()["error"]["code"] == "queue_full"
    session = moderator_session(engine)
    with connect(engine.ws_url + f"/ws/moderator?session={session}") as moderator:
        state = next_event(moderator, "tts.queue")
        assert state["current"]["id"] == ids[0] and [q["id"] for q in state["queue"]] == ids[1:]


def test_an_overlay_that_connects_gets_what_is_still_queued(engines):
    engine = engines(tts_yaml(mode="browser"))
    ids = [spoken(engine, text=f"said while no overlay was there {i}")["id"] for i in range(3)]
    with connect(engine.ws_url + "/ws/overlay?overlay_id=late") as overlay:
        assert [next_event(overlay, "tts.speak")["id"] for _ in ids] == ids
        # It says the second one first (it already had the first): the engine drops what was ahead.
        overlay.send(json.dumps({"type": "tts.started", "id": ids[1]}))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            queue = requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()
            if queue["current"] and queue["current"]["id"] == ids[1]:
                break
            time.sleep(0.05)
        assert queue["current"]["id"] == ids[1] and queue["current"]["state"] == "speaking"
        assert [q["id"] for q in queue["queue"]] == [ids[2]]
    with connect(engine.ws_url + "/ws/overlay?overlay_id=reloaded") as overlay:
        assert [next_event(overlay, "tts.speak")["id"] for _ in range(2)] == ids[1:]


def test_an_utterance_nobody_finishes_times_out(engines):
    engine = engines(tts_yaml(mode="browser", timeout_base_seconds=1, timeout_per_char_seconds=0, timeout_max_seconds=1))
    with connect(engine.ws_url + "/ws/overlay?overlay_id=silent") as overlay:
        first, second = spoken(engine, text="nobody says this"), spoken(engine, text="nor this")
        started = time.monotonic()
        assert next_event(overlay, "tts.skip", timeout=5) == {"type": "tts.skip", "id": first["id"], "reason": "timeout"}
        assert 0.8 < time.monotonic() - started < 3
        # The second becomes current and gets its own full timeout.
        queue = requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()
        assert queue["current"]["id"] == second["id"]
        assert next_event(overlay, "tts.skip", timeout=5)["id"] == second["id"]
    assert requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()["current"] is None
    assert metric(engine, "onionrp_plugin_tts_utterances_failed_total", {"reason": "timeout"}) == 2


# ---------------------------------------------------------------------------------------------------------------
# Server-rendered speech


@needs_espeak
def test_server_mode_serves_valid_wav_files_rendered_once(engines):
    engine = engines(tts_yaml(mode="server"), env={"OVERLAY_TOKEN": "ov-secret"})
    token = {"token": "ov-secret"}
    with connect(engine.ws_url + "/ws/overlay?overlay_id=srv&token=ov-secret") as overlay:
        english = spoken(engine, text="Hello from the overlay, this is a test.", lang="en-US")
        russian = spoken(engine, text="Привет, это проверка синтеза речи.", lang="ru-RU", rate=1.2, volume=0.8)
        for answer in (english, russian):
            assert answer["mode"] == "server"
            assert re.fullmatch(r"/api/tts/audio/[0-9a-f]{64}\.wav", answer["audio_url"]), answer
            event = next_event(overlay, "tts.speak")
            assert event["id"] == answer["id"] and event["audio_url"] == answer["audio_url"]
    assert english["audio_url"] != russian["audio_url"]

    infos = {}
    for name, answer in (("en", english), ("ru", russian)):
        url = engine.url + answer["audio_url"]
        assert requests.get(url).status_code == 401, "the overlay token is required"
        response = requests.get(url, params=token)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "audio/wav"
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert response.headers["ETag"] == '"%s"' % answer["audio_url"].rsplit("/", 1)[1][:-4]
        info = parse_wav(response.content)
        assert info["channels"] == 1 and info["rate"] > 8000 and info["bits"] == 16 and info["data"] > 0
        assert info["seconds"] > 0.5, info
        infos[name] = info
        # Conditional, range and HEAD requests.
        assert requests.get(url, params=token, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        part = requests.get(url, params=token, headers={"Range": "bytes=0-43"})
        assert part.status_code == 206 and part.content == response.content[:44]
        assert part.headers["Content-Range"] == f"bytes 0-43/{len(response.content)}"
        tail = requests.get(url, params=token, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == response.content[-10:]
        assert requests.get(url, params=token, headers={"Range": f"bytes={len(response.content)}-"}).status_code == 416
        head = requests.head(url, params=token)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(response.content)) and head.content == b""

    for bad in ("abc.wav", "0" * 64 + ".wav", "0" * 64 + ".mp3", "..%2F..%2Fetc%2Fpasswd"):
        assert requests.get(engine.url + "/api/tts/audio/" + bad, params=token).status_code == 404, bad

    # The same request again is served from the cache: no new render, the file is untouched.
    files = {p.name: p.stat().st_mtime_ns for p in cache_dir(engine).glob("*.wav")}
    assert len(files) == 2
    renders = metric(engine, "onionrp_plugin_tts_renders_total")
    assert renders == 2
    time.sleep(0.05)
    again = spoken(engine, text="Hello from the overlay, this is a test.", lang="en-US")
    assert again["audio_url"] == english["audio_url"] and again["id"] != english["id"]
    assert {p.name: p.stat().st_mtime_ns for p in cache_dir(engine).glob("*.wav")} == files
    assert metric(engine, "onionrp_plugin_tts_renders_total") == renders
    assert metric(engine, "onionrp_plugin_tts_cache_hits_total") == 1
    assert metric(engine, "onionrp_plugin_tts_render_seconds_count") == 2
    assert not list(cache_dir(engine).glob("*.tmp")), "temporary files left behind"

    # Other parameters render another file; a language espeak-ng lacks is refused in server mode.
    slower = spoken(engine, text="Hello from the overlay, this is a test.", lang="en-US", rate=0.5)
    assert slower["audio_url"] != english["audio_url"]
    longer = parse_wav(requests.get(engine.url + slower["audio_url"], params=token).content)
    assert longer["seconds"] > infos["en"]["seconds"] * 1.3
    unknown = speak(engine, text="hello", lang="xq-ZZ")
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "lang"
    # Language fallbacks: primary language, espeak-ng aliases.
    assert spoken(engine, text="Guten Tag", lang="de-AT")["mode"] == "server"
    assert spoken(engine, text="Hola amigos", lang="es-MX")["mode"] == "server"


@needs_espeak
def test_auto_mode_renders_only_languages_no_overlay_can_speak(engines):
    engine = engines(tts_yaml(mode="auto"))

    def reported():
        return requests.get(engine.url + "/api/tts/voices", headers=STREAMER).json()["overlays"]

    voices = requests.get(engine.url + "/api/tts/voices", headers=STREAMER).json()
    assert voices["mode"] == "auto" and voices["server"]["available"] is True and "ru" in voices["server"]["languages"]

    # No overlay reported anything: rendered.
    assert spoken(engine, text="nobody has voices", lang="en-US")["mode"] == "server"
    with connect(engine.ws_url + "/ws/overlay?overlay_id=with-voices") as browser, \
            connect(engine.ws_url + "/ws/overlay?overlay_id=obs-no-voices") as obs:
        browser.send(json.dumps({"type": "tts.capabilities", "voices": ["en-US", "en_GB", "de-DE", "", "not a tag"]}))
        obs.send(json.dumps({"type": "tts.capabilities", "voices": []}))
        deadline = time.monotonic() + 5
        while len(reported()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = reported()
        assert sorted(tuple(row["voices"]) for row in rows) == [(), ("de-de", "en-gb", "en-us")]

        english = spoken(engine, text="the browser has an English voice", lang="en-AU")
        assert english["mode"] == "browser" and english.get("audio_url") is None
        event = next_speak(obs, english["id"])
        assert "audio_url" not in event
        russian = spoken(engine, text="а русского голоса нет", lang="ru-RU")
        assert russian["mode"] == "server" and russian["audio_url"]
        assert next_speak(browser, russian["id"])["audio_url"] == russian["audio_url"]

        bad = json.dumps({"type": "tts.capabilities", "voices": "en-US"})
        obs.send(bad)
        assert next_event(obs, "error")["event"] == "tts.capabilities"

    # The overlay with voices left: the engine notices and renders again.
    deadline = time.monotonic() + 5
    while reported() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reported() == []
    assert spoken(engine, text="the browser has gone", lang="en-US")["mode"] == "server"


FAKE_ESPEAK = r'''#!/usr/bin/env python3
"""A stand-in for espeak-ng: lists one voice, and 'renders' by sleeping, then writing a WAV of silence."""
import os, struct, sys, time
log = os.environ.get("FAKE_LOG") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")
args = sys.argv[1:]
if args == ["--voices"]:
    print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
    print(" 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)")
    sys.exit(0)
settings = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "settings")).read().split()
delay, seconds = float(settings[0]), float(settings[1])
start = time.monotonic()
with open(log, "a") as f:
    f.write(f"start {os.getpid()} {start}\n")
time.sleep(delay)
out = args[args.index("-w") + 1]
assert args[-2] == "--"
samples = int(22050 * seconds)
with open(out, "wb") as f:
    f.write(b"RIFF" + struct.pack("<I", 36 + samples * 2) + b"WAVE")
    f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16))
    f.write(b"data" + struct.pack("<I", samples * 2) + b"\0" * (samples * 2))
with open(log, "a") as f:
    f.write(f"end {os.getpid()} {start} {time.monotonic()}\n")
'''


@pytest.fixture
def fake_espeak(tmp_path):
    folder = tmp_path / "fake-espeak"
    folder.mkdir()
    script = folder / "espeak-ng"
    script.write_text(FAKE_ESPEAK.replace("#!/usr/bin/env python3", "#!" + sys.executable))
    script.chmod(0o755)

    def configure(delay, seconds=1.0):
        (folder / "settings").write_text(f"{delay} {seconds}")

    configure(0.0)
    return {"path": script, "configure": configure, "log": folder / "calls.log"}


def calls(fake):
    if not fake["log"].exists():
        return [], []
    starts, ends = [], []
    for line in fake["log"].read_text().splitlines():
        parts = line.split()
        if parts[0] == "start":
            starts.append((int(parts[1]), float(parts[2])))
        else:
            ends.append((int(parts[1]), float(parts[2]), float(parts[3])))
    return starts, ends


def test_renders_are_bounded_killed_on_timeout_and_the_cache_is_evicted(engines, fake_espeak):
    engine = engines(tts_yaml(mode="server", espeak_path=str(fake_espeak["path"]), max_concurrent_renders=2,
                              render_timeout_seconds=1.5, cache_max_bytes=1048576))

    # Five different texts at once, each render taking 0.8 s: never more than two at a time.
    fake_espeak["configure"](0.8, 3.0)  # 3 s of 22.05 kHz 16-bit mono: ~132 KB each
    results = [None] * 5

    def post(index):
        results[index] = speak(engine, text=f"parallel number {index}")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(r is not None and r.status_code == 202 for r in results), [r and r.text for r in results]
    _, ends = calls(fake_espeak)
    assert len(ends) == 5
    moments = sorted([(s, 1) for _, s, _ in ends] + [(e, -1) for _, _, e in ends])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2, f"at most two renders at once, saw {peak}"

    # A render that hangs is killed when the timeout passes; the request fails cleanly.
    fake_espeak["configure"](30, 1.0)
    started = time.monotonic()
    stuck = speak(engine, text="this one hangs")
    assert stuck.status_code == 503 and stuck.json()["error"]["code"] == "tts_render_failed"
    assert 1.2 < time.monotonic() - started < 6
    starts, _ = calls(fake_espeak)
    pid = starts[-1][0]
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], "the render was not killed"
    assert metric(engine, "onionrp_plugin_tts_render_failures_total") == 1
    assert not list(cache_dir(engine).glob("*.tmp"))

    # The cache (1 MiB) is over its limit only with queued files, which are kept; once cleared, the oldest go.
    fake_espeak["configure"](0, 3.0)
    for i in range(4):
        spoken(engine, text=f"filler {i}")
    assert len(list(cache_dir(engine).glob("*.wav"))) == 9  # all still queued: none evicted
    oldest = min(cache_dir(engine).glob("*.wav"), key=lambda p: p.stat().st_mtime_ns)
    assert requests.post(engine.url + "/api/tts/clear", headers=STREAMER).status_code == 200
    newest = spoken(engine, text="the one after the clear")
    remaining = list(cache_dir(engine).glob("*.wav"))
    assert sum(p.stat().st_size for p in remaining) <= 1048576
    assert not oldest.exists()
    assert (cache_dir(engine) / newest["audio_url"].rsplit("/", 1)[1]).exists()
    assert metric(engine, "onionrp_plugin_tts_cache_evictions_total") == 10 - len(remaining)


def test_auto_mode_falls_back_to_the_browser_when_rendering_fails(engines, fake_espeak):
    engine = engines(tts_yaml(mode="auto", espeak_path=str(fake_espeak["path"]), render_timeout_seconds=0.5))
    fake_espeak["configure"](5, 1.0)
    answer = spoken(engine, text="render fails, overlays try")
    assert answer["mode"] == "browser" and answer.get("audio_url") is None
    # A language the server has no voice for goes to the browsers too.
    fake_espeak["configure"](0, 1.0)
    assert spoken(engine, text="bonjour", lang="fr-FR")["mode"] == "browser"
    assert spoken(engine, text="hello", lang="en-GB")["mode"] == "server"
