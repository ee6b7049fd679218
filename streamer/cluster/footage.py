"""``streamer run --ray FOLDER_OR_GLOB --out DIR``: many files as Ray tasks.

Each file is one Ray task running today's :class:`~streamer.pipeline.Pipeline` on that
file alone, with the config a single-process ``streamer run FILE`` of it would have, so
its outputs are byte for byte that run's. The job is resumable: ``DIR/manifest.json``
records, per finished file, the SHA-256 of the input and of the config; a second run
skips the files whose entry matches and whose outputs are there, and redoes the rest
(an interrupted file left no entry). One tqdm bar counts the frames of every file; its
text says the files done and the frames/s over all of them.

Decoded frames never travel: a task opens its file where it runs, so ``DIR`` and the
inputs must be on storage every node sees (the same path on each).
"""

from __future__ import annotations

import contextlib

import glob
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.config import Config
from streamer.errors import ConfigError, StreamerError
from streamer.paths import file_sha256

log = logging.getLogger(__name__)

__all__ = ["MANIFEST", "FootageJob", "JobResult", "config_hash", "file_config", "footage_inputs"]

MANIFEST = "manifest.json"
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".flv"})
_DEFAULTS = {"events": "{source_id}.jsonl", "mot": "{source_id}.txt"}  # when no output is chosen
_REPORT_EVERY = 0.25  # seconds between a task's progress reports
CANCEL_WAIT = 5.0  # seconds Ctrl-C gives the running tasks to close their outputs


def footage_inputs(pattern: str) -> list[Path]:
    """The video files of a folder (not recursive) or a glob, sorted; their stems name
    their outputs, so two files of one stem are refused."""
    root = Path(pattern)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        kinds = ", ".join(sorted(VIDEO_SUFFIXES))
        raise ConfigError(f"{pattern}: no video files there; give a folder of videos ({kinds}) or a glob")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ConfigError(f"{stems[f.stem]} and {f} have one name ({f.stem}); their outputs would collide, "
                              f"rename one or pick them with a glob")
        stems[f.stem] = f
    return files


def file_config(config: Config, path: Path, out: Path, many: bool = True) -> Config:
    """The config of one file: the job's, with this file as its one source (its id the
    file's stem, as ``streamer run FILE`` names it) and its outputs under ``out``."""
    if config.sources or config.source.uri:
        raise ConfigError("with --ray the files come from FOLDER_OR_GLOB; drop source/sources from the config")
    output = config.output
    chosen = {k: getattr(output, k) for k in ("video", "events", "mot")}
    if not any(chosen.values()):
        chosen.update(_DEFAULTS)
    paths: dict[str, str | None] = {}
    for kind, template in chosen.items():
        if template is None:
            paths[kind] = None
            continue
        if template == "-":
            raise ConfigError(f"--{kind}: standard output cannot take many files' events; give a file name")
        if many and "{source_id}" not in template and Path(template).is_absolute():
            raise ConfigError(f"--{kind} {template}: every file would write it; put {{source_id}} in the path")
        name = template.format(source_id=path.stem) if "{source_id}" in template else _per_file(template, path.stem)
        paths[kind] = str(out / name)
    update: dict[str, Any] = paths | {"outbox": str(out / "outbox" / path.stem)}
    return config.model_copy(update={
        "source": config.source.model_copy(update={"uri": str(path.resolve()), "id": path.stem}),
        "sources": [], "progress": False, "output": output.model_copy(update=update),
    })


def _per_file(name: str, stem: str) -> str:
    """``events.jsonl`` of file ``a``: ``a/events.jsonl`` (one folder per file)."""
    return str(Path(stem) / name)


