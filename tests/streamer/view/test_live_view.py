"""The live view of a real ``streamer serve``, watched by a real headless Chromium
(Debian's chromium and chromium-driver, driven by selenium): the video plays at the
configured size, the overlay is on it, a camera that goes down shows so and plays again
when it is back, without a reload; a closed tab leaves no peer connection. The MJPEG and
snapshot endpoints are decoded with PyAV and OpenCV."""

from __future__ import annotations

import json
import time

import av
import cv2
import numpy as np
import pytest
import requests
from helpers import free_port, wait_for
from serving import Serve, metric_samples, write_dets

from streamer.testing.browser import browser_available, chromium, playback, wait_playing

BLACK = "lavfi:color=c=black:s=1280x720:r=25"
TOKEN = "s3cret-view"

needs_browser = pytest.mark.skipif(browser_available() is not None, reason=str(browser_available()))


def _config(tmp_path, sources, **view) -> str:
    path = tmp_path / "serve.yaml"
    path.write_text(json.dumps({
        "detector": {"name": "mot", "detections": str(write_dets(tmp_path / "dets.txt"))},
        "tracker": {"name": "sort"},
        "sources": sources,
        # a vertical line at x=640 of 1280 (480 of the 960 px view), from the top to the bottom
        "analytics": {"lines": [{"name": "door", "points": [[640, 0], [640, 720]]}]},
        "view": view,
    }))
    return str(path)


def _metric(serve: Serve, name: str) -> float:
    """The first sample of ``name`` in ``/metrics``."""
    samples = metric_samples(serve.api("GET", "/metrics").text)
    return next(value for (sample, _), value in samples.items() if sample == name)


