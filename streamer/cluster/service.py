"""``streamer serve --ray``: the service's HTTP API over the cluster's controller.

:class:`ClusterService` has the methods the HTTP layer (:mod:`streamer.service.http`)
calls on a :class:`~streamer.service.Service` (put, delete, analytics, views, health),
each forwarded to the controller actor; the desired stream set is kept on disk here too
(the same ``streams.json``). :class:`ClusterCollector` is ``/metrics`` from the
controller's view: streams per worker, workers up, reassignments, and each stream's
counters as its worker reported them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from streamer.config import AnalyticsConfig, Config, SourceConfig, validation_message
from streamer.errors import ConfigError, StreamerError
from streamer.service.core import STREAM_ID, StreamView, source_section
from streamer.service.store import StreamStore
from streamer.urls import redact

log = logging.getLogger(__name__)

__all__ = ["ClusterCollector", "ClusterService"]

_VIEW_TTL = 0.5  # seconds a controller view is reused by reads (a scrape and a list read it once)


def _checked(sid: str, where: str) -> str:
    if not STREAM_ID.match(sid):
        raise ConfigError(f"{where}: {sid[:80]!r} is not a stream id (1-64 letters, digits, '.', '_' or '-', "
                          f"starting with a letter or digit)")
    return sid


class ClusterService:
    """The stream set of a Ray cluster, as :class:`~streamer.service.Service` is one process'.

    Args:
        ray: The connected ``ray`` module.
        controller: The controller actor's handle.
        config: The job; its sources (each with an id) are the initial set.
        state: The file of the desired stream set (None: not kept).
    """

    def __init__(self, ray: Any, controller: Any, config: Config, state: str | Path | None = None) -> None:
        self.ray, self.controller = ray, controller
        self.hub = self.peers = None  # the live view is in-process only: the frames are on the workers
        self.store = StreamStore(state)
        self.store.check_writable()
        self.started = time.time()
        self._stop = threading.Event()
        self._view: tuple[float, dict[str, Any]] | None = None
        configured = {}
        for i, cfg in enumerate(s for s in config.all_sources() if s.uri):
            if not cfg.id:
                raise ConfigError(f"sources[{i}].id: a served stream needs an id (its name in the API and outputs)")
            configured[_checked(cfg.id, f"sources[{i}].id")] = cfg.model_dump(exclude_defaults=True)
        for sid, section in self.store.desired(configured).items():
            try:
                cfg = SourceConfig.model_validate({**section, "id": _checked(sid, "stored stream id")})
            except ValidationError as exc:
                log.error("%s: %s; PUT it again or DELETE it", sid, redact(validation_message(exc, sid)))
                continue
            self._call(self.controller.put.remote(sid, cfg.model_dump(exclude_defaults=True), strict=False))

    @property
    def desired(self) -> dict[str, Any]:
        return self.view_all()["desired"]

    def _call(self, ref: Any, timeout: float = 60.0) -> Any:
        """A controller call; its ConfigError / KeyError come back as themselves."""
        try:
            return self.ray.get(ref, timeout=timeout)
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if isinstance(cause, (ConfigError, KeyError, StreamerError)):
                raise cause from None
            raise StreamerError(f"the cluster's controller failed: {str(exc).splitlines()[0]}") from None
        except self.ray.exceptions.RayError as exc:
            raise StreamerError(f"the cluster's controller did not answer ({type(exc).__name__}); "
                                f"is the Ray cluster up?") from None
        finally:
            self._view = None

    def put_stream(self, sid: str, body: Any) -> bool:
        cfg = source_section(sid, body)
        created = self._call(self.controller.put.remote(sid, cfg.model_dump(exclude_defaults=True)))
        self.store.set(sid, body | {"id": sid})
        return created

    def delete_stream(self, sid: str) -> None:
        self._call(self.controller.delete.remote(sid))
        self.store.delete(sid)

    def set_analytics(self, sid: str, body: Any) -> AnalyticsConfig:
        try:
            analytics = AnalyticsConfig.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, "body")) from None
        section = analytics.model_dump(exclude_defaults=True)
        self._call(self.controller.set_analytics.remote(sid, section))
        self.store.set(sid, (self.store.put.get(sid) or self.view_all()["desired"][sid]) | {"analytics": section})
        return analytics

    def view_all(self) -> dict[str, Any]:
        """The controller's view, at most ``_VIEW_TTL`` old."""
        held = self._view
        if held is None or time.monotonic() - held[0] > _VIEW_TTL:
            view = self._call(self.controller.view.remote(), timeout=10.0)
            self._view = held = (time.monotonic(), view)
        return held[1]

    def view(self, sid: str) -> StreamView:
        """Raises KeyError for an unknown id."""
        return _stream_view(sid, self.view_all())

    def views(self) -> list[StreamView]:
        view = self.view_all()
        return [_stream_view(sid, view) for sid in view["desired"]]

    def stuck(self) -> dict[str, float]:
        """The workers' own watchdog findings, by ``<worker>/<thread>``."""
        out = {}
        for name, w in self.view_all()["workers"].items():
            out.update({f"{name}/{k}": v for k, v in w["stuck"].items()})
        return out

    def ready(self) -> tuple[bool, str]:
        view = self.view_all()
        up = [sid for sid, s in view["streams"].items() if (s["figures"] or {}).get("state") == "up"]
        workers = sum(w["up"] for w in view["workers"].values())
        return (bool(up), f"{len(up)} stream(s) up on {workers} worker(s)" if up else "no stream is up")

    def run(self, duration: float | None = None) -> None:
        """Waits until :meth:`stop` (or ``duration``)."""
        self._stop.wait(duration)

    def stop(self) -> None:
        """Ends the wait (safe in a signal handler)."""
        self._stop.set()