def config_hash(config: Config) -> str:
    """SHA-256 of what decides the outputs: the config less the source and the display."""
    text = config.model_dump_json(exclude={"source": {"uri", "id"}, "sources": True, "progress": True})
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class JobResult:
    """What a footage job did: files done now, skipped (already complete) and failed (why)."""

    files: int
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0  # processed by this run
    seconds: float = 0.0
    events: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Manifest:
    """``DIR/manifest.json``: one entry per finished file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                self.files = dict(data["files"])
            except (ValueError, KeyError, TypeError):
                aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
                os.replace(path, aside)
                log.warning("%s was not a manifest (moved to %s); every file is done again", path, aside)

    def complete(self, stem: str, digest: str, config: str) -> bool:
        entry = self.files.get(stem)
        return (entry is not None and entry.get("sha256") == digest and entry.get("config") == config
                and all(Path(p).is_file() for p in entry.get("outputs", {}).values()))

    def record(self, stem: str, entry: dict[str, Any]) -> None:
        self.files[stem] = entry
        tmp = self.path.with_name(f".{self.path.name}.part")
        tmp.write_text(json.dumps({"version": 1, "files": self.files}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def _process_file(config: Config, progress: Any) -> dict[str, Any]:
    """The Ray task: one file through one in-process pipeline; returns its figures."""
    from streamer.pipeline import Pipeline

    reporter = _Reporter(progress)
    summary = Pipeline(config, progress=reporter).run()
    reporter.flush()
    files = {k: v for k, v in summary.outputs.items() if k in ("video", "events", "mot")}
    return {"frames": summary.frames, "events": summary.events, "seconds": summary.seconds, "outputs": files}


class _Reporter:
    """A task's progress callback: frames sent to the progress actor a few times a second."""

    def __init__(self, progress: Any) -> None:
        self.progress, self.pending, self.last = progress, 0, time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        self.pending += 1
        if time.monotonic() - self.last >= _REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.progress.add.remote(self.pending)  # fire and forget: never waits on the driver
            self.pending, self.last = 0, time.monotonic()


