import re

import pytest

from streamer.config import load_config
from streamer.errors import ConfigError


def test_file_then_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  conf: 0.3\n  imgsz: 320\ntracker:\n  name: sort\n  params: {max_age: 4}\n")
    c = load_config(cfg, {"detector": {"conf": 0.5}})
    assert c.detector.conf == 0.5 and c.detector.imgsz == 320  # flag wins, the rest stays
    assert c.tracker.name == "sort" and c.tracker.params.model_dump(exclude_unset=True) == {"max_age": 4}
    assert c.buffer.policy == "auto" and c.sampler.every == 1  # defaults


@pytest.mark.parametrize(
    "text, message",
    [
        ("sampler:\n  every: 0\n", "sampler.every: Input should be greater than or equal to 1 (got 0)"),
        ("sampler:\n  every: 2\n  target_fps: 5\n", "sampler: set either every or target_fps"),
        ("buffer:\n  policy: newest\n", "buffer.policy: Input should be 'auto', 'block' or 'drop_oldest'"),
        ("tracker:\n  name: deepsort\n", "tracker.name: Input should be 'sort', 'bytetrack' or 'ocsort'"),
        ("tracker:\n  name: sort\n  params: {max_agee: 3}\n", "tracker.params.max_agee: unknown key"),
        ("tracker:\n  name: bytetrack\n  params: {track_buffer: -1}\n",
         "tracker.params.track_buffer: Input should be greater than or equal to 0 (got -1)"),
        ("detector:\n  name: mot\n  weights: a.pt\n  detections: d.txt\n",
         "detector.weights: a setting of yolo only, not of mot"),
        ("detector:\n  name: tflite\n", "detector.name: Input should be 'yolo' or 'mot' (got 'tflite')"),
        ("output:\n  event_sinks:\n    - type: kafka\n",
         "output.event_sinks.0.type: Input should be 'jsonl', 'stdout', 'webhook', 'mqtt' or 'redis'"),
        ("output:\n  event_sinks:\n    - type: mqtt\n      url: mqtt://h\n      stream: s\n",
         "output.event_sinks.0.stream: a setting of redis only, not of mqtt"),
        ("output:\n  event_sinks:\n    - type: jsonl\n", "output.event_sinks.0: a jsonl sink needs path"),
        ("output:\n  vidoe: a.mp4\n", "output.vidoe: unknown key"),
        ("- just\n- a list\n", "expected a mapping of sections"),
        ("detector: [unclosed\n", "not valid YAML"),
    ],
)
def test_errors_name_the_field(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match="c.yaml: ") as info:
        load_config(cfg)
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_are_valid():
    from helpers import REPO

    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)


def test_each_section_builds_its_own_stage(tmp_path):
    """Tracker, detector and event-sink sections are typed variants that build their stage."""
    from sinks.delivery import DeliverySink
    from streamer.detectors.mot import MotDetector
    from trackers.bytetrack import ByteTrack
    from trackers.sort import Sort

    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n")
    c = load_config(None, {
        "detector": {"name": "mot", "detections": str(det), "conf": 0.5},
        "tracker": {"name": "bytetrack", "params": {"track_buffer": 60}},
        "output": {"outbox": str(tmp_path / "ob"), "event_sinks": [{"type": "redis", "url": "redis://h:1/0"}]},
    })
    detector = c.detector.build()
    assert isinstance(detector, MotDetector) and detector.conf == 0.5
    tracker = c.tracker.build(25)
    assert isinstance(tracker, ByteTrack) and tracker.max_time_lost == 50  # 60 frames at 30/s, at 25/s
    sink = c.output.shared_sinks()[0]
    assert isinstance(sink, DeliverySink) and sink.outbox.path.parent == tmp_path / "ob"
    assert re.fullmatch(r"redis-h-1-[0-9a-f]{8}\.sqlite3", sink.outbox.path.name)  # named by its endpoint
    assert c.output.destinations() == {"redis": "redis://h:1/0"}
    sort = load_config(None, {"tracker": {"name": "sort", "params": {"max_age": 2}}}).tracker.build(30)
    assert isinstance(sort, Sort) and sort.max_age == 2  # SORT takes no frame rate: none is passed


def test_tracker_params_checked_across_fields():
    c = load_config(None, {"tracker": {"name": "bytetrack", "params": {"track_low_thresh": 0.5}}})
    with pytest.raises(ConfigError, match="tracker.params: ByteTrack: need 0 <= track_low_thresh <= track_high_thresh"):
        c.tracker.build(30)


def test_flag_picking_another_variant_drops_the_file_keys_it_lacks(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  name: yolo\n  weights: m.pt\n  batch: 4\ntracker:\n  name: ocsort\n"
                   "  params: {det_thresh: 0.5}\n")
    c = load_config(cfg, {"detector": {"name": "mot", "detections": "d.txt"}, "tracker": {"name": "sort"}})
    assert c.detector.name == "mot" and c.detector.batch == 4 and c.detector.detections == "d.txt"
    assert c.tracker.name == "sort" and c.tracker.params.model_dump(exclude_unset=True) == {}


def test_cli_choices_come_from_the_config_variants():
    import argparse

    from streamer import cli
    from streamer.config import DETECTOR_VARIANTS, TRACKER_VARIANTS, names

    assert names(TRACKER_VARIANTS) == ["sort", "bytetrack", "ocsort"]
    assert names(DETECTOR_VARIANTS) == ["yolo", "mot"]
    parser = argparse.ArgumentParser()
    cli._run_parser(parser.add_subparsers())
    run = parser.parse_args(["run", "x.mp4", "--tracker", "bytetrack", "--detector", "mot"])
    assert (run.tracker, run.detector) == ("bytetrack", "mot")
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "x.mp4", "--tracker", "deepsort"])
    # every event sink that a URL alone sets up has its flag
    run = parser.parse_args(["run", "x.mp4", "--webhook", "http://h/x", "--mqtt", "mqtt://h", "--redis", "redis://h"])
    assert (run.webhook, run.mqtt, run.redis) == (["http://h/x"], ["mqtt://h"], ["redis://h"])
