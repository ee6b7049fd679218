"""The export cache: reused on the next start, a new entry for other settings, a corrupt
or stale entry exported again with a warning; ``streamer export`` and ``--backend``."""

import json
import logging

import pytest
import torch
from helpers import OBJECTS

from streamer.cli import main
from streamer.detectors import export
from streamer.detectors.export import MANIFEST, ExportSpec, cached_export, check_entry, entry_dir, export_key
from streamer.detectors.yolo import YoloDetector
from streamer.errors import ModelError
from streamer.synthetic import write_video


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "v8n.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


def start(weights, caplog, **kwargs):
    """A detector on the OpenVINO backend and what it logged."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streamer"):
        det = YoloDetector(str(weights), device="cpu", backend=kwargs.pop("backend", "openvino"), **kwargs)
    return det, [r.getMessage() for r in caplog.records if r.name.startswith("streamer")]


def exporting(messages):
    return [m for m in messages if m.startswith("exporting ")]


def test_second_start_reuses_the_export_and_imgsz_makes_a_new_one(weights, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    first, log1 = start(weights, caplog, imgsz=320, batch=2, cache_dir=cache)
    assert first.exported and len(exporting(log1)) == 1 and log1[0].startswith("detector backend: openvino")
    second, log2 = start(weights, caplog, imgsz=320, batch=2, cache_dir=cache)
    assert not second.exported and exporting(log2) == []
    assert log2[0] == "detector backend: openvino (asked for) on cpu" and log2[1].startswith("detector model: ")
    third, log3 = start(weights, caplog, imgsz=352, batch=2, cache_dir=cache)
    assert third.exported and "imgsz 352" in exporting(log3)[0]
    assert sorted(p.name for p in (tmp_path / "cache" / "v8n").iterdir()) == ["openvino-320-b2-fp32",
                                                                               "openvino-352-b2-fp32"]


def test_default_cache_is_beside_the_weights(tmp_path, weights, caplog):
    local = tmp_path / "v8n.pt"
    local.write_bytes(weights.read_bytes())
    det, _ = start(local, caplog, backend="onnxruntime", imgsz=256, batch=1)
    assert det.exported
    assert (tmp_path / "v8n.pt.streamer-cache" / "onnxruntime-256-b1-fp32" / "model.onnx").is_file()


def test_a_truncated_model_is_exported_again_with_a_warning(weights, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    start(weights, caplog, imgsz=320, batch=2, cache_dir=cache)
    xml_bin = next((tmp_path / "cache").rglob("model.bin"))
    size = xml_bin.stat().st_size
    xml_bin.write_bytes(xml_bin.read_bytes()[: size // 2])
    det, messages = start(weights, caplog, imgsz=320, batch=2, cache_dir=cache)
    warning = [m for m in messages if "is corrupt" in m]
    assert det.exported and len(warning) == 1 and "model_openvino_model/model.bin does not match" in warning[0]
    assert xml_bin.stat().st_size == size
    assert check_entry(xml_bin.parents[1], export_key(ExportSpec(weights, "openvino", 320, 2))) is None


def test_a_stale_or_half_written_entry_is_exported_again(weights, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    spec = ExportSpec(weights, "onnxruntime", 256, 1)
    entry = entry_dir(spec, cache)
    cached_export(spec, cache)
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["key"]["versions"]["onnx"] = "0.0.1"  # made by another onnx release
    (entry / MANIFEST).write_text(json.dumps(manifest))
    assert check_entry(entry, export_key(spec)) == "stale (versions changed)"
    with caplog.at_level(logging.WARNING, logger="streamer"):
        path, exported = cached_export(spec, cache)
    assert exported and path.is_file() and "is stale (versions changed); exporting it again" in caplog.text
    (entry / MANIFEST).unlink()  # an export cut short before its manifest
    assert check_entry(entry, export_key(spec)).startswith("corrupt (no readable manifest")
    assert cached_export(spec, cache)[1]
    assert cached_export(spec, cache)[1] is False


def test_the_key_holds_what_changes_the_model(weights, tmp_path):
    key = export_key(ExportSpec(weights, "openvino", 640, 8))
    assert key["imgsz"] == 640 and key["batch"] == 8 and key["precision"] == "fp32" and key["dynamic"] is True
    assert set(key["versions"]) == {"ultralytics", "torch", "openvino"} and all(key["versions"].values())
    assert len(key["weights_sha256"]) == 64
    other = tmp_path / "other.pt"
    other.write_bytes(weights.read_bytes() + b"\0")
    assert export_key(ExportSpec(other, "openvino", 640, 8))["weights_sha256"] != key["weights_sha256"]
    assert set(export._versions("tensorrt")) == {"ultralytics", "torch", "onnx", "onnxslim", "onnxruntime",
                                                 "tensorrt"}


def test_export_without_its_requirements_names_the_extra(weights, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxslim" else real(name, *a))
    with pytest.raises(ModelError, match=r"^exporting for onnxruntime needs onnxslim: pip install 'streamer\[onnx\]'$"):
        export.require_export("onnxruntime")


def test_cli_export_then_run_uses_the_cache(weights, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    args = ["export", str(weights), "--backend", "onnxruntime", "--imgsz", "320", "--batch", "2", "--cache-dir", cache]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("onnxruntime (asked for): exported: ") and out.strip().endswith("model.onnx")
    assert main(args) == 0
    assert "already in the cache" in capsys.readouterr().out
    det = YoloDetector(str(weights), device="cpu", backend="onnxruntime", imgsz=320, batch=2, cache_dir=cache)
    assert not det.exported


def test_cli_export_errors(weights, tmp_path, capsys):
    assert main(["export", str(tmp_path / "m.onnx"), "--backend", "openvino"]) == 2
    assert "export takes .pt weights" in capsys.readouterr().err
    assert main(["export", str(weights), "--backend", "tensorrt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["streamer: error: detector backend 'tensorrt' is not installed: pip install 'streamer[tensorrt]' "
                   "(or use backend: auto, which picks among those installed)"]


def test_run_with_backend_flag_names_it_in_the_summary(weights, tmp_path, capsys):
    video = tmp_path / "tiny.mp4"
    write_video(video, OBJECTS, 12, (240, 320), 25)
    code = main(["run", str(video), "--weights", str(weights), "--backend", "openvino", "--imgsz", "320",
                 "--batch", "4", "--no-progress", "--events", str(tmp_path / "e.jsonl")])
    assert code == 0
    out = capsys.readouterr().out
    assert "detector: openvino (asked for)" in out and "frames:  12 processed (12 detected)" in out


def test_the_exporter_never_pip_installs():
    """While streamer exports, ultralytics' automatic install of a missing requirement is
    off: a missing one is reported, not fetched (and the setting is restored after)."""
    from ultralytics.utils import checks

    before = checks.AUTOINSTALL
    with export._no_auto_install():
        assert checks.check_requirements("streamer-no-such-package>=1") is False
    assert before == checks.AUTOINSTALL
