import pytest

from streamer.config import load_config
from streamer.errors import ConfigError


def test_file_then_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  conf: 0.3\n  imgsz: 320\ntracker:\n  name: sort\n  params: {max_age: 4}\n")
    c = load_config(cfg, {"detector": {"conf": 0.5}})
    assert c.detector.conf == 0.5 and c.detector.imgsz == 320  # flag wins, the rest stays
    assert c.tracker.name == "sort" and c.tracker.params == {"max_age": 4}
    assert c.buffer.policy == "auto" and c.sampler.every == 1  # defaults


@pytest.mark.parametrize(
    "text, message",
    [
        ("sampler:\n  every: 0\n", "sampler.every: Input should be greater than or equal to 1 (got 0)"),
        ("sampler:\n  every: 2\n  target_fps: 5\n", "sampler: Value error, set either every or target_fps"),
        ("buffer:\n  policy: newest\n", "buffer.policy: Input should be 'auto', 'block' or 'drop_oldest'"),
        ("tracker:\n  name: deepsort\n", "tracker.name: Input should be 'sort', 'bytetrack' or 'ocsort'"),
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
