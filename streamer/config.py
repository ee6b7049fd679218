"""Typed, validated configuration: one section per stage, loaded from YAML.

Unknown keys and bad values are refused before any work starts, with the field's path
(``detector.conf: Input should be less than or equal to 1``). Command-line flags
override the file.
"""

from __future__ import annotations

import importlib
import logging
import re
import reprlib
import string
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from streamer.decode import HWACCELS
from streamer.errors import ConfigError, SourceError
from streamer.live import local_path
from streamer.protocols import Detector, Sink, Tracker
from streamer.urls import endpoint_identity, endpoint_problem, redact

__all__ = [
    "DETECTOR_VARIANTS", "EVENT_SINK_VARIANTS", "TRACKER_VARIANTS", "Config", "SourceConfig", "event_sink_config",
    "load", "load_config", "names", "per_source", "tracker_config", "validation_message",
]

log = logging.getLogger(__name__)


def load(target: str) -> Any:
    """The object at ``module:attr``, imported now: a stage's module (torch, a tracker's
    kernels) is loaded only when a config builds that stage."""
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ReconnectConfig(_Section):
    """How a live source that stopped delivering is reconnected: waits of ``initial``,
    doubling up to ``max`` seconds, for ever unless ``attempts`` is set."""

    initial: float = Field(1.0, gt=0, description="seconds before the first retry")
    max: float = Field(30.0, gt=0, description="longest wait between retries, seconds")
    attempts: int | None = Field(None, ge=0, description="failed attempts in a row before giving up (default: never)")


TRIGGER_TYPES = ("line_crossed", "zone_entered", "zone_exited", "track_started", "track_ended")


