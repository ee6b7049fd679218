"""``/metrics``: the service's figures in Prometheus' text format (prometheus-client).

A custom collector reads the pipeline's own counters at scrape time, so the metrics are
the run summary's numbers, never a second count kept beside them. Labels stay
low-cardinality: ``source`` (stream ids), ``type`` (event types), ``sink``; never track
ids. A stream removed at runtime leaves the series (Prometheus treats a stream added
again under the same id as a counter reset).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from streamer.metrics import Latency
from streamer.service.core import Service

__all__ = ["LATENCY_BUCKETS", "StreamerCollector", "registry"]

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _observe(family: HistogramMetricFamily, latency: Latency, bounds: tuple[float, ...],
             labels: list[str] | None = None) -> HistogramMetricFamily:
    """One series of ``family`` from a :class:`Latency` distribution."""
    counts = latency.cumulative(bounds)
    buckets = [(repr(float(b)), c) for b, c in zip(bounds, counts, strict=True)] + [("+Inf", latency.n)]
    family.add_metric(labels or [], buckets, latency.total)
    return family


class StreamerCollector(Collector):
    """The figures of a :class:`Service`, read when scraped."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        yield from self._streams()
        yield from self._detector()
        yield from self._sinks()
        yield from self._view()

    def _streams(self) -> Iterator[Metric]:
        pipeline = self.service.pipeline
        streams = list(pipeline.streams.values())
        per_source = {
            "decoded": CounterMetricFamily("streamer_frames_decoded", "Frames decoded and handed on",
                                           labels=["source"]),
            "processed": CounterMetricFamily("streamer_frames_processed", "Frames tracked and written",
                                             labels=["source"]),
            "detected": CounterMetricFamily("streamer_frames_detected", "Frames the detector saw", labels=["source"]),
            "dropped": CounterMetricFamily("streamer_frames_dropped", "Frames dropped by a drop_oldest buffer",
                                           labels=["source"]),
            "reconnects": CounterMetricFamily("streamer_source_reconnects", "Times a live source came back",
                                              labels=["source"]),
            "up": GaugeMetricFamily("streamer_source_up", "1 while the source delivers frames", labels=["source"]),
            "depth": GaugeMetricFamily("streamer_buffer_depth", "Frames waiting in the source's buffer",
                                       labels=["source"]),
        }
        latency = HistogramMetricFamily("streamer_latency_seconds", "Capture to output, per processed frame",
                                        labels=["source"])
        events = CounterMetricFamily("streamer_events", "Events raised", labels=["source", "type"])
        for st in streams:
            s, labels = st.summary, [st.id]
            for key, value in (("decoded", st.decoded), ("processed", s.frames), ("detected", s.detected),
                               ("dropped", st.buffer.dropped), ("reconnects", len(s.reconnects)),
                               ("up", int(st.state == "up")), ("depth", len(st.buffer))):
                per_source[key].add_metric(labels, value)
            _observe(latency, s.latency, LATENCY_BUCKETS, labels)
            for kind, n in sorted(s.event_types.items()):
                events.add_metric([st.id, kind], n)
        yield from per_source.values()
        yield latency
        yield events
        states = GaugeMetricFamily("streamer_streams", "Desired streams by state", labels=["state"])
        counts: dict[str, int] = {}
        for view in self.service.views():
            counts[view.state] = counts.get(view.state, 0) + 1
        for state in ("connecting", "up", "down", "ended", "failed"):
            states.add_metric([state], counts.get(state, 0))
        yield states

    def _detector(self) -> Iterator[Metric]:
        pipeline = self.service.pipeline
        sizes = HistogramMetricFamily("streamer_detector_batch_size", "Frames per detector call")
        batch_sizes = dict(pipeline.batch_sizes)
        buckets = [(repr(float(bound)), sum(c for size, c in batch_sizes.items() if size <= bound))
                   for bound in BATCH_BUCKETS]
        calls, frames = sum(batch_sizes.values()), sum(size * c for size, c in batch_sizes.items())
        sizes.add_metric([], [*buckets, ("+Inf", calls)], frames)
        yield sizes
        seconds = HistogramMetricFamily("streamer_detector_batch_seconds", "Seconds per detector call")
        yield _observe(seconds, pipeline.batch_seconds, LATENCY_BUCKETS)
        stuck = GaugeMetricFamily("streamer_worker_stuck", "1 while a worker is past the watchdog's deadline",
                                  labels=["worker"])
        for name in sorted(self.service.stuck()):
            stuck.add_metric([name], 1)
        yield stuck

    def _sinks(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("streamer_sink_pending", "Events in the sink's outbox, not yet acknowledged",
                                    labels=["sink"])
        delivered = CounterMetricFamily("streamer_sink_delivered", "Events acknowledged by the endpoint",
                                        labels=["sink"])
        failures = CounterMetricFamily("streamer_sink_failures", "Failed sends (each is retried)", labels=["sink"])
        dead = CounterMetricFamily("streamer_sink_dead_letters", "Events refused for good, set aside",
                                   labels=["sink"])
        for sink in self.service.pipeline.shared_sinks:
            stats = sink.delivery()
            if stats is not None:
                pending.add_metric([stats.sink], stats.pending)
                delivered.add_metric([stats.sink], stats.delivered)
                failures.add_metric([stats.sink], stats.failures)
                dead.add_metric([stats.sink], stats.dead)
        yield from (pending, delivered, failures, dead)

    def _view(self) -> Iterator[Metric]:
        hub, peers = self.service.hub, self.service.peers
        if hub is None or peers is None:
            return
        yield GaugeMetricFamily("streamer_view_peers", "Open WebRTC peer connections (live view viewers)",
                                value=len(peers.open))
        yield CounterMetricFamily("streamer_view_peers_closed", "WebRTC peer connections closed and cleaned up",
                                  value=peers.closed)
        viewers = GaugeMetricFamily("streamer_view_viewers", "Viewers of a stream now", labels=["source", "kind"])
        rendered = CounterMetricFamily("streamer_view_frames", "Frames drawn for the live view (once for every "
                                       "viewer)", labels=["source"])
        encoded = CounterMetricFamily("streamer_view_frames_encoded", "Frames encoded to H.264 for WebRTC viewers",
                                      labels=["source"])
        latency = HistogramMetricFamily("streamer_view_latency_seconds", "Capture to the moment a frame is handed "
                                        "to the view's encoders", labels=["source"])
        for feed in hub.feeds():
            viewers.add_metric([feed.sid, "webrtc"], feed.viewers("h264"))
            viewers.add_metric([feed.sid, "mjpeg"], feed.viewers("jpeg"))
            rendered.add_metric([feed.sid], feed.rendered)
            encoded.add_metric([feed.sid], feed.encoded)
            _observe(latency, feed.latency, LATENCY_BUCKETS, [feed.sid])
        yield from (viewers, rendered, encoded, latency)


def registry(service: Service, collector: Collector | None = None) -> CollectorRegistry:
    """A registry of the service's figures (``collector``: another source of them, e.g.
    a Ray cluster's controller) and the process' (RSS, CPU, open files)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector if collector is not None else StreamerCollector(service))
    ProcessCollector(registry=reg)
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
