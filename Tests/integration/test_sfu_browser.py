"""Media through a real Janus: headless Chromium with a fake camera publishes on /publish, three /preview viewers receive
it through the SFU, the publisher's upload stays that of one stream; a late viewer, a keyframe request, a viewer's
bitrate cap (simulcast layer), the publisher leaving and coming back. The same figures in p2p mode for comparison.
Figures (upload, time to first frame, Janus CPU per viewer) go to test-artifacts/sfu-figures.json and the output.

Slow (two browsers' worth of video on a small machine): `make test-sfu`, not `make test`."""
import json
import time

import pytest
import requests

from browser import wait_for
from conftest import ROOT, plugin_config
from janus import JanusServer, janus_available, sfu_config

pytestmark = pytest.mark.skipif(not janus_available(), reason="needs Debian's janus package (make test-deps)")

ARTIFACTS = ROOT / "test-artifacts"
STREAMER = {"x-streamer-token": "streamer-secret"}
ROOM = "sfu-cam"
PRESET = "720p"  # simulcast (three layers) needs 540 lines or more
SETTLE_SECONDS = 20  # the senders' bandwidth estimate ramps up (p2p: from 300 kbit/s) before the upload is read
CHROME = {"args": ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-timer-throttling",
                   "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"),
          "width": 960, "height": 540}
LIMITS = ("limits:\n  rate:\n    webrtc.token: {burst: 100, per_minute: 1000}\n"
          "    webrtc.viewer-token: {burst: 100, per_minute: 1000}\n    webrtc.connect: {burst: 100, per_minute: 1000}\n")


@pytest.fixture
def janus():
    server = JanusServer().start()
    yield server
    server.cleanup()


def issue(engine, role):
    answer = requests.post(engine.url + "/api/webrtc/token", headers=STREAMER, data={"room": ROOM, "role": role, "ttl": 600})
    assert answer.status_code == 201, answer.text
    return answer.json()["url"]


def video(driver):
    return driver.execute_script("""
        const v = document.querySelector("video.ov-webrtc-preview");
        if (!v) return null;
        const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: -1};
        return {width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames};
    """)


def frames_advance(driver, seconds=1.0):
    first = (video(driver) or {}).get("frames", 0)
    time.sleep(seconds)
    return (video(driver) or {}).get("frames", 0) > first > 0


def open_viewer(driver, engine, url):
    """A new window on the viewer link; the seconds until its first decoded frame."""
    driver.switch_to.new_window("window")
    opened = time.monotonic()
    driver.get(engine.url + url)
    wait_for(lambda: (v := video(driver)) and v["width"] > 0 and v["frames"] > 0, timeout=30, interval=0.02,
             message="the first decoded frame")
    return driver.current_window_handle, time.monotonic() - opened


def upload_kbps(driver, window, samples=4):
    """The publisher's upload (sum of its video outbound-rtp bitrates, every layer and connection), from the page's
    own 2 s metrics: the mean of `samples` consecutive ones."""
    driver.switch_to.window(window)
    values = []
    last = None
    while len(values) < samples:
        current = driver.execute_script("return publisherState.lastMetrics")
        if current and current is not last and current != last:
            if last is not None:
                values.append(current.get("bitrate_kbps") or 0)
            last = current
        time.sleep(0.25)
    return round(sum(values) / len(values))


