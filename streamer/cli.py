"""Command line: ``streamer run | serve | track | eval | sample``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, get_args

from streamer.cluster.cli import footage_flags, serve_flags
from streamer.config import (
    DETECTOR_VARIANTS,
    EVENT_SINK_VARIANTS,
    TRACKER_VARIANTS,
    SourceConfig,
    YoloConfig,
    names,
)
from streamer.decode import HWACCELS
from streamer.errors import ConfigError, StreamerError
from streamer.paths import check_overwrites

log = logging.getLogger("streamer")


def _run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="process a video, image folder, camera or stream into tracks, events and an annotated video"
    )
    p.add_argument("source", nargs="?", help="video file, image folder, glob, rtsp://..., http(s)://... (HLS too), "
                   "webcam:N, lavfi:testsrc2=size=1280x720:rate=30 (or source/sources in --config)")
    p.add_argument("--config", help="YAML config file (flags override it)")
    _job_flags(p)
    p.add_argument("--source-id", help="source name in events (default: file stem, or host and path)")
    p.add_argument("--transport", choices=get_args(SourceConfig.model_fields["transport"].annotation),
                   help="RTSP transport (default tcp; with sources: every one's)")
    p.add_argument("--duration", type=float,
                   help="stop cleanly after this many seconds (live sources run until stopped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    footage_flags(p)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run as a service: streams added and removed over HTTP, /healthz, /readyz, "
                       "/metrics (Prometheus)")
    p.add_argument("--config", help="YAML config file: detector, tracker, outputs, and the initial sources "
                   "(each with an id)")
    p.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8080; 0.0.0.0:8080 for every interface)")
    p.add_argument("--token", help="bearer token every API call and /metrics must carry (default: $STREAMER_TOKEN)")
    p.add_argument("--state", help="file keeping the stream set across restarts "
                   "(default: streams.json in the outbox folder)")
    p.add_argument("--watchdog", type=_seconds, default=30.0, metavar="SECONDS",
                   help="/healthz fails when a worker is stuck this long on one step (default 30)")
    p.add_argument("--duration", type=float, help="stop cleanly after this many seconds (default: until SIGTERM)")
    serve_flags(p)
    _job_flags(p)


def _job_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the stages and outputs, the same for ``run`` and ``serve``."""
    p.add_argument("--out-video", help="annotated video to write (.mp4)")
    p.add_argument("--events", help="JSONL event file to write ('-': standard output)")
    for kind, flag_help in _url_sinks().items():  # --webhook, --mqtt, --redis
        p.add_argument(f"--{kind}", metavar="URL", action="append", help=flag_help + " (repeat for more)")
    p.add_argument("--mot", help="MOT-format track file to write")
    p.add_argument("--clips", metavar="FOLDER", help="event clips (pre and post roll, no re-encoding) in this folder")
    p.add_argument("--snapshots", metavar="FOLDER", help="each track's best picture (JPEG crop and frame) here")
    p.add_argument("--detector", choices=names(DETECTOR_VARIANTS), help="yolo (weights) or mot (replay det.txt)")
    p.add_argument("--weights", help="YOLO weights path or name (default yolo11n.pt)")
    p.add_argument("--detections", help="MOT det.txt for --detector mot")
    p.add_argument("--tracker", choices=names(TRACKER_VARIANTS), help="tracker (default ocsort)")
    p.add_argument("--imgsz", type=int, help="network input size")
    p.add_argument("--conf", type=float, help="detection confidence threshold")
    p.add_argument("--classes", type=int, nargs="+", help="class ids to keep")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=_BACKENDS,
                   help="what runs the detector's forward pass (default auto: the fastest installed)")
    p.add_argument("--batch", type=int, help="frames per forward pass")
    p.add_argument("--every", type=int, help="keep every n-th frame")
    p.add_argument("--target-fps", type=float, help="keep frames to at most this rate")
    p.add_argument("--detect-every", type=int, help="detect on every k-th kept frame; track in between")
    p.add_argument("--hwaccel", choices=HWACCELS,
                   help="hardware decoding (default none; falls back to software with a warning)")


_BACKENDS = get_args(YoloConfig.model_fields["backend"].annotation)  # written once, in the config


