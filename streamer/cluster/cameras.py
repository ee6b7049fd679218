"""Cameras over a Ray cluster: a controller actor and worker actors.

- :class:`Worker` (a Ray actor, one per GPU or per N CPU cores) runs today's in-process
  :class:`~streamer.pipeline.Pipeline` in ``until_stopped`` mode, with its cross-stream
  batching. A stream is decoded where it is detected: only its URL travels, never a
  frame. Each worker has its own outbox folder (``<outbox>/<slot>``) and its own shared
  event file, so nothing two processes write is one file. Ray restarts a worker that
  died (``max_restarts=-1``); the new one reopens its slot's outbox and delivers what the
  dead one had committed but not sent.
- :class:`Controller` (a detached, named Ray actor: ``streamer-controller``) keeps the
  desired stream set and the assignment, places a new stream on the least-loaded worker
  by measured detector time, and watches every worker (a heartbeat each
  ``heartbeat`` seconds). A worker that does not answer within ``timeout`` seconds, or
  answers as a new process (Ray restarted it), is lost: its streams are added to the
  others, each with ``source_down`` (when the worker was last heard from) and
  ``source_up`` (when it resumed) before its first frame.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.cluster import NAMESPACE, require_ray
from streamer.config import AnalyticsConfig, Config, SourceConfig
from streamer.errors import ConfigError, StreamerError

log = logging.getLogger(__name__)

__all__ = ["CONTROLLER", "Controller", "Worker", "start_controller", "worker_config", "worker_options"]

CONTROLLER = "streamer-controller"
_ADD_WAIT = 30.0  # seconds a worker may take to open a stream
_STOP_WAIT = 60.0  # seconds a worker may take to finish its streams' outputs


def worker_config(config: Config, slot: str) -> Config:
    """The config of worker ``slot``: its own outbox folder and, for an events file of
    every stream, its own file (``events.jsonl`` -> ``events.<slot>.jsonl``)."""
    output = config.output
    update: dict[str, Any] = {"outbox": str(Path(output.outbox) / slot)}
    if output.events == "-":
        raise ConfigError("--events -: a worker's standard output is Ray's log; give a file (one per worker)")
    if output.events and "{source_id}" not in output.events:
        path = Path(output.events)
        update["events"] = str(path.with_name(f"{path.stem}.{slot}{path.suffix}"))
    if "existing" not in output.model_fields_set:  # a restarted worker must not destroy what was written
        update["existing"] = "keep"
    return config.model_copy(update={"output": output.model_copy(update=update), "progress": False,
                                     "sources": [], "source": SourceConfig()})


def worker_options(ray: Any, workers: int | None, cpus: float, gpus: float) -> list[dict[str, Any]]:
    """Ray options of each worker: one per GPU when the cluster has GPUs (or ``gpus``
    each), else one per ``cpus`` cores; ``workers`` overrides the count."""
    resources = ray.cluster_resources()
    if gpus <= 0 and resources.get("GPU", 0) >= 1:
        gpus = 1.0
    if workers is None:
        have = resources.get("GPU", 0) / gpus if gpus > 0 else resources.get("CPU", 1) / cpus
        workers = max(1, int(have))
    return [{"num_cpus": cpus, "num_gpus": gpus} for _ in range(workers)]


class Worker:
    """A Ray actor: one pipeline, its streams added and removed by the controller."""

    def __init__(self, slot: str, config: Config, detector: Callable[[], Any] | None = None,
                 watchdog: float = 30.0) -> None:
        from streamer.pipeline import Pipeline

        self.slot = slot
        self.token = f"{os.getpid()}-{time.time_ns():x}"  # a restarted worker is a new process
        self.watchdog = watchdog
        self.pipeline = Pipeline(worker_config(config, slot), detector() if detector else None, until_stopped=True)
        self.pipeline.check_outputs(2)  # streams come and go: per-stream outputs need {source_id}
        self.summary: Any = None
        self.thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.pipeline.run()
        except BaseException:  # reported by figures() as the pipeline's failure
            log.exception("worker %s: the pipeline failed", self.slot)

    def pid(self) -> int:
        return os.getpid()

    def add(self, section: dict[str, Any], resumed: tuple[float, str] | None = None,
            replace: float | None = None) -> str:
        """Opens a stream here (SourceError when it cannot be opened)."""
        return self.pipeline.add_source(SourceConfig.model_validate(section), replace=replace, resumed=resumed)

    def remove(self, sid: str, reason: str = "deleted") -> bool:
        return self.pipeline.remove_source(sid, reason, wait=_ADD_WAIT)

    def set_analytics(self, sid: str, analytics: dict[str, Any]) -> None:
        self.pipeline.set_analytics(sid, AnalyticsConfig.model_validate(analytics))

    def figures(self) -> dict[str, Any]:
        """This worker as the controller sees it: its streams and its detector time."""
        p = self.pipeline
        streams = {}
        for sid, st in list(p.streams.items()):
            if st.removed:
                continue
            s = st.summary
            streams[sid] = {"state": st.state, "live": st.source.live, "frames": s.frames, "decoded": st.decoded,
                            "detected": s.detected, "dropped": st.buffer.dropped, "events": s.events,
                            "reconnects": len(s.reconnects), "last_error": st.last_error,
                            "latency_p50": s.latency.quantile(0.5), "latency_p99": s.latency.quantile(0.99)}
        return {"slot": self.slot, "token": self.token, "pid": os.getpid(), "streams": streams,
                "detector_seconds": p.batch_seconds.total, "detector_calls": p.batch_seconds.n,
                "stuck": p.stuck(self.watchdog), "failed": str(p.failed) if p.failed is not None else None}

    def stop(self) -> dict[str, Any]:
        """Ends every stream (tracks end, outputs finished, outbox drained as configured)."""
        self.pipeline.stop()
        self.thread.join(_STOP_WAIT)
        s = self.summary
        if s is None:
            return {"slot": self.slot, "frames": 0, "events": 0}
        return {"slot": self.slot, "frames": s.frames, "events": s.events,
                "sinks": [{"sink": d.sink, "delivered": d.delivered, "pending": d.pending} for d in s.sinks]}


@dataclass
class _Slot:
    """The controller's record of one worker."""

    actor: Any
    up: bool = False
    token: str | None = None
    last_seen: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    busy: float = 0.0  # detector seconds per second, smoothed
    restarts: int = 0
    placed: dict[str, float] = field(default_factory=dict)  # streams placed, not yet in its measured time


