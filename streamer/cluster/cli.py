"""The ``--ray`` halves of ``streamer run`` and ``streamer serve`` (see :mod:`streamer.cluster`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from streamer.cluster import absolute_paths, check_address, connect, require_ray
from streamer.errors import ConfigError

log = logging.getLogger("streamer")

__all__ = ["cmd_run_ray", "cmd_serve_ray", "footage_flags", "serve_flags"]


def footage_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="process many files (SOURCE: a folder of videos or a glob) as Ray tasks, into --out; "
                        "ADDRESS: a Ray cluster's head (HOST:PORT, auto), default a local one "
                        "(write `--ray=ADDRESS` or put SOURCE first when giving one)")
    p.add_argument("--out", metavar="DIR", help="with --ray: the output folder (one output set per file, and "
                   "manifest.json: a second run skips the files already complete)")
    p.add_argument("--task-cpus", type=float, default=1.0, help="with --ray: CPUs per file's task (default 1)")
    p.add_argument("--task-gpus", type=float, default=0.0, 
                   help="with --ray: GPUs per file's task (0.25: four share one)")


def serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="place the streams on worker actors of a Ray cluster (ADDRESS: its head, HOST:PORT or auto; "
                        "default a local one)")
    p.add_argument("--workers", type=int, help="with --ray: worker actors (default: one per GPU, or per "
                   "--worker-cpus cores)")
    p.add_argument("--worker-cpus", type=float, default=2.0, help="with --ray: CPUs per worker (default 2)")
    p.add_argument("--worker-gpus", type=float, default=0.0, help="with --ray: GPUs per worker (default: 1 where "
                   "the cluster has GPUs)")


def cmd_run_ray(args: argparse.Namespace) -> int:
    from streamer.cli import _job_config
    from streamer.cluster.footage import FootageJob

    pattern, address = args.source, args.ray
    if pattern is None:  # `--ray FOLDER`: argparse gave the folder to --ray
        pattern, address = address, ""
    if not pattern:
        raise ConfigError("--ray: give the footage, a folder of videos or a glob ('clips/*.mp4'), and --out DIR")
    if not args.out:
        raise ConfigError("--ray needs --out DIR: the folder of each file's outputs and of the job's manifest")
    if args.source_id:
        raise ConfigError("--source-id: with --ray each file is named by its stem; drop it")
    require_ray()  # before the config is read: no Ray, one line
    check_address(address)  # and an address that cannot be reached, before anything is written
    args.source = None
    config = absolute_paths(_job_config(args))
    job = FootageJob(config, pattern, args.out, task_cpus=args.task_cpus, task_gpus=args.task_gpus,
                     progress=config.progress and not args.no_progress)
    result = job.run(lambda: connect(address))
    print(f"files:   {result.files}: {len(result.done)} done, {len(result.skipped)} already complete (skipped)")
    print(f"frames:  {result.frames} processed in {result.seconds:.1f}s, {result.fps:.1f} frames/s overall")
    print(f"events:  {result.events}")
    print(f"out:     {Path(args.out)} (manifest.json)")
    return 0


def cmd_serve_ray(args: argparse.Namespace) -> int:
    from streamer.cli import _address, _job_config, _StopOnSignals
    from streamer.cluster.cameras import start_controller, worker_options
    from streamer.cluster.service import ClusterCollector, ClusterService
    from streamer.service import HttpServer, create_app

    require_ray()
    config = absolute_paths(_job_config(args))
    host, port = _address(args.http)
    token = args.token or os.environ.get("STREAMER_TOKEN") or None
    server = HttpServer(host, port)  # a busy port fails now
    try:
        ray = connect(args.ray)
        workers = worker_options(ray, args.workers, args.worker_cpus, args.worker_gpus)
        controller = start_controller(ray, config, workers, watchdog=args.watchdog)
        up = ray.get(controller.wait_ready.remote(180.0))
        if not up:
            raise ConfigError(f"none of the {len(workers)} Ray worker(s) started within 180 s (each asks "
                              f"{workers[0]}); see `ray status`, or lower --worker-cpus / --workers")
        service = ClusterService(ray, controller, config, state=args.state or Path(config.output.outbox) /
                                 "streams.json")
    except BaseException:
        server.stop()
        raise
    server.start(create_app(service, token, collector=ClusterCollector(service)))
    log.info("serving on %s: %d stream(s) over %d Ray worker(s)", server.url, len(service.desired), len(up))
    interrupted = _StopOnSignals(service)
    try:
        service.run(config.duration)
        view = service.view_all()
    finally:
        interrupted.restore()
        server.stop()
        summaries = ray.get(controller.shutdown.remote(), timeout=120)
        ray.kill(controller)
    _print_cluster(view, summaries, sys.stderr if config.output.to_stdout() else sys.stdout)
    return 130 if interrupted.by_ctrl_c else 0


def _print_cluster(view: dict[str, Any], summaries: list[dict[str, Any]], file: Any) -> None:
    """The controller's view at the end: workers, their streams, reassignments, failovers."""
    print(f"cluster: {len(view['workers'])} worker(s), {len(view['desired'])} stream(s), "
          f"{view['reassignments']} reassignment(s), {len(view['failovers'])} worker(s) lost", file=file)
    ended = {s.get("slot"): s for s in summaries}
    for name, w in sorted(view["workers"].items()):
        s = ended.get(name, {})
        print(f"  {name}: {'up' if w['up'] else 'DOWN'}, {len(w['streams'])} stream(s) ({', '.join(w['streams'])}), "
              f"restarts {w['restarts']}, frames {s.get('frames', 0)}, events {s.get('events', 0)}", file=file)
    for f in view["failovers"]:
        took = f"resumed in {f['resumed_at'] - f['lost_at']:.1f}s" if f["resumed_at"] else "not resumed"
        print(f"  lost {f['worker']}: {len(f['streams'])} stream(s) moved, {took}", file=file)
    for sid, s in sorted(view["streams"].items()):
        if s["failed"]:
            print(f"  {sid}: FAILED: {s['failed']}", file=file)
