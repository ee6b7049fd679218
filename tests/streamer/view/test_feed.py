"""The live view's feed, without a browser: what it draws (the MP4's annotator), its size
and rate, H.264 decoded back by PyAV, JPEG by OpenCV, the down still, the renderer that
runs only while someone watches, and a viewer that falls behind."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
from helpers import wait_for

from sinks.annotate import LINE_COLOR, ZONE_COLOR, Overlay, draw
from streamer.config import AnalyticsConfig, ViewConfig
from streamer.types import Detections, Event, Frame, SourceStatus
from streamer.view import webrtc
from streamer.view.feed import ViewHub, ViewSink, output_size

ANALYTICS = AnalyticsConfig.model_validate({
    "lines": [{"name": "door", "points": [[640, 0], [640, 720]]}],
    "zones": [{"name": "desk", "points": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4], [0.1, 0.4]], "normalized": True}],
})


def _frame(i: int, size=(720, 1280)) -> Frame:
    return Frame("cam", i, Fraction(i, 25), np.zeros((*size, 3), np.uint8), captured_at=time.time())


def _tracks(x: float, tid: int = 7) -> Detections:
    return Detections([[x, 300, x + 60, 420]], [0.9], [0], [tid])


def _event(kind: str, **data) -> Event:
    return Event(id=f"e{kind}", type=kind, source_id="cam", frame=0, pts=0.0, wall_time=None, track_id=7, data=data)


def _near(pixels: np.ndarray, color, tolerance: int = 30) -> bool:
    return bool((np.abs(pixels.astype(int) - color).max(axis=-1) <= tolerance).any())


def _feed(**view):
    hub = ViewHub(ViewConfig(**view), lambda: {0: "person"})
    sink = ViewSink(hub.feed("cam"), ANALYTICS, trail=30)
    sink.open()
    return hub.feed("cam"), sink


def test_output_size_keeps_the_aspect_and_even_sides():
    assert output_size(720, 1280, 960) == (540, 960)
    assert output_size(240, 320, 960) == (240, 320)  # never scaled up
    assert output_size(1080, 1920, 641) == (360, 640)
    assert output_size(481, 641, 2000) == (480, 640)


def test_overlay_counts_lines_and_zones_from_events():
    overlay = Overlay(ANALYTICS, trail=5)
    overlay.update((720, 1280), _tracks(600), [_event("line_crossed", line="door", direction="in"),
                                               _event("zone_entered", zone="desk")])
    overlay.update((720, 1280), _tracks(610), [_event("line_crossed", line="door", direction="out"),
                                               _event("line_crossed", line="door", direction="in")])
    scene = overlay.scene()
    assert scene.counts() == {"door": {"in": 2, "out": 1}, "desk": {"inside": 1}}
    assert [(tid, pts.tolist()) for tid, pts in scene.trails] == [(7, [[630, 420], [640, 420]])]
    assert scene.zones[0][1].tolist() == [[128, 72], [384, 72], [384, 288], [128, 288]]  # placed in pixels
    overlay.update((0, 0), None, [_event("zone_exited", zone="desk")])
    assert overlay.scene().counts()["desk"] == {"inside": 0}
    overlay.update((720, 1280), _tracks(620, tid=8), [])
    assert [tid for tid, _ in overlay.scene().trails] == []  # track 7 gone: its trail too; 8 has one point


def test_draw_puts_lines_zones_and_trails_on_the_frame():
    overlay = Overlay(ANALYTICS)
    for i in range(3):
        overlay.update((720, 1280), _tracks(100 + 20 * i), [])
    image = draw(np.zeros((720, 1280, 3), np.uint8), _tracks(140), {0: "person"}, overlay.scene())
    assert tuple(image[100, 640]) == LINE_COLOR
    assert tuple(image[200, 128]) == ZONE_COLOR
    assert image[420, 140:160].any()  # the trail at the anchors (bottom centre) of earlier boxes


def test_snapshot_is_drawn_at_the_view_size_and_a_still_while_down():
    feed, sink = _feed(max_width=640)
    assert feed.snapshot()[1] == "connecting"  # nothing came yet
    sink.write(_frame(0), _tracks(100), [])
    image, state = feed.snapshot()
    assert state == "up" and image.shape == (360, 640, 3)
    assert _near(image[50, 316:324], LINE_COLOR)  # x=640 of 1280 at half size
    sink.source_changed(SourceStatus("cam", "down", 1, Fraction(0), time.time(), reason="read timeout"))
    still, state = feed.snapshot()
    assert state == "down" and still.shape == (360, 640, 3)
    assert not (still == LINE_COLOR).all(axis=2).any()  # not the frozen picture: a still saying so
    assert np.median(still) == 48


def _collect(feed, kind: str, seconds: float) -> list:
    got: list = []
    sub = feed.subscribe(kind, got.append)
    time.sleep(seconds)
    feed.unsubscribe(sub)
    return got


def _produce(sink, stop: threading.Event, fps: float = 25.0) -> None:
    i = 0
    while not stop.is_set():
        sink.write(_frame(i), _tracks(100 + i % 500), [])
        i += 1
        time.sleep(1 / fps)


def test_viewers_get_the_configured_size_and_rate_and_the_renderer_runs_only_while_watched():
    feed, sink = _feed(max_width=480, fps=10)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(sink, stop), daemon=True)
    producer.start()
    try:
        time.sleep(0.3)
        assert not any(t.name == "view-cam" for t in threading.enumerate())  # nobody watches: no work
        jpegs = _collect(feed, "jpeg", 2.0)
        packets = _collect(feed, "h264", 2.0)
    finally:
        stop.set()
        producer.join()
    wait_for(lambda: not any(t.name == "view-cam" for t in threading.enumerate()), 3, "the renderer to end")
    assert 17 <= len(jpegs) <= 22  # 10 frames/s for 2 s (of 25 offered)
    image = cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (270, 480, 3)
    assert packets[0].is_keyframe  # a new viewer starts at a keyframe
    codec = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in codec.decode(p)]
    assert 17 <= len(frames) <= 22 and (frames[0].width, frames[0].height) == (480, 270)
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and 0.05 < (pts[-1] - pts[0]) / 90000 / (len(pts) - 1) < 0.15  # 90 kHz, ~0.1 s apart
    assert feed.latency.n == feed.rendered


def test_a_viewer_that_falls_behind_skips_to_a_keyframe_and_never_holds_more_than_its_queue():
    feed, sink = _feed(max_width=320, fps=30)

    async def main() -> tuple[int, int, bool]:
        track = webrtc.PacketTrack(feed, asyncio.get_running_loop())
        stop = threading.Event()
        producer = threading.Thread(target=_produce, args=(sink, stop, 60.0), daemon=True)
        producer.start()
        most = 0
        for _ in range(40):  # nobody reads this track (a stalled sender) for 4 s
            await asyncio.sleep(0.1)
            most = max(most, len(track._queue))
        first = await asyncio.wait_for(track.recv(), 5)
        stop.set()
        producer.join()
        track.stop()
        return most, track.skipped, first.is_keyframe

    most, skipped, keyframe = asyncio.run(main())
    assert most <= webrtc._QUEUE and skipped > 30 and keyframe
    assert feed.viewers() == 0
