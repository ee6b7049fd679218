"""Typed, validated configuration: one section per stage, loaded from YAML.

Unknown keys and bad values are refused before any work starts, with the field's path
(``detector.conf: Input should be less than or equal to 1``). Command-line flags
override the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamer.errors import ConfigError

__all__ = ["Config", "load_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ReconnectConfig(_Section):
    """How a live source that stopped delivering is reconnected: waits of ``initial``,
    doubling up to ``max`` seconds, for ever unless ``attempts`` is set."""

    initial: float = Field(1.0, gt=0, description="seconds before the first retry")
    max: float = Field(30.0, gt=0, description="longest wait between retries, seconds")
    attempts: int | None = Field(None, ge=0, description="failed attempts in a row before giving up (default: never)")


class SourceConfig(_Section):
    """Where frames come from: a video file, an image folder/glob, a camera or stream
    (``rtsp://``, ``http(s)://``, HLS ``.m3u8``, ``webcam:N``, ``/dev/videoN``), or an
    FFmpeg test source (``lavfi:testsrc2=size=1280x720:rate=30``)."""

    uri: str | None = None
    id: str | None = Field(None, description="name in events and outputs; default: file stem or host/path")
    fps: float | None = Field(None, gt=0, description="frame rate of image folders (default 30 or seqinfo.ini)")
    live: bool | None = Field(None, description="treat as a live camera (default: cameras, streams, lavfi)")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    timeout: float = Field(10.0, gt=0, description="seconds to connect, and without data before a live source is down")
    realtime: bool | None = Field(None, description="pace frames to their timestamps (default: lavfi sources)")
    options: dict[str, str] = Field(default_factory=dict, description="more FFmpeg input options (webcams: video_size, framerate, input_format)")
    reconnect: ReconnectConfig = ReconnectConfig()


class SamplerConfig(_Section):
    """Which decoded frames are processed, and which of those the detector sees."""

    every: int = Field(1, ge=1, description="keep every n-th decoded frame")
    target_fps: float | None = Field(None, gt=0, description="keep frames to at most this rate")
    detect_every: int = Field(1, ge=1, description="run the detector on every k-th kept frame")

    @model_validator(mode="after")
    def _one_rule(self) -> "SamplerConfig":
        if self.every != 1 and self.target_fps is not None:
            raise ValueError("set either every or target_fps, not both")
        return self


class BufferConfig(_Section):
    """The bounded queue between decoding and inference, one per source. ``auto``:
    ``block`` for files (every frame), ``drop_oldest`` for live sources (bounded latency)."""

    size: int | None = Field(None, ge=1, description="frames held (default: 16 for files, 4 for live sources)")
    policy: Literal["auto", "block", "drop_oldest"] = "auto"


class DecodeConfig(_Section):
    """Video decoding."""

    hwaccel: Literal["auto", "none", "cuda", "vaapi", "qsv", "videotoolbox"] = Field(
        "none", description="hardware decoder; falls back to software with one warning when unavailable"
    )


class DetectorConfig(_Section):
    """The detector: ``yolo`` (ultralytics weights) or ``mot`` (replay of a det.txt)."""

    name: Literal["yolo", "mot"] = "yolo"
    weights: str = "yolo11n.pt"
    detections: str | None = Field(None, description="det.txt path for the mot detector")
    imgsz: int = Field(640, ge=32)
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    classes: list[int] | None = None
    max_det: int = Field(300, ge=1)
    device: str = "auto"
    half: bool | None = None
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: all cores)")
    rect: bool = True
    batch: int = Field(8, ge=1, description="frames per forward pass (max_batch), across all sources")
    max_wait_ms: float = Field(5.0, ge=0, description="longest wait to fill a batch")

    @model_validator(mode="after")
    def _detections_for_mot(self) -> "DetectorConfig":
        if self.name == "mot" and not self.detections:
            raise ValueError("the mot detector needs detections: path to a MOT det.txt")
        return self


class TrackerConfig(_Section):
    """The tracker by name, with keyword arguments for its constructor."""

    name: Literal["sort", "bytetrack", "ocsort"] = "ocsort"
    params: dict[str, Any] = Field(default_factory=dict)


class EventSinkConfig(_Section):
    """One destination of the event stream."""

    type: Literal["jsonl", "stdout", "webhook", "mqtt", "redis"]
    name: str | None = Field(None, description="names the outbox file (default: the type)")
    path: str | None = Field(None, description="jsonl: the file")
    max_bytes: int | None = Field(None, ge=1024, description="jsonl: rotate past this size")
    backups: int = Field(5, ge=0, description="jsonl: rotated files kept")
    url: str | None = Field(None, description="webhook/mqtt/redis endpoint")
    topic: str = Field("streamer/{source_id}/{type}", description="mqtt topic template")
    qos: int = Field(1, ge=0, le=2)
    stream: str = Field("streamer:{source_id}", description="redis stream key template")
    maxlen: int | None = Field(100_000, ge=1, description="redis: trim the stream to about this length")
    headers: dict[str, str] = Field(default_factory=dict, description="webhook: extra HTTP headers")
    batch: int | None = Field(None, ge=1, description="events per send (default: 1000 for mqtt, 100 otherwise)")
    timeout: float = Field(5.0, gt=0, description="seconds per network operation")
    drain_timeout: float = Field(10.0, ge=0, description="seconds to deliver what is left at the end")

    @model_validator(mode="after")
    def _needs(self) -> "EventSinkConfig":
        if self.type == "jsonl" and not self.path:
            raise ValueError("a jsonl sink needs path")
        if self.type in ("webhook", "mqtt", "redis") and not self.url:
            raise ValueError(f"a {self.type} sink needs url")
        return self


class OutputConfig(_Section):
    """What is written. Paths left empty are not written."""

    video: str | None = Field(None, description="annotated video (.mp4); {source_id} in the path: one per source")
    events: str | None = Field(None, description="JSONL event file ('-': standard output); {source_id}: one per source")
    mot: str | None = Field(None, description="MOT track file; {source_id}: one per source")
    event_sinks: list[EventSinkConfig] = Field(default_factory=list, description="more event destinations")
    outbox: str = Field("streamer-outbox", description="folder of the network sinks' durable outboxes")
    crf: int = Field(23, ge=0, le=51, description="H.264 quality of the annotated video")
    track_end_frames: int | None = Field(
        None, ge=1, description="end a track after this many frames unreported (default: when the tracker drops it)"
    )


Point = tuple[float, float]


class LineConfig(_Section):
    """A directed line: crossing from its left to its right (walking from the first point
    to the second, as seen on the image) is ``in``, the other way ``out``."""

    name: str
    points: list[Point]
    normalized: bool = Field(False, description="points in 0-1 of the frame's width and height")
    classes: list[str] | None = Field(None, description="class names counted (default all)")
    hysteresis: float = Field(
        5.0, ge=0, description="pixels a track must get past the line on the other side to count"
    )

    @model_validator(mode="after")
    def _two_points(self) -> "LineConfig":
        if len(self.points) != 2:
            raise ValueError(f"a line needs exactly 2 points, got {len(self.points)}")
        if self.points[0] == self.points[1]:
            raise ValueError("the 2 points of a line must differ")
        _check_normalized(self.points, self.normalized)
        return self


class ZoneConfig(_Section):
    """A polygon zone; a track is inside when its anchor point is."""

    name: str
    points: list[Point]
    normalized: bool = Field(False, description="points in 0-1 of the frame's width and height")
    classes: list[str] | None = Field(None, description="class names watched (default all)")
    min_dwell: float = Field(0.0, ge=0, description="seconds inside before zone_entered")

    @model_validator(mode="after")
    def _polygon(self) -> "ZoneConfig":
        if len(self.points) < 3:
            raise ValueError(f"a zone needs at least 3 points, got {len(self.points)}")
        _check_normalized(self.points, self.normalized)
        return self


def _check_normalized(points: list[Point], normalized: bool) -> None:
    if normalized and any(not (0 <= c <= 1) for p in points for c in p):
        raise ValueError("normalized points must lie in 0-1")


class AnalyticsConfig(_Section):
    """Lines, zones and counts, per source."""

    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    anchor: Literal["bottom_center", "center"] = Field(
        "bottom_center", description="the point of a box that crosses lines and enters zones"
    )
    count_interval: float | None = Field(None, gt=0, description="seconds per count event (none: no counts)")

    @model_validator(mode="after")
    def _unique_names(self) -> "AnalyticsConfig":
        names = [x.name for x in [*self.lines, *self.zones]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"line and zone names must be unique, repeated: {', '.join(dupes)}")
        return self


class Config(_Section):
    """The whole job."""

    source: SourceConfig = SourceConfig()
    sources: list[SourceConfig] = Field(default_factory=list, description="several sources in one process")
    decode: DecodeConfig = DecodeConfig()
    sampler: SamplerConfig = SamplerConfig()
    buffer: BufferConfig = BufferConfig()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    output: OutputConfig = OutputConfig()
    progress: bool = True
    duration: float | None = Field(None, gt=0, description="stop cleanly after this many seconds (default: at the end of every source)")
    stats_interval: float = Field(60.0, ge=0, description="seconds between status lines of live sources (0: none)")

    @model_validator(mode="after")
    def _sources(self) -> "Config":
        if self.sources and self.source.uri:
            raise ValueError("set source (one) or sources (several), not both")
        ids = [s.id for s in self.sources if s.id]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"sources: ids must be unique, repeated: {', '.join(dupes)}")
        return self

    def all_sources(self) -> list[SourceConfig]:
        """The sources of the job: ``sources``, or the one ``source``."""
        return list(self.sources) if self.sources else [self.source]


def _format(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        got = err.get("input")
        tail = f" (got {got!r})" if got is not None and err["type"] != "extra_forbidden" and not isinstance(got, dict) else ""
        lines.append(f"{origin}: {path}: {msg}{tail}")
    return "; ".join(lines)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """The configuration from a YAML file (optional) with ``overrides`` applied on top.

    Raises:
        ConfigError: the file is missing or not YAML, or a key or value is wrong.
    """
    data: dict[str, Any] = {}
    origin = "config"
    if path is not None:
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    if overrides:
        data = _merge(data, overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin)) from None