class TriggerConfig(_Section):
    """Which events trigger evidence: ``types`` of event, of ``classes`` (names; default
    all), on the lines or zones ``names`` (default any), e.g. ``line_crossed`` of
    ``person`` on ``door``."""

    types: list[Literal[TRIGGER_TYPES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["line_crossed", "zone_entered"], min_length=1, description="event types")
    classes: list[str] | None = Field(None, description="class names (default all)")
    names: list[str] | None = Field(None, description="line or zone names (default any)")

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (a streamer.types.Event) is one of these."""
        if event.type not in self.types:
            return False
        if self.classes is not None and event.class_name not in self.classes:
            return False
        where = event.data.get("line", event.data.get("zone"))
        return self.names is None or where in self.names


class RetentionConfig(_Section):
    """How long clips are kept: the oldest go first once either limit is passed."""

    days: float | None = Field(None, gt=0, description="remove clips older than this")
    bytes: int | None = Field(None, ge=1, description="keep the folder's clips under this many bytes")


class ClipsConfig(_Section):
    """Event clips cut from the source's own packets (no re-encoding): ``pre`` seconds
    before the trigger (back to a keyframe) to ``post`` seconds after it."""

    folder: str = Field("clips", description="where clips go; {source_id} in the path: one folder per source")
    pre: float = Field(5.0, ge=0, description="seconds before the trigger")
    post: float = Field(5.0, ge=0, description="seconds after the trigger (a later trigger extends the clip)")
    triggers: list[TriggerConfig] = Field(default_factory=lambda: [TriggerConfig()], min_length=1)
    retention: RetentionConfig = RetentionConfig()
    buffer_bytes: int = Field(64 * 2**20, ge=2**20, description="memory bound of a source's packet ring")
    margin: float = Field(2.0, ge=0, description="seconds kept beyond pre for events raised after their frame")

    def ring(self) -> Any:
        """A packet ring for one source (:class:`streamer.packets.PacketRing`)."""
        from streamer.packets import PacketRing

        return PacketRing(self.pre + self.margin, self.buffer_bytes)


class SnapshotsConfig(_Section):
    """The best picture of each track: a JPEG crop and the full frame with the box."""

    folder: str = Field("snapshots", description="where snapshots go; {source_id}: one folder per source")
    triggers: list[TriggerConfig] = Field(
        default_factory=lambda: [TriggerConfig()], description="events that get the best picture so far")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality")


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
    options: dict[str, str] = Field(
        default_factory=dict, description="more FFmpeg input options (webcams: video_size, framerate, input_format)"
    )
    reconnect: ReconnectConfig = ReconnectConfig()
    clips: ClipsConfig | None = Field(None, description="this source's clips (default: output.clips)")

    @field_validator("uri")
    @classmethod
    def _file_uri(cls, value: str | None) -> str | None:
        # file:///data/a.mp4 is the file /data/a.mp4: its path is what outputs are checked against
        try:
            return local_path(value) if value else value
        except SourceError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str | None) -> str | None:
        # An id names files ({source_id} in output paths): it must not lead out of their folder.
        if value is not None and (not value.strip() or re.search(r"[/\\\x00-\x1f]|\.\.", value)):
            raise ValueError("an id may not be empty or hold '/', '\\', '..' or control characters "
                             "(it names output files); use letters, digits, '.', '_', '-'")
        return value

    analytics: AnalyticsConfig | None = Field(None, description="this source's lines, zones and counts "
                                                                "(default: the top-level analytics)")


class SamplerConfig(_Section):
    """Which decoded frames are processed, and which of those the detector sees."""

    every: int = Field(1, ge=1, description="keep every n-th decoded frame")
    target_fps: float | None = Field(None, ge=0.01, le=1000, allow_inf_nan=False,
                                     description="keep frames to at most this rate")
    detect_every: int = Field(1, ge=1, description="run the detector on every k-th kept frame")

    @model_validator(mode="after")
    def _one_rule(self) -> SamplerConfig:
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

    hwaccel: Literal[HWACCELS] = Field(
        "none", description="hardware decoder; falls back to software with one warning when unavailable"
    )


class _DetectorBase(_Section):
    """What every detector has: the runner's batching, and the confidence threshold."""

    batch: int = Field(8, ge=1, le=256, description="frames per forward pass (max_batch), across all sources")
    max_wait_ms: float = Field(5.0, ge=0, description="longest wait to fill a batch")

    def inputs(self) -> dict[str, str | None]:
        """The files it reads, by field (no output may overwrite them)."""
        return {}


class YoloConfig(_DetectorBase):
    """ultralytics YOLO weights, run by us in batches."""

    name: Literal["yolo"] = "yolo"
    weights: str = "yolo11n.pt"
    imgsz: int = Field(640, ge=32, le=4096)
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    classes: list[int] | None = None
    max_det: int = Field(300, ge=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                        description="auto, cpu, cuda, cuda:N or mps")
    half: bool | None = None
    threads: int | None = Field(None, ge=1, description="CPU threads of the forward pass (default: all cores)")
    rect: bool = True
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = Field(
        "auto", description="what runs the forward pass; auto: the fastest installed for the device"
    )
    cache_dir: str | None = Field(None, description="folder of exported models (default: beside the weights)")
    int8_calibration: str | None = Field(
        None, description="video whose frames calibrate an INT8 OpenVINO model (NNCF); default: float"
    )

    def inputs(self) -> dict[str, str | None]:
        return {"detector.weights": self.weights}

    def build(self) -> Detector:
        from streamer.detectors.yolo import YoloDetector

        return YoloDetector(
            weights=self.weights, imgsz=self.imgsz, conf=self.conf, iou=self.iou, classes=self.classes,
            max_det=self.max_det, device=self.device, half=self.half, rect=self.rect, threads=self.threads,
            backend=self.backend, batch=self.batch, cache_dir=self.cache_dir, int8_calibration=self.int8_calibration,
        )


class MotDetectorConfig(_DetectorBase):
    """Replays the public detections of a MOT ``det.txt`` (no model)."""

    name: Literal["mot"]
    detections: str | None = Field(None, description="det.txt path")
    conf: float = Field(0.0, ge=0, le=1, description="drop boxes scoring below this (0 keeps all)")
    classes: list[int] | None = Field(None, description="class ids to keep (the file's boxes are class 0)")
    max_det: int = Field(300, ge=1, description="at most this many boxes per frame, the best scoring")

    @model_validator(mode="after")
    def _needs_detections(self) -> MotDetectorConfig:
        if not self.detections:
            raise ValueError("the mot detector needs detections: path to a MOT det.txt")
        return self

    def inputs(self) -> dict[str, str | None]:
        return {"detector.detections": self.detections}

    def build(self) -> Detector:
        from streamer.detectors.mot import MotDetector

        return MotDetector(self.detections or "", conf=self.conf, classes=self.classes, max_det=self.max_det)


class SortParams(_Section):
    max_age: int = Field(1, ge=0, description="frames a track survives unmatched")
    min_hits: int = Field(3, ge=0, description="matches before a track is reported")
    iou_threshold: float = Field(0.3, gt=0, le=1)
    class_aware: bool = True


class ByteTrackParams(_Section):
    track_high_thresh: float = Field(0.25, ge=0, le=1)
    track_low_thresh: float = Field(0.1, ge=0, le=1)
    new_track_thresh: float = Field(0.25, ge=0, le=1)
    track_buffer: int = Field(30, ge=0, description="frames a lost track is kept (at 30 frames/s)")
    match_thresh: float = Field(0.8, gt=0, le=1)
    fuse_score: bool = True
    frame_rate: float | None = Field(None, gt=0, description="default: the source's")
    class_aware: bool = True


class OcSortParams(_Section):
    det_thresh: float = Field(0.3, ge=0, le=1)
    max_age: int = Field(30, ge=0)
    min_hits: int = Field(3, ge=0)
    iou_threshold: float = Field(0.3, gt=0, le=1)
    delta_t: int = Field(3, ge=1)
    inertia: float = Field(0.1, ge=0)
    frame_rate: float | None = Field(None, gt=0, description="default: the source's")
    class_aware: bool = True
    persistent: bool = True


class _TrackerBase(_Section):
    """A tracker by name, with its typed constructor arguments in ``params``."""

    params: Any
    _target: ClassVar[str]

    def build(self, fps: Fraction | float) -> Tracker:
        """A new tracker for a source of ``fps`` frames/s (trackers that take
        ``frame_rate`` get the source's unless ``params`` sets one)."""
        kwargs = self.params.model_dump()
        if "frame_rate" in kwargs and kwargs["frame_rate"] is None:
            kwargs["frame_rate"] = float(fps)
        try:
            return load(self._target)(**kwargs)
        except ValueError as exc:  # checks across parameters, made by the tracker itself
            raise ConfigError(f"tracker.params: {exc}") from None


class SortConfig(_TrackerBase):
    name: Literal["sort"]
    params: SortParams = SortParams()
    _target = "trackers.sort:Sort"


class ByteTrackConfig(_TrackerBase):
    name: Literal["bytetrack"]
    params: ByteTrackParams = ByteTrackParams()
    _target = "trackers.bytetrack:ByteTrack"


class OcSortConfig(_TrackerBase):
    name: Literal["ocsort"] = "ocsort"
    params: OcSortParams = OcSortParams()
    _target = "trackers.ocsort:OcSort"


_SINK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")


class _EventSinkBase(_Section):
    name: str | None = Field(None, description="names the outbox file and the summary line (default: the type, "
                                               "and for network sinks an outbox named by the endpoint)")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        # The name is a file name (<outbox>/<name>.sqlite3): nothing that leads out of the folder or hides the file.
        if value is not None and not _SINK_NAME.match(value):
            raise ValueError("a sink name names its outbox file: use 1-64 letters, digits, '.', '_' or '-', "
                             "not starting with '.' or '-'")
        return value

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]

    @property
    def identity(self) -> str:
        """What makes two sinks the same one: its name, or where its events go."""
        return self.name or self.type  # type: ignore[attr-defined]

    def destination(self) -> str:
        """Where the events go, as the summary prints it (credentials redacted)."""
        raise NotImplementedError


