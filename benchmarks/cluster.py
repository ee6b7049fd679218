"""Ray scale-out (issue 14): what Ray costs on one machine, and failover after kill -9.

- ``footage``: 8 clips (640x360 H.264, 300 frames, replayed detections, SORT) processed
  four ways in the same run, alternated over ``--rounds``: ``streamer run`` per file one
  after another; ``streamer run`` per file, as many processes at once as there are cores;
  a process pool of as many workers running the pipeline in-process (imports paid once per
  worker); and ``streamer run --ray`` against a running local Ray cluster of as many CPUs
  (the driver's start included, as each ``streamer run`` pays its own). Figure: frames/s
  over all files, and --ray against the parallel processes (goal: within 5%).
- ``failover``: 6 live cameras over 2 worker actors; the worker holding the most cameras
  is killed with kill -9, ``--trials`` times; figure: seconds from the kill to every moved
  camera delivering frames on the survivor, Ray's restart of the killed worker, and
  events lost: those the dead worker had committed to its outbox that never reached the
  webhook endpoint (the endpoint refuses for 3 s before each kill, so there are some).
- ``stream``: the per-stream figures behind the README's 100-camera sizing: CPU seconds
  per frame to decode, track and write a 1280x720 H.264 stream (bikes.mp4 scaled), and the
  YOLOv8n forward pass at 640 on this CPU (batch 8).

    python benchmarks/cluster.py [--part footage|failover|stream] [--rounds 2] [--trials 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from streamer.config import load_config  # noqa: E402  (after the path)
from streamer.synthetic import MovingBox, write_mot, write_video  # noqa: E402
from streamer.testing import WebhookReceiver, free_port  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(REPO), "RAY_memory_monitor_refresh_ms": "0", "RAY_AUTH_MODE": "disabled",
       "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
CPUS = os.cpu_count() or 2
RAY = str(Path(sys.executable).with_name("ray"))
OBJECTS = [MovingBox(10, 40, 60, 90, 3.0, 1.0, (230, 25, 75)), MovingBox(560, 200, 50, 80, -2.5, -0.5, (0, 130, 200))]


def _start_cluster(port: int) -> str:
    subprocess.run([RAY, "start", "--head", f"--port={port}", f"--num-cpus={CPUS}", "--include-dashboard=false",
                    "--object-store-memory=100000000", "--disable-usage-stats"], env=ENV, check=True,
                   capture_output=True, timeout=120)
    return f"127.0.0.1:{port}"


def _stop_cluster() -> None:
    subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=120)


# ---- footage


def _clips(folder: Path, n: int = 8, frames: int = 300) -> Path:
    clips = folder / "clips"
    clips.mkdir()
    for i in range(n):
        truth = write_video(clips / f"clip{i}.mp4", OBJECTS, frames, (360, 640), 25)
    write_mot(folder / "det.txt", truth)
    return clips


def _flags(folder: Path) -> list[str]:
    return ["--detector", "mot", "--detections", str(folder / "det.txt"), "--tracker", "sort", "--no-progress"]


def _single(clip: Path, out: Path, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamer.cli", "run", str(clip), "--events", str(out / f"{clip.stem}.jsonl"),
            "--mot", str(out / f"{clip.stem}.txt"), *flags]


def _sequential(clips: list[Path], out: Path, flags: list[str]) -> None:
    for clip in clips:
        subprocess.run(_single(clip, out, flags), env=ENV, check=True, capture_output=True)


def _parallel(clips: list[Path], out: Path, flags: list[str]) -> None:
    running: list[subprocess.Popen] = []
    for clip in clips:
        while len(running) >= CPUS:  # a new one starts as soon as one ends
            time.sleep(0.01)
            running = [p for p in running if p.poll() is None]
        running.append(subprocess.Popen(_single(clip, out, flags), env=ENV, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
    for p in running:
        p.wait()


def _pool_task(args: tuple[str, str, list[str]]) -> int:
    from streamer.cli import main

    clip, out, flags = args
    with contextlib.redirect_stdout(io.StringIO()):  # the summary, as the subprocess ways drop it
        return main(["run", clip, "--events", f"{out}/{Path(clip).stem}.jsonl", "--mot",
                     f"{out}/{Path(clip).stem}.txt", *flags])


def _pool(clips: list[Path], out: Path, flags: list[str]) -> None:
    with concurrent.futures.ProcessPoolExecutor(CPUS) as pool:
        assert all(code == 0 for code in pool.map(_pool_task, [(str(c), str(out), flags) for c in clips]))


def _ray(address: str, folder: Path, out: Path, flags: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "streamer.cli", "run", str(folder), f"--ray={address}", "--out", str(out),
                    *flags], env=ENV, check=True, capture_output=True)


def _ray_tasks(ray, folder: Path, out: Path, det: Path) -> None:
    """The Ray tasks alone: the job run from this process, already connected (no driver start)."""
    from streamer.cluster import absolute_paths
    from streamer.cluster.footage import FootageJob

    config = absolute_paths(load_config(None, {"detector": {"name": "mot", "detections": str(det)},
                                               "tracker": {"name": "sort"}, "progress": False}))
    FootageJob(config, str(folder), out, progress=False).run(lambda: ray)


def footage(args: argparse.Namespace, tmp: Path) -> None:
    folder = _clips(tmp, frames=args.frames)
    clips = sorted(folder.glob("*.mp4"))
    frames = args.frames * len(clips)
    flags = _flags(tmp)
    address = _start_cluster(free_port())
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("RAY_")} | {"PYTHONPATH": str(REPO)})
    from streamer.cluster import connect

    ray = connect(address)
    ways = {
        "streamer run, one file after another": lambda out: _sequential(clips, out, flags),
        f"streamer run, {CPUS} processes at once": lambda out: _parallel(clips, out, flags),
        f"process pool of {CPUS}, pipeline in-process": lambda out: _pool(clips, out, flags),
        f"streamer run --ray (local cluster, {CPUS} CPUs)": lambda out: _ray(address, folder, out, flags),
        "the same Ray tasks, driver already connected": lambda out: _ray_tasks(ray, folder, out, tmp / "det.txt"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    try:
        _ray(address, folder, tmp / "warm", flags)  # Ray's first workers start once per cluster
        for r in range(args.rounds):
            for name, way in ways.items():
                out = tmp / f"out-{r}-{len(seconds[name])}-{abs(hash(name))}"
                out.mkdir()
                t0 = time.perf_counter()
                way(out)
                seconds[name].append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
        _stop_cluster()
    parallel = sum(seconds[f"streamer run, {CPUS} processes at once"]) / args.rounds
    print(f"\nfootage: {len(clips)} clips x {args.frames} frames (640x360 H.264), replayed detections, SORT; "
          f"{CPUS} cores; mean of {args.rounds} alternated rounds")
    print(f"| way | seconds | frames/s | against {CPUS} parallel processes |")
    print("|---|---|---|---|")
    for name, s in seconds.items():
        mean = sum(s) / len(s)
        print(f"| {name} | {mean:.2f} | {frames / mean:.0f} | {parallel / mean:.3f} |")


# ---- failover


def failover(args: argparse.Namespace, tmp: Path) -> None:
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("RAY_")} | {"PYTHONPATH": str(REPO)})
    receiver = WebhookReceiver().start()
    det = tmp / "det.txt"
    det.write_text("".join(f"{i},-1,{10 + (i * 8) % 280},100,40,60,0.9,-1,-1,-1\n" for i in range(1, 20001)))
    address = _start_cluster(free_port())
    from streamer.cluster import connect
    from streamer.cluster.cameras import start_controller
    from streamer.cluster.service import ClusterService

    ray = connect(address)
    config = load_config(None, {
        "detector": {"name": "mot", "detections": str(det)}, "tracker": {"name": "sort"}, "progress": False,
        "buffer": {"policy": "block"}, "stats_interval": 0,
        "sources": [{"id": f"c{i}", "uri": "lavfi:testsrc2=size=320x240:rate=10"} for i in range(6)],
        "output": {"outbox": str(tmp / "outbox"), "event_sinks": [
            {"type": "webhook", "url": receiver.url, "drain_timeout": 15}]}})
    controller = start_controller(ray, config, [{"num_cpus": 1}, {"num_cpus": 1}], heartbeat=0.5, timeout=3.0)
    rows, committed = [], set()
    try:
        ray.get(controller.wait_ready.remote(120))
        service = ClusterService(ray, controller, config)
        _until(lambda: all(v.state == "up" for v in service.views()), 60)
        for trial in range(args.trials):
            rows.append(_trial(ray, controller, service, tmp, committed, receiver))
            print(f"  trial {trial + 1}: {rows[-1]}", flush=True)
        ray.get(controller.shutdown.remote(), timeout=120)
    finally:
        ray.kill(controller)
        ray.shutdown()
        _stop_cluster()
        receiver.close()
    delivered = {e["id"] for e in receiver.events}
    lost = committed - delivered
    print(f"\nfailover: 6 cameras (lavfi 320x240 at 10 fps) over 2 workers, kill -9 of the busier one, "
          f"{args.trials} trials; heartbeat 0.5 s, timeout 3 s; times seen through the API (+0.5-1 s resolution)")
    print("| trial | cameras moved | kill to all moved cameras up (s) | Ray restarted the worker after (s) |")
    print("|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['moved']} | {r['failover']:.2f} | {r['restart']:.1f} |")
    times = sorted(r["failover"] for r in rows)
    print(f"| all | {sum(r['moved'] for r in rows)} | median {times[len(times) // 2]:.2f}, max {times[-1]:.2f} | |")
    print(f"events in the killed workers' outboxes at the kills: {len(committed)}; delivered: "
          f"{len(committed & delivered)}; lost: {len(lost)}")


def _trial(ray, controller, service, tmp: Path, committed: set, receiver: WebhookReceiver) -> dict:
    view = service.view_all()
    name = max(view["workers"], key=lambda w: len(view["workers"][w]["streams"]))
    moved = view["workers"][name]["streams"]
    restarts = view["workers"][name]["restarts"]
    time.sleep(3)
    receiver.refusing.set()
    time.sleep(3)
    pid = ray.get(controller.worker_pid.remote(name))
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    with sqlite3.connect(f"file:{next((tmp / 'outbox' / name).glob('webhook-*.sqlite3'))}?mode=ro", uri=True) as db:
        committed.update(json.loads(p)["id"] for (p,) in db.execute("SELECT payload FROM outbox"))
    receiver.refusing.clear()

    def moved_up() -> bool:
        views = {v.id: v for v in service.views()}
        return all(views[s].state == "up" and views[s].source["worker"] != name for s in moved)

    def restarted() -> bool:
        w = service.view_all()["workers"][name]
        return w["up"] and w["restarts"] > restarts

    seen: dict[str, float] = {}
    deadline = killed + 120
    while len(seen) < 2 and time.monotonic() < deadline:
        for key, condition in (("failover", moved_up), ("restart", restarted)):
            if key not in seen and condition():
                seen[key] = time.monotonic() - killed
        time.sleep(0.05)
    if len(seen) < 2:
        raise SystemExit(f"not within 120 s: {sorted({'failover', 'restart'} - set(seen))}")
    return {"moved": len(moved), **seen}


def _until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s")
        time.sleep(0.05)


# ---- per stream


def stream(args: argparse.Namespace, tmp: Path) -> None:
    import av
    import cv2
    import numpy as np

    from streamer.synthetic import encode_video

    with av.open(str(DATA / "video" / "bikes.mp4")) as c:
        images = [cv2.resize(f.to_ndarray(format="rgb24"), (1280, 720)) for f in c.decode(video=0)]
    clip = tmp / "bikes720.mp4"
    encode_video(clip, images, (720, 1280), 25, crf=23)
    (tmp / "det.txt").write_text("".join(f"{i},-1,100,100,50,80,0.9,-1,-1,-1\n" for i in range(1, len(images) + 1)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(_single(clip, tmp, _flags(tmp)), env=ENV, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    startup = _startup_cpu()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) - startup
    per_frame = cpu / len(images)
    from ultralytics import YOLO

    import torch

    model = YOLO("yolov8n.yaml").model.eval()  # random weights: the same compute as trained ones
    batch = torch.from_numpy(np.random.default_rng(0).random((8, 3, 640, 640), np.float32))
    with torch.inference_mode():
        model(batch)
        t0 = time.perf_counter()
        for _ in range(3):
            model(batch)
        forward = (time.perf_counter() - t0) / 24
    print(f"\nper stream ({len(images)} frames of bikes.mp4 scaled to 1280x720, H.264 crf 23, "
          f"{clip.stat().st_size * 8 / (len(images) / 25) / 1e6:.1f} Mbit/s)")
    print("| measure | figure |")
    print("|---|---|")
    print(f"| decode + track + write, CPU per frame (process start, {startup:.2f} CPU s, left out) | "
          f"{per_frame * 1000:.1f} ms |")
    print(f"| a 720p camera at 15 fps: cores for decode + track + write | {per_frame * 15:.3f} |")
    print(f"| YOLOv8n forward at 640, batch 8, torch on this CPU ({torch.get_num_threads()} threads) | "
          f"{forward * 1000:.1f} ms/frame ({1 / forward:.1f} frames/s) |")


def _startup_cpu() -> float:
    """CPU seconds of a streamer process that imports the pipeline and exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import streamer.pipeline, streamer.cli, sinks.video, sinks.mot"],
                   env=ENV, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["footage", "failover", "stream"], action="append")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--frames", type=int, default=300, help="frames per clip (footage)")
    args = p.parse_args()
    for part in args.part or ["footage", "failover", "stream"]:
        with tempfile.TemporaryDirectory() as tmp:
            {"footage": footage, "failover": failover, "stream": stream}[part](args, Path(tmp))


if __name__ == "__main__":
    main()