def _stream_view(sid: str, view: dict[str, Any]) -> StreamView:
    section = view["desired"][sid]
    s = view["streams"][sid]
    f = s["figures"] or {}
    uri = redact(section.get("uri", ""))
    state = "failed" if s["failed"] else ("connecting" if s["waiting"] else f.get("state", "connecting"))
    error = s["failed"] or (redact(f["last_error"]) if f.get("last_error") else None)
    shown = {k: v for k, v in section.items() if k not in ("analytics", "id")} | {"uri": uri}
    return StreamView(sid, uri, bool(f.get("live", section.get("live", False))), state, 0.0, 0.0,
                      f.get("latency_p50"), f.get("latency_p99"), f.get("frames", 0), f.get("decoded", 0),
                      f.get("dropped", 0), f.get("reconnects", 0), error, section.get("analytics"),
                      shown | {"worker": s["worker"]})


class ClusterCollector(Collector):
    """``/metrics`` of ``streamer serve --ray``, read from the controller when scraped."""

    def __init__(self, service: ClusterService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        view = self.service.view_all()
        up = GaugeMetricFamily("streamer_cluster_worker_up", "1 while the worker answers the controller",
                               labels=["worker"])
        streams = GaugeMetricFamily("streamer_cluster_streams", "Streams placed on the worker", labels=["worker"])
        restarts = CounterMetricFamily("streamer_cluster_worker_restarts", "Times Ray restarted the worker",
                                       labels=["worker"])
        busy = GaugeMetricFamily("streamer_cluster_worker_detector_busy", "Detector seconds per second (measured)",
                                 labels=["worker"])
        for name, w in sorted(view["workers"].items()):
            up.add_metric([name], int(w["up"]))
            streams.add_metric([name], len(w["streams"]))
            restarts.add_metric([name], w["restarts"])
            busy.add_metric([name], w["busy"])
        yield from (up, streams, restarts, busy)
        moved = CounterMetricFamily("streamer_cluster_reassignments", "Streams moved off a lost worker")
        moved.add_metric([], view["reassignments"])
        yield moved
        yield from _stream_families(view)


def _stream_families(view: dict[str, Any]) -> Iterator[Metric]:
    families = {
        "processed": CounterMetricFamily("streamer_frames_processed", "Frames tracked and written",
                                         labels=["source", "worker"]),
        "decoded": CounterMetricFamily("streamer_frames_decoded", "Frames decoded and handed on",
                                       labels=["source", "worker"]),
        "dropped": CounterMetricFamily("streamer_frames_dropped", "Frames dropped by a drop_oldest buffer",
                                       labels=["source", "worker"]),
        "up": GaugeMetricFamily("streamer_source_up", "1 while the source delivers frames",
                                labels=["source", "worker"]),
    }
    states: dict[str, int] = {}
    for sid in view["desired"]:
        v = _stream_view(sid, view)
        states[v.state] = states.get(v.state, 0) + 1
        worker = view["streams"][sid]["worker"] or ""
        for key, value in (("processed", v.frames), ("decoded", v.decoded), ("dropped", v.dropped),
                           ("up", int(v.state == "up"))):
            families[key].add_metric([sid, worker], value)
    yield from families.values()
    by_state = GaugeMetricFamily("streamer_streams", "Desired streams by state", labels=["state"])
    for state in ("connecting", "up", "down", "ended", "failed"):
        by_state.add_metric([state], states.get(state, 0))
    yield by_state