class JsonlSinkConfig(_EventSinkBase):
    """Events appended to a JSONL file, rotated by size."""

    type: Literal["jsonl"]
    path: str | None = Field(None, description="the file")
    max_bytes: int | None = Field(None, ge=1024, description="rotate past this size")
    backups: int = Field(5, ge=0, description="rotated files kept")

    @model_validator(mode="after")
    def _needs_path(self) -> JsonlSinkConfig:
        if not self.path:
            raise ValueError("a jsonl sink needs path")
        return self

    def build(self, outbox: Path) -> Sink:
        from sinks.events import JsonlSink

        return JsonlSink(self.path or "", self.max_bytes, self.backups)

    def destination(self) -> str:
        return self.path or ""

    @property
    def identity(self) -> str:
        return self.name or f"jsonl {self.path}"


class StdoutSinkConfig(_EventSinkBase):
    """Events as JSON lines on standard output (the run summary then goes to stderr)."""

    type: Literal["stdout"]

    def build(self, outbox: Path) -> Sink:
        from sinks.events import StdoutSink

        return StdoutSink()

    def destination(self) -> str:
        return "stdout"


class _NetworkSinkBase(_EventSinkBase):
    """Events delivered through a durable outbox: in order, at least once."""

    flag_help: ClassVar[str]  # the help of its command-line flag (--<type> URL)

    url: str | None = Field(None, description="the endpoint")
    batch: int | None = Field(None, ge=1, description="events per send (default: 1000 for mqtt, 100 otherwise)")
    timeout: float = Field(5.0, gt=0, description="seconds per network operation")
    drain_timeout: float = Field(10.0, ge=0, description="seconds to deliver what is left at the end")

    @model_validator(mode="after")
    def _needs_url(self) -> _NetworkSinkBase:
        # a model check, not a field one: a field's error would show the URL as given, password and all
        if not self.url:
            raise ValueError(f"a {self.type} sink needs url")  # type: ignore[attr-defined]
        from sinks.delivery import TRANSPORTS

        problem = endpoint_problem(self.url, TRANSPORTS[self.type].scheme)  # type: ignore[attr-defined]
        if problem:
            raise ValueError(problem)
        return self

    def transport_options(self) -> dict[str, Any]:
        return {}

    def keys(self) -> tuple[str, ...]:
        """The templates of where events go inside the endpoint (topic, stream): part of its identity."""
        return ()

    @property
    def identity(self) -> str:
        """The outbox's name: the sink's name, or for an unnamed sink the endpoint (kind, host, port,
        path, topic or stream template; no credentials), so another endpoint never gets its backlog."""
        url = self.url or ""
        if self.type == "mqtt":  # type: ignore[attr-defined]  (its URL's path is the topic: a key)
            url = urlsplit(url)._replace(path="").geturl()
        return self.name or endpoint_identity(self.type, url, *self.keys())  # type: ignore[attr-defined]

    def build(self, outbox: Path) -> Sink:
        from sinks.delivery import DeliverySink

        legacy = outbox / f"{self.type}.sqlite3"  # type: ignore[attr-defined]
        if not self.name and legacy.is_file():
            log.warning("%s: an outbox of an earlier version (before outboxes were kept per endpoint) is left as "
                        "it is: its endpoint is not recorded, so its events are not sent to %s. To deliver them "
                        "there, give this sink name: %s", legacy, self.destination(), self.type)  # type: ignore
        return DeliverySink(
            self.type, self.url or "", outbox / f"{self.identity}.sqlite3", batch=self.batch,  # type: ignore
            drain_timeout=self.drain_timeout, timeout=self.timeout, **self.transport_options(),
        )

    def destination(self) -> str:
        return redact(self.url or "")


class WebhookSinkConfig(_NetworkSinkBase):
    """Events POSTed as JSON arrays."""

    type: Literal["webhook"]
    flag_help = "also POST events to this URL"
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers")

    def transport_options(self) -> dict[str, Any]:
        return {"headers": self.headers}


