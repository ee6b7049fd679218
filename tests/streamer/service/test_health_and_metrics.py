"""``/metrics`` agrees with the run summary and only grows; ``/healthz`` turns 503 when a
worker is wedged (a real wedged detector in a served pipeline) and 200 once it moves."""

from __future__ import annotations

import json
import threading
import time

import requests
from helpers import OBJECTS, clip_with_detections, free_port, wait_for
from serving import LAVFI, Serve, metric_samples, read_events, summary_frames, write_dets

from streamer.config import load_config
from streamer.service import HttpServer, Service, create_app
from streamer.testing import BlobDetector



def test_metrics_agree_with_the_summary_and_never_go_back(tmp_path):
    f1, _, _ = clip_with_detections(tmp_path, OBJECTS, 60, name="f1.mp4")
    f2, _, _ = clip_with_detections(tmp_path, OBJECTS, 45, name="f2.mp4")
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every send fails, every event waits
    config = tmp_path / "serve.yaml"
    config.write_text(json.dumps({
        "detector": {"name": "mot", "detections": str(write_dets(tmp_path / "dets.txt"))},
        "tracker": {"name": "sort"},
        "output": {"events": "events.jsonl",
                   "event_sinks": [{"type": "webhook", "url": hook, "timeout": 1, "drain_timeout": 0.5}]},
        "sources": [{"id": "f1", "uri": str(f1)}, {"id": "f2", "uri": str(f2)}, {"id": "cam", "uri": LAVFI}],
    }))
    serve = Serve(tmp_path, "--config", str(config))
    scrapes = []
    for _ in range(6):
        response = serve.api("GET", "/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        scrapes.append(metric_samples(response.text))
        time.sleep(0.5)
    serve.wait_state("ended", ["f1", "f2"])
    final = metric_samples(serve.api("GET", "/metrics").text)
    scrapes.append(final)
    for before, after in zip(scrapes, scrapes[1:], strict=False):  # counters are monotonic
        for key, value in before.items():
            if key[0].endswith(("_total", "_count", "_sum", "_bucket")) and key in after:
                assert after[key] >= value, key
    rc, out, err = serve.stop()
    assert rc == 0, err
    frames = summary_frames(out)
    events = read_events(tmp_path / "events.jsonl")
    for sid, n in (("f1", 60), ("f2", 45)):
        labels = (("source", sid),)
        assert frames[sid] == n == final[("streamer_frames_processed_total", labels)]
        assert final[("streamer_frames_decoded_total", labels)] == n
        assert final[("streamer_frames_dropped_total", labels)] == 0
        assert final[("streamer_latency_seconds_count", labels)] == n
        assert final[("streamer_source_up", labels)] == 0  # ended
        for kind in {e["type"] for e in events if e["source_id"] == sid}:
            expected = sum(1 for e in events if e["source_id"] == sid and e["type"] == kind)
            assert final[("streamer_events_total", (("source", sid), ("type", kind)))] == expected, kind
    batches = final[("streamer_detector_batch_size_count", ())]
    assert final[("streamer_detector_batch_size_bucket", (("le", "+Inf"),))] == batches > 0
    assert final[("streamer_detector_batch_seconds_count", ())] == batches
    assert final[("streamer_streams", (("state", "ended"),))] == 2
    assert final[("process_resident_memory_bytes", ())] > 10e6
    assert all("track" not in k for _, labels in final for k, _ in labels)  # low cardinality
    sink = (("sink", f"webhook {hook}"),)
    assert final[("streamer_sink_failures_total", sink)] >= 1 and final[("streamer_sink_delivered_total", sink)] == 0
    assert final[("streamer_sink_pending", sink)] >= len([e for e in events if e["source_id"] in ("f1", "f2")]) > 0


class WedgingDetector(BlobDetector):
    """The blob detector, which stops inside its call while ``wedged`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.wedged = threading.Event()
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, frames):
        if self.wedged.is_set():
            self.inside.set()
            self.release.wait(60)
        return super().__call__(frames)


def test_a_wedged_inference_thread_fails_healthz(tmp_path):
    config = load_config(None, {"sources": [{"id": "cam", "uri": LAVFI}], "tracker": {"name": "sort"}})
    detector = WedgingDetector()
    service = Service(config, detector=detector, watchdog=1.0)
    server = HttpServer("127.0.0.1", 0)
    server.start(create_app(service))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", service.run()), daemon=True)
    thread.start()
    try:
        health = f"{server.url}/healthz"
        wait_for(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200, what="ready")
        assert requests.get(health, timeout=5).json() == {"status": "ok"}
        detector.wedged.set()
        assert detector.inside.wait(10)
        wait_for(lambda: requests.get(health, timeout=5).status_code == 503, timeout=5, what="503")
        body = requests.get(health, timeout=5).json()
        assert body["status"] == "stuck" and body["stuck_seconds"]["inference"] >= 1.0
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert 'streamer_worker_stuck{worker="inference"} 1.0' in metrics
        detector.wedged.clear()
        detector.release.set()
        wait_for(lambda: requests.get(health, timeout=5).status_code == 200, timeout=5, what="200 again")
    finally:
        service.stop()
        thread.join(20)
        server.stop()
    assert result["summary"].sources["cam"].frames > 0
