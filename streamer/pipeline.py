"""The runner: decode threads -> ring buffers -> inference thread -> tracking, events, sinks.

Threads and hand-offs:

- one decode thread per source pulls frames through its sampler into the source's
  ring buffer: ``block`` for files (lossless), ``drop_oldest`` for live sources (the
  detector always works on the freshest frames; drops are counted). A live source that
  stops delivering reconnects by itself and says so in-band (``SourceStatus``);
- one inference thread gathers up to ``detector.batch`` frames round-robin across the
  buffers (waiting at most ``max_wait_ms`` to fill a batch), runs one batched
  detection on those marked for it and passes everything on, in order per source,
  through a bounded queue;
- the calling thread keeps one tracker and one analytics state per source: it tracks
  (``update`` on detected frames, ``predict`` in between), raises events and writes the
  sinks (slow sinks encode or deliver on their own threads).

A source that fails (a corrupt file, a camera that gave up) ends alone: its outputs are
finished, the other sources go on, and its error is raised once all have ended. Any
other worker error stops the pipeline; every sink is closed (outputs stay valid files)
and the error is raised in the caller.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from streamer.analytics import Analytics
from streamer.buffer import BufferGroup, Closed
from streamer.config import Config, SourceConfig
from streamer.errors import ConfigError, SourceError, StreamerError
from streamer.live import Reconnect, SourceStatus
from streamer.metrics import Latency, StageTimes, rss_bytes
from streamer.registry import DETECTORS, SINKS, create_tracker, resolve
from streamer.sampling import Sampler
from streamer.sources import open_source
from streamer.types import Detections, Frame
from streamer.urls import redact

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "SourceSummary", "Summary", "build_detector", "build_tracker"]

_END = object()


@dataclass(frozen=True)
class _SourceEnd:
    """The last item of a source: it has no more frames (``error``: why it failed)."""

    source_id: str
    error: BaseException | None = None


@dataclass
class SourceSummary:
    """What a run did with one source."""

    id: str
    label: str
    live: bool
    frames: int = 0
    detected: int = 0
    dropped: int = 0
    downs: int = 0
    downtime: float = 0.0
    reconnects: list[float] = field(default_factory=list)  # seconds down, per reconnect
    latency: Latency = field(default_factory=Latency)
    error: str | None = None

    @property
    def drop_rate(self) -> float:
        offered = self.frames + self.dropped
        return self.dropped / offered if offered else 0.0


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
    sources: dict[str, SourceSummary] = field(default_factory=dict)

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


def _per_source(path: str | None) -> bool:
    return bool(path) and "{source_id}" in path


class _Stream:
    """One source and everything that is per source: sampler, buffer, tracker,
    analytics, its own outputs, its figures."""

    def __init__(self, cfg: SourceConfig, config: Config, group: BufferGroup) -> None:
        r = cfg.reconnect
        self.source = open_source(
            cfg.uri or "", cfg.id, cfg.fps, live=cfg.live, transport=cfg.transport, timeout=cfg.timeout,
            reconnect=Reconnect(r.initial, r.max, r.attempts), realtime=cfg.realtime, options=cfg.options,
            hwaccel=config.decode.hwaccel,
        )
        self.id = self.source.id
        self.live = self.source.live
        s = config.sampler
        self.sampler = Sampler(s.every, s.target_fps, s.detect_every)
        policy = config.buffer.policy
        if policy == "auto":
            policy = "drop_oldest" if self.live else "block"
        size = config.buffer.size or (4 if self.live else 16)
        self.buffer = group.add(size, policy, droppable=lambda item: isinstance(item, Frame))
        self.summary = SourceSummary(self.id, self.source.label, self.live)
        self.tracker: Any = None
        self.analytics: Analytics | None = None
        self.sinks: list[Any] = []
        self.outputs = contextlib.ExitStack()
        self.track_ids: set[int] = set()
        self.since_detect = 0
        self.last_detect_pts: Fraction | None = None
        self.ended = False

    @property
    def fps(self) -> Fraction:
        return self.sampler.output_fps(self.source.fps or Fraction(30))


class Pipeline:
    """Processes one or several sources end to end.

    Args:
        config: The job.
        detector: A ready detector (default: built from the config).
        progress: Called after each processed frame with ``(frames_done, total)``.

    Attributes:
        windows: Per source, one record per ``stats_interval`` (or per second when
            that is 0): frames, drops, latency quantiles and memory of that window.
    """

    def __init__(
        self,
        config: Config,
        detector: Any = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.config = config
        out = config.output
        several = len(config.all_sources()) > 1
        for name in ("video", "mot"):
            path = getattr(out, name)
            if several and path and not _per_source(path):
                raise ConfigError(
                    f"output.{name}: with several sources put {{source_id}} in the path "
                    f"(e.g. out/{{source_id}}.{'mp4' if name == 'video' else 'txt'})"
                )
        self.group: BufferGroup = BufferGroup()
        self.streams: dict[str, _Stream] = {}
        for i, cfg in enumerate(config.all_sources()):
            if not cfg.uri:
                raise ConfigError(f"sources[{i}].uri: missing" if several else "source.uri: missing")
            stream = _Stream(cfg, config, self.group)
            if stream.id in self.streams:
                raise ConfigError(f"sources[{i}]: id {stream.id!r} is used twice; give each source an id")
            self.streams[stream.id] = stream
        # The tracker first: its parameters are checked before a model is loaded.
        build_tracker(config, next(iter(self.streams.values())).fps)
        self.detector = detector if detector is not None else build_detector(config)
        # Tracks end when the tracker drops them, unless a fixed horizon is configured.
        self._end_by_tracker = out.track_end_frames is None
        _check_class_names(config, self.detector.names)
        self.times = StageTimes()
        self.progress = progress
        self.windows: dict[str, deque[dict[str, Any]]] = {sid: deque(maxlen=10_000) for sid in self.streams}
        self.batch_seconds_max = 0.0  # slowest detector call (one batch)
        self._halt = threading.Event()  # an error: everything stops now
        self._finish = threading.Event()  # a clean stop: sources stop, what is queued is processed
        self._errors: list[BaseException] = []
        self.summary: Summary | None = None

    # Single-source conveniences (the common case).
    @property
    def source(self) -> Any:
        return next(iter(self.streams.values())).source

    def expected_frames(self) -> int | None:
        """Frames that will be processed, when every source's length is known."""
        total = 0
        for st in self.streams.values():
            if not st.source.total_frames or st.sampler.period is not None:
                return None
            total += -(-st.source.total_frames // st.sampler.every)
        return total

    def stop(self) -> None:
        """Ends the run cleanly: sources stop, frames already read are processed, every
        output is finished (for live sources, SIGTERM or a set duration)."""
        self._finish.set()

    # ---- sinks

    def _event_sinks(self, events_path: str | None, shared: bool) -> list[tuple[str, Any]]:
        out = self.config.output
        sinks: list[tuple[str, Any]] = []
        if events_path == "-":
            sinks.append(("events", resolve(SINKS, "sink", "stdout")()))
        elif events_path:
            sinks.append(("events", resolve(SINKS, "sink", "jsonl")(events_path)))
        if not shared:
            return sinks
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

    def _shared_sinks(self) -> list[tuple[str, Any]]:
        events = self.config.output.events
        return self._event_sinks(None if _per_source(events) else events, shared=True)

    def _stream_sinks(self, st: _Stream) -> list[tuple[str, Any]]:
        out = self.config.output
        fill = {"source_id": st.id}
        sinks = []
        if out.video:
            sinks.append(("video", resolve(SINKS, "sink", "video")(
                out.video.format(**fill), st.fps, self.detector.names, crf=out.crf, timed=st.live)))
        if _per_source(out.events):
            sinks.extend(self._event_sinks(out.events.format(**fill), shared=False))
        if out.mot:
            sinks.append(("mot", resolve(SINKS, "sink", "mot")(out.mot.format(**fill))))
        return sinks

    # ---- workers

    def _decode(self, st: _Stream) -> None:
        it = st.source.frames(st.sampler, self._finish)
        error: BaseException | None = None
        timed = not st.live  # a live source's wait for the camera is not decode time
        try:
            while True:
                start = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                if timed:
                    self.times.add("decode", time.perf_counter() - start)
                while not st.buffer.put(item, timeout=0.1):
                    if self._halt.is_set() or st.buffer.closed:
                        return
        except StreamerError as exc:
            error = exc
        except BaseException as exc:
            self._errors.append(exc)
            self._halt.set()
        finally:
            if not self._halt.is_set():
                while not st.buffer.put(_SourceEnd(st.id, error), timeout=0.1):
                    if self._halt.is_set():
                        break
            st.buffer.close()

    def _infer(self, out: queue.Queue[Any]) -> None:
        cfg = self.config.detector
        try:
            while not self._halt.is_set():
                try:
                    batch = self.group.get_batch(cfg.batch, cfg.max_wait_ms / 1000.0)
                except Closed:
                    break
                todo = [f for f in batch if isinstance(f, Frame) and f.detect]
                results: list[Detections] = []
                if todo:
                    start = time.perf_counter()
                    results = self.detector(todo)
                    seconds = time.perf_counter() - start
                    self.times.add("detect", seconds, len(todo))
                    self.batch_seconds_max = max(self.batch_seconds_max, seconds)
                found = iter(results)
                for item in batch:
                    dets = next(found) if isinstance(item, Frame) and item.detect else None
                    while not self._halt.is_set():
                        try:
                            out.put((item, dets), timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:
            self._errors.append(exc)
            self._halt.set()
        finally:
            with contextlib.suppress(queue.Full):
                out.put(_END, timeout=1.0)

    # ---- the calling thread: per-source tracking, events, sinks

    def _frame(self, st: _Stream, frame: Frame, dets: Detections | None, shared: list[Any]) -> int:
        if st.tracker is None:  # built on the first frame: a camera's rate is known once connected
            st.tracker = build_tracker(self.config, st.fps)
            if st.analytics is None:  # a camera down at start has one already
                st.analytics = self._analytics(st)
            st.sinks = [st.outputs.enter_context(sink) for _, sink in self._stream_sinks(st)]
        t0 = time.perf_counter()
        st.since_detect += 1
        if dets is not None:
            period = st.since_detect
            if st.live and st.last_detect_pts is not None:
                # Frames dropped or lost in a gap count as time passed.
                period = max(1, round((frame.pts - st.last_detect_pts) * st.fps))
            tracks = st.tracker.update(dets, period=period)
            st.since_detect = 0
            st.last_detect_pts = frame.pts
            st.summary.detected += 1
        else:
            tracks = st.tracker.predict(st.since_detect)
        alive = st.tracker.alive_ids if self._end_by_tracker else None
        events = st.analytics.update(frame, tracks, alive)
        t1 = time.perf_counter()
        self.times.add("track", t1 - t0)
        for sink in (*st.sinks, *shared):
            sink.write(frame, tracks, events)
        self.times.add("sinks", time.perf_counter() - t1)
        st.track_ids.update(tracks.tracker_id.tolist())
        st.summary.frames += 1
        st.summary.latency.add(time.time() - frame.captured_at)
        return len(events)

    def _analytics(self, st: _Stream) -> Analytics:
        return Analytics(st.id, self.detector.names, self.config.analytics, None,
                         self.config.output.track_end_frames or 30, live=st.live)

    def _write_events(self, st: _Stream, events: list, shared: list[Any]) -> int:
        for sink in (*st.sinks, *shared):
            if hasattr(sink, "write_events"):
                sink.write_events(events)
        return len(events)

    def _status(self, st: _Stream, status: SourceStatus, shared: list[Any]) -> int:
        if st.analytics is None:
            st.analytics = self._analytics(st)
        frame = max(status.index - 1, 0)
        if status.state == "down":
            st.summary.downs += 1
            events = st.analytics.source_down(frame, float(status.pts), status.at, status.reason)
            if st.tracker is not None:
                st.tracker.reset()  # tracks do not survive the gap; new ones start after it
            st.last_detect_pts = None
            st.since_detect = 0
        else:
            st.summary.downtime += status.downtime
            st.summary.reconnects.append(status.downtime)
            events = st.analytics.source_up(frame, float(status.pts), status.at, status.downtime, status.attempts)
        return self._write_events(st, events, shared)

    def _end_stream(self, st: _Stream, error: BaseException | None, shared: list[Any]) -> int:
        """Final events of a source and its outputs finished (the others go on)."""
        if st.ended:
            return 0
        st.ended = True
        n = 0
        if st.analytics is not None:
            n = self._write_events(st, st.analytics.finish(), shared)
        for sink in st.sinks:
            if hasattr(sink, "begin_close"):
                sink.begin_close()
        st.outputs.close()
        st.summary.dropped = st.buffer.dropped
        if error is not None:
            st.summary.error = str(error)
            if len(self.streams) > 1:
                log.error("%s: %s (the other sources go on)", st.source.label, error)
        return n

    def _window(self, now: float, marks: dict[str, tuple]) -> None:
        rss = rss_bytes()
        for sid, st in self.streams.items():
            s = st.summary
            t_prev, frames_prev, dropped_prev, latency_prev = marks.get(sid, (now, 0, 0, Latency()))
            window = s.latency.since(latency_prev)
            dropped = st.buffer.dropped
            record = {
                "t": now, "frames": s.frames - frames_prev, "dropped": dropped - dropped_prev,
                "p50": window.quantile(0.5), "p99": window.quantile(0.99), "rss": rss,
            }
            self.windows[sid].append(record)
            marks[sid] = (now, s.frames, dropped, s.latency.copy())
            if st.live and self.config.stats_interval:
                seconds = max(now - t_prev, 1e-9)
                p50, p99 = record["p50"], record["p99"]
                offered = record["frames"] + record["dropped"]
                log.info(
                    "%s: %.1f frames/s processed, %d%% dropped, latency p50 %s p99 %s, %d MB",
                    st.source.label, record["frames"] / seconds,
                    round(100 * record["dropped"] / offered) if offered else 0,
                    f"{p50 * 1000:.0f} ms" if p50 is not None else "-", f"{p99 * 1000:.0f} ms" if p99 is not None else "-",
                    (rss or 0) // 2**20,
                )

    def run(self) -> Summary:
        """Process every source to its end (or to ``duration``, or :meth:`stop`);
        returns the summary or raises the first error."""
        labels = ", ".join(st.source.label for st in self.streams.values())
        summary = Summary(source=labels)
        summary.sources = {sid: st.summary for sid, st in self.streams.items()}
        self.summary = summary
        handoff: queue.Queue[Any] = queue.Queue(maxsize=2 * self.config.detector.batch + 2)
        workers = [
            threading.Thread(target=self._decode, args=(st,), name=f"decode-{sid}", daemon=True)
            for sid, st in self.streams.items()
        ]
        workers.append(threading.Thread(target=self._infer, args=(handoff,), name="inference", daemon=True))
        total = self.expected_frames()
        start = time.perf_counter()
        duration = self.config.duration
        interval = self.config.stats_interval or 1.0
        next_window = time.monotonic() + interval
        marks: dict[str, tuple] = {}
        with contextlib.ExitStack() as stack:
            shared = [stack.enter_context(sink) for _, sink in self._shared_sinks()]
            for st in self.streams.values():
                stack.enter_context(st.outputs)
            stack.callback(self._shutdown, workers)
            for w in workers:
                w.start()
            while True:
                try:
                    item = handoff.get(timeout=0.2)
                except queue.Empty:
                    item = None
                now = time.monotonic()
                if duration is not None and time.perf_counter() - start >= duration:
                    self._finish.set()
                if now >= next_window:
                    self._window(time.time(), marks)
                    next_window = now + interval
                if item is None:
                    continue
                if item is _END:
                    break
                obj, dets = item
                st = self.streams[obj.source_id]
                if isinstance(obj, Frame):
                    summary.events += self._frame(st, obj, dets, shared)
                    summary.frames += 1
                    if dets is not None:
                        summary.detected += 1
                    if self.progress is not None:
                        self.progress(summary.frames, total)
                elif isinstance(obj, SourceStatus):
                    summary.events += self._status(st, obj, shared)
                else:
                    summary.events += self._end_stream(st, obj.error, shared)
            if self._errors:
                raise self._errors[0]
            for st in self.streams.values():  # sources stopped early (duration, stop())
                summary.events += self._end_stream(st, None, shared)
            summary.seconds = time.perf_counter() - start  # processing, before the sinks finish
            for sink in shared:
                if hasattr(sink, "begin_close"):
                    sink.begin_close()
        if not summary.seconds:
            summary.seconds = time.perf_counter() - start
        summary.tracks = sum(len(st.track_ids - {-1}) for st in self.streams.values())
        summary.dropped = sum(st.buffer.dropped for st in self.streams.values())
        for step, seconds in getattr(self.detector, "seconds", {}).items():
            self.times.add(f"detect.{step}", seconds, 0)
        summary.stage_ms = self.times.per_frame_ms(summary.frames)
        out = self.config.output
        for name in ("video", "events", "mot"):
            path = getattr(out, name)
            if path:
                summary.outputs[name] = "stdout" if path == "-" else path
        for c in out.event_sinks:
            summary.outputs[c.name or c.type] = c.path or (redact(c.url) if c.url else "stdout")
        failed = [st for st in self.streams.values() if st.summary.error]
        if failed:
            if len(self.streams) == 1:
                raise SourceError(failed[0].summary.error)
            raise SourceError(
                f"{len(failed)} of {len(self.streams)} sources failed: "
                + "; ".join(st.summary.error or "" for st in failed)
            )
        return summary

    def _shutdown(self, workers: list[threading.Thread]) -> None:
        self._halt.set()
        self._finish.set()
        for st in self.streams.values():
            st.buffer.close()
        for w in workers:
            if w.is_alive():
                w.join(timeout=10.0)
