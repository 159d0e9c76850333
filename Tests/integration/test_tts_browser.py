"""The overlay's TTS module in headless Chromium against the real engine: server-rendered speech plays through the
hidden <audio> element to its end, one utterance after the other, and the engine's queue follows the reports."""
import time
from pathlib import Path

import requests
from websockets.sync.client import connect

from test_tts import STREAMER, moderator_session, next_event, queue_until, tts_yaml

from browser import wait_for

ESPEAK = Path("/usr/bin/espeak-ng")
assert ESPEAK.exists(), "the TTS browser tests need espeak-ng (make test-deps)"






def tts_state(driver):
    return driver.execute_script("""
        const t = window.overlayTTS, a = document.getElementById('ov-tts-audio');
        return {connected: !!(window.overlayState && overlayState.connected), current: t ? t.current : null,
                queue: t ? t.queue : null, history: t ? t.history : [],
                audio: a ? {ended: a.ended, paused: a.paused, t: a.currentTime, duration: a.duration, hidden: a.hidden,
                            inStage: !!a.closest('#stage'), src: a.getAttribute('src') || ''} : null};
    """)


def kinds(state, id_):
    return [entry["kind"] for entry in state["history"] if entry.get("id") == id_]


def severe_logs(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_overlay(engine, driver, query):
    driver.get(engine.url + "/overlay?" + query)
    # Connected, and the module told the engine which voices it has (none, or a few, in headless Chromium).
    wait_for(lambda: (s := tts_state(driver))["connected"] and any(e["kind"] == "tts.capabilities" for e in s["history"]),
             message="the overlay connected and reported its voices")


def test_server_rendered_speech_plays_to_the_end_in_order_and_the_queue_empties(engines, driver):
    engine = engines(tts_yaml(mode="server"), env={"OVERLAY_TOKEN": "ov-secret"})
    session = moderator_session(engine)
    open_overlay(engine, driver, "overlay_id=tts-browser&token=ov-secret")
    with connect(engine.ws_url + f"/ws/moderator?session={session}") as moderator:
        next_event(moderator, "tts.queue")
        first = requests.post(engine.url + "/api/tts/speak", headers=STREAMER,
                              json={"text": "One. Testing the overlay speech.", "lang": "en-US", "rate": 1.6}).json()
        second = requests.post(engine.url + "/api/tts/speak", headers=STREAMER,
                               json={"text": "Два. Проверка.", "lang": "ru-RU", "rate": 1.6}).json()
        assert first["mode"] == second["mode"] == "server" and second["position"] == 1

        # The moderator sees the first one start, then the second, then an empty queue.
        queue_until(moderator, lambda q: q["current"] and q["current"]["id"] == first["id"] and q["current"]["state"] == "speaking",
                    timeout=10)
        queue_until(moderator, lambda q: q["current"] and q["current"]["id"] == second["id"], timeout=15)
        queue_until(moderator, lambda q: q["current"] is None and q["queue"] == [], timeout=15)

    assert requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()["current"] is None
    state = tts_state(driver)
    assert kinds(state, first["id"]) == ["tts.speak", "tts.started", "tts.finished"]
    assert kinds(state, second["id"]) == ["tts.speak", "tts.started", "tts.finished"]
    order = [(e["kind"], e["id"]) for e in state["history"] if e["kind"] in ("tts.started", "tts.finished")]
    assert order == [("tts.started", first["id"]), ("tts.finished", first["id"]),
                     ("tts.started", second["id"]), ("tts.finished", second["id"])], "utterances overlapped"
    audio = state["audio"]
    assert audio["ended"] is True and audio["duration"] > 0.3 and audio["t"] > 0.3, audio
    assert audio["hidden"] is True and audio["inStage"] is False
    assert audio["src"].startswith(second["audio_url"]) and "token=ov-secret" in audio["src"]
    assert driver.execute_script("return document.body.innerText.trim()") == ""

    # What the engine replays after a reconnect is not said twice: the page reports the outcome again.
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/js/overlay.js').then((overlay) => {
            overlay.handleMessage({type: 'tts.speak', id: arguments[0], text: 'One.', lang: 'en-US', audio_url: arguments[1]});
            done(true);
        });
    """, first["id"], first["audio_url"])
    again = wait_for(lambda: (s := tts_state(driver)) and kinds(s, first["id"]).count("tts.finished") == 2 and s,
                     message="the outcome reported again")
    assert kinds(again, first["id"]) == ["tts.speak", "tts.started", "tts.finished", "tts.finished"]
    assert again["current"] is None and again["audio"]["ended"] is True
    assert severe_logs(driver) == []


def test_auto_mode_renders_for_a_page_without_voices(engines, driver):
    """OBS browser sources often have no speechSynthesis voices; headless Chromium usually has none either."""
    engine = engines(tts_yaml(mode="auto"))
    open_overlay(engine, driver, "overlay_id=tts-auto")
    page_voices = driver.execute_script("return window.overlayTTS.voices")
    answer = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": "Auto mode.", "lang": "en-US"}).json()
    if not any("en" in voice.split("(")[-1].lower() for voice in page_voices):
        assert answer["mode"] == "server" and answer["audio_url"]
        wait_for(lambda: "tts.finished" in kinds(tts_state(driver), answer["id"]), timeout=15, message="the rendered audio ending")
        assert tts_state(driver)["audio"]["ended"] is True
    else:
        assert answer["mode"] == "browser"
    wait_for(lambda: requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()["current"] is None,
             timeout=15, message="the engine's queue emptying")
    assert severe_logs(driver) == []


def test_skip_and_clear_stop_the_page(engines, driver):
    engine = engines(tts_yaml(mode="server"))
    open_overlay(engine, driver, "overlay_id=tts-skip")
    long_text = "This is a long sentence that keeps going for a good while so that it can be skipped halfway through."
    first = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": long_text, "rate": 0.5}).json()
    second = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": long_text + " Again.", "rate": 0.5}).json()
    third = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": long_text + " Thrice.", "rate": 0.5}).json()
    wait_for(lambda: "tts.started" in kinds(tts_state(driver), first["id"]), message="the first one playing")
    assert requests.post(engine.url + "/api/tts/skip", headers=STREAMER).json() == {"skipped": first["id"]}
    state = wait_for(lambda: (s := tts_state(driver))["current"] == second["id"] and "tts.started" in kinds(s, second["id"]) and s,
                     message="the second one playing after the skip")
    assert "tts.finished" not in kinds(state, first["id"]) and "tts.failed" not in kinds(state, first["id"])

    assert requests.post(engine.url + "/api/tts/clear", headers=STREAMER).json() == {"cleared": 2}
    state = wait_for(lambda: (s := tts_state(driver))["current"] is None and s, message="silence after clear")
    assert state["queue"] == [] and state["audio"]["paused"] is True
    assert "tts.started" not in kinds(state, third["id"])
    time.sleep(0.3)
    assert tts_state(driver)["current"] is None
    assert severe_logs(driver) == []


def test_browser_voices_are_used_or_the_failure_is_reported(engines, driver):
    """mode: browser. Headless Chromium may have no voices: then the page reports tts.failed, and the queue moves on."""
    engine = engines(tts_yaml(mode="browser"))
    open_overlay(engine, driver, "overlay_id=tts-voices")
    answer = requests.post(engine.url + "/api/tts/speak", headers=STREAMER, json={"text": "hello", "lang": "en-US"}).json()
    assert answer["mode"] == "browser"
    state = wait_for(lambda: (s := tts_state(driver)) and ({"tts.finished", "tts.failed"} & set(kinds(s, answer["id"]))) and s,
                     timeout=20, message="the page finishing or failing the utterance")
    wait_for(lambda: requests.get(engine.url + "/api/tts/queue", headers=STREAMER).json()["current"] is None,
             message="the engine's queue emptying")
    failed = [e for e in state["history"] if e["kind"] == "tts.failed"]
    if failed:
        assert failed[0]["reason"] in ("no_voices", "no_voice") or failed[0]["reason"].startswith("speech_"), failed
    assert severe_logs(driver) == []