class _Progress:
    """A Ray actor counting frames done over every task."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def total(self) -> int:
        return self.frames


def _expected_frames(path: Path) -> int:
    import av

    try:
        with av.open(str(path)) as c:
            return int(c.streams.video[0].frames) if c.streams.video else 0
    except (av.error.FFmpegError, OSError):
        return 0  # the task reports the file's own error


class FootageJob:
    """Files of a folder or glob through Ray tasks, outputs under ``out``.

    Args:
        config: The job (no source: the files are the sources).
        pattern: A folder of videos or a glob.
        out: Output folder (created); holds the manifest.
        task_cpus: CPUs a task reserves (Ray runs as many at once as the cluster has).
        task_gpus: GPUs a task reserves (a fraction shares one).
        progress: Show the bar (stderr).
    """

    def __init__(self, config: Config, pattern: str, out: str | Path, *, task_cpus: float = 1.0,
                 task_gpus: float = 0.0, progress: bool = True) -> None:
        self.files = footage_inputs(pattern)
        self.out = Path(out).resolve()  # the tasks run in Ray's folders
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out: {self.out} is a file; give a folder (one output set per input goes there)")
        self.configs = {f.stem: file_config(config, f, self.out, len(self.files) > 1) for f in self.files}
        self.config_hash = config_hash(config)
        self.task_cpus, self.task_gpus, self.progress = task_cpus, task_gpus, progress

    def run(self, connect: Callable[[], Any]) -> JobResult:
        """Runs the files not yet complete (``connect``: joins Ray and returns its module,
        called only when there is work); raises StreamerError naming the files that failed."""
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = _Manifest(self.out / MANIFEST)
        result = JobResult(len(self.files))
        todo = {}
        for f in self.files:
            digest = file_sha256(f)
            if manifest.complete(f.stem, digest, self.config_hash):
                result.skipped.append(f.stem)
            else:
                todo[f.stem] = (f, digest)
        if result.skipped:
            log.info("%d of %d file(s) already complete in %s: skipped", len(result.skipped), len(self.files),
                     manifest.path)
        if todo:
            self._run_tasks(connect(), todo, manifest, result)
        if result.failed:
            shown = "; ".join(f"{k}: {v}" for k, v in sorted(result.failed.items())[:5])
            raise StreamerError(f"{len(result.failed)} of {len(self.files)} files failed ({shown}); "
                                f"the others are complete, run again to retry these")
        return result

    def _run_tasks(self, ray: Any, todo: dict[str, tuple[Path, str]], manifest: _Manifest,
                   result: JobResult) -> None:
        progress = ray.remote(num_cpus=0)(_Progress).remote()
        task = ray.remote(num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=0)(_process_file)
        started = time.monotonic()
        pending = {task.remote(self.configs[stem], progress): stem for stem in todo}
        bar = self._bar(sum(_expected_frames(f) for f, _ in todo.values()) or None, len(todo))
        shown = 0
        # Ctrl-C is a flag the loop reads between waits: raised as KeyboardInterrupt inside
        # Ray's own calls it could be lost (a run that went on to exit 0 was seen).
        asked: list[int] = []
        main = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
        previous = signal.signal(signal.SIGINT, lambda signum, frame: asked.append(signum)) if main else None
        try:
            while pending and not asked:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._finished(ray, ref, pending.pop(ref), todo, manifest, result)
                shown = self._show(ray, bar, progress, shown, started, result, len(todo))
            if asked:
                signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts the wait below
                self._cancel(ray, list(pending))
                raise KeyboardInterrupt
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            result.seconds = time.monotonic() - started
            if bar is not None:
                self._show(ray, bar, progress, shown, started, result, len(todo))
                bar.close()

    @staticmethod
    def _cancel(ray: Any, refs: list) -> None:
        """Ctrl-C: the running tasks get a KeyboardInterrupt (not a kill), so each closes
        its outputs as a plain run does (the MP4 plays); they get a few seconds for it.
        Only tasks not finished yet are cancelled: cancelling one that is completing has
        aborted Ray's own core (``task_manager.cc: Tried to complete task that was not
        pending``), and a kill left MP4s without their index."""
        _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in running:
            with contextlib.suppress(Exception):  # it may have ended since
                ray.cancel(ref, force=False)
        if running:
            ray.wait(running, num_returns=len(running), timeout=CANCEL_WAIT)

    def _finished(self, ray: Any, ref: Any, stem: str, todo: dict[str, tuple[Path, str]], manifest: _Manifest,
                  result: JobResult) -> None:
        try:
            figures = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            result.failed[stem] = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            log.error("%s: %s", stem, result.failed[stem])
            return
        except ray.exceptions.RayError as exc:  # the worker died (OOM, a node lost)
            result.failed[stem] = f"its Ray worker was lost ({type(exc).__name__})"
            log.error("%s: %s", stem, result.failed[stem])
            return
        path, digest = todo[stem]
        result.done.append(stem)
        result.frames += figures["frames"]
        result.events += figures["events"]
        manifest.record(stem, {"input": str(path.resolve()), "sha256": digest, "config": self.config_hash,
                               "frames": figures["frames"], "events": figures["events"],
                               "outputs": {k: str(Path(p).resolve()) for k, p in figures["outputs"].items()},
                               "finished": time.time()})

    def _bar(self, total: int | None, files: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="frame", dynamic_ncols=True, file=sys.stderr, desc=f"0/{files} files")

    @staticmethod
    def _show(ray: Any, bar: Any, progress: Any, shown: int, started: float, result: JobResult, files: int) -> int:
        if bar is None:
            return shown
        frames = ray.get(progress.total.remote())
        bar.update(frames - shown)
        elapsed = time.monotonic() - started
        bar.set_description(f"{len(result.done) + len(result.failed)}/{files} files", refresh=False)
        bar.set_postfix_str(f"{frames / elapsed if elapsed > 0 else 0:.1f} frames/s overall")
        return frames