class MqttSinkConfig(_NetworkSinkBase):
    """Events published to an MQTT broker."""

    type: Literal["mqtt"]
    flag_help = "also publish events to this MQTT broker (mqtt://host:1883)"
    topic: str = Field("streamer/{source_id}/{type}", description="topic template")
    qos: int = Field(1, ge=0, le=2)

    @model_validator(mode="after")
    def _one_topic(self) -> MqttSinkConfig:
        path = urlsplit(self.url or "").path.strip("/")
        if path and "topic" in self.model_fields_set and path != self.topic:
            raise ValueError(f"the topic is given twice (the URL's path {path!r} and topic {self.topic!r}); keep one")
        topic = path or self.topic
        if "#" in (self.url or ""):  # mqtt://h/a/# : for a URL, '#' starts a fragment, which would be dropped
            parts = urlsplit(self.url or "")
            topic = (parts.path.lstrip("/") if path else self.topic) + "#" + parts.fragment
        problem = _key_problem(topic, "topic")
        if problem is None and any(c in topic for c in "+#\x00"):
            problem = f"topic {topic!r}: '+' and '#' are for subscribing; a published topic cannot hold them (or NUL)"
        if problem:
            raise ValueError(problem)
        return self

    def transport_options(self) -> dict[str, Any]:
        # mqtt://broker/site/{source_id}: the URL's path is the topic template
        return {"topic": urlsplit(self.url or "").path.strip("/") or self.topic, "qos": self.qos}

    def keys(self) -> tuple[str, ...]:
        return (self.transport_options()["topic"],)


class RedisSinkConfig(_NetworkSinkBase):
    """Events added to Redis streams."""

    type: Literal["redis"]
    flag_help = "also add events to a Redis stream (redis://host:6379/0)"
    stream: str = Field("streamer:{source_id}", description="stream key template")
    maxlen: int | None = Field(100_000, ge=1, description="trim the stream to about this length")

    @model_validator(mode="after")
    def _redis_url(self) -> RedisSinkConfig:
        problem = _key_problem(self.stream, "stream")
        if problem:
            raise ValueError(problem)
        if self.url and endpoint_problem(self.url, ("redis", "rediss")) is None:
            problem = _redis_url_problem(self.url)
            if problem:
                raise ValueError(f"URL {redact(self.url)!r}: {problem}")
        return self

    def transport_options(self) -> dict[str, Any]:
        return {"stream": self.stream, "maxlen": self.maxlen}

    def keys(self) -> tuple[str, ...]:
        return (self.stream,)


def _key_problem(template: str, what: str) -> str | None:
    """What is wrong with a topic or stream template (filled per event with its
    ``source_id`` and ``type``), or None."""
    hint = "the placeholders are {source_id} and {type} (braces as {{ and }})"
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = sorted(fields - {"source_id", "type"})
        filled = "" if unknown else template.format(source_id="s", type="t")  # '{type:d}', '{type!x}'
    except ValueError as exc:
        return f"{what} {template!r}: not a template ({exc}); {hint}"
    if unknown:
        return f"{what} {template!r}: unknown placeholder {{{unknown[0]}}}; {hint}"
    return None if filled else f"{what} is empty"


def _redis_url_problem(url: str) -> str | None:
    """What redis-py would fail on later (or read wrongly) in a Redis URL: the database
    number in its path and its query options."""
    from redis import Redis

    path = urlsplit(url).path.strip("/")
    if path and not path.isdigit():
        return f"the path is the database number (redis://host:6379/0), not {path[:40]!r}"
    try:
        pool = Redis.from_url(url).connection_pool
        pool.connection_class(**pool.connection_kwargs)  # makes no connection: checks the options
    except (ValueError, TypeError) as exc:
        return str(exc).replace("AbstractConnection.__init__() got an ", "").replace("__init__() got an ", "")
    return None


def _by(key: str, default: str | None = None) -> Discriminator:
    """A discriminator on ``key`` that falls back to ``default`` when the key is absent."""

    def tag(value: Any) -> Any:
        if isinstance(value, dict):
            return value.get(key, default)
        return getattr(value, key, default)

    return Discriminator(tag)


def _union(key: str, default: str | None, *variants: type[BaseModel]) -> Any:
    tagged = tuple(Annotated[v, Tag(v.model_fields[key].annotation.__args__[0])] for v in variants)
    return Annotated[Union[tagged], _by(key, default)]  # noqa: UP007  (a runtime tuple of types)


# The registries: each config name is written once, in its variant's Literal. The CLI's
# choices, the error messages and the builders all come from these.
DETECTOR_VARIANTS: tuple[type[BaseModel], ...] = (YoloConfig, MotDetectorConfig)
TRACKER_VARIANTS: tuple[type[BaseModel], ...] = (SortConfig, ByteTrackConfig, OcSortConfig)
EVENT_SINK_VARIANTS: tuple[type[BaseModel], ...] = (
    JsonlSinkConfig, StdoutSinkConfig, WebhookSinkConfig, MqttSinkConfig, RedisSinkConfig,
)
DetectorConfig = _union("name", "yolo", *DETECTOR_VARIANTS)
TrackerConfig = _union("name", "ocsort", *TRACKER_VARIANTS)
EventSinkConfig = _union("type", None, *EVENT_SINK_VARIANTS)


