"""The TTS queue is one queue across engines sharing a real redis-server: overlays on every engine say the same
utterances and can fetch their audio from their own engine, a report to any engine advances the queue everywhere,
the queue limit holds across engines, an engine that starts later joins the queue, and when the engine that queued the
current utterance is killed the others time it out."""
import hashlib
import json
import sys
import threading
import time

import requests
from websockets.sync.client import connect

from test_tts import (STREAMER, metric, moderator_session, needs_espeak, next_event, next_speak, parse_wav, queue_until,
                      speak, spoken, tts_yaml)

OVERLAY_TOKEN = "ov-secret"


def cluster_yaml(**config):
    return "storage:\n  backend: redis\n" + tts_yaml(**config)


def start_cluster(engines, redis_server, count=3, **config):
    env = {"REDIS_URL": redis_server.url, "OVERLAY_TOKEN": OVERLAY_TOKEN}
    return [engines(cluster_yaml(**config), env=env) for _ in range(count)]


def overlay(engine, name):
    return connect(f"{engine.ws_url}/ws/overlay?overlay_id={name}&token={OVERLAY_TOKEN}")


def moderator(engine, session):
    return connect(f"{engine.ws_url}/ws/moderator?session={session}")


def queue_of(engine):
    answer = requests.get(engine.url + "/api/tts/queue", headers=STREAMER, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(queue):
    return ([queue["current"]["id"]] if queue["current"] else []) + [entry["id"] for entry in queue["queue"]]


@needs_espeak
def test_one_queue_is_said_by_overlays_on_every_engine_and_any_engine_advances_it(engines, redis_server):
    a, b, c = start_cluster(engines, redis_server, mode="server")
    session = moderator_session(a)  # sessions live in Redis: valid on every engine
    with overlay(a, "on-a") as over_a, overlay(b, "on-b") as over_b, overlay(c, "on-c") as over_c, \
            moderator(a, session) as mod_a, moderator(b, session) as mod_b:
        for ws in (mod_a, mod_b):
            assert next_event(ws, "tts.queue")["current"] is None
        for ws in (over_a, over_b, over_c):
            next_event(ws, "hello")

        first = speak(a, headers={"x-moderator-session": session}, text="Spoken once, heard on every engine.", lang="en-US")
        assert first.status_code == 202, first.text
        first = first.json()
        assert first["mode"] == "server" and first["position"] == 0 and first["audio_url"]

        # Every overlay, whatever engine it is connected to, gets the utterance and its audio from its own engine.
        bodies = {}
        for engine, ws in ((a, over_a), (b, over_b), (c, over_c)):
            event = next_speak(ws, first["id"], timeout=10)
            assert event["audio_url"] == first["audio_url"] and event["text"] == "Spoken once, heard on every engine."
            audio = requests.get(engine.url + event["audio_url"], params={"token": OVERLAY_TOKEN}, timeout=30)
            assert audio.status_code == 200, (engine.port, audio.text)
            assert audio.headers["ETag"] == '"%s"' % first["audio_url"].rsplit("/", 1)[1][:-4]
            assert parse_wav(audio.content)["seconds"] > 0.5
            bodies[engine.port] = hashlib.sha256(audio.content).hexdigest()
        assert len(set(bodies.values())) == 1, "the engines serve different bytes under one name"
        assert metric(a, "onionrp_plugin_tts_renders_total") == 1
        assert metric(b, "onionrp_plugin_tts_remote_renders_total") == 1
        assert metric(c, "onionrp_plugin_tts_remote_renders_total") == 1

        # Audio that no queued utterance names is not rendered on request.
        stranger = requests.get(b.url + "/api/tts/audio/" + "ab" * 32 + ".wav", params={"token": OVERLAY_TOKEN}, timeout=10)
        assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "not_found"

        second = spoken(b, text="The second one, queued on another engine.", lang="en-US")
        assert second["position"] == 1
        for ws in (mod_a, mod_b):
            state = queue_until(ws, lambda q: ids(q) == [first["id"], second["id"]], timeout=10)
            assert state["current"]["state"] == "pending"
        for ws in (over_a, over_b, over_c):
            next_speak(ws, second["id"], timeout=10)

        # The overlay on C says the first one: moderators on A and B see it speaking, then the queue advance.
        over_c.send(json.dumps({"type": "tts.started", "id": first["id"]}))
        for ws in (mod_a, mod_b):
            queue_until(ws, lambda q: q["current"] and q["current"]["state"] == "speaking", timeout=10)
        over_c.send(json.dumps({"type": "tts.finished", "id": first["id"]}))
        frames = [queue_until(ws, lambda q: ids(q) == [second["id"]], timeout=10) for ws in (mod_a, mod_b)]
        assert frames[0] == frames[1], "moderators on two engines see different queues"
        assert queue_of(c) == frames[0] and queue_of(a) == frames[0]

        # Skip from B: every engine tells its overlays.
        assert requests.post(b.url + "/api/tts/skip", headers=STREAMER, timeout=10).json() == {"skipped": second["id"]}
        for ws in (over_a, over_b, over_c):
            assert next_event(ws, "tts.skip", timeout=10) == {"type": "tts.skip", "id": second["id"]}
        for ws in (mod_a, mod_b):
            queue_until(ws, lambda q: q["current"] is None and q["queue"] == [], timeout=10)

    # Each change is counted once, on the engine it came from.
    assert [metric(e, "onionrp_plugin_tts_utterances_queued_total") for e in (a, b, c)] == [1, 1, 0]
    assert [metric(e, "onionrp_plugin_tts_utterances_spoken_total") for e in (a, b, c)] == [0, 0, 1]
    assert [metric(e, "onionrp_plugin_tts_utterances_skipped_total") for e in (a, b, c)] == [0, 1, 0]


def test_the_queue_limit_holds_across_engines(engines, redis_server):
    a, b, c = start_cluster(engines, redis_server, mode="browser", max_queue_length=4)
    positions = [spoken(engine, text=f"one on {index}")["position"] for index, engine in enumerate((a, b, c))]
    assert positions == [0, 1, 2]
    for engine in (a, b, c):
        assert len(queue_of(engine)["queue"]) == 2

    # One slot left; nine requests race for it on three engines: exactly one gets it.
    results = []
    lock = threading.Lock()

    def post(engine, index):
        answer = speak(engine, text=f"racing {index}")
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=post, args=((a, b, c)[i % 3], i)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(answer.status_code for answer in results)
    assert statuses == [202] + [409] * 8, [answer.text for answer in results]
    refused = [answer.json()["error"] for answer in results if answer.status_code == 409]
    assert all(error["code"] == "queue_full" for error in refused)
    states = [queue_of(engine) for engine in (a, b, c)]
    assert len(ids(states[0])) == 4 and states[0] == states[1] == states[2]


def test_an_engine_started_later_joins_the_queue(engines, redis_server):
    a, = start_cluster(engines, redis_server, count=1, mode="browser")
    queued = [spoken(a, text=f"queued before the second engine {i}")["id"] for i in range(3)]
    b, = start_cluster(engines, redis_server, count=1, mode="browser")
    assert queue_of(b) == queue_of(a)
    with overlay(b, "late") as ws:
        assert [next_event(ws, "tts.speak")["id"] for _ in queued] == queued
        ws.send(json.dumps({"type": "tts.finished", "id": queued[0]}))
        assert wait_for(lambda: ids(queue_of(a)) == queued[1:]), queue_of(a)
    assert requests.post(a.url + "/api/tts/clear", headers=STREAMER, timeout=10).json() == {"cleared": 2}
    assert wait_for(lambda: ids(queue_of(b)) == [])


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_killing_the_engine_that_queued_the_current_utterance_does_not_stall_the_queue(engines, redis_server):
    a, b, c = start_cluster(engines, redis_server, mode="browser", timeout_base_seconds=1, timeout_per_char_seconds=0,
                            timeout_max_seconds=1, timeout_grace_seconds=1)
    session = moderator_session(b)
    with overlay(b, "on-b") as over_b, overlay(c, "on-c") as over_c, moderator(c, session) as mod_c:
        orphan = spoken(a, text="queued on the engine that dies")
        after = spoken(a, text="queued behind it")
        for ws in (over_b, over_c):
            next_speak(ws, orphan["id"])
        a.proc.kill()  # kill -9: no goodbye, its timers die with it
        a.proc.wait(timeout=10)

        # Nobody says it and its engine is gone: the others time it out (once), and the queue moves on.
        for ws in (over_b, over_c):
            assert next_event(ws, "tts.skip", timeout=15) == {"type": "tts.skip", "id": orphan["id"], "reason": "timeout"}
        queue_until(mod_c, lambda q: q["current"] and q["current"]["id"] == after["id"], timeout=15)
        for ws in (over_b, over_c):
            assert next_event(ws, "tts.skip", timeout=15) == {"type": "tts.skip", "id": after["id"], "reason": "timeout"}
        queue_until(mod_c, lambda q: q["current"] is None, timeout=15)
        # The survivors keep working as one queue.
        survivor = spoken(b, text="after the engine died")
        assert survivor["position"] == 0
        queue_until(mod_c, lambda q: q["current"] and q["current"]["id"] == survivor["id"], timeout=15)
        over_c.send(json.dumps({"type": "tts.finished", "id": survivor["id"]}))
        queue_until(mod_c, lambda q: q["current"] is None, timeout=15)

    timeouts = sum(metric(e, "onionrp_plugin_tts_utterances_failed_total", {"reason": "timeout"}) for e in (b, c))
    assert timeouts == 2, "each utterance times out once, on one of the surviving engines"
    assert "did not time it out" in b.logs() + c.logs()


HELD_ESPEAK = r'''#!/usr/bin/env python3
"""A stand-in for espeak-ng that opens its output file at once (as espeak-ng does) and finishes it only when the
file `release` exists next to this script."""
import os, struct, sys, time
args = sys.argv[1:]
if args == ["--voices"]:
    print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
    print(" 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)")
    sys.exit(0)
here = os.path.dirname(os.path.abspath(__file__))
out = args[args.index("-w") + 1]
with open(out, "wb") as f:
    f.flush()
    while not os.path.exists(os.path.join(here, "release")):
        time.sleep(0.02)
    samples = 22050
    f.write(b"RIFF" + struct.pack("<I", 36 + samples * 2) + b"WAVE")
    f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16))
    f.write(b"data" + struct.pack("<I", samples * 2) + b"\0" * (samples * 2))
'''


def test_engines_sharing_a_data_folder_share_the_audio_and_a_start_spares_renders_in_progress(engines, redis_server,
                                                                                                tmp_path):
    """Regression: an engine starting removed every *.tmp file of the cache folder, also the file another engine
    sharing the folder was rendering into; that render then failed (503 in server mode)."""
    fake = tmp_path / "held-espeak"
    fake.mkdir()
    script = fake / "espeak-ng"
    script.write_text(HELD_ESPEAK.replace("#!/usr/bin/env python3", "#!" + sys.executable))
    script.chmod(0o755)
    shared = tmp_path / "shared-data"
    env = {"REDIS_URL": redis_server.url, "OVERLAY_TOKEN": OVERLAY_TOKEN, "DATA_DIR": str(shared)}
    yaml = cluster_yaml(mode="server", espeak_path=str(script))
    a = engines(yaml, env=env)
    cache = shared / "plugins" / "tts" / "cache"

    answers = []
    thread = threading.Thread(target=lambda: answers.append(speak(a, text="rendered while another engine starts")))
    thread.start()
    assert wait_for(lambda: list(cache.glob("*.wav.tmp"))), "the render never started"
    b = engines(yaml, env=env)  # same data folder: its cache sees A's render in progress
    (fake / "release").write_text("")
    thread.join(timeout=60)
    assert answers and answers[0].status_code == 202, answers and answers[0].text
    answer = answers[0].json()
    assert answer["mode"] == "server"

    # B serves the file A rendered into the shared folder: no render of its own.
    with overlay(b, "on-b") as ws:
        assert next_speak(ws, answer["id"], timeout=10)["audio_url"] == answer["audio_url"]
    audio = requests.get(b.url + answer["audio_url"], params={"token": OVERLAY_TOKEN}, timeout=30)
    assert audio.status_code == 200 and parse_wav(audio.content)["seconds"] > 0.5
    assert metric(b, "onionrp_plugin_tts_renders_total") == 0
    assert metric(b, "onionrp_plugin_tts_remote_renders_total") == 0


def applied_everywhere(engine):
    """True once a change posted to `engine` comes back from Redis (a skip of an unknown id: 404, not 503)."""
    answer = requests.post(engine.url + "/api/tts/skip", headers=STREAMER, json={"id": "probe"}, timeout=30)
    return answer.status_code == 404


def test_an_engine_started_while_redis_was_down_gets_the_queue_once_it_is_back(engines, redis_server):
    """Regression: an engine whose request for the queue never reached Redis took the silence for "alone" and kept an
    empty queue after Redis came back (the other engine's messages then looked like a newcomer's)."""
    a, = start_cluster(engines, redis_server, count=1, mode="browser")
    queued = [spoken(a, text=f"queued before the outage {i}")["id"] for i in range(2)]
    redis_server.stop()
    b, = start_cluster(engines, redis_server, count=1, mode="browser")  # its request for the queue fails
    redis_server.start()
    assert wait_for(lambda: applied_everywhere(a) and applied_everywhere(b), timeout=60)
    queued.append(spoken(a, text="queued after the outage")["id"])
    assert wait_for(lambda: ids(queue_of(b)) == queued), (queue_of(b), queued)
    assert queue_of(b) == queue_of(a)
