"""The runtime: decode threads -> ring buffers -> inference thread -> hand-off queue ->
per-source processors on the calling thread.

Threads and hand-offs (see docs/architecture.md):

- one decode thread per source pulls frames through its sampler into the source's
  ring buffer: ``block`` for files (lossless), ``drop_oldest`` for live sources (the
  detector always works on the freshest frames; drops are counted). A live source that
  stops delivering reconnects by itself and says so in-band (``SourceStatus``); the
  source's last item says how it ended (``_SourceEnd``);
- one inference thread gathers up to ``detector.batch`` frames round-robin across the
  buffers (waiting at most ``max_wait_ms`` to fill a batch), runs one batched
  detection on those marked for it and passes everything on, in order per source,
  through the bounded hand-off queue;
- the calling thread hands each item to its source's :class:`StreamProcessor`
  (tracking, analytics, the source's sinks) and writes the shared event sinks.

No hand-off relies on a marker that could be lost: the inference thread ends when every
buffer is closed and drained, and the calling thread ends when the inference thread has
ended and the hand-off queue is empty. A put never gives up while the run is healthy.

Sources can be added and removed while the pipeline runs (:meth:`Pipeline.add_source`,
:meth:`Pipeline.remove_source`). A source that fails (a corrupt file, a camera that
gave up) ends alone: its outputs are finished, the others go on, and its error is
raised once all have ended. Any other worker error stops the pipeline; every sink is
closed (outputs stay valid files) and the error is raised in the caller.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

from streamer.buffer import BufferGroup, Closed, RingBuffer
from streamer.config import AnalyticsConfig, ClipsConfig, Config, SourceConfig, per_source
from streamer.errors import ConfigError, SourceError, StreamerError
from streamer.live import Reconnect
from streamer.paths import check_overwrites
from streamer.metrics import Latency, SourceSummary, StageTimes, Summary, release_memory, rss_bytes
from streamer.packets import PacketRing
from streamer.processor import StreamProcessor
from streamer.protocols import Detector, Sink, Source
from streamer.sampling import Sampler
from streamer.sources import open_source
from streamer.types import Detections, Frame, SourceStatus

log = logging.getLogger(__name__)

HANDOFF_MAX = 34  # items between the inference and the calling thread (2 x batch 16 + 2)
STOP_GRACE = 1.0  # seconds a stop waits for a source inside a call to its camera before ending it
# Seconds a stop goes on detecting the frames already read. Past it the frames still
# waiting are left, and a detector call still running is abandoned (its thread ends when
# the call returns): a slow detector (a big model on a CPU) would otherwise hold the stop
# for as many batches as the buffers hold, past `docker stop`'s 10 s.
STOP_DETECT_WAIT = 2.0
TRIM_EVERY = 60.0  # seconds between handing freed memory back (metrics.release_memory)

__all__ = ["Pipeline", "Stream", "left_running"]

_LEFT: list[threading.Thread] = []  # inference threads a stop left inside a detector call


def left_running() -> bool:
    """Whether a stop left a detector call running in this process (its thread ends
    when the call returns; a command-line process exits without waiting for it)."""
    return any(t.is_alive() for t in _LEFT)


@dataclass(frozen=True)
class _SourceEnd:
    """The last item of a source: it has no more frames (``error``: why it failed;
    ``removed``: it was taken out of the running pipeline)."""

    source_id: str
    error: BaseException | None = None
    removed: bool = False


_Item = Union[Frame, SourceStatus, _SourceEnd]  # noqa: UP007  (a runtime alias)
_Pair = tuple[_Item, Detections | None]  # an item and its detections (None: not detected)
_Window = dict[str, float | None]  # one stats window of a source: frames, drops, p50/p99, rss
_Mark = tuple[float, int, int, Latency]  # a source's time, frames, drops and latency at a window's start


class Stream:
    """One source in the pipeline: its decode side (source, sampler, ring buffer, thread)
    and its processor.

    ``state`` is what the processed output last showed: ``connecting`` (no frame yet),
    ``up``, ``down`` (a live source reconnecting), ``ended`` (a file read to its end, or
    stopped), ``failed`` or ``removed``. ``decoded`` counts frames its decode thread
    handed on; ``busy_since`` is when the decode thread began waiting on its source
    (None: not waiting), for the watchdog.
    """

    def __init__(self, source: Source, sampler: Sampler, buffer: RingBuffer[_Item], cfg: SourceConfig) -> None:
        self.source = source
        self.id = source.id
        self.cfg = cfg
        self.sampler = sampler
        self.buffer = buffer
        self.summary = SourceSummary(source.id, source.label, source.live)
        self.stop = threading.Event()  # ends this source's decoding (stop(), duration, removal)
        self.removed = False
        self.remove_reason = "removed"
        self.abandoned = False  # stopped while its decode thread was inside a call to the camera
        self.ending = False  # its end is being processed (set on the processing thread, under the lock)
        self.ended = threading.Event()  # its end has been processed: outputs finished
        self.state = "connecting"
        self.last_error: str | None = None
        self.decoded = 0
        self.busy_since: float | None = None
        self.opened_at = time.time()  # the first stats window of this stream counts from here
        self.thread: threading.Thread | None = None
        self.processor: StreamProcessor | None = None
        self.clips: ClipsConfig | None = None  # its clips section, and the packet ring its decode fills
        self.packets: PacketRing | None = None

    @property
    def fps(self) -> Fraction:
        """The rate of the frames it hands on (a camera's is known once it connected)."""
        return self.sampler.output_fps(self.source.fps or Fraction(30))


def _open_stream(cfg: SourceConfig, config: Config, group: BufferGroup) -> Stream:
    r = cfg.reconnect
    clips = config.clips_of(cfg)
    packets = clips.ring() if clips is not None else None
    source = open_source(
        cfg.uri or "", cfg.id, cfg.fps, live=cfg.live, transport=cfg.transport, timeout=cfg.timeout,
        reconnect=Reconnect(r.initial, r.max, r.attempts), realtime=cfg.realtime, options=cfg.options,
        hwaccel=config.decode.hwaccel, packets=packets,
    )
    s = config.sampler
    policy = config.buffer.policy
    if policy == "auto":
        policy = "drop_oldest" if source.live else "block"
    size = config.buffer.size or (4 if source.live else 16)
    buffer: RingBuffer[_Item] = group.add(size, policy, droppable=lambda item: isinstance(item, Frame))
    stream = Stream(source, Sampler(s.every, s.target_fps, s.detect_every), buffer, cfg)
    stream.clips, stream.packets = clips, packets
    return stream


def check_class_names(analytics: AnalyticsConfig, names: dict[int, str], where: str = "analytics") -> None:
    """Class names in an analytics section must be the detector's."""
    known = set(names.values())
    for kind, items in (("lines", analytics.lines), ("zones", analytics.zones)):
        for i, item in enumerate(items):
            for name in item.classes or []:
                if name not in known:
                    shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                    raise ConfigError(
                        f"{where}.{kind}[{i}].classes: unknown class {name!r}; the detector's classes are {shown}"
                    )


class Pipeline:
    """Processes one or several sources end to end.

    Args:
        config: The job.
        detector: A ready detector (default: built from the config).
        progress: Called after each processed frame with ``(frames_done, total)``.
        until_stopped: Keep running when every source has ended, for sources added
            later, until :meth:`stop` (a service); default: end with the last source.

    Attributes:
        streams: Every source by id, removed ones included.
        times: The stage clock (decode, detect, track, sinks).
        windows: Per source, one record per ``stats_interval`` (or per second when
            that is 0): frames, drops, latency quantiles and memory of that window.
    """

    def __init__(self, config: Config, detector: Detector | None = None,
                 progress: Callable[[int, int | None], None] | None = None, *, until_stopped: bool = False,
                 stream_sinks: Callable[[str, AnalyticsConfig], Sequence[Sink]] | None = None) -> None:
        self.config = config
        self.stream_sinks = stream_sinks
        self.check_outputs(len(config.all_sources()))
        self.group: BufferGroup[_Item] = BufferGroup()
        self.streams: dict[str, Stream] = {}
        self._lock = threading.Lock()  # streams added or removed from other threads
        self._halt = threading.Event()  # an error: everything stops now
        self._stop_asked = threading.Event()  # a clean stop: sources end, what was read is processed
        self._stopped_at: float | None = None  # when the running loop began the stop
        self._abandoned = threading.Event()  # the stop left a detector call running
        # Held while a detector call's end is handed over, and while the run decides to
        # leave that call: a batch is either handed over or left, never lost in between.
        self._handover = threading.Lock()
        self.retired: list[Stream] = []  # removed streams whose end was processed (their id is free again)
        initial = config.all_sources()
        if until_stopped:  # a service may start with no source and get them later
            initial = [c for c in initial if c.uri]
        for i, cfg in enumerate(initial):
            self._add(cfg, f"sources[{i}]" if config.sources else "source")
        # The tracker first: its parameters are checked before a model is loaded.
        config.tracker.build(next(iter(self.streams.values())).fps if self.streams else Fraction(30))
        self.detector: Detector = detector if detector is not None else config.detector.build()
        check_class_names(config.analytics, self.detector.names)
        for i, cfg in enumerate(initial):
            if cfg.analytics is not None:
                check_class_names(cfg.analytics, self.detector.names, f"sources[{i}].analytics")
        self.times = StageTimes()
        self.batch_sizes: dict[int, int] = {}  # detector calls by frames in the batch
        self.batch_seconds = Latency()  # seconds per detector call
        self.busy: dict[str, float] = {}  # inference / runner: when its current step began
        self.progress = progress
        self.until_stopped = until_stopped
        self.windows: dict[str, deque[_Window]] = {}
        self.summary: Summary | None = None
        self._shared: list[Sink] = []
        self._errors: list[BaseException] = []
        self._running = False
        self._started = False
        self._inference: threading.Thread | None = None
        self._processed = 0
        self._total: int | None = None
        self._closers: list[threading.Thread] = []  # finishing the outputs of sources that ended
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], Future]] = queue.SimpleQueue()

    # ---- the public controls

    @property
    def source(self) -> Source:
        """The first source (the common single-source case)."""
        return next(iter(self.streams.values())).source

    @property
    def batch_seconds_max(self) -> float:
        """The slowest detector call (one batch), seconds."""
        return self.times.longest.get("detect", 0.0)

    def expected_frames(self) -> int | None:
        """Frames that will be processed, when every source's length is known."""
        total = 0
        for st in self.streams.values():
            if not st.source.total_frames or st.sampler.period is not None or self.until_stopped:
                return None
            total += -(-st.source.total_frames // st.sampler.every)
        return total

    def add_source(self, cfg: SourceConfig, replace: float | None = None,
                   resumed: tuple[float, str] | None = None) -> str:
        """Adds a source, also while the pipeline runs (its decode thread starts at
        once); returns its id. Raises ConfigError for a duplicate id, SourceError when it
        cannot be opened. ``replace``: a source of the same id is removed first (reason
        ``replaced``), waiting that many seconds for its end, once the new one has opened;
        when the new one cannot be opened, the old one runs on. ``resumed``: (when, why)
        the stream was lost elsewhere (a cluster worker died): ``source_down`` at that
        time and ``source_up`` now go out before its first frame."""
        if self.group.sealed:
            raise ConfigError("the pipeline is finishing; no source can be added")
        if cfg.analytics is not None:
            check_class_names(cfg.analytics, self.detector.names, f"{cfg.id or 'source'}.analytics")
        self.check_outputs(len(self.streams) + 1)
        stream = self._add(cfg, "source", replace)
        if resumed is not None:  # before its decode thread starts: the gap comes first
            lost_at, why = resumed
            now = time.time()
            stream.buffer.put(SourceStatus(stream.id, "down", 0, Fraction(0), lost_at, why))
            stream.buffer.put(SourceStatus(stream.id, "up", 0, Fraction(0), now, downtime=now - lost_at, attempts=1))
        if self._running:
            self._start_decoding(stream)
        return stream.id

    def remove_source(self, source_id: str, reason: str = "removed", wait: float | None = None) -> bool:
        """Stops a source: frames already read are processed, its tracks end, a
        ``source_removed`` event follows, its outputs are finished, every sink hears it
        was removed, and its id is free again. A source that had already ended is only
        forgotten. ``wait``: seconds to wait for all of that; returns whether it is done."""
        with self._lock:
            stream = self.streams.get(source_id)
            found = stream is not None and not stream.removed
            if stream is not None and found:
                stream.removed, stream.remove_reason = True, reason
                if stream.ended.is_set():  # nothing left to process
                    self._retire(stream)
                    return True
                # A stream whose end is being finished is retired when that is done.
                stream.stop.set()
        if stream is None or not found:
            raise ConfigError(f"no source {source_id!r}; running: {', '.join(self.active()) or 'none'}")
        return stream.ended.wait(wait) if wait else stream.ended.is_set()

    def set_analytics(self, source_id: str, analytics: AnalyticsConfig, timeout: float = 10.0) -> int:
        """Replaces a source's lines, zones and counts while it runs (tracks go on; the
        old zones' open visits end); returns the events that raised."""
        check_class_names(analytics, self.detector.names)

        def replace() -> int:
            stream = self.streams.get(source_id)
            if stream is None or stream.removed:
                raise ConfigError(f"no source {source_id!r}")
            stream.cfg = stream.cfg.model_copy(update={"analytics": analytics})
            if stream.ending:  # it has ended: nothing more to count (kept for a stream re-added)
                return 0
            return self._processor(stream).set_analytics(analytics)

        return int(self.call(replace, timeout))  # type: ignore[call-overload]

    def check_analytics(self, analytics: AnalyticsConfig, where: str) -> None:
        """Raises ConfigError where ``analytics`` names a class the detector lacks."""
        check_class_names(analytics, self.detector.names, where)

    @property
    def shared_sinks(self) -> tuple[Sink, ...]:
        """The sinks of every source's events, while the run is on."""
        return tuple(self._shared)

    @property
    def failed(self) -> BaseException | None:
        """The worker error that halted the run (None: healthy)."""
        return self._errors[0] if self._errors else None

    def call(self, fn: Callable[[], object], timeout: float = 10.0) -> object:
        """Runs ``fn`` on the thread that drives the processors, between two items, and
        returns its result (its exception is raised here). Before the run has started
        ``fn`` runs at once on the calling thread; once it has stopped, nothing runs.
        Raises StreamerError when the thread is busy past ``timeout`` (``fn`` then never runs)."""
        if not self._running:
            if self._started:
                raise StreamerError("the pipeline has stopped; nothing can change now")
            return fn()
        future: Future = Future()
        self._calls.put((fn, future))
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.cancel():
                raise StreamerError(f"the processing thread stayed busy for {timeout:g}s; nothing changed, "
                                    f"try again") from None
            return future.result()  # it had begun: its outcome stands

    def stuck(self, deadline: float) -> dict[str, float]:
        """Threads whose current step has lasted past its deadline, with its seconds: the
        inference thread in a detector call, the runner on one item, a decode thread
        waiting on its source (live sources get their timeout and reconnect waits on top)."""
        now = time.monotonic()
        out = {name: now - since for name, since in list(self.busy.items()) if now - since > deadline}
        with self._lock:
            streams = list(self.streams.values())
        for st in streams:
            since = st.busy_since
            if since is None or st.buffer.closed:
                continue
            if st.source.live and st.state != "up":
                continue  # a camera that is down waits for it by design: reconnecting is its work
            limit = deadline + (st.cfg.timeout if st.source.live else 0.0)
            if now - since > limit:
                out[f"decode-{st.id}"] = now - since
        return out

    def active(self) -> list[str]:
        """Ids of the sources not removed or ended."""
        with self._lock:
            return [sid for sid, st in self.streams.items() if not st.removed and not st.buffer.closed]

    def stop(self) -> None:
        """Ends the run cleanly: sources stop, frames already read are processed (for up to
        ``STOP_DETECT_WAIT`` seconds of detection; what is still waiting then is left),
        every output is finished (SIGTERM, Ctrl-C, a set duration). Safe to call from a
        signal handler: it only raises a flag, which the running loop acts on within 0.2 s."""
        self._stop_asked.set()

    def _abandon_stuck(self) -> None:
        """Ends, on their behalf, the live sources whose decode thread is still inside a
        call to its camera (a connect or read that only its own timeout ends: a server
        that accepts TCP and never answers): a stop must not wait for that. The thread
        finds its buffer closed when the call returns, and ends."""
        for st in list(self.streams.values()):
            if st.source.live and st.busy_since is not None and not st.buffer.closed and st.thread is not None \
                    and st.thread.is_alive():
                log.info("%s: stopped while waiting on the camera", st.source.label)
                st.abandoned = True
                st.buffer.put(_SourceEnd(st.id, None, st.removed), timeout=0.1)
                st.buffer.close()

    def _stop_sources(self) -> None:
        with self._lock:  # as _add: no source joins once this has run
            self.group.seal()
            for st in self.streams.values():
                st.stop.set()

    # ---- building

    def check_outputs(self, sources: int) -> None:
        out = self.config.output
        for name, path in (("video", out.video), ("mot", out.mot)):
            if sources > 1 and path and not per_source(path):
                raise ConfigError(
                    f"output.{name}: with several sources put {{source_id}} in the path "
                    f"(e.g. out/{{source_id}}.{'mp4' if name == 'video' else 'txt'})"
                )

    def _add(self, cfg: SourceConfig, where: str, replace: float | None = None) -> Stream:
        if not cfg.uri:
            raise ConfigError(f"{where}.uri: missing")
        stream = _open_stream(cfg, self.config, self.group)
        if replace is not None and stream.id in self.streams:
            try:
                if not self.remove_source(stream.id, "replaced", wait=replace):
                    raise ConfigError(f"{where}: source {stream.id!r} did not end within {replace:g}s; try again")
            except ConfigError:
                self.group.discard(stream.buffer)
                raise
        with self._lock:
            if self.group.sealed or self._stop_asked.is_set():  # stopping began while it opened
                self.group.discard(stream.buffer)
                raise ConfigError("the pipeline is finishing; no source can be added")
            self._check_overwrites(stream)
            old = self.streams.get(stream.id)
            if old is not None:
                self.group.discard(stream.buffer)
                if old.removed:
                    raise ConfigError(f"{where}: source {stream.id!r} is still being removed; try again")
                raise ConfigError(f"{where}: id {stream.id!r} is used twice; give each source an id")
            self.streams[stream.id] = stream
        return stream

    def _check_overwrites(self, new: Stream) -> None:
        """No output of any source may be an input or another output (called with the lock)."""
        streams = [st for st in self.streams.values() if st.id != new.id] + [new]
        inputs = {**self.config.detector.inputs(), **{f"source {st.id!r}": st.cfg.uri for st in streams}}
        outputs: dict[str, str | None] = {}
        seen: set[tuple[str, str]] = set()
        for st in streams:
            for name, path in self.config.output.files(st.id).items():
                if path is not None and (name, path) not in seen:  # a file shared by the sources, once
                    seen.add((name, path))
                    outputs[name if len(streams) == 1 else f"{name} of {st.id!r}"] = path
        try:
            check_overwrites(inputs, outputs)
        except ConfigError:
            self.group.discard(new.buffer)
            raise

    def _retire(self, stream: Stream) -> None:
        """Forgets a removed source that has ended (called with the lock held): its
        figures stay in the summary's totals, and its id can be used again. What it held
        (tracker, sinks, its packet ring) goes with it: a service runs for weeks."""
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
            self.retired.append(stream)
            stream.processor, stream.packets = None, None
            if self.summary is not None and self.summary.sources.get(stream.id) is stream.summary:
                self.summary.retired.append(self.summary.sources.pop(stream.id))

    def _processor(self, stream: Stream) -> StreamProcessor:
        if stream.processor is None:
            stream.processor = StreamProcessor(stream.summary, self.config, self.detector.names,
                                               lambda: stream.fps, self._shared, self.times, stream.cfg.analytics,
                                               clips=stream.clips, packets=stream.packets, extra=self.stream_sinks)
            self.windows.setdefault(stream.id, deque(maxlen=10_000))
            if self.summary is not None:  # a source added while running
                self.summary.sources.setdefault(stream.id, stream.summary)
        return stream.processor

    # ---- the threads

    def _start_decoding(self, stream: Stream) -> None:
        stream.thread = threading.Thread(target=self._decode, args=(stream,), name=f"decode-{stream.id}", daemon=True)
        stream.thread.start()

    def _put(self, put: Callable[[], bool]) -> bool:
        """Retries a bounded put until it succeeds or the run halts (never drops an item
        while the run is healthy)."""
        while not put():
            if self._halt.is_set():
                return False
        return True

    def _decode(self, st: Stream) -> None:
        it = st.source.frames(st.sampler, st.stop)
        error: BaseException | None = None
        timed = not st.source.live  # a live source's wait for the camera is not decode time
        try:
            while True:
                start = time.perf_counter()
                st.busy_since = time.monotonic()
                item = next(it, None)
                st.busy_since = None
                if item is None:
                    break
                if timed:
                    self.times.add("decode", time.perf_counter() - start)
                if isinstance(item, Frame):
                    st.decoded += 1
                if not self._put(lambda item=item: st.buffer.put(item, timeout=0.1)):
                    return
        except StreamerError as exc:
            error = exc
        except BaseException as exc:
            self._fail(exc)
        finally:
            end = _SourceEnd(st.id, error, st.removed)
            self._put(lambda: st.buffer.put(end, timeout=0.1))
            st.buffer.close()

    def _infer(self, handoff: queue.Queue[_Pair]) -> None:
        cfg = self.config.detector
        try:
            while not self._halt.is_set():
                try:
                    batch = self.group.get_batch(cfg.batch, cfg.max_wait_ms / 1000.0)
                except Closed:
                    return
                if self._stop_time_up():
                    batch = self._left(batch)
                todo = [f for f in batch if isinstance(f, Frame) and f.detect]
                results: list[Detections] = []
                if todo:
                    started = self.busy["inference"] = time.monotonic()  # the watchdog reads it meanwhile
                    results = self.detector(todo)
                    seconds = time.monotonic() - started
                    with self._handover:
                        del self.busy["inference"]
                        if self._abandoned.is_set():  # the run ended without these
                            return
                    self.times.add("detect", seconds, len(todo))  # one clock for the stage and the histogram
                    self.batch_seconds.add(seconds)
                    self.batch_sizes[len(todo)] = self.batch_sizes.get(len(todo), 0) + 1
                found = iter(results)
                for item in batch:
                    pair = (item, next(found) if isinstance(item, Frame) and item.detect else None)
                    if not self._put(lambda pair=pair: _offer(handoff, pair)):
                        return
        except BaseException as exc:
            if not self._abandoned.is_set():  # a call the run left is no longer the run's failure
                self._fail(exc)

    def _stop_time_up(self) -> bool:
        return self._stopped_at is not None and time.monotonic() - self._stopped_at > STOP_DETECT_WAIT

    def _left(self, batch: list[_Item]) -> list[_Item]:
        """The batch without its frames, which the stop leaves (statuses and ends go on)."""
        return [item for item in batch if not isinstance(item, Frame)]

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._halt.set()

    # ---- the calling thread

    def _handle(self, item: _Item, dets: Detections | None) -> None:
        stream = self.streams[item.source_id]
        processor = self._processor(stream)
        if isinstance(item, Frame):
            processor.frame(item, dets)
            stream.state = "up"
            self._processed += 1
            if self.progress is not None:
                self.progress(self._processed, self._total)
        elif isinstance(item, SourceStatus):
            processor.status(item)
            stream.state = item.state
            if item.state == "down":
                stream.last_error = item.reason
        else:
            self._end(stream, item.error, item.removed)

    def _end(self, stream: Stream, error: BaseException | None, removed: bool) -> None:
        with self._lock:  # once: the end item, or the run's end for sources stopped early
            if stream.ending:
                return
            stream.ending = True
            removed = removed or stream.removed  # removed after its decode thread had put its end
        processor = self._processor(stream)
        status = SourceStatus(stream.id, "removed", 0, Fraction(0), time.time(), stream.remove_reason) \
            if removed else None
        processor.end(error, status, close=False)
        stream.summary.dropped = stream.buffer.dropped
        stream.state = "removed" if removed else "failed" if error is not None else "ended"
        if error is not None:
            stream.last_error = str(error)
        if error is not None and len(self.streams) > 1:
            text = str(error)  # most errors of a source begin with its label already
            log.error("%s (the other sources go on)", text if text.startswith(stream.source.label)
                      else f"{stream.source.label}: {text}")
        # Its files are finished on a thread of their own (an MP4's encoder flushes its
        # look-ahead, ~0.1 s): the other sources' frames do not wait for that.
        self._closers = [t for t in self._closers if t.is_alive()]
        closer = threading.Thread(target=self._close_stream, args=(stream,), name=f"close-{stream.id}", daemon=True)
        self._closers.append(closer)
        closer.start()

    def _close_stream(self, stream: Stream) -> None:
        try:
            if stream.processor is not None:
                stream.processor.close()
        except BaseException as exc:  # an output that cannot be finished fails the run, as before
            self._fail(exc)
        finally:
            with self._lock:
                stream.ended.set()
                removed = stream.removed  # also when it was removed while this ran
                if removed:
                    self._retire(stream)
            if removed:
                log.info("%s: removed", stream.source.label)

    def _join_closers(self) -> None:
        for closer in list(self._closers):
            closer.join()

    def run(self) -> Summary:
        """Process every source to its end (or to ``duration``, or :meth:`stop`);
        returns the summary or raises the first error."""
        summary = Summary(source=", ".join(st.source.label for st in self.streams.values()),
                          detector=self.detector.backend)
        summary.sources = {sid: st.summary for sid, st in self.streams.items()}
        self._total = self.expected_frames()
        # Two batches in hand-off, but never more than HANDOFF_MAX frames (a batch of 256
        # 1080p frames is 1.6 GB): past that the inference thread waits on the consumer.
        handoff: queue.Queue[_Pair] = queue.Queue(maxsize=min(2 * self.config.detector.batch + 2, HANDOFF_MAX))
        start = time.perf_counter()
        with contextlib.ExitStack() as stack:
            # An interrupt (a second Ctrl-C) or an error still leaves real figures: the
            # callback runs after the outputs are closed.
            stack.callback(self._figures_so_far, summary, start)
            self._shared[:] = [stack.enter_context(sink) for sink in self.config.output.shared_sinks()]
            # Only now is there a run to sum up: a sink refused at its start leaves no summary.
            self.summary = summary
            stack.callback(self._shutdown)
            stack.callback(self._close_processors)
            self._start(handoff)
            self._drain(handoff, start)
            if left := self.left_at_stop:
                log.warning("stopped: %d frames read were not detected in the %gs a stop gives the detector; "
                            "the outputs end before them", left, STOP_DETECT_WAIT)
            if self._errors:
                raise self._errors[0]
            for st in list(self.streams.values()):  # sources stopped early (duration, stop())
                self._end(st, None, False)
            self._join_closers()
            if self._errors:
                raise self._errors[0]
            summary.seconds = time.perf_counter() - start  # processing, before the sinks finish
            for sink in self._shared:
                sink.begin_close()
        return self._finish(summary)

    def _figures_so_far(self, summary: Summary, start: float) -> None:
        """The time and stage figures of a run that did not reach its end."""
        if not summary.seconds:
            summary.seconds = time.perf_counter() - start
            summary.stage_ms = self.times.per_frame_ms(summary.frames)
            summary.outputs = self.config.output.destinations(list(summary.sources))

    def _start(self, handoff: queue.Queue[_Pair]) -> None:
        self._running = self._started = True
        with self._lock:
            streams = list(self.streams.values())
        for stream in streams:
            self._processor(stream)
            self._start_decoding(stream)
        if not self.until_stopped:
            self.group.seal()  # the run ends with its sources
        self._inference = threading.Thread(target=self._infer, args=(handoff,), name="inference", daemon=True)
        self._inference.start()

    def _drain(self, handoff: queue.Queue[_Pair], start: float) -> None:
        """Hands items to their processors until the inference thread has ended and
        the hand-off queue is empty (both producers done, nothing left in between)."""
        duration = self.config.duration
        interval = self.config.stats_interval or 1.0
        next_window = time.monotonic() + interval
        next_trim = time.monotonic() + TRIM_EVERY
        marks: dict[Stream, _Mark] = {}  # by stream: one re-added under an id starts afresh
        inference = self._inference
        assert inference is not None
        while True:
            try:
                item, dets = handoff.get(timeout=0.2)
            except queue.Empty:
                # Checked in this order: once the thread has ended, nothing more is put.
                if not inference.is_alive() and handoff.empty():
                    return
                item = None
            if duration is not None and time.perf_counter() - start >= duration:
                self._stop_asked.set()
            if self._stop_asked.is_set() and self._stopped_at is None:
                self._stop_sources()
                self._stopped_at = time.monotonic()
            if self._stopped_at is not None:
                if time.monotonic() - self._stopped_at > STOP_GRACE:
                    self._abandon_stuck()
                if item is None and self._detector_overran(handoff):
                    return
            if time.monotonic() >= next_window:
                self._window(time.time(), marks)
                next_window = time.monotonic() + interval
            if time.monotonic() >= next_trim:
                release_memory()
                next_trim = time.monotonic() + TRIM_EVERY
            self._run_calls()
            if item is not None:
                self.busy["runner"] = time.monotonic()
                self._handle(item, dets)
                del self.busy["runner"]

    def _detector_overran(self, handoff: queue.Queue[_Pair]) -> bool:
        """Whether the stop's time for detection is up with a detector call still running
        and nothing else to hand over: the run then ends without that call's frames."""
        if not handoff.empty() or not self._stop_time_up():
            return False
        started = self._leave_detector_call()
        if started is None:
            return False
        log.warning("stopping: left the detector's call running for %.1fs", time.monotonic() - started)
        return True

    def _leave_detector_call(self) -> float | None:
        """Leaves the detector call running now, if one is (its thread ends when it
        returns; a command-line process exits without it); returns when it began."""
        with self._handover:
            started = self.busy.get("inference")
            if started is not None and not self._abandoned.is_set():
                self._abandoned.set()
                if self._inference is not None:
                    _LEFT.append(self._inference)
            return started

    @property
    def left_at_stop(self) -> int:
        """Frames read but neither processed nor dropped: a stop's time for detection was up."""
        return sum(max(st.decoded - st.summary.frames - st.buffer.dropped, 0) for st in self.streams.values())

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # the caller raises it
                    future.set_exception(exc)

    def _finish(self, summary: Summary) -> Summary:
        """Stage times and outputs into the summary (every source has ended, its drops
        counted); raises the sources' failures."""
        for step, seconds in self.detector.stage_seconds().items():
            self.times.add(f"detect.{step}", seconds, 0)
        summary.stage_ms = self.times.per_frame_ms(summary.frames)
        if self.until_stopped:  # the streams of a service came and went
            summary.source = ", ".join([*(s.label for s in summary.sources.values()),
                                        *(f"{s.label} (removed)" for s in summary.retired)]) or "no stream"
        ids = list(dict.fromkeys([*summary.sources, *(s.id for s in summary.retired)]))
        summary.outputs = self.config.output.destinations(ids)
        summary.sinks = [stats for sink in self._shared if (stats := sink.delivery()) is not None]
        failed = [st.summary for st in self.streams.values() if st.summary.error]
        if self.until_stopped:  # a service reports each stream's failure where it happened
            return summary
        if len(failed) == 1 and len(self.streams) == 1:
            raise SourceError(failed[0].error)
        if failed:
            raise SourceError(
                f"{len(failed)} of {len(self.streams)} sources failed: " + "; ".join(s.error or "" for s in failed)
            )
        return summary

    def _close_processors(self) -> None:
        for st in self.streams.values():
            if st.processor is not None:
                st.processor.close()

    def _shutdown(self) -> None:
        self._running = False
        self._run_calls()  # none waits for a loop that has ended
        self._join_closers()
        self._halt.set()
        self.group.seal()
        # A detector call still running (an interrupt, an error) is left, not waited for:
        # its thread ends when the call returns.
        self._leave_detector_call()
        threads = [self._inference] if self._inference is not None and not self._abandoned.is_set() else []
        for st in self.streams.values():
            st.stop.set()
            st.buffer.close()
            if st.thread is not None and not st.abandoned:  # an abandoned one ends with its camera's call
                threads.append(st.thread)
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=10.0)

    def _window(self, now: float, marks: dict[Stream, _Mark]) -> None:
        rss = rss_bytes()
        for sid, st in list(self.streams.items()):
            s = st.summary
            t_prev, frames_prev, dropped_prev, latency_prev = marks.get(st, (st.opened_at, 0, 0, Latency()))
            window = s.latency.since(latency_prev)
            dropped = st.buffer.dropped
            record: _Window = {
                "t": now, "frames": s.frames - frames_prev, "dropped": dropped - dropped_prev,
                "p50": window.quantile(0.5), "p99": window.quantile(0.99), "rss": rss,
            }
            self.windows.setdefault(sid, deque(maxlen=10_000)).append(record)
            marks[st] = (now, s.frames, dropped, s.latency.copy())
            if st.source.live and self.config.stats_interval:
                _log_window(st.source.label, record, max(now - t_prev, 1e-9))
        for gone in [st for st in marks if self.streams.get(st.id) is not st]:
            del marks[gone]


def _offer(handoff: queue.Queue[_Pair], pair: _Pair) -> bool:
    try:
        handoff.put(pair, timeout=0.1)
        return True
    except queue.Full:
        return False


def _log_window(label: str, record: _Window, seconds: float) -> None:
    def ms(value: float | None) -> str:
        return f"{value * 1000:.0f} ms" if value is not None else "-"

    offered = (record["frames"] or 0) + (record["dropped"] or 0)
    log.info(
        "%s: %.1f frames/s processed, %d%% dropped, latency p50 %s p99 %s, %d MB",
        label, (record["frames"] or 0) / seconds, round(100 * (record["dropped"] or 0) / offered) if offered else 0,
        ms(record["p50"]), ms(record["p99"]), (record["rss"] or 0) // 2**20,
    )