def run_session(driver, engine, janus=None):
    """Publisher + one viewer, then three; returns the figures and the window handles."""
    figures = {}
    driver.get(engine.url + issue(engine, "publisher") + f"&preset={PRESET}&audio=0")
    publisher = driver.current_window_handle
    wait_for(lambda: driver.execute_script("return window.publisherState && publisherState.socket === 'open' "
                                           "&& publisherState.preset === arguments[0]", PRESET), timeout=15,
             message="the publisher live with its preset")
    viewer_url = issue(engine, "viewer")
    first, figures["first_frame_s"] = open_viewer(driver, engine, viewer_url)
    time.sleep(SETTLE_SECONDS)
    cpu = janus.cpu_seconds() if janus else None
    started = time.monotonic()
    figures["upload_1_viewer_kbps"] = upload_kbps(driver, publisher)
    if janus:
        figures["janus_cpu_1_viewer_pct"] = round(100 * (janus.cpu_seconds() - cpu) / (time.monotonic() - started), 1)
    viewers = [first]
    late = []
    for _ in range(2):
        window, seconds = open_viewer(driver, engine, viewer_url)
        viewers.append(window)
        late.append(round(seconds, 2))
    figures["late_viewer_first_frame_s"] = late
    time.sleep(SETTLE_SECONDS)
    cpu = janus.cpu_seconds() if janus else None
    started = time.monotonic()
    figures["upload_3_viewers_kbps"] = upload_kbps(driver, publisher)
    if janus:
        figures["janus_cpu_3_viewers_pct"] = round(100 * (janus.cpu_seconds() - cpu) / (time.monotonic() - started), 1)
    for window in viewers:
        driver.switch_to.window(window)
        assert wait_for(lambda: frames_advance(driver, 0.5), timeout=10, message="frames advancing in every viewer")
    figures["first_frame_s"] = round(figures["first_frame_s"], 2)
    return figures, publisher, viewers


def record(mode, figures):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "sfu-figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[mode] = figures
    path.write_text(json.dumps(data, indent=2))
    print(f"\n{mode} figures (preset {PRESET}): {json.dumps(figures)}")


def stats(engine):
    return requests.get(engine.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER).json()


