"""``streamer run --ray FOLDER --out DIR``: every file's outputs byte for byte those of
``streamer run FILE``, one manifest, and a job that resumes after an interruption; and
the parts that need no cluster (which files, their configs, the manifest's verdicts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import OBJECTS, SLOW, clip_with_detections

from streamer.cli import main
from streamer.cluster.footage import MANIFEST, _Manifest, config_hash, file_config, footage_inputs
from streamer.config import load_config
from streamer.errors import ConfigError

from .conftest import RAY_ENV

CLIPS = 12


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """12 clips of 60 to 170 frames (two scenes), and the detections of the longest of each scene."""
    folder = tmp_path_factory.mktemp("footage")
    dets = {}
    for i in range(CLIPS):
        scene = "a" if i % 2 == 0 else "b"
        _, det, _ = clip_with_detections(folder, OBJECTS if scene == "a" else SLOW, 60 + 10 * i,
                                         name=f"{scene}{i:02d}.mp4")
        dets[scene] = det  # the longest of each scene comes last
    for det in folder.glob("*-det.txt"):
        if det not in dets.values():
            det.unlink()
    return folder, dets


def _argv(folder: Path, det: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "streamer.cli", "run", str(folder), f"--ray={address}", "--out", str(out),
            "--detector", "mot", "--detections", str(det), "--tracker", "sort", "--task-cpus", "2", "--no-progress"]


def test_footage_matches_single_runs_and_resumes(ray_cluster, footage, tmp_path):
    folder, dets = footage
    clips = folder / "a"  # scene a only: one detections file fits them all
    clips.mkdir()
    for f in folder.glob("a*.mp4"):
        os.link(f, clips / f.name)
    out = tmp_path / "out"
    env = {**os.environ, **RAY_ENV}
    # An interrupted job: Ctrl-C once the first file is complete.
    proc = subprocess.Popen(_argv(clips, dets["a"], out, ray_cluster), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _entries(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    first = _entries(out)
    assert proc.returncode == 130, err
    assert 1 <= len(first) < 6, first
    for events in out.glob("*.jsonl"):  # the interrupted files' too: closed by their tasks, whole lines
        assert all(json.loads(line)["type"] for line in events.read_text().splitlines())
    kept = {stem: Path(e["outputs"]["events"]).stat().st_mtime_ns for stem, e in first.items()}
    # Run again: the complete files are skipped, the rest done.
    again = subprocess.run(_argv(clips, dets["a"], out, ray_cluster), env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"files:   6: {6 - len(first)} done, {len(first)} already complete (skipped)" in again.stdout
    manifest = _entries(out)
    assert sorted(manifest) == sorted(f.stem for f in clips.glob("*.mp4"))
    assert {s: Path(manifest[s]["outputs"]["events"]).stat().st_mtime_ns for s in first} == kept
    _same_as_single_runs(clips, dets["a"], out, tmp_path / "single")


def test_twelve_clips_byte_identical(ray_cluster, footage, tmp_path):
    """12 clips over both nodes; the detections are of scene a, so scene b's clips get
    tracks that are wrong for them but the same in both runs."""
    folder, dets = footage
    out = tmp_path / "out"
    run = subprocess.run(_argv(folder, dets["a"], out, ray_cluster), env={**os.environ, **RAY_ENV},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    frames = sum(60 + 10 * i for i in range(CLIPS))
    assert f"files:   {CLIPS}: {CLIPS} done, 0 already complete" in run.stdout
    assert f"frames:  {frames} processed" in run.stdout
    assert {s: e["frames"] for s, e in _entries(out).items()} == {
        f"{'a' if i % 2 == 0 else 'b'}{i:02d}": 60 + 10 * i for i in range(CLIPS)}
    _same_as_single_runs(folder, dets["a"], out, tmp_path / "single")


def test_a_file_that_fails_is_named_and_the_others_complete(ray_cluster, footage, tmp_path):
    folder, dets = footage
    clips = tmp_path / "clips"
    clips.mkdir()
    for f in sorted(folder.glob("a*.mp4"))[:2]:
        os.link(f, clips / f.name)
    (clips / "broken.mp4").write_bytes(b"not a video at all")
    run = subprocess.run(_argv(clips, dets["a"], tmp_path / "out", ray_cluster), env={**os.environ, **RAY_ENV},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("streamer: error: 1 of 3 files failed (broken: ") and last.endswith(
        "the others are complete, run again to retry these"), last
    assert sorted(_entries(tmp_path / "out")) == ["a00", "a02"]


def _entries(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())["files"]
    except (FileNotFoundError, ValueError):
        return {}


def _same_as_single_runs(folder: Path, det: Path, out: Path, single: Path) -> None:
    single.mkdir()
    for clip in sorted(folder.glob("*.mp4")):
        events, mot = single / f"{clip.stem}.jsonl", single / f"{clip.stem}.txt"
        assert main(["run", str(clip), "--detector", "mot", "--detections", str(det), "--tracker", "sort",
                     "--events", str(events), "--mot", str(mot), "--no-progress"]) == 0
        assert events.stat().st_size > 0 and mot.stat().st_size > 0
        assert (out / events.name).read_bytes() == events.read_bytes(), clip.stem
        assert (out / mot.name).read_bytes() == mot.read_bytes(), clip.stem


# ---- no cluster needed


def test_inputs_of_a_folder_and_a_glob(tmp_path):
    for name in ("b.mp4", "a.mkv", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in footage_inputs(str(tmp_path))] == ["a.mkv", "b.mp4"]
    assert [p.name for p in footage_inputs(str(tmp_path / "*.mp4"))] == ["b.mp4"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.mp4").write_bytes(b"x")
    with pytest.raises(ConfigError, match="have one name"):
        footage_inputs(str(tmp_path / "**" / "a.m*"))
    with pytest.raises(ConfigError, match="no video files"):
        footage_inputs(str(tmp_path / "none"))


def test_file_config_places_outputs_per_file(tmp_path):
    config = load_config(None, {"output": {"video": "{source_id}.mp4", "events": "events.jsonl"}})
    cfg = file_config(config, tmp_path / "cam 1.mp4", tmp_path / "out")
    assert cfg.source.id == "cam 1" and cfg.source.uri == str(tmp_path / "cam 1.mp4")
    assert cfg.output.video == str(tmp_path / "out" / "cam 1.mp4")
    assert cfg.output.events == str(tmp_path / "out" / "cam 1" / "events.jsonl")
    assert cfg.output.mot is None and cfg.progress is False
    plain = file_config(load_config(None, {}), tmp_path / "a.mp4", tmp_path / "o")  # nothing chosen: events + MOT
    assert (plain.output.events, plain.output.mot) == (str(tmp_path / "o" / "a.jsonl"), str(tmp_path / "o" / "a.txt"))
    with pytest.raises(ConfigError, match="standard output"):
        file_config(load_config(None, {"output": {"events": "-"}}), tmp_path / "a.mp4", tmp_path)
    with pytest.raises(ConfigError, match="source_id"):
        file_config(load_config(None, {"output": {"mot": str(tmp_path / "all.txt")}}), tmp_path / "a.mp4", tmp_path)


def test_manifest_verdicts(tmp_path):
    out = tmp_path / "events.jsonl"
    out.write_text("{}\n")
    manifest = _Manifest(tmp_path / MANIFEST)
    manifest.record("a", {"sha256": "h1", "config": "c1", "outputs": {"events": str(out)}})
    again = _Manifest(tmp_path / MANIFEST)
    assert again.complete("a", "h1", "c1")
    assert not again.complete("a", "h2", "c1")  # the input changed
    assert not again.complete("a", "h1", "c2")  # the config changed
    assert not again.complete("b", "h1", "c1")
    out.unlink()
    assert not again.complete("a", "h1", "c1")  # an output went missing
    (tmp_path / MANIFEST).write_text("not json")
    assert _Manifest(tmp_path / MANIFEST).files == {}
    assert len(list(tmp_path.glob(f"{MANIFEST}.bad-*"))) == 1


def test_config_hash_ignores_the_source_only():
    a = load_config(None, {"source": {"uri": "x.mp4", "id": "x"}, "tracker": {"name": "sort"}})
    b = load_config(None, {"source": {"uri": "y.mp4", "id": "y"}, "tracker": {"name": "sort"}, "progress": False})
    c = load_config(None, {"tracker": {"name": "bytetrack"}})
    assert config_hash(a) == config_hash(b) != config_hash(c)