class Controller:
    """A Ray actor (detached, named ``streamer-controller``): the desired stream set, the
    assignment of streams to workers, and failover.

    Args:
        config: The job (detector, tracker, outputs); its sources are not used.
        workers: Ray options of each worker (``num_cpus``, ``num_gpus``, ``resources``).
        detector: Builds each worker's detector (default: from the config).
        heartbeat: Seconds between the controller's looks at every worker.
        timeout: Seconds a worker may take to answer before it counts as lost.
    """

    def __init__(self, config: Config, workers: list[dict[str, Any]], detector: Callable[[], Any] | None = None,
                 heartbeat: float = 0.5, timeout: float = 3.0, watchdog: float = 30.0) -> None:
        ray = self.ray = require_ray()
        actor = ray.remote(Worker)
        self.slots: dict[str, _Slot] = {}
        for i, options in enumerate(workers):
            slot = f"w{i}"
            handle = actor.options(name=f"streamer-worker-{slot}", namespace=NAMESPACE, max_restarts=-1,
                                   max_task_retries=0, max_concurrency=8, **options).remote(slot, config, detector,
                                                                                             watchdog)
            self.slots[slot] = _Slot(handle)
        self.heartbeat, self.timeout = heartbeat, timeout
        self.desired: dict[str, dict[str, Any]] = {}
        self.assigned: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.lost: dict[str, tuple[float, str]] = {}  # streams waiting for a worker: since when, why
        self.reassignments = 0
        self.failovers: list[dict[str, Any]] = []  # one per lost worker: when, streams, when all resumed
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="controller", daemon=True)
        self._monitor.start()

    # ---- the stream set (called by the service)

    def wait_ready(self, timeout: float) -> list[str]:
        """Waits until every worker has answered once (its model is loaded); returns those up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(s.up for s in self.slots.values()):
            time.sleep(0.1)
        return [name for name, s in self.slots.items() if s.up]

    def put(self, sid: str, section: dict[str, Any], strict: bool = True) -> bool:
        """Runs stream ``sid`` on a worker; returns whether it is new. ``strict``: a source
        that cannot be opened raises ConfigError and nothing changes (else it is listed as
        failed, with why)."""
        with self._lock:
            old = self.desired.get(sid)
            if old == section and sid not in self.failed:
                return False
            slot = self.assigned.get(sid) or self._least_loaded()
            if slot is None:
                raise StreamerError("no worker is up; the stream was not placed (see the workers in /metrics)")
            try:
                self.ray.get(self.slots[slot].actor.add.remote(section, replace=15.0 if old else None),
                             timeout=_ADD_WAIT)
            except self.ray.exceptions.RayTaskError as exc:
                why = _cause(exc)
                if strict:
                    raise ConfigError(f"uri: {why}") from None
                self.desired[sid], self.failed[sid] = section, why
                self.assigned.pop(sid, None)
                return old is None
            self.desired[sid] = section
            self.failed.pop(sid, None)
            self.lost.pop(sid, None)  # a stream waiting for a worker has one now
            self.assigned[sid] = slot
            self.slots[slot].placed[sid] = time.monotonic()
            log.info("%s: on worker %s", sid, slot)
            return old is None

    def delete(self, sid: str) -> None:
        with self._lock:
            if sid not in self.desired:
                raise KeyError(sid)
            slot = self.assigned.pop(sid, None)
            if slot is not None and self.slots[slot].up:
                self.ray.get(self.slots[slot].actor.remove.remote(sid), timeout=_ADD_WAIT)
            self.desired.pop(sid)
            self.failed.pop(sid, None)
            self.lost.pop(sid, None)

    def set_analytics(self, sid: str, analytics: dict[str, Any]) -> None:
        with self._lock:
            if sid not in self.desired:
                raise KeyError(sid)
            self.desired[sid] = {**self.desired[sid], "analytics": analytics}
            slot = self.assigned.get(sid)
            if slot is not None and sid not in self.failed:
                self.ray.get(self.slots[slot].actor.set_analytics.remote(sid, analytics), timeout=_ADD_WAIT)

    def view(self) -> dict[str, Any]:
        """The controller's view: workers (up, streams, pid, restarts, detector time),
        streams (where, their figures), failed streams, reassignments and failovers."""
        with self._lock:
            workers = {name: {"up": s.up, "pid": s.figures.get("pid"), "restarts": s.restarts,
                              "streams": sorted(sid for sid, w in self.assigned.items() if w == name),
                              "busy": round(s.busy, 4), "detector_seconds": s.figures.get("detector_seconds", 0.0),
                              "stuck": s.figures.get("stuck", {}) if s.up else {}}
                       for name, s in self.slots.items()}
            streams = {}
            for sid in self.desired:
                slot = self.assigned.get(sid)
                figures = self.slots[slot].figures.get("streams", {}).get(sid) if slot else None
                streams[sid] = {"worker": slot, "figures": figures, "failed": self.failed.get(sid),
                                "waiting": sid in self.lost}
            return {"workers": workers, "streams": streams, "desired": dict(self.desired),
                    "reassignments": self.reassignments, "failovers": list(self.failovers)}

    def worker_pid(self, slot: str) -> int:
        return self.ray.get(self.slots[slot].actor.pid.remote(), timeout=self.timeout)

    def shutdown(self) -> list[dict[str, Any]]:
        """Stops watching, ends every worker's streams and returns their summaries."""
        self._stop.set()
        self._monitor.join(self.timeout + self.heartbeat + 1)
        refs = [s.actor.stop.remote() for s in self.slots.values() if s.up]
        out = []
        for ref in refs:
            try:
                out.append(self.ray.get(ref, timeout=_STOP_WAIT))
            except self.ray.exceptions.RayError as exc:
                out.append({"error": str(exc).splitlines()[0]})
        for s in self.slots.values():
            self.ray.kill(s.actor, no_restart=True)
        return out

    # ---- the watch

    def _watch(self) -> None:
        while not self._stop.wait(self.heartbeat):
            refs = {name: s.actor.figures.remote() for name, s in self.slots.items()}
            for name, ref in refs.items():
                try:
                    figures = self.ray.get(ref, timeout=self.timeout)
                except self.ray.exceptions.RayError as exc:  # died, restarting, or no answer in time
                    self._lost(name, f"worker {name} lost ({type(exc).__name__})")
                    continue
                self._heard(name, figures)
            try:
                self._place_lost()
            except Exception:  # the watch must go on
                log.exception("placing the streams of a lost worker")

    def _heard(self, name: str, figures: dict[str, Any]) -> None:
        slot = self.slots[name]
        if slot.token is not None and figures["token"] != slot.token:
            self._lost(name, f"worker {name} restarted")  # a new process: the old one's streams are gone
            slot.restarts += 1
        with self._lock:
            now = time.monotonic()
            if slot.up and slot.last_seen:
                spent = figures["detector_seconds"] - slot.figures.get("detector_seconds", 0.0)
                rate = spent / (now - slot.last_seen)
                slot.busy = 0.7 * slot.busy + 0.3 * max(rate, 0.0)
            slot.up, slot.token, slot.last_seen, slot.figures = True, figures["token"], now, figures
            slot.placed = {sid: t for sid, t in slot.placed.items() if now - t < 5.0}
            for sid, f in figures["streams"].items():
                if f["state"] == "failed" and self.assigned.get(sid) == name:
                    self.failed[sid] = f["last_error"] or "failed"

    def _lost(self, name: str, why: str) -> None:
        with self._lock:
            slot = self.slots[name]
            if not slot.up:
                return
            # the gap began when the worker was last heard from (wall clock, for the events)
            lost_at = time.time() - (time.monotonic() - slot.last_seen)
            slot.up, slot.placed, slot.busy = False, {}, 0.0
            moved = sorted(sid for sid, w in self.assigned.items() if w == name)
            for sid in moved:
                del self.assigned[sid]
                self.lost[sid] = (lost_at, why)
            self.failovers.append({"worker": name, "lost_at": lost_at, "detected_at": time.time(),
                                   "streams": moved, "resumed_at": None if moved else time.time()})
            log.warning("%s: moving its %d stream(s) to the others", why, len(moved))

    def _place_lost(self) -> None:
        with self._lock:
            for sid, (lost_at, why) in sorted(self.lost.items()):
                slot = self._least_loaded()
                if slot is None:
                    return  # none up: tried again at the next heartbeat
                try:
                    self.ray.get(self.slots[slot].actor.add.remote(self.desired[sid], resumed=(lost_at, why)),
                                 timeout=_ADD_WAIT)
                except self.ray.exceptions.RayTaskError as exc:
                    self.failed[sid] = _cause(exc)
                except self.ray.exceptions.RayError:
                    continue  # that worker went too: the next heartbeat sees it
                else:
                    self.assigned[sid] = slot
                    self.slots[slot].placed[sid] = time.monotonic()
                self.reassignments += 1
                del self.lost[sid]
            for f in self.failovers:
                if f["resumed_at"] is None and not set(f["streams"]) & set(self.lost):
                    f["resumed_at"] = time.time()

    def _least_loaded(self) -> str | None:
        """The worker with the least measured detector time (seconds per second), counting
        each stream placed there since its last measurement at the mean cost of a stream."""
        up = {name: s for name, s in self.slots.items() if s.up}
        if not up:
            return None
        measured = [(s.busy, len(s.figures.get("streams", {}))) for s in up.values()]
        busy, streams = sum(b for b, _ in measured), sum(n for _, n in measured)
        cost = busy / streams if streams and busy > 0 else 1e-3

        def load(name: str) -> tuple[float, int, str]:
            s = up[name]
            unmeasured = [sid for sid in s.placed if sid not in s.figures.get("streams", {})]
            count = sum(1 for w in self.assigned.values() if w == name)
            return s.busy + cost * len(unmeasured), count, name

        return min(up, key=load)


def _cause(exc: Any) -> str:
    """The one-line message of the error a Ray task raised."""
    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__


def start_controller(ray: Any, config: Config, workers: list[dict[str, Any]], **kwargs: Any) -> Any:
    """The running controller (an existing one of this namespace is reused: the stream
    set survives a restart of ``streamer serve``), else a new detached one."""
    try:
        return ray.get_actor(CONTROLLER, namespace=NAMESPACE)
    except ValueError:
        pass
    cls = ray.remote(Controller)
    return cls.options(name=CONTROLLER, namespace=NAMESPACE, lifetime="detached", max_concurrency=16,
                       num_cpus=0).remote(config, workers, **kwargs)
