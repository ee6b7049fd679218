"""The runner: decode thread -> ring buffer -> inference thread -> tracking, events, sinks.

Threads and hand-offs:

- the decode thread pulls frames from the source through the sampler into the ring
  buffer (``block`` for files: lossless);
- the inference thread takes up to ``detector.batch`` frames (waiting at most
  ``max_wait_ms`` to fill a batch), runs one batched detection on those marked for it
  and passes every frame on, in order, through a bounded queue;
- the calling thread tracks (``update`` on detected frames, ``predict`` in between),
  raises events and writes the sinks (slow sinks encode on their own threads).

Any worker error stops the pipeline; every sink is closed (outputs stay valid files)
and the error is raised in the caller. A source problem found at the end of decoding
(corrupt packets, truncation) is raised after every readable frame was processed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

from streamer.analytics import Analytics
from streamer.buffer import Closed, RingBuffer
from streamer.config import Config
from streamer.errors import ConfigError, StreamerError
from streamer.metrics import StageTimes
from streamer.registry import DETECTORS, SINKS, create_tracker, resolve
from streamer.sampling import Sampler
from streamer.sources import open_source
from streamer.urls import redact
from streamer.types import Frame

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "Summary", "build_detector", "build_tracker"]

_END = object()


@dataclass
class Summary:
    """What a run did."""

    source: str
    frames: int = 0
    detected: int = 0
    seconds: float = 0.0
    tracks: int = 0
    events: int = 0
    dropped: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def build_detector(config: Config):
    """The detector the config names."""
    d = config.detector
    cls = resolve(DETECTORS, "detector", d.name)
    if d.name == "mot":
        return cls(d.detections, conf=d.conf if "conf" in d.model_fields_set else 0.0)
    return cls(
        weights=d.weights, imgsz=d.imgsz, conf=d.conf, iou=d.iou, classes=d.classes,
        max_det=d.max_det, device=d.device, half=d.half, rect=d.rect, threads=d.threads,
    )


def build_tracker(config: Config, fps: Fraction):
    """The tracker the config names, with its params checked against its constructor."""
    t = config.tracker
    params = dict(t.params)
    if t.name != "sort":
        params.setdefault("frame_rate", float(fps))
    try:
        return create_tracker(t.name, **params)
    except TypeError as exc:
        raise ConfigError(f"tracker.params: {exc} (see the tracker's arguments in the README)") from None
    except ValueError as exc:
        raise ConfigError(f"tracker.params: {exc}") from None


def _check_class_names(config: Config, names: dict[int, str]) -> None:
    """Class names in the analytics config must be the detector's."""
    known = set(names.values())
    for kind, items in (("lines", config.analytics.lines), ("zones", config.analytics.zones)):
        for i, item in enumerate(items):
            for name in item.classes or []:
                if name not in known:
                    shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                    raise ConfigError(
                        f"analytics.{kind}[{i}].classes: unknown class {name!r}; the detector's classes are {shown}"
                    )


