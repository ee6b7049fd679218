"""The runtime's threads and hand-offs: the run always ends, and sources come and go."""

import json
import threading
import time

import av
import pytest
from helpers import OBJECTS, BlobDetector, clip_with_detections, run_in_thread, wait_for

from streamer.config import OutputConfig, SourceConfig, load_config
from streamer.errors import ConfigError, StreamerError
from streamer.pipeline import Pipeline
from streamer.protocols import Sink


class StallingSink(Sink):
    """Stalls the consumer thread once, at one frame (a slow disk, a blocked stdout, a
    GC pause), and records what it heard."""

    def __init__(self, at: int, seconds: float) -> None:
        self.at, self.seconds = at, seconds
        self.frames: list[int] = []
        self.statuses: list[tuple[str, str]] = []
        self.closed = False

    def write(self, frame, tracks, events) -> None:
        if frame.index == self.at:
            time.sleep(self.seconds)
        self.frames.append(frame.index)

    def source_changed(self, status) -> None:
        self.statuses.append((status.source_id, status.state))

    def close(self) -> None:
        self.closed = True


def run_with_timeout(pipeline: Pipeline, seconds: float) -> dict:
    thread, result = run_in_thread(pipeline)
    thread.join(seconds)
    result["hung"] = thread.is_alive()
    if result["hung"]:
        pipeline.stop()
    return result


# At frame 22 the 18 items left (17 frames and the source's end) fill the hand-off queue
# (2 x batch + 2) exactly while the consumer stalls: the runner of before lost its end
# marker there and looped for ever.
@pytest.mark.parametrize("at", [0, 21, 22, 23, 39])
def test_a_stalled_consumer_never_hangs_the_run(at, tmp_path, monkeypatch):
    """The consumer stalls for 1.5 s at one frame of a 40-frame clip (default batch): the
    workers end meanwhile, and the run still ends with every frame processed."""
    path, det, _ = clip_with_detections(tmp_path, OBJECTS, 40)
    sink = StallingSink(at, 1.5)
    monkeypatch.setattr(OutputConfig, "shared_sinks", lambda self: [sink])
    cfg = load_config(None, {"source": {"uri": str(path)}, "progress": False,
                             "detector": {"name": "mot", "detections": str(det)}})
    result = run_with_timeout(Pipeline(cfg), 20)
    assert not result["hung"], "the run did not end after the workers did"
    assert "error" not in result, result.get("error")
    assert result["summary"].frames == 40 and sink.frames == list(range(40)) and sink.closed


# A live test source paced to real time: a red box crossing a grey scene at 40 px/s.
MOVING_BOX = ("lavfi:color=c=gray:size=320x240:rate=25[bg];color=c=red:size=40x60:rate=25[box];"
              "[bg][box]overlay=x='mod(10+40*t,270)':y=40")