def test_three_viewers_through_janus_cost_the_publisher_one_stream(engines, janus, driver):
    engine = engines(LIMITS + plugin_config({"name": "webrtc-signaling", "config": sfu_config(janus)}))
    figures, publisher, viewers = run_session(driver, engine, janus)

    # One connection on the publisher's side, to the media server, for three viewers.
    driver.switch_to.window(publisher)
    assert driver.execute_script("return publisherState.mode") == "sfu"
    assert len(driver.execute_script("return publisherState.viewers")) == 3
    assert driver.execute_script("return publisherState.lastMetrics.peers.map(p => p.viewer_id)") == ["sfu"]
    # ...and at most one stream's worth of bits: the preset's bitrate over its three simulcast layers (1 + 1/3 + 1/8 of
    # it, what /publish asks the encoder for), where three p2p connections could take three times the preset.
    one_stream_kbps = 2500 * (1 + 1 / 3 + 1 / 8)
    assert figures["upload_3_viewers_kbps"] <= 1.1 * one_stream_kbps, figures

    # The metrics matrix: the browsers' figures plus what Janus reports.
    def complete():
        room = stats(engine)
        janus_side = room.get("janus") or {}
        publisher_id = (room.get("publisher") or {}).get("id")
        seen = janus_side.get("peers", {}).get(publisher_id, {})
        viewers_ok = all((v.get("latest") or {}).get("fps", 0) > 0 for v in room["viewers"])
        return (janus_side.get("subscriptions_up") == 3 and janus_side.get("publisher_up") and (seen.get("in_kbps") or 0) > 0
                and viewers_ok and room) or None
    room = wait_for(complete, timeout=20, interval=0.5, message="stats with three subscriptions up and Janus's figures")
    assert room["mode"] == "sfu" and room["summary"]["viewer_fps_avg"] > 0
    viewer_ids = [v["id"] for v in room["viewers"]]
    assert any((room["janus"]["peers"].get(v) or {}).get("out_kbps", 0) > 0 for v in viewer_ids), room["janus"]
    figures["janus_publisher_in_kbps"] = round(room["janus"]["peers"][room["publisher"]["id"]]["in_kbps"])

    # A keyframe request with the connection up: Janus asks the publisher for one (no new connection).
    driver.switch_to.window(viewers[0])
    before = driver.execute_script("return window.overlayWebRTC.preview.pcId")
    driver.execute_script("window.overlayWebRTC.preview.requestKeyframe('test', true)")
    wait_for(lambda: stats(engine)["janus"]["keyframe_requests"] >= 1, timeout=10, message="the keyframe request at Janus")
    assert driver.execute_script("return window.overlayWebRTC.preview.pcId") == before
    assert wait_for(lambda: frames_advance(driver, 0.5), timeout=10, message="frames after the keyframe request")

    # A viewer's bitrate cap: the SFU forwards it the smallest simulcast layer.
    driver.switch_to.window(viewers[2])
    full = video(driver)["width"]
    driver.execute_script("window.overlayWebRTC.preview.setMaxBitrate(100)")
    wait_for(lambda: 0 < video(driver)["width"] <= full // 3, timeout=20, interval=0.25, message="a smaller layer for the capped viewer")
    driver.switch_to.window(viewers[1])
    assert video(driver)["width"] == full  # the others keep the full layer

    # The publisher leaves (Stop) and comes back (Start): every viewer gets a picture again.
    driver.switch_to.window(publisher)
    driver.find_element("id", "toggle-live").click()
    for window in viewers:
        driver.switch_to.window(window)
        wait_for(lambda: driver.execute_script("return window.overlayWebRTC.preview.state") == "waiting", timeout=10,
                 message="the viewer waiting for a publisher")
    driver.switch_to.window(publisher)
    back = time.monotonic()
    driver.find_element("id", "toggle-live").click()
    for window in viewers:
        driver.switch_to.window(window)
        wait_for(lambda: driver.execute_script("return window.overlayWebRTC.preview.state") == "playing"
                 and frames_advance(driver, 0.3), timeout=30, message="the viewer playing again")
    figures["publisher_return_all_playing_s"] = round(time.monotonic() - back, 2)
    figures["cpu_per_viewer_note"] = "janus_cpu_*_pct: percent of one core over the upload window"
    record("sfu", figures)
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def test_p2p_figures_for_comparison(engines, driver):
    engine = engines(LIMITS + plugin_config({"name": "webrtc-signaling", "config": {}}))
    figures, publisher, _ = run_session(driver, engine)
    driver.switch_to.window(publisher)
    assert driver.execute_script("return publisherState.mode") == "p2p"
    assert len(driver.execute_script("return publisherState.lastMetrics.peers")) == 3
    record("p2p", figures)


def test_a_viewer_on_another_engine_subscribes_to_the_publication_at_janus(tmp_path, janus, driver):
    """Two engines sharing a store and one Janus: the publisher publishes through engine A; a viewer on engine B finds
    that publication at Janus (listparticipants, by the publisher's peer id) and subscribes through B."""
    from cluster import Cluster
    from test_webrtc_cluster import cluster_config, token
    cluster = Cluster(tmp_path, size=2, config=cluster_config(**sfu_config(janus)))
    try:
        a, b = cluster.engines
        driver.get(a.url + token(a, "publisher", room=ROOM)["url"] + "&audio=0")
        publisher = driver.current_window_handle
        wait_for(lambda: driver.execute_script("return window.publisherState && publisherState.socket === 'open' "
                                               "&& publisherState.live"), timeout=20, message="the publisher live on A")
        driver.switch_to.new_window("window")
        opened = time.monotonic()
        driver.get(b.url + token(b, "viewer", room=ROOM)["url"])
        wait_for(lambda: (v := video(driver)) and v["width"] > 0 and v["frames"] > 0, timeout=30, message="a frame on B")
        seconds = time.monotonic() - opened
        assert wait_for(lambda: frames_advance(driver, 0.5), timeout=10, message="frames advancing on B")
        on_b = requests.get(b.url + f"/api/webrtc/rooms/{ROOM}/stats", headers=STREAMER).json()["janus"]
        assert on_b["subscriptions"] == 1 and on_b.get("feed") is None  # the publication is A's
        driver.switch_to.window(publisher)
        # Its metrics come every 2 s: the first may not have been sent yet.
        wait_for(lambda: driver.execute_script("return publisherState.lastMetrics && publisherState.lastMetrics.peers"
                                               ".map(p => p.viewer_id).join()") == "sfu", timeout=10,
                 message="one connection (to Janus) in the publisher's metrics")
        print(f"\nsfu across engines: first frame on B {seconds:.2f}s after opening")
    finally:
        cluster.stop()