class Pipeline:
    """Processes one source end to end.

    Args:
        config: The job.
        detector: A ready detector (default: built from the config).
        progress: Called after each processed frame with ``(frames_done, total)``.
    """

    def __init__(
        self,
        config: Config,
        detector: Any = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.config = config
        self.source = open_source(config.source.uri or "", config.source.id, config.source.fps)
        self.sampler = Sampler(config.sampler.every, config.sampler.target_fps, config.sampler.detect_every)
        self.fps = self.sampler.output_fps(self.source.fps)
        # The tracker first: its parameters are checked before a model is loaded.
        self.tracker = build_tracker(config, self.fps)
        self.detector = detector if detector is not None else build_detector(config)
        # Tracks end when the tracker drops them, unless a fixed horizon is configured.
        self._end_by_tracker = config.output.track_end_frames is None
        _check_class_names(config, self.detector.names)
        self.events = Analytics(
            self.source.id, self.detector.names, config.analytics, self.source.size,
            config.output.track_end_frames or 30,
        )
        self.buffer: RingBuffer[Frame] = RingBuffer(config.buffer.size, config.buffer.policy)
        self.times = StageTimes()
        self.progress = progress
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._source_error: BaseException | None = None

    def expected_frames(self) -> int | None:
        """Frames that will be processed, when the source's length is known."""
        total = self.source.total_frames
        if not total:
            return None
        if self.sampler.period is None:
            return -(-total // self.sampler.every)
        return None

    def _sinks(self) -> list[tuple[str, Any]]:
        out = self.config.output
        sinks = []
        if out.video:
            sinks.append(("video", resolve(SINKS, "sink", "video")(out.video, self.fps, self.detector.names, crf=out.crf)))
        if out.events == "-":
            sinks.append(("events", resolve(SINKS, "sink", "stdout")()))
        elif out.events:
            sinks.append(("events", resolve(SINKS, "sink", "jsonl")(out.events)))
        if out.mot:
            sinks.append(("mot", resolve(SINKS, "sink", "mot")(out.mot)))
        for i, c in enumerate(out.event_sinks):
            label = c.name or c.type
            if c.type == "jsonl":
                sinks.append((f"jsonl[{i}]", resolve(SINKS, "sink", "jsonl")(c.path, c.max_bytes, c.backups)))
            elif c.type == "stdout":
                sinks.append(("stdout", resolve(SINKS, "sink", "stdout")()))
            else:
                options: dict[str, Any] = {"timeout": c.timeout}
                if c.type == "mqtt":
                    options.update(topic=c.topic, qos=c.qos)
                elif c.type == "redis":
                    options.update(stream=c.stream, maxlen=c.maxlen)
                else:
                    options.update(headers=c.headers)
                sink = resolve(SINKS, "sink", "delivery")(
                    c.type, c.url, Path(out.outbox) / f"{label}.sqlite3", batch=c.batch,
                    drain_timeout=c.drain_timeout, **options,
                )
                sinks.append((label, sink))
        return sinks

    def _decode(self) -> None:
        it = self.source.frames(self.sampler, self._stop)
        try:
            while True:
                start = time.perf_counter()
                try:
                    frame = next(it)
                except StopIteration:
                    break
                self.times.add("decode", time.perf_counter() - start)
                while not self.buffer.put(frame, timeout=0.1):
                    if self._stop.is_set() or self.buffer.closed:
                        return
        except StreamerError as exc:
            self._source_error = exc
        except BaseException as exc:
            self._errors.append(exc)
            self._stop.set()
        finally:
            self.buffer.close()

    def _infer(self, out: "queue.Queue[Any]") -> None:
        cfg = self.config.detector
        try:
            while not self._stop.is_set():
                try:
                    batch = self.buffer.get_many(cfg.batch, cfg.max_wait_ms / 1000.0)
                except Closed:
                    break
                todo = [f for f in batch if f.detect]
                start = time.perf_counter()
                results = self.detector(todo) if todo else []
                if todo:
                    self.times.add("detect", time.perf_counter() - start, len(todo))
                found = iter(results)
                for frame in batch:
                    item = (frame, next(found) if frame.detect else None)
                    while not self._stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:
            self._errors.append(exc)
            self._stop.set()
        finally:
            with contextlib.suppress(queue.Full):
                out.put(_END, timeout=1.0)

    def run(self) -> Summary:
        """Process the whole source; returns the summary or raises the first error."""
        summary = Summary(source=self.source.label)
        handoff: queue.Queue[Any] = queue.Queue(maxsize=2 * self.config.detector.batch + 2)
        workers = [
            threading.Thread(target=self._decode, name="decode", daemon=True),
            threading.Thread(target=self._infer, args=(handoff,), name="inference", daemon=True),
        ]
        total = self.expected_frames()
        start = time.perf_counter()
        track_ids: set[int] = set()
        since_detect = 0
        with contextlib.ExitStack() as stack:
            sinks = [(name, stack.enter_context(sink)) for name, sink in self._sinks()]
            stack.callback(self._shutdown, workers)
            for w in workers:
                w.start()
            while True:
                item = handoff.get()
                if item is _END:
                    break
                frame, dets = item
                t0 = time.perf_counter()
                since_detect += 1
                if dets is not None:
                    tracks = self.tracker.update(dets, period=since_detect)
                    since_detect = 0
                    summary.detected += 1
                else:
                    tracks = self.tracker.predict(since_detect)
                alive = self.tracker.alive_ids if self._end_by_tracker else None
                events = self.events.update(frame, tracks, alive)
                t1 = time.perf_counter()
                self.times.add("track", t1 - t0)
                for _, sink in sinks:
                    sink.write(frame, tracks, events)
                self.times.add("sinks", time.perf_counter() - t1)
                track_ids.update(tracks.tracker_id.tolist())
                summary.events += len(events)
                summary.frames += 1
                if self.progress is not None:
                    self.progress(summary.frames, total)
            if self._errors:
                raise self._errors[0]
            final = self.events.finish()
            summary.events += len(final)
            for _, sink in sinks:
                if hasattr(sink, "write_events"):
                    sink.write_events(final)
            summary.seconds = time.perf_counter() - start  # processing, before the sinks finish
            for _, sink in sinks:
                if hasattr(sink, "begin_close"):
                    sink.begin_close()
        if not summary.seconds:
            summary.seconds = time.perf_counter() - start
        summary.tracks = len(track_ids - {-1})
        summary.dropped = self.buffer.dropped
        for step, seconds in getattr(self.detector, "seconds", {}).items():
            self.times.add(f"detect.{step}", seconds, 0)
        summary.stage_ms = self.times.per_frame_ms(summary.frames)
        for name, attr in (("video", "video"), ("events", "events"), ("mot", "mot")):
            path = getattr(self.config.output, attr)
            if path:
                summary.outputs[name] = "stdout" if path == "-" else path
        for c in self.config.output.event_sinks:
            summary.outputs[c.name or c.type] = c.path or (redact(c.url) if c.url else "stdout")
        self.summary = summary
        if self._source_error is not None:
            raise self._source_error
        return summary

    def _shutdown(self, workers: Sequence[threading.Thread]) -> None:
        self._stop.set()
        self.buffer.close()
        for w in workers:
            if w.is_alive():
                w.join(timeout=10.0)