def test_sources_added_and_removed_while_running(tmp_path, monkeypatch):
    """A service-style run: a second source joins the running pipeline and the first is
    removed; each source's tracks end, its outputs are whole files, every sink hears of
    the removal, and the run ends on stop()."""
    b, _, _ = clip_with_detections(tmp_path, OBJECTS, 30, name="b.mp4")
    events = tmp_path / "events.jsonl"
    cfg = load_config(None, {
        "source": {"uri": MOVING_BOX, "id": "a"}, "progress": False,
        "detector": {"name": "yolo", "batch": 2}, "tracker": {"name": "sort", "params": {"max_age": 3}},
        "output": {"video": str(tmp_path / "out" / "{source_id}.mp4"), "events": str(events)},
    })
    sink = StallingSink(-1, 0)
    shared = OutputConfig.shared_sinks
    monkeypatch.setattr(OutputConfig, "shared_sinks", lambda self: [*shared(self), sink])
    pipeline = Pipeline(cfg, detector=BlobDetector(), until_stopped=True)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    wait_for(lambda: pipeline.streams["a"].summary.frames >= 20)
    assert pipeline.add_source(SourceConfig(uri=str(b), id="b")) == "b"
    with pytest.raises(ConfigError, match="id 'b' is used twice"):
        pipeline.add_source(SourceConfig(uri=str(b), id="b"))
    wait_for(lambda: pipeline.streams["b"].processor is not None and pipeline.streams["b"].processor.ended)
    assert pipeline.remove_source("a", wait=10)  # its end processed: the id is free again
    assert "a" not in pipeline.streams and [st.id for st in pipeline.retired] == ["a"]
    assert pipeline.active() == []
    with pytest.raises(ConfigError, match="no source 'a'"):
        pipeline.remove_source("a")
    assert thread.is_alive()  # a service waits for sources to come
    pipeline.stop()
    thread.join(20)
    assert not thread.is_alive()
    summary = pipeline.summary
    (a,) = summary.retired
    assert summary.sources["b"].frames == 30 and a.id == "a" and a.frames >= 20
    assert summary.frames == 30 + a.frames
    assert ("a", "removed") in sink.statuses and ("b", "removed") not in sink.statuses
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [e["type"] for e in lines if e["source_id"] == "a"][-1] == "source_removed"
    assert not [e for e in lines if e["source_id"] == "b" and e["type"] == "source_removed"]
    for sid, frames in (("a", a.frames), ("b", 30)):
        with av.open(str(tmp_path / "out" / f"{sid}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == frames
        started = sorted(e["track_id"] for e in lines if e["source_id"] == sid and e["type"] == "track_started")
        ended = sorted(e["track_id"] for e in lines if e["source_id"] == sid and e["type"] == "track_ended")
        assert started and started == ended


class SlowClose(Sink):
    """A source's own sink that takes ``seconds`` to finish (a flush to a slow disk)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def write(self, frame, tracks, events) -> None:
        pass

    def close(self) -> None:
        time.sleep(self.seconds)


def test_a_stream_removed_while_its_end_is_finished_frees_its_id(tmp_path, monkeypatch):
    a, _, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="a.mp4")
    own = OutputConfig.stream_sinks
    monkeypatch.setattr(OutputConfig, "stream_sinks", lambda self, *args, **kw: [*own(self, *args, **kw),
                                                                                 SlowClose(1.0)])
    cfg = load_config(None, {"source": {"uri": str(a), "id": "a"}, "progress": False, "tracker": {"name": "sort"}})
    pipeline = Pipeline(cfg, detector=BlobDetector(), until_stopped=True)
    thread, result = run_in_thread(pipeline)
    wait_for(lambda: pipeline.streams["a"].ending, what="the end of a being finished")
    assert not pipeline.streams["a"].ended.is_set()  # its sink still closing
    assert pipeline.remove_source("a", wait=10)  # forgotten once finished: the file ended by itself
    assert "a" not in pipeline.streams
    assert pipeline.add_source(SourceConfig(uri=str(a), id="a")) == "a"  # the id is free again
    wait_for(lambda: pipeline.streams["a"].ended.is_set(), what="the second a")
    pipeline.stop()
    thread.join(20)
    assert "error" not in result, result.get("error")
    assert [s.frames for s in pipeline.summary.retired] == [10] and pipeline.summary.sources["a"].frames == 10


def test_nothing_joins_or_changes_a_stopping_pipeline(tmp_path):
    a, _, _ = clip_with_detections(tmp_path, OBJECTS, 5, name="a.mp4")
    cfg = load_config(None, {"source": {"uri": str(a), "id": "a"}, "progress": False})
    pipeline = Pipeline(cfg, detector=BlobDetector(), until_stopped=True)
    thread, _ = run_in_thread(pipeline)
    wait_for(lambda: pipeline.streams["a"].ended.is_set())
    pipeline.stop()
    with pytest.raises(ConfigError, match="the pipeline is finishing"):
        pipeline.add_source(SourceConfig(uri=str(a), id="b"))
    thread.join(20)
    with pytest.raises(StreamerError, match="the pipeline has stopped"):
        pipeline.call(lambda: None)


def test_a_camera_that_is_down_is_not_stuck(tmp_path):
    from helpers import free_port

    cfg = load_config(None, {"source": {"uri": f"rtsp://127.0.0.1:{free_port()}/x", "id": "cam", "timeout": 0.5,
                                        "reconnect": {"initial": 0.2, "max": 0.5}}, "progress": False})
    pipeline = Pipeline(cfg, detector=BlobDetector(), until_stopped=True)
    thread, _ = run_in_thread(pipeline)
    wait_for(lambda: pipeline.streams["cam"].state == "down", what="down")
    seen = []
    for _ in range(15):  # 3 s: several reconnect attempts, each past the 0.2 s deadline
        seen.append(pipeline.stuck(0.2))
        time.sleep(0.2)
    pipeline.stop()
    thread.join(20)
    assert seen == [{}] * 15


def test_a_live_source_logs_a_status_line_every_interval(caplog):
    cfg = load_config(None, {"source": {"uri": "lavfi:testsrc2=size=160x120:rate=25", "id": "cam"},
                             "progress": False, "stats_interval": 0.5, "duration": 2.2})
    with caplog.at_level("INFO", logger="streamer.pipeline"):
        Pipeline(cfg, detector=BlobDetector()).run()
    lines = [r.getMessage() for r in caplog.records if "frames/s processed" in r.getMessage()]
    assert len(lines) >= 3 and all(line.startswith("lavfi:testsrc2") for line in lines), lines
    # the camera's 25 frames/s, the first window too (it was counted over no time at all: 10^10 frames/s)
    rates = [float(line.split(": ")[1].split()[0]) for line in lines]
    assert all(0 < r <= 30 for r in rates) and rates[-1] > 15, lines
