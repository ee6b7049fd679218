"""``streamer serve``: the pipeline as a long-lived service whose streams change at runtime.

The :class:`Service` owns one :class:`~streamer.pipeline.Pipeline` (the same runtime as
``streamer run``, with ``until_stopped``), the desired stream set (config file plus what
the API changed, kept on disk by :class:`~streamer.service.store.StreamStore`), and the
figures the API and ``/metrics`` show. The HTTP layer (:mod:`streamer.service.http`) is
a thin shell over its methods; they are safe to call from any thread.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamer.config import AnalyticsConfig, Config, SourceConfig, validation_message
from streamer.errors import ConfigError, StreamerError
from streamer.metrics import Latency, Summary
from streamer.pipeline import Pipeline, Stream
from streamer.protocols import Detector
from streamer.service.store import StreamStore
from streamer.urls import redact
from streamer.view.feed import Feed, ViewHub
from streamer.view.webrtc import Peers

log = logging.getLogger(__name__)

__all__ = ["STREAM_ID", "Service", "StreamView", "source_section"]

# Ids name files ({source_id} in output paths) and URL paths: no separators, no "..".
STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RECENT = 10.0  # seconds of figures behind frames/s and latency in the stream list
_CHANGE_WAIT = 15.0  # seconds a DELETE or replacing PUT waits for the old stream to finish


@dataclass
class StreamView:
    """One stream as the API shows it (credentials redacted)."""

    id: str
    uri: str
    live: bool
    state: str  # connecting, up, down, ended, failed
    fps: float  # frames/s processed, over the last seconds
    drop_rate: float  # over the last seconds
    latency_p50: float | None  # capture to output, seconds, over the last seconds
    latency_p99: float | None
    frames: int
    decoded: int
    dropped: int
    reconnects: int
    last_error: str | None
    analytics: dict[str, Any] | None  # its own (None: the config's top-level analytics apply)
    source: dict[str, Any]  # its source section as running, defaults left out (URI redacted)
    counts: dict[str, dict[str, int]] | None = None  # per line and zone, as drawn on the live view
    viewers: int = 0  # live view: WebRTC and MJPEG viewers now
    view_latency_p50: float | None = None  # capture to the view's encoder, seconds, since the start
    view_latency_p99: float | None = None


class _Recent:
    """A stream's figures of the last seconds: one sample a second."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int, int, Latency]] = deque(maxlen=int(_RECENT) + 1)

    def add(self, stream: Stream, now: float) -> None:
        s = stream.summary
        self.samples.append((now, s.frames, stream.buffer.dropped, s.latency.copy()))

    def figures(self, stream: Stream, now: float) -> tuple[float, float, float | None, float | None]:
        s = stream.summary
        if not self.samples:
            return 0.0, 0.0, s.latency.quantile(0.5), s.latency.quantile(0.99)
        t0, frames0, dropped0, latency0 = self.samples[0]
        frames, dropped = s.frames - frames0, stream.buffer.dropped - dropped0
        window = s.latency.since(latency0)
        fps = frames / (now - t0) if now - t0 > 0.5 else 0.0
        offered = frames + dropped
        return fps, dropped / offered if offered else 0.0, window.quantile(0.5), window.quantile(0.99)