def _export_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export .pt weights for a detector backend ahead of time (into its cache)")
    p.add_argument("weights", help=".pt weights file")
    p.add_argument("--backend", default="auto", choices=[b for b in _BACKENDS if b != "torch"],
                   help="onnxruntime, openvino or tensorrt (default auto: the fastest installed for the device)")
    p.add_argument("--imgsz", type=int, default=640, help="network input size (default 640)")
    p.add_argument("--batch", type=int, default=8, help="largest batch (default 8, as detector.batch)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (TensorRT engines are per GPU)")
    p.add_argument("--half", action="store_true", default=None, help="fp16 (TensorRT; default on CUDA)")
    p.add_argument("--cache-dir", help="cache folder (default: beside the weights); set detector.cache_dir the same")
    p.add_argument("--int8", action="store_true", help="INT8 OpenVINO model by post-training quantisation (NNCF)")
    p.add_argument("--calibrate", metavar="VIDEO", help="with --int8: the video whose frames calibrate it")


def cmd_export(args: argparse.Namespace) -> int:
    from streamer.detectors.backends import choose
    from streamer.detectors.export import ExportSpec, cached_export
    from streamer.detectors.yolo import select_device, weights_info

    if Path(args.weights).suffix != ".pt":
        raise ConfigError(f"{args.weights}: export takes .pt weights (an exported model is used as it is)")
    if args.imgsz < 32 or args.batch < 1:
        raise ConfigError("--imgsz must be 32 or more and --batch 1 or more")
    if args.int8 != bool(args.calibrate):
        raise ConfigError("--int8 and --calibrate VIDEO go together (INT8 is calibrated on frames of your video)")
    if args.int8 and args.backend not in ("auto", "openvino"):
        raise ConfigError(f"--int8 makes an OpenVINO model; drop --backend {args.backend}")
    device = select_device(args.device)
    choice = choose("openvino" if args.int8 else args.backend, device, args.weights)
    if choice.name == "torch":
        raise ConfigError(f"nothing to export: {choice.reason}; install a backend or pass --backend")
    stride, end2end = weights_info(args.weights)
    half = (device.type == "cuda" if args.half is None else args.half) and choice.name == "tensorrt"
    spec = ExportSpec(Path(args.weights), choice.name, -(-args.imgsz // stride) * stride, args.batch, half,
                      str(device) if device.type == "cuda" else "cpu", end2end,
                      Path(args.calibrate) if args.calibrate else None)
    path, exported = cached_export(spec, args.cache_dir)
    print(f"{choice}: {'exported' if exported else 'already in the cache'}: {path}")
    return 0


def _url_sinks() -> dict[str, str]:
    """The event sinks a URL alone sets up, by type, with their flag's help."""
    return {names((v,), "type")[0]: v.flag_help for v in EVENT_SINK_VARIANTS if "url" in v.model_fields}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    table = {
        "source": ("source", "uri"), "source_id": ("source", "id"),
        "out_video": ("output", "video"), "events": ("output", "events"), "mot": ("output", "mot"),
        "detector": ("detector", "name"), "weights": ("detector", "weights"),
        "detections": ("detector", "detections"), "imgsz": ("detector", "imgsz"),
        "conf": ("detector", "conf"), "classes": ("detector", "classes"),
        "device": ("detector", "device"), "batch": ("detector", "batch"), "backend": ("detector", "backend"),
        "tracker": ("tracker", "name"), "every": ("sampler", "every"),
        "target_fps": ("sampler", "target_fps"), "detect_every": ("sampler", "detect_every"),
        "transport": ("source", "transport"), "hwaccel": ("decode", "hwaccel"),
    }
    out: dict[str, Any] = {}
    for arg, (section, key) in table.items():
        value = getattr(args, arg, None)  # serve has no source flags
        if value is not None:
            out.setdefault(section, {})[key] = value
    for evidence in ("clips", "snapshots"):  # a section, of which the flag sets the folder
        if getattr(args, evidence, None) is not None:
            out.setdefault("output", {})[evidence] = {"folder": getattr(args, evidence)}
    if getattr(args, "no_progress", False) or args.command == "serve":
        out["progress"] = False
    if args.duration is not None:
        out["duration"] = args.duration
    return out


def _job_config(args: argparse.Namespace) -> Any:
    """The config file with the flags on top, checked as a whole."""
    from pydantic import ValidationError

    from streamer.config import event_sink_config, load_config, validation_message

    config = load_config(args.config, _overrides(args))
    flagged = []
    for kind in _url_sinks():  # added to the config file's sinks, each flag given
        for url in getattr(args, kind) or ():
            try:
                flagged.append(event_sink_config(type=kind, url=url))
            except ValidationError as exc:
                raise ConfigError(f"--{kind}: {validation_message(exc, 'url').split(': ', 2)[-1]}") from None
    if flagged:
        try:
            config.output.event_sinks = [*config.output.event_sinks, *flagged]
        except ValidationError as exc:  # a flag's sink the same as the config's (or another flag's)
            raise ConfigError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    check_overwrites({"--config": args.config}, config.output.files("{source_id}"))
    return config


def _run_config(args: argparse.Namespace) -> Any:
    """The one-shot job: sources given, an output chosen (or a warning)."""
    config = _job_config(args)
    if config.sources:
        if args.source:
            raise ConfigError("the config lists sources; drop the SOURCE argument or the config's sources")
        if args.source_id:
            raise ConfigError("--source-id names the one source; the config lists sources: set each one's id there")
        if args.transport:  # applies to every camera of the list
            for source in config.sources:
                source.transport = args.transport
    if not all(s.uri for s in config.all_sources()):
        raise ConfigError(
            "no source: pass a video file, image folder, glob, camera or stream URL, or set source.uri in --config"
        )
    if not (config.output.video or config.output.events or config.output.mot or config.output.event_sinks):
        log.warning("no output chosen (--out-video, --events, --mot): only the summary is printed")
    return config


class _ProgressBar:
    """A tqdm bar on stderr, opened on the first frame (when the total is known)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="frame", dynamic_ncols=True, file=sys.stderr, leave=True)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from streamer.pipeline import Pipeline

    if args.ray is not None:  # many files as Ray tasks
        from streamer.cluster.cli import cmd_run_ray

        return cmd_run_ray(args)
    config = _run_config(args)
    bar = _ProgressBar()
    interrupted = _StopOnSignals(None)  # already while the model loads
    try:
        pipeline = Pipeline(config, progress=bar if config.progress else None)
        if interrupted.early is not None:
            raise _StoppedEarly(interrupted.early)
    except _StoppedEarly as stopped:
        interrupted.restore()
        return stopped.exit_code()
    interrupted.pipeline = pipeline
    try:
        # log lines go through tqdm.write while the bar is on, so they never break it
        with logging_redirect_tqdm() if config.progress else contextlib.nullcontext():
            pipeline.run()
    finally:
        interrupted.restore()
        bar.close()
        if pipeline.summary is not None:
            # stdout may be carrying the events themselves
            _print_summary(pipeline.summary, sys.stderr if config.output.to_stdout() else sys.stdout)
    if interrupted.by_ctrl_c:
        print("streamer: interrupted; tracks were ended and the outputs finished", file=sys.stderr)
        return 130
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from streamer.service import HttpServer, Service, create_app

    if args.ray is not None:  # the streams on a Ray cluster's workers
        from streamer.cluster.cli import cmd_serve_ray

        return cmd_serve_ray(args)
    config = _job_config(args)
    host, port = _address(args.http)
    token = args.token or os.environ.get("STREAMER_TOKEN") or None
    server = HttpServer(host, port)  # a busy port fails now, before the model loads
    interrupted = _StopOnSignals(None)  # already while the model loads
    try:
        service = Service(config, state=args.state or Path(config.output.outbox) / "streams.json",
                          watchdog=args.watchdog)
        if interrupted.early is not None:
            raise _StoppedEarly(interrupted.early)
    except _StoppedEarly as stopped:
        interrupted.restore()
        server.stop()
        return stopped.exit_code()
    except BaseException:
        interrupted.restore()
        server.stop()
        raise
    if not token and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("listening on %s with no token: anyone who reaches it can change the streams; "
                    "set --token or STREAMER_TOKEN", server.url)
    server.start(create_app(service, token))
    log.info("serving on %s: %d stream(s); API at /api/streams, health at /healthz and /readyz, metrics at /metrics",
             server.url, len(service.desired))
    if service.hub is not None:
        log.info("live view: open %s/ in a browser", server.url)
    interrupted.pipeline = service.pipeline
    try:
        service.run()
    finally:
        interrupted.restore()
        server.stop(before=service.close_viewers)
        if service.pipeline.summary is not None:
            _print_summary(service.pipeline.summary, sys.stderr if config.output.to_stdout() else sys.stdout)
    return 130 if interrupted.by_ctrl_c else 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 1e6:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10**6:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number from 1 to 1000000")
    return value


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http: {text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


class _StoppedEarly(BaseException):  # noqa: N818  (not an error: a stop before the run began)
    """SIGTERM or Ctrl-C while the model loads (or exports) or a source is first opened:
    nothing was opened for writing yet, so the start is interrupted where it is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def exit_code(self) -> int:
        print("streamer: stopped while starting (loading the model, opening the sources); nothing was written",
              file=sys.stderr)
        return 130 if self.signum == signal.SIGINT else 0


class _StopOnSignals:
    """SIGTERM (docker stop, systemd) and a first Ctrl-C end the run cleanly, like
    reaching --duration: tracks end, outputs are finished, the summary is real. A second
    Ctrl-C interrupts at once (outputs are still closed as valid files). Before there is
    a pipeline (``pipeline`` None: the model is loading) either ends the load at once."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.by_ctrl_c = False
        # A stop before there is a pipeline, remembered: a call that catches every error
        # (PyAV's open of an HTTP camera, interrupted) can swallow the exception raised here.
        self.early: int | None = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pipeline is None:
            self.early = signum
            raise _StoppedEarly(signum)
        if signum == signal.SIGINT:
            if self.by_ctrl_c:
                raise KeyboardInterrupt
            self.by_ctrl_c = True
            print("streamer: stopping (Ctrl-C again to interrupt at once)", file=sys.stderr)
        self.pipeline.stop()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _print_summary(s: Any, file: Any) -> None:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in s.stage_ms.items())
    print(f"source:  {s.source}", file=file)
    print(f"detector: {s.detector}", file=file)
    if len(s.sources) > 1 or any(x.live for x in s.sources.values()):
        for x in s.sources.values():
            line = f"  {x.id}: {x.frames} frames ({x.detected} detected)"
            if x.live:
                p50, p99 = x.latency.quantile(0.5), x.latency.quantile(0.99)
                line += f", {x.dropped} dropped ({100 * x.drop_rate:.0f}%)"
                if p50 is not None:
                    line += f", latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"
                if x.downs:
                    line += f", down {x.downs}x for {x.downtime:.1f}s"
                    line += " (never connected)" if not x.frames else " (down at the end)" if x.down_since else ""
            if x.error:
                line += f"; FAILED: {x.error}"
            print(line, file=file)
    print(f"frames:  {s.frames} processed ({s.detected} detected) in {s.seconds:.1f}s, {s.fps:.1f} frames/s", file=file)
    print(f"tracks:  {s.tracks}   events: {s.events}   dropped: {s.dropped}", file=file)
    print(f"stages:  ms/frame {stages}", file=file)
    for name, path in s.outputs.items():
        print(f"{name + ':':8} {path}", file=file)
    for d in s.sinks:
        refused = f", {d.dead} refused for good (in its outbox's dead letters)" if d.dead else ""
        failing = f" (last failure: {d.error})" if d.error and d.pending else ""
        print(f"sink:    {d.sink}: {d.delivered} delivered, {d.pending} waiting{failing}{refused}", file=file)


def cmd_track(args: argparse.Namespace) -> int:
    from streamer.config import load_config
    from streamer.evaluation import track_folder

    overrides = {"tracker": {"name": args.tracker}} if args.tracker else None
    tracker = load_config(args.config, overrides).tracker
    run = track_folder(args.det_root, args.out, tracker, args.max_det)
    print(f"{tracker.name}: {len(run.sequences)} sequences, {run.frames} frames, "
          f"{run.fps:.0f} frames/s (tracking only)")
    print(f"results: {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from streamer.evaluation import evaluate

    table = evaluate(args.gt_root, args.results, args.benchmark)
    print(f"{'sequence':<24}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}")
    for seq, m in table.items():
        name = "COMBINED" if seq == "COMBINED_SEQ" else seq
        print(f"{name:<24}{m['HOTA']:>7.1f}{m['MOTA']:>7.1f}{m['IDF1']:>7.1f}{m['IDSW']:>6d}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from streamer.synthetic import demo_objects, write_mot, write_video

    out = Path(args.out)
    if args.frames < 1:
        raise ConfigError(f"--frames: {args.frames} writes no video; give 1 or more")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file; give a folder (the sample and its detections go into it)")
    out.mkdir(parents=True, exist_ok=True)
    stop, signals = threading.Event(), []

    def stopping(signum: int, frame: Any) -> None:  # SIGTERM and Ctrl-C end the video where it is: a whole file
        signals.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        truth = write_video(out / "sample.mp4", demo_objects(), args.frames, (360, 640), 25, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_mot(out / "sample-det.txt", truth)
    print(f"wrote {out / 'sample.mp4'} ({len(truth)} frames) and {out / 'sample-det.txt'}"
          + (" (stopped early)" if signals else ""))
    return 130 if signal.SIGINT in signals else 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error's echoed value cut short (a 120 KB value was written
    out in full)."""

    def error(self, message: str) -> NoReturn:
        super().error(message if len(message) <= 300 else f"{message[:280]}... ({len(message)} characters)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="streamer", description="Streaming video analytics.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _serve_parser(sub)
    p = sub.add_parser("track", help="track every DET_ROOT/<seq>/det/det.txt into OUT/<seq>.txt")
    p.add_argument("det_root")
    p.add_argument("--out", required=True)
    p.add_argument("--tracker", choices=names(TRACKER_VARIANTS), help="default ocsort, or the config's")
    p.add_argument("--config", help="YAML whose tracker section (name, params) is used")
    p.add_argument("--max-det", type=_count, default=1000, metavar="N",
                   help="at most N boxes a frame, the best scoring (default 1000)")
    p = sub.add_parser("eval", help="HOTA/MOTA/IDF1/IDSW of MOT results with TrackEval")
    p.add_argument("gt_root", help="folder of <seq>/gt/gt.txt and <seq>/seqinfo.ini")
    p.add_argument("results", help="folder of <seq>.txt result files")
    p.add_argument("--benchmark", default="MOT15", choices=["MOT15", "MOT16", "MOT17", "MOT20"])
    p = sub.add_parser("sample", help="write a synthetic demo video and its detections")
    p.add_argument("--out", default="out")
    p.add_argument("--frames", type=int, default=200)
    _export_parser(sub)
    args = parser.parse_args(argv)
    # Our own packages at INFO (DEBUG with -v); the libraries' loggers at WARNING: torch,
    # for one, logs its cache statistics at INFO from an atexit hook, after our last line.
    logging.basicConfig(level=logging.WARNING, format="streamer: %(levelname)s: %(message)s")
    for name in ("streamer", "sinks", "trackers"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        code = _dispatch(args)
    except BaseException:
        if not _detector_left_running():
            raise
        traceback.print_exc()  # a bug; said before the process ends below
        code = 1
    if _detector_left_running():
        # A stop left a detector call running (a slow model: see STOP_DETECT_WAIT); every
        # output is finished. The interpreter's exit would wait for that call, or abort
        # inside it (torch's thread pool), so the process ends here.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _detector_left_running() -> bool:
    pipeline = sys.modules.get("streamer.pipeline")  # imported only by the commands that run one
    return pipeline is not None and pipeline.left_running()


def _dispatch(args: argparse.Namespace) -> int:
    commands = {"run": cmd_run, "serve": cmd_serve, "track": cmd_track, "eval": cmd_eval, "sample": cmd_sample}
    try:
        return {**commands, "export": cmd_export}[args.command](args)
    except ConfigError as exc:
        print(f"streamer: config error: {exc}", file=sys.stderr)
        return 2
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamer: interrupted; outputs written so far were closed and are valid", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of standard output went away (`--events - | head -1`): stop quietly, as
        # command-line tools do; what else was written is closed and valid.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # an output that cannot be written: a read-only folder, a directory, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"streamer: error: {where}{exc.strerror or exc}; check the output paths and their folders",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