def _magenta(png: bytes, x: float, y: float, span: int = 4) -> bool:
    """Whether the screenshot has the line's colour (255, 0, 255, give or take what H.264's
    4:2:0 does to a 2 px line) within ``span`` pixels of (x, y)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(int)
    patch = image[int(y) - 1:int(y) + 2, int(x) - span:int(x) + span + 1].reshape(-1, 3)
    return bool(((patch[:, 0] > 120) & (patch[:, 2] > 120) & (patch[:, 1] < 90)).any())


@needs_browser
def test_the_page_plays_each_stream_with_its_overlay_and_a_closed_tab_is_cleaned_up(tmp_path):
    serve = Serve(tmp_path, "--config", _config(tmp_path, [{"id": "cam", "uri": BLACK}]), token=TOKEN)
    driver = chromium()
    try:
        driver.get(f"{serve.url}/#token={TOKEN}")
        wait_playing(driver, "cam")
        first = playback(driver, "cam")
        time.sleep(5)
        later = playback(driver, "cam")
        assert (later["width"], later["height"]) == (960, 540)  # view.max_width of a 1280x720 camera
        rate = (later["frames"] - first["frames"]) / (later["now"] - first["now"])
        assert 10 <= rate <= 16, rate  # view.fps 15 of the camera's 25
        assert later["state"] == "up"
        assert _metric(serve, "streamer_view_peers") == 1
        assert _metric(serve, "streamer_view_viewers") == 1  # first sample: cam, webrtc

        video = driver.find_element("css selector", '.tile[data-stream="cam"] video')
        png = video.screenshot_as_png
        w, h = video.size["width"], video.size["height"]
        scale = min(w / 960, h / 540)
        left, top = (w - 960 * scale) / 2, (h - 540 * scale) / 2  # object-fit: contain
        assert _magenta(png, left + 480 * scale, top + 60 * scale)  # the line, drawn by the MP4's annotator
        assert not _magenta(png, left + 200 * scale, top + 60 * scale)  # black elsewhere
        counts = driver.find_element("css selector", '.tile[data-stream="cam"] .counts li[data-name="door"]')
        assert counts.text == "door: in 0, out 0"

        driver.get("about:blank")  # the tab leaves the page: it hangs up as it goes
        wait_for(lambda: _metric(serve, "streamer_view_peers") == 0, 5, "the peer connection closed")
        driver.get(f"{serve.url}/")  # the token stays for the tab's session
        wait_playing(driver, "cam")
        assert _metric(serve, "streamer_view_peers") == 1
    finally:
        driver.quit()  # the browser is gone without a word: ICE consent (30 s) ends its connection
    wait_for(lambda: _metric(serve, "streamer_view_peers") == 0, 45, "the dead browser's connection closed")
    assert _metric(serve, "streamer_view_peers_closed_total") == 2
    assert _metric(serve, "streamer_view_viewers") == 0
    assert serve.stop()[0] == 0


@needs_browser
def test_a_camera_that_goes_down_shows_so_and_plays_again_without_a_reload(tmp_path, rtsp_server):
    server = rtsp_server(["cam"])
    sources = [{"id": "cam", "uri": server.url("cam"), "timeout": 2,
                "reconnect": {"initial": 0.2, "max": 0.5}}]
    serve = Serve(tmp_path, "--config", _config(tmp_path, sources, max_width=160))
    driver = chromium()
    try:
        driver.get(serve.url + "/")
        wait_playing(driver, "cam")
        assert playback(driver, "cam")["width"] == 160  # the 320x240 camera at view.max_width
        server.stop(kill=True)
        killed = time.monotonic()
        wait_for(lambda: playback(driver, "cam")["state"] == "down", 2 + 1.5, "down in the tile")
        shown = time.monotonic() - killed
        assert shown <= 2 + 1, f"down shown {shown:.1f}s after the camera went (timeout 2 s)"
        reason = driver.find_element("css selector", '.tile[data-stream="cam"] .reason').text
        assert reason, "the tile says why it is down"
        down = playback(driver, "cam")
        time.sleep(2.5)
        assert playback(driver, "cam")["frames"] > down["frames"]  # a still says so, once a second
        video = driver.find_element("css selector", '.tile[data-stream="cam"] video')
        still = cv2.imdecode(np.frombuffer(video.screenshot_as_png, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert abs(np.median(still) - 48) <= 6  # the still's grey, not the camera's last picture
        server.start()
        wait_for(lambda: playback(driver, "cam")["state"] == "up", 20, "up again")
        before = playback(driver, "cam")
        time.sleep(3)
        after = playback(driver, "cam")
        rate = (after["frames"] - before["frames"]) / (after["now"] - before["now"])
        assert rate >= 8, f"{rate:.1f} frames/s after the camera came back"  # live again, not the 1/s still
    finally:
        driver.quit()
    assert serve.stop()[0] == 0


def test_snapshot_and_mjpeg_for_tools_without_webrtc(tmp_path):
    serve = Serve(tmp_path, "--config", _config(tmp_path, [{"id": "cam", "uri": BLACK}], max_width=640, fps=10),
                  token=TOKEN)
    serve.wait_state("up", ["cam"])
    assert requests.get(f"{serve.url}/api/streams/cam/snapshot.jpg", timeout=10).status_code == 401
    response = requests.get(f"{serve.url}/api/streams/cam/snapshot.jpg?token={TOKEN}", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-stream-state"] == "up"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert image.shape == (360, 640, 3)
    assert image[30, 318:323, 0].max() > 200 and image[30, 318:323, 2].max() > 200  # the line at x=320
    assert serve.api("GET", "/api/streams/nope/snapshot.jpg").status_code == 404
    assert requests.get(f"{serve.url}/api/streams?token={TOKEN}", timeout=10).status_code == 401  # media only

    with av.open(f"{serve.url}/api/streams/cam/mjpeg?token={TOKEN}", format="mpjpeg", timeout=10) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == 20:
                break
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    wait_for(lambda: _metric(serve, "streamer_view_frames_total") >= 20, 5, "frames counted")

    answer = serve.api("POST", "/api/streams/cam/webrtc", "not sdp", headers={"Content-Type": "application/sdp"})
    assert answer.status_code == 422 and "SDP" in answer.json()["error"]
    no_video = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    answer = serve.api("POST", "/api/streams/cam/webrtc", no_video, headers={"Content-Type": "application/sdp"})
    assert answer.status_code == 422 and "no video" in answer.json()["error"]
    assert serve.api("POST", "/api/streams/nope/webrtc", no_video).status_code == 404
    assert serve.api("POST", "/api/streams/cam/webrtc", no_video, token=None).status_code == 401
    assert serve.api("DELETE", "/api/streams/cam/webrtc/unknown").status_code == 404
    page = requests.get(serve.url + "/", timeout=10)
    assert page.status_code == 200 and "<video" in page.text and "http" not in page.text.split("<body>")[1]  # no CDN
    assert requests.get(serve.url + "/view/view.js", timeout=10).status_code == 200
    assert requests.get(serve.url + "/view/../core.py", timeout=10).status_code == 404
    watching = requests.get(f"{serve.url}/api/streams/cam/mjpeg?token={TOKEN}", stream=True, timeout=10)
    assert watching.status_code == 200  # an MJPEG viewer still watching when SIGTERM comes
    rc, _, err = serve.stop()
    assert rc == 0 and "Traceback" not in err, err  # its response ended, not cancelled
    watching.close()


def test_a_camera_down_from_the_start_shows_down_not_connecting(tmp_path):
    port = free_port()  # nothing listens there
    sources = [{"id": "cam", "uri": f"rtsp://127.0.0.1:{port}/cam", "timeout": 1}]
    serve = Serve(tmp_path, "--config", _config(tmp_path, sources))

    def state() -> str:
        return requests.get(f"{serve.url}/api/streams/cam/snapshot.jpg", timeout=10).headers["x-stream-state"]

    wait_for(lambda: state() == "down", 10, "the still saying down")
    assert serve.streams()["cam"]["state"] == "down"
    assert serve.stop()[0] == 0