def names(variants: tuple[type[BaseModel], ...], key: str = "name") -> list[str]:
    """The config names of a registry's variants, in order (for CLI choices and messages)."""
    return [v.model_fields[key].annotation.__args__[0] for v in variants]


def event_sink_config(**values: Any) -> Any:
    """One event sink's config from keyword values (``type`` picks the variant)."""
    return TypeAdapter(EventSinkConfig).validate_python(values)


def tracker_config(name: str = "ocsort", params: dict[str, Any] | None = None) -> Any:
    """A tracker's config by name, with its parameters checked (ConfigError if wrong)."""
    try:
        return TypeAdapter(TrackerConfig).validate_python({"name": name, "params": params or {}})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, "tracker").replace("tracker: ", "", 1)) from None


class OutputConfig(_Section):
    """What is written. Paths left empty are not written."""

    @field_validator("video", "events", "mot")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value:
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            except ValueError as exc:
                raise ValueError(f"not a path template ({exc}); write braces as {{{{ and }}}}") from None
            if fields - {"source_id"}:
                raise ValueError(f"unknown placeholder {{{sorted(fields - {'source_id'})[0]}}}: "
                                 f"the only one is {{source_id}}")
            if any(spec or conversion for _, f, spec, conversion in string.Formatter().parse(value) if f):
                raise ValueError("write the placeholder as {source_id}, without a conversion or format")
        return value

    video: str | None = Field(None, description="annotated video (.mp4); {source_id} in the path: one per source")
    events: str | None = Field(None, description="JSONL event file ('-': standard output); {source_id}: one per source")
    mot: str | None = Field(None, description="MOT track file; {source_id}: one per source")
    event_sinks: list[EventSinkConfig] = Field(default_factory=list, description="more event destinations")
    outbox: str = Field("streamer-outbox", description="folder of the network sinks' durable outboxes")
    crf: int = Field(23, ge=0, le=51, description="H.264 quality of the annotated video")
    trail: int = Field(30, ge=0, le=1000, description="points of each track's path drawn on the annotated video and "
                                                      "the live view (0: none)")
    existing: Literal["replace", "keep"] = Field(
        "replace", description="an output file already there: replaced, or kept (moved aside to NAME.<time>.EXT; "
                               "streamer serve's default, as a restart or a re-added stream must not destroy it)"
    )
    track_end_frames: int | None = Field(
        None, ge=1, description="end a track after this many frames unreported (default: when the tracker drops it)"
    )
    clips: ClipsConfig | None = Field(None, description="event clips (sources[].clips overrides it per source)")
    snapshots: SnapshotsConfig | None = Field(None, description="best picture per track")

    @model_validator(mode="after")
    def _sinks_apart(self) -> OutputConfig:
        ids = [c.identity for c in self.event_sinks]
        for identity in sorted({x for x in ids if ids.count(x) > 1}):
            same = [c for c in self.event_sinks if c.identity == identity]
            if same[0].name:
                raise ValueError(f"event_sinks: {len(same)} sinks are named {identity!r}, so they would share one "
                                 f"outbox ({self.outbox}/{identity}.sqlite3) and one summary line; give each a "
                                 f"distinct name")
            kind = same[0].type  # type: ignore[attr-defined]
            flag = f" (a --{kind} flag adds one to the config's)" if isinstance(same[0], _NetworkSinkBase) else ""
            raise ValueError(f"event_sinks: {len(same)} {kind} sinks go to {same[0].destination()}, so each event "
                             f"would be sent twice; keep one{flag}")
        return self

    def stream_sinks(self, source_id: str, fps: Fraction, names: dict[int, str], live: bool, *,
                     clips: ClipsConfig | None = None, packets: Any = None, analytics: Any = None) -> list[Sink]:
        """The sinks of one source's frames: its evidence (clips from ``packets``, the
        ring its decode thread fills; snapshots), annotated video, MOT file, and its
        own event file when the events path has ``{source_id}``."""
        from sinks.events import JsonlSink
        from sinks.mot import MotSink
        from sinks.video import VideoSink

        sinks: list[Sink] = []
        if clips is not None and packets is not None:
            from sinks.clips import ClipSink

            sinks.append(ClipSink(packets, source_id, clips.folder.format(source_id=source_id), clips.pre,
                                  clips.post, clips.triggers, clips.retention.days, clips.retention.bytes))
        if self.snapshots is not None:
            from sinks.snapshots import SnapshotSink

            s = self.snapshots
            sinks.append(SnapshotSink(source_id, s.folder.format(source_id=source_id), names, s.triggers, s.quality))
        if self.video:
            sinks.append(VideoSink(self._fresh(self.video.format(source_id=source_id)), fps, names, crf=self.crf,
                                   timed=live, analytics=analytics, trail=self.trail))
        if self.events and per_source(self.events):
            sinks.append(JsonlSink(self._fresh(self.events.format(source_id=source_id))))
        if self.mot:
            sinks.append(MotSink(self._fresh(self.mot.format(source_id=source_id))))
        return sinks

    def _fresh(self, path: str) -> str:
        """``path``, with a file already there moved aside first when ``existing`` is
        ``keep`` (to ``NAME.<its last change, UTC>.EXT``)."""
        old = Path(path)
        if self.existing == "keep" and old.is_file():
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(old.stat().st_mtime))
            aside, n = old.with_name(f"{old.stem}.{stamp}{old.suffix}"), 1
            while aside.exists():
                n += 1
                aside = old.with_name(f"{old.stem}.{stamp}-{n}{old.suffix}")
            old.rename(aside)
        return path

    def shared_sinks(self) -> list[Sink]:
        """The sinks of every source's events: the events file (unless one per source)
        and ``event_sinks``."""
        sinks: list[Sink] = []
        if self.events and not per_source(self.events):
            sinks.append(event_sink_config(type="stdout") if self.events == "-" else
                         event_sink_config(type="jsonl", path=self._fresh(self.events)))
        sinks.extend(self.event_sinks)
        return [c.build(Path(self.outbox)) for c in sinks]

    def files(self, source_id: str) -> dict[str, str | None]:
        """The files written for one source, by field (the jsonl event sinks' too: one
        file for every source)."""
        out: dict[str, str | None] = {
            f"output.{name}": path.format(source_id=source_id) if path else None
            for name, path in (("video", self.video), ("events", self.events), ("mot", self.mot))}
        for i, sink in enumerate(self.event_sinks):
            if isinstance(sink, JsonlSinkConfig):
                out[f"output.event_sinks[{i}] ({sink.label})"] = sink.path
        return out

    def destinations(self, source_ids: Sequence[str] = ()) -> dict[str, str]:
        """Each output's name and where it goes, for the run summary; a ``{source_id}``
        path is given for each of ``source_ids`` (the first four, then how many)."""
        def where(path: str) -> str:
            if not per_source(path) or not source_ids:
                return path
            files = [path.format(source_id=sid) for sid in source_ids]
            return ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")

        out = {}
        for name in ("video", "events", "mot"):
            path = getattr(self, name)
            if path:
                out[name] = "stdout" if path == "-" else where(path)
        labels = [c.label for c in self.event_sinks]
        for c in self.event_sinks:  # each sink a line: unnamed ones of one kind by their outbox's name
            out[c.label if labels.count(c.label) == 1 else c.identity] = c.destination()
        for name, evidence in (("clips", self.clips), ("snapshots", self.snapshots)):
            if evidence is not None:
                out[name] = where(evidence.folder)
        return out

    def to_stdout(self) -> bool:
        """Whether events go to standard output (then nothing else may)."""
        return self.events == "-" or any(c.type == "stdout" for c in self.event_sinks)