class Service:
    """The streams of a running pipeline, changed at runtime and kept across restarts.

    Args:
        config: The job; its ``sources`` (each with an ``id``) are the initial set.
        state: The file of the desired stream set (None: not kept).
        detector: A ready detector (default: built from the config).
        watchdog: Seconds a worker may spend on one step before ``/healthz`` fails.
    """

    def __init__(self, config: Config, *, state: str | Path | None = None, detector: Detector | None = None,
                 watchdog: float = 30.0) -> None:
        configured = {}
        for i, cfg in enumerate(s for s in config.all_sources() if s.uri):
            if not cfg.id:
                raise ConfigError(f"sources[{i}].id: a served stream needs an id (its name in the API and outputs)")
            configured[_checked_id(cfg.id, f"sources[{i}].id")] = cfg
        output = config.output
        if "existing" not in output.model_fields_set:  # a restart or a re-added stream keeps what was written
            output = output.model_copy(update={"existing": "keep"})
        self.config = config.model_copy(update={"sources": [], "source": SourceConfig(), "output": output})
        self.hub: ViewHub | None = None
        self.peers: Peers | None = None
        if config.view.enabled:  # the live view: one feed per stream, fed by a sink of its own
            self.hub = ViewHub(config.view, lambda: self.pipeline.detector.names)
            v = config.view
            self.peers = Peers(v.ice_servers, max_per_stream=v.max_viewers, max_peers=max(64, v.max_viewers))
        trail = config.output.trail
        self.pipeline = Pipeline(self.config, detector, until_stopped=True,
                                 stream_sinks=(lambda sid, a: self.hub.sinks(sid, a, trail)) if self.hub else None)
        self.pipeline.check_outputs(2)  # streams come and go: per-stream outputs need {source_id}
        self.store = StreamStore(state)
        self.store.check_writable()
        self.watchdog = watchdog
        self.started = time.time()
        self.desired: dict[str, SourceConfig] = {}
        self.failed: dict[str, str] = {}  # desired streams that could not be opened: why
        self._lock = threading.Lock()  # one change of the stream set at a time
        self._recent: dict[str, tuple[Stream, _Recent]] = {}
        self._stuck_logged: set[str] = set()
        sections = {sid: c.model_dump(exclude_defaults=True) for sid, c in configured.items()}
        for sid, section in self.store.desired(sections).items():
            try:
                cfg = SourceConfig.model_validate({**section, "id": _checked_id(sid, "stored stream id")})
            except (ValidationError, ConfigError) as exc:
                why = validation_message(exc, f"stored stream {sid}") if isinstance(exc, ValidationError) else str(exc)
                # listed as failed (with why), not dropped without a word: a key renamed by an upgrade
                self.desired[sid] = SourceConfig.model_construct(id=sid, uri=str(section.get("uri", "")))
                self.failed[sid] = redact(why)
                log.error("%s: %s; PUT it again or DELETE it", sid, self.failed[sid])
                continue
            self._open(cfg)

    # ---- the stream set

    def _open(self, cfg: SourceConfig, replace: float | None = None) -> None:
        sid = cfg.id or ""
        self.desired[sid] = cfg
        self.failed.pop(sid, None)
        try:
            self.pipeline.add_source(cfg, replace=replace)
        except StreamerError as exc:
            self.failed[sid] = redact(str(exc))
            log.error("%s: %s", sid, self.failed[sid])

    def put_stream(self, sid: str, body: Any) -> bool:
        """Makes stream ``sid`` run the source section ``body``; returns whether it was
        created (False: it existed, changed or not). Idempotent: an unchanged section
        leaves the running stream alone. Raises ConfigError for a bad body or a source
        that cannot be opened (then nothing changed)."""
        cfg = source_section(sid, body)
        if cfg.analytics is not None:
            self.pipeline.check_analytics(cfg.analytics, "analytics")
        with self._lock:
            old = self.desired.get(sid)
            if "analytics" not in body and old is not None and old.analytics is not None:
                cfg = cfg.model_copy(update={"analytics": old.analytics})  # kept: set apart, by its own PUT
            if old == cfg and sid not in self.failed:
                return False
            try:
                self.pipeline.add_source(cfg, replace=_CHANGE_WAIT)
            except StreamerError as exc:
                raise ConfigError(f"uri: {redact(str(exc))}") from None
            self.desired[sid] = cfg
            self.failed.pop(sid, None)
            self.store.set(sid, body | {"id": sid})
            log.info("%s: %s", sid, "replaced" if old is not None else "added")
            return old is None

    def delete_stream(self, sid: str) -> None:
        """Removes stream ``sid``: its tracks end, ``source_removed`` follows, its outputs
        are finished. Raises KeyError for an unknown id."""
        with self._lock:
            if sid not in self.desired:
                raise KeyError(sid)
            if sid not in self.failed and not self.pipeline.remove_source(sid, "deleted", wait=_CHANGE_WAIT):
                log.warning("%s: still finishing after %.0fs; it ends in the background", sid, _CHANGE_WAIT)
            del self.desired[sid]
            self.failed.pop(sid, None)
            self._recent.pop(sid, None)
            self.store.delete(sid)
            if self.hub is not None:
                self.hub.forget(sid)
            log.info("%s: deleted", sid)

    def set_analytics(self, sid: str, body: Any) -> AnalyticsConfig:
        """Replaces the lines, zones and counts of a running stream (kept across
        restarts). Raises KeyError for an unknown id, ConfigError for a bad body."""
        try:
            analytics = AnalyticsConfig.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, "body")) from None
        with self._lock:
            cfg = self.desired.get(sid)
            if cfg is None:
                raise KeyError(sid)
            if sid not in self.failed:
                self.pipeline.set_analytics(sid, analytics)
            self.desired[sid] = cfg.model_copy(update={"analytics": analytics})
            section = self.store.put.get(sid) or self.desired[sid].model_dump(exclude_defaults=True)
            self.store.set(sid, section | {"analytics": analytics.model_dump(exclude_defaults=True)})
        return analytics

    # ---- what it shows

    def view(self, sid: str) -> StreamView:
        """Raises KeyError for an unknown id."""
        cfg = self.desired[sid]
        stream = self.pipeline.streams.get(sid)
        analytics = cfg.analytics.model_dump() if cfg.analytics is not None else None
        section = cfg.model_dump(exclude_defaults=True, exclude={"analytics", "id"}) | {"uri": redact(cfg.uri or "")}
        if stream is None or sid in self.failed:
            return StreamView(sid, redact(cfg.uri or ""), bool(cfg.live), "failed", 0.0, 0.0, None, None, 0, 0, 0, 0,
                              self.failed.get(sid, "not running"), analytics, section)
        s = stream.summary
        fps, drop_rate, p50, p99 = self._recent_of(stream).figures(stream, time.monotonic())
        error = redact(stream.last_error) if stream.last_error else None
        feed = self.hub.get(sid) if self.hub is not None else None
        return StreamView(sid, redact(cfg.uri or ""), stream.source.live, stream.state, round(fps, 2),
                          round(drop_rate, 4), p50, p99, s.frames, stream.decoded, stream.buffer.dropped,
                          len(s.reconnects), error, analytics, section, *_view_figures(feed))

    def views(self) -> list[StreamView]:
        ids = list(self.desired)  # no lock: a change that waits on a slow camera must not block reads
        out = []
        for sid in ids:
            with contextlib.suppress(KeyError):  # deleted meanwhile
                out.append(self.view(sid))
        return out

    def _recent_of(self, stream: Stream) -> _Recent:
        """The recent figures of this stream object (one re-added under its id starts afresh)."""
        held = self._recent.get(stream.id)
        if held is None or held[0] is not stream:
            held = self._recent[stream.id] = (stream, _Recent())
        return held[1]

    def stuck(self) -> dict[str, float]:
        """Workers past the watchdog's deadline (the run's own thread included)."""
        out = self.pipeline.stuck(self.watchdog)
        if self.pipeline.failed is not None:
            out["pipeline"] = time.time() - self.started
        return out

    def ready(self) -> tuple[bool, str]:
        """Ready to serve: the model is loaded (it is, once this exists) and a stream is up."""
        up = [st.id for st in list(self.pipeline.streams.values()) if st.state == "up"]
        return (True, f"{len(up)} stream(s) up") if up else (False, "no stream is up")

    def tick(self) -> None:
        """Once a second: the recent figures of each stream, and a log line when a
        worker gets stuck."""
        now = time.monotonic()
        for stream in list(self.pipeline.streams.values()):
            self._recent_of(stream).add(stream, now)
            feed = self.hub.get(stream.id) if self.hub is not None else None
            if feed is not None and feed.state == "connecting" and stream.state == "down":
                # down from the start: no frame came, so no view sink was built to say so
                feed.set_state("down", redact(stream.last_error or "never connected"))
        for sid in [sid for sid in self._recent if sid not in self.pipeline.streams]:
            self._recent.pop(sid, None)
        stuck = self.stuck()
        for name in set(stuck) - self._stuck_logged:
            log.error("watchdog: %s has been stuck for %.0fs (limit %.0fs)", name, stuck[name], self.watchdog)
        self._stuck_logged = set(stuck)

    def run(self) -> Summary:
        """Runs the pipeline on the calling thread until :meth:`stop`."""
        ticker = threading.Thread(target=self._tick_forever, name="service-tick", daemon=True)
        ticker.start()
        return self.pipeline.run()

    def _tick_forever(self) -> None:
        while True:
            time.sleep(1.0)
            try:
                self.tick()
            except Exception:  # figures must never take the service down
                log.exception("service figures")

    async def close_viewers(self) -> None:
        """Hangs up every live-view viewer (on the HTTP server's loop, before it stops):
        MJPEG responses end within a second, peer connections are closed."""
        if self.hub is not None:
            self.hub.closed = True
        if self.peers is not None:
            await self.peers.close_all()

    def stop(self) -> None:
        """Ends the run cleanly (safe in a signal handler)."""
        self.pipeline.stop()


def source_section(sid: str, body: Any) -> SourceConfig:
    """The source section a PUT of stream ``sid`` asks for; ConfigError naming what is wrong."""
    _checked_id(sid, "id")
    if not isinstance(body, dict):
        raise ConfigError("body: expected a JSON object (a source section: uri, transport, timeout, ...)")
    if body.get("id", sid) != sid:
        raise ConfigError(f"id: the body's id {body['id']!r} differs from the path's {sid!r}")
    try:
        return SourceConfig.model_validate({**body, "id": sid})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, "body")) from None


def _view_figures(feed: Feed | None) -> tuple:
    """A stream's live-view fields of :class:`StreamView`."""
    if feed is None:
        return None, 0, None, None
    return feed.counts(), feed.viewers(), feed.latency.quantile(0.5), feed.latency.quantile(0.99)


def _checked_id(sid: str, where: str) -> str:
    if not STREAM_ID.match(sid):
        raise ConfigError(f"{where}: {sid[:80]!r} is not a stream id (1-64 letters, digits, '.', '_' or '-', "
                          f"starting with a letter or digit)")
    return sid
