"""Everything one source does after detection, in frame order: tracking, analytics and
the source's own sinks.

A :class:`StreamProcessor` is driven by the runner's main thread only, so it needs no
locks. It knows its stages through the protocols alone (:mod:`streamer.protocols`);
the config builds them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from fractions import Fraction

from streamer.analytics import Analytics
from streamer.config import AnalyticsConfig, ClipsConfig, Config
from streamer.metrics import SourceSummary, StageTimes
from streamer.packets import PacketRing
from streamer.protocols import Sink, Tracker
from streamer.types import Detections, Event, Frame, SourceStatus

__all__ = ["StreamProcessor"]


class StreamProcessor:
    """One source's tracker, analytics and sinks.

    The tracker and the source's sinks are built on its first frame, because a camera's
    rate and size are known only once it has connected.

    Args:
        summary: The source's figures, updated as frames go through.
        config: The job (tracker, analytics and output sections are used).
        names: The detector's class names.
        fps: The rate of the frames this processor receives, asked on the first frame.
        shared: Sinks of every source's events (the runner owns them).
        times: The runner's stage clock (``track`` and ``sinks`` are timed here).
        analytics: The source's lines, zones and counts (default: the config's).
        clips: The source's clips section (its own, or the output's), None: no clips.
        packets: The source's packet ring, filled by its decode thread (clips).
        extra: More sinks of this source's frames, ``extra(source_id, analytics)``, built
            with the others on its first frame (the service's live view).
    """

    def __init__(self, summary: SourceSummary, config: Config, names: dict[int, str],
                 fps: Callable[[], Fraction], shared: Sequence[Sink], times: StageTimes,
                 analytics: AnalyticsConfig | None = None, *,
                 clips: ClipsConfig | None = None, packets: PacketRing | None = None,
                 extra: Callable[[str, AnalyticsConfig], Sequence[Sink]] | None = None) -> None:
        self.summary = summary
        self.id = summary.id
        self._config = config
        self._analytics_config = analytics or config.analytics
        # A file gives the same ids for the same input; a camera's frames and track ids start
        # again at every start, so its ids also carry when this start was (else a consumer that
        # drops duplicates by id would drop the events of a restarted service).
        self._instance = f"{time.time_ns():x}" if summary.live else None
        self._names = names
        self._fps = fps
        self._shared = shared
        self._times = times
        self._clips = clips
        self._packets = packets
        self._extra = extra
        self._tracker: Tracker | None = None
        self._analytics: Analytics | None = None
        self._sinks: list[Sink] = []
        self._outputs = contextlib.ExitStack()
        # Tracks end when the tracker drops them, unless a fixed horizon is configured.
        self._end_by_tracker = config.output.track_end_frames is None
        self._since_detect = 0
        self._last_detect_pts: Fraction | None = None
        self.track_ids: set[int] = set()
        self.ended = False

    # ---- the three kinds of item a source sends

    def frame(self, frame: Frame, dets: Detections | None) -> int:
        """Track, raise events and write the sinks for one frame (``dets`` None: the
        detector skipped it and the tracker predicts); returns the events raised."""
        if self._tracker is None:
            self._start()
        with self._times.time("track"):
            tracks = self._track(frame, dets)
            alive = self._tracker.alive_ids if self._end_by_tracker else None  # type: ignore[union-attr]
            events = self._events().update(frame, tracks, alive)
        with self._times.time("sinks"):
            for sink in self._sinks:  # evidence first (clips, snapshots), so every sink sees it
                events = sink.annotate(frame, tracks, events)
            for sink in self._all_sinks():
                sink.write(frame, tracks, events)
            self._write_events(self._pending())
        self.track_ids.update(tracks.tracker_id.tolist())
        self.summary.frames += 1
        self.summary.count_events(events)
        self.summary.latency.add(time.time() - frame.captured_at)
        return len(events)

    def status(self, status: SourceStatus) -> int:
        """A live source went down or came back: its events, and its tracks end at a gap."""
        analytics = self._events()
        frame = max(status.index - 1, 0)
        if status.state == "down":
            self.summary.downs += 1
            self.summary.down_since = status.at
            events = analytics.source_down(frame, float(status.pts), status.at, status.reason)
            if self._tracker is not None:
                self._tracker.reset()  # tracks do not survive the gap; new ones start after it
            self._last_detect_pts = None
            self._since_detect = 0
        else:
            self.summary.down_since = None
            self.summary.downtime += status.downtime
            self.summary.reconnects.append(status.downtime)
            events = analytics.source_up(frame, float(status.pts), status.at, status.downtime, status.attempts)
        self._write_events(events)
        for sink in self._all_sinks():
            sink.source_changed(status)
        self._write_events(self._pending())
        return len(events)

    def end(self, error: BaseException | None, removed: SourceStatus | None = None, close: bool = True) -> int:
        """The source has no more frames: final events (open tracks end), its outputs
        finished (``close`` False: begun, :meth:`close` finishes them, e.g. on another
        thread). ``removed``: it was taken out of a running pipeline (``source_removed``
        follows the final events), and every sink hears so. Returns the events raised;
        idempotent."""
        if self.ended:
            return 0
        self.ended = True
        if self.summary.down_since is not None:  # down at the end: that outage counts too
            self.summary.downtime += max(time.time() - self.summary.down_since, 0.0)
        if removed is not None:
            events = self._events().removed(removed.at, removed.reason or "removed")
        else:
            events = self._analytics.finish() if self._analytics is not None else []
        self._write_events(events)
        if removed is not None:
            for sink in self._all_sinks():
                sink.source_changed(removed)
        for sink in self._sinks:
            sink.begin_close()
        self._write_events(self._pending())  # clips finished at the end (clip_ready)
        if close:
            self._outputs.close()
        if error is not None:
            self.summary.error = str(error)
        self.summary.tracks = len(self.track_ids - {-1})
        return len(events)

    def close(self) -> None:
        """Finish the source's outputs (after :meth:`end`, or without final events when the
        run is failing); idempotent, and safe on another thread once no item comes."""
        self._outputs.close()

    def set_analytics(self, config: AnalyticsConfig) -> int:
        """Lines, zones and counts of ``config`` from the next frame on (tracks go on);
        the old zones' open visits end. Returns the events raised."""
        self._analytics_config = config
        events = self._analytics.replace(config) if self._analytics is not None else []
        self._write_events(events)
        for sink in self._sinks:
            sink.analytics_changed(config)
        return len(events)

    # ---- inside

    def _start(self) -> None:
        fps = self._fps()
        self._tracker = self._config.tracker.build(fps)
        self._events()
        sinks = self._config.output.stream_sinks(self.id, fps, self._names, self.summary.live, clips=self._clips,
                                                 packets=self._packets, analytics=self._analytics_config)
        for sink in [*sinks, *(self._extra(self.id, self._analytics_config) if self._extra else ())]:
            self._sinks.append(self._outputs.enter_context(sink))

    def _events(self) -> Analytics:
        # Built on the first frame or status (a camera that is down at start has no frame yet).
        if self._analytics is None:
            self._analytics = Analytics(self.id, self._names, self._analytics_config, None,
                                        self._config.output.track_end_frames or 30, live=self.summary.live,
                                        instance=self._instance)
        return self._analytics

    def _track(self, frame: Frame, dets: Detections | None) -> Detections:
        tracker = self._tracker
        assert tracker is not None
        self._since_detect += 1
        if dets is None:
            return tracker.predict(self._since_detect)
        period = self._since_detect
        if self.summary.live and self._last_detect_pts is not None:
            # Frames dropped or lost in a gap count as time passed.
            period = max(1, round((frame.pts - self._last_detect_pts) * self._fps()))
        self._since_detect = 0
        self._last_detect_pts = frame.pts
        self.summary.detected += 1
        # max_det holds for every detector (one given to Pipeline too): a tracker's
        # association grows with the square of the boxes
        return tracker.update(dets.proper().best(self._config.detector.max_det), period=period)

    def _all_sinks(self) -> tuple[Sink, ...]:
        return (*self._sinks, *self._shared)

    def _write_events(self, events: Sequence[Event]) -> None:
        """Events raised between frames: with the source sinks' evidence, to every sink."""
        events = list(events)
        for sink in self._sinks:
            events = sink.annotate(None, None, events)
        self.summary.count_events(events)
        if events:
            for sink in self._all_sinks():
                sink.write_events(events)

    def _pending(self) -> list[Event]:
        """Events the source's sinks raised themselves (clip_ready)."""
        return [e for sink in self._sinks for e in sink.pending_events()]