def per_source(path: str | None) -> bool:
    """Whether an output path names one file per source."""
    return bool(path) and "{source_id}" in path


Finite = Annotated[float, Field(allow_inf_nan=False)]
Point = tuple[Finite, Finite]


class LineConfig(_Section):
    """A directed line: crossing from its left to its right (walking from the first point
    to the second, as seen on the image) is ``in``, the other way ``out``."""

    name: str = Field(description="its name in events and counts")
    points: list[Point]
    normalized: bool = Field(False, description="points in 0-1 of the frame's width and height")
    classes: list[str] | None = Field(None, description="class names counted (default all)")
    hysteresis: float = Field(
        5.0, ge=0, description="pixels a track must get past the line on the other side to count"
    )

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return _named(value)

    @model_validator(mode="after")
    def _two_points(self) -> LineConfig:
        if len(self.points) != 2:
            raise ValueError(f"a line needs exactly 2 points, got {len(self.points)}")
        if self.points[0] == self.points[1]:
            raise ValueError("the 2 points of a line must differ")
        _check_normalized(self.points, self.normalized)
        return self


class ZoneConfig(_Section):
    """A polygon zone; a track is inside when its anchor point is."""

    name: str = Field(description="its name in events and counts")
    points: list[Point]
    normalized: bool = Field(False, description="points in 0-1 of the frame's width and height")
    classes: list[str] | None = Field(None, description="class names watched (default all)")
    min_dwell: float = Field(0.0, ge=0, description="seconds inside before zone_entered")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return _named(value)

    @model_validator(mode="after")
    def _polygon(self) -> ZoneConfig:
        if len(self.points) < 3:
            raise ValueError(f"a zone needs at least 3 points, got {len(self.points)}")
        (x0, y0), (x1, y1) = self.points[0], self.points[1]
        if all(abs((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) < 1e-9 for x, y in self.points):
            raise ValueError("the points of a zone enclose no area (they are on one line); give a polygon")
        if _edges_cross(self.points):
            raise ValueError("the edges of the zone cross each other; give its points in order around it")
        _check_normalized(self.points, self.normalized)
        return self


def _named(value: str) -> str:
    if not value.strip():
        raise ValueError("a line or zone needs a name (events and counts carry it)")
    return value


def _edges_cross(points: list[Point]) -> bool:
    """Whether two edges of the closed polygon that share no corner intersect (a bow-tie)."""
    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # they share the first corner
            (a, b), (c, d) = edges[i], edges[j]
            if side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
                return True
    return False


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
    count_interval: float | None = Field(None, ge=1, le=86400, description="seconds per count event (none: no counts)")

    @model_validator(mode="after")
    def _unique_names(self) -> AnalyticsConfig:
        names = [x.name for x in [*self.lines, *self.zones]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"line and zone names must be unique, repeated: {', '.join(dupes)}")
        return self


SourceConfig.model_rebuild()  # its analytics section is defined above now


class IceServerConfig(_Section):
    """A STUN or TURN server the live view's WebRTC peers use (both ends: the service
    and the browser). Viewers across NATs need a TURN server."""

    urls: list[str] = Field(min_length=1, description="stun:HOST:PORT or turn:HOST:PORT?transport=udp|tcp")
    username: str | None = None
    credential: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url[:80]!r} is not a STUN or TURN URL (stun:HOST:PORT, turn:HOST:PORT)")
        return urls


class ViewConfig(_Section):
    """The live view of ``streamer serve``: the page at ``/``, WebRTC, MJPEG and snapshots."""

    enabled: bool = Field(True, description="serve the page, WebRTC, MJPEG and snapshot endpoints")
    max_width: int = Field(960, ge=64, le=7680, description="pixels; wider streams are scaled down (aspect kept)")
    fps: float = Field(15.0, gt=0, le=60, description="frames/s sent to viewers at most")
    bitrate: int = Field(1_500_000, ge=50_000, le=50_000_000, description="bits/s of the WebRTC video")
    jpeg_quality: int = Field(80, ge=10, le=100, description="of the MJPEG stream and the snapshots")
    max_viewers: int = Field(16, ge=1, le=1000, description="WebRTC viewers of one stream at most (64 in all, or "
                                                            "this if more)")
    ice_servers: list[IceServerConfig] = Field(default_factory=list, description="STUN/TURN servers for WebRTC "
                                                                                 "(none: same network only)")


class Config(_Section):
    """The whole job."""

    source: SourceConfig = SourceConfig()
    sources: list[SourceConfig] = Field(default_factory=list, description="several sources in one process")
    decode: DecodeConfig = DecodeConfig()
    sampler: SamplerConfig = SamplerConfig()
    buffer: BufferConfig = BufferConfig()
    detector: DetectorConfig = YoloConfig()
    tracker: TrackerConfig = OcSortConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    output: OutputConfig = OutputConfig()
    view: ViewConfig = ViewConfig()
    progress: bool = True
    duration: float | None = Field(
        None, gt=0, description="stop cleanly after this many seconds (default: at the end of every source)"
    )
    stats_interval: float = Field(60.0, ge=0, description="seconds between status lines of live sources (0: none)")

    @model_validator(mode="after")
    def _sources(self) -> Config:
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

    @model_validator(mode="after")
    def _trigger_names(self) -> Config:
        known = {x.name for x in [*self.analytics.lines, *self.analytics.zones]}
        sections = [("output.clips", self.output.clips), ("output.snapshots", self.output.snapshots)]
        sections += [("source.clips", self.source.clips)]
        sections += [(f"sources[{i}].clips", s.clips) for i, s in enumerate(self.sources)]
        for where, section in sections:
            for i, trigger in enumerate(section.triggers if section is not None else []):
                unknown = sorted(set(trigger.names or []) - known)
                if unknown:
                    raise ValueError(f"{where}.triggers[{i}].names: no line or zone named {', '.join(unknown)} "
                                     f"(analytics has: {', '.join(sorted(known)) or 'none'})")
        return self

    def clips_of(self, source: SourceConfig) -> ClipsConfig | None:
        """The clips section of one source: its own, else ``output.clips``."""
        return source.clips or self.output.clips


_UNIONS = {"detector": DETECTOR_VARIANTS, "tracker": TRACKER_VARIANTS, "event_sinks": EVENT_SINK_VARIANTS}
_TAGS = {*names(DETECTOR_VARIANTS), *names(TRACKER_VARIANTS), *names(EVENT_SINK_VARIANTS, "type")}


def _path(loc: tuple[Any, ...]) -> str:
    """The user's path to a field: pydantic's location without the union tags it adds
    (``detector.mot.detections`` is ``detector.detections`` in the file)."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        after_union = i > 0 and (loc[i - 1] in ("detector", "tracker") or isinstance(loc[i - 1], int))
        if after_union and part in _TAGS:
            continue
        text = str(part)  # a key the user wrote: shown quoted and shortened if it holds a newline or runs long
        parts.append(text if text.isprintable() and len(text) <= 80 else _show(part))
    return ".".join(parts) or "(top level)"


_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 4, 4, 4, 80, 80


def _show(value: Any, limit: int = 80) -> str:
    text = _REPR.repr(value)  # bounded: a huge or deeply nested value is never written out in full
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        path, msg, kind = _path(err["loc"]), err["msg"].removeprefix("Value error, "), err["type"]
        if kind == "extra_forbidden":
            msg = _elsewhere(err["loc"]) or "unknown key (check its spelling and section)"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            key = "type" if err["loc"] and isinstance(err["loc"][-1], int) else "name"
            expected = err.get("ctx", {}).get("expected_tags", "")
            path, msg = f"{path}.{key}", f"Input should be {_either(expected)}"
            got = err.get("ctx", {}).get("tag")
            lines.append(f"{origin}: {path}: {msg}" + (f" (got {_show(got)})" if got is not None else ""))
            continue
        got = err.get("input")
        shown = got is not None and kind != "extra_forbidden" and not isinstance(got, dict)
        lines.append(f"{origin}: {path}: {msg}" + (f" (got {_show(got)})" if shown else ""))
    return "; ".join(lines)


def _elsewhere(loc: tuple) -> str | None:
    """For a key unknown to one variant (``detector.imgsz`` with ``name: mot``), which
    other variants of that section have it."""
    at = next((i for i, part in enumerate(loc) if i and isinstance(part, str) and part in _TAGS), None)
    if at is None:
        return None
    section = loc[at - 2] if isinstance(loc[at - 1], int) and at >= 2 else loc[at - 1]
    variants = _UNIONS.get(section)
    if variants is None:
        return None
    having = [n for v, n in zip(variants, names(variants, "type" if section == "event_sinks" else "name"),
                                strict=True) if _has(v, loc[at + 1:])]
    return f"a setting of {_either(', '.join(having))} only, not of {loc[at]}" if having else None


def _has(model: Any, keys: tuple) -> bool:
    """Whether the nested ``keys`` name a field of the pydantic ``model``."""
    for key in keys:
        field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False
        model = field.annotation
    return True


def _either(tags: str) -> str:
    """``'a', 'b', 'c'`` as pydantic writes choices: ``'a', 'b' or 'c'``."""
    items = [t.strip() for t in tags.split(",") if t.strip()]
    return items[0] if len(items) < 2 else ", ".join(items[:-1]) + " or " + items[-1]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(_switched(key, out[key], value), value)
        else:
            out[key] = value
    return out


def _switched(section: str, base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` without the keys the overriding variant lacks, when an override picks
    another detector or tracker (``--detector mot`` over a file's yolo section keeps
    ``batch`` but not ``weights``; ``--tracker sort`` drops the file's OC-SORT params)."""
    if section not in ("detector", "tracker") or override.get("name", base.get("name")) == base.get("name"):
        return base
    variant = {n: v for v, n in zip(_UNIONS[section], names(_UNIONS[section]), strict=True)}.get(override["name"])
    if variant is None:
        return base
    return {k: v for k, v in base.items() if k in variant.model_fields and k != "params"}


YAML_BYTES = 2 * 2**20  # characters of a config file
YAML_NODES = 1_000_000  # nodes of a config with its aliases expanded (real configs: hundreds)
YAML_CHARS = 32 * 2**20  # characters of its scalars, expanded
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML was built with it


def parse_yaml(text: str, origin: str) -> Any:
    """A YAML document as Python data (safe tags only; libyaml's C parser when present),
    refused when it holds more than ``YAML_NODES`` values or ``YAML_CHARS`` characters
    with its aliases expanded (an alias bomb: a few hundred bytes that expand to
    gigabytes once anything walks them), or when an alias refers to itself."""
    if len(text) > YAML_BYTES:  # parsing takes about 2 s per MB even with libyaml
        raise ConfigError(f"{origin}: {len(text):,} characters, over the bound of {YAML_BYTES:,} for a config file; "
                          f"a config this large is a mistake (keep data such as detections in their own files)")
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML ({_first_line(exc)})") from None
    except RecursionError:  # PyYAML's own parser builds nested values recursively
        raise ConfigError(f"{origin}: values nested too deeply (exceeded maximum nesting depth)") from None
    nodes, chars = _expanded_size(data, origin)
    if nodes > YAML_NODES or chars > YAML_CHARS:
        raise ConfigError(f"{origin}: holds {nodes:,} values or more ({chars:,} characters) with its aliases "
                          f"expanded, over the bound of {YAML_NODES:,} ({YAML_CHARS:,} characters); a config this "
                          f"large is a mistake, or an alias bomb")
    return data


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _expanded_size(root: Any, origin: str) -> tuple[int, int]:
    """Values and string characters of loaded YAML with every alias expanded, without
    expanding it: an alias is the same Python object, sized once from its children's
    sizes (iteratively: no recursion limit on deep nesting). Stops early past the bound."""
    sizes: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, children_done = stack.pop()
        key = id(value)
        if key in sizes:
            continue
        if not isinstance(value, (list, dict)):
            sizes[key] = (1, len(value) if isinstance(value, (str, bytes)) else 0)
            continue
        children = [x for pair in value.items() for x in pair] if isinstance(value, dict) else value
        if children_done:
            open_.discard(key)
            sizes[key] = (1 + sum(sizes[id(c)][0] for c in children), sum(sizes[id(c)][1] for c in children))
            if sizes[key][0] > YAML_NODES or sizes[key][1] > YAML_CHARS:
                return sizes[key]  # enough to refuse
            continue
        if key in open_:
            raise ConfigError(f"{origin}: an alias refers to the value that holds it; a config cannot contain itself")
        open_.add(key)
        stack.append((value, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _no_nul(value: Any, origin: str, where: str = "") -> None:
    """No value may hold a NUL byte: no path or URL can (the OS refuses them deep inside a
    write, with a traceback)."""
    if isinstance(value, str):
        if "\0" in value:
            raise ConfigError(f"{origin}: {where or 'a value'}: holds a NUL byte (\\0); no path or URL can")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(item, origin, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, origin, f"{where}.{i}")


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
        if not path.exists() or path.is_dir():  # a pipe, --config <(...), is fine
            raise ConfigError(f"{path}: no such config file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
        data = parse_yaml(text, str(path)) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    if overrides:
        data = _merge(data, overrides)
    _no_nul(data, origin)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, origin)) from None
