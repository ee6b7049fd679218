"""Scale-out on Ray (``pip install 'streamer[cluster]'``).

- :mod:`streamer.cluster.footage`: ``streamer run --ray FOLDER_OR_GLOB --out DIR``, many
  files as Ray tasks, one progress bar, a resumable job (a manifest of input and config
  hashes);
- :mod:`streamer.cluster.cameras`: ``streamer serve --ray [ADDRESS]``, cameras placed on
  worker actors (each runs today's in-process :class:`~streamer.pipeline.Pipeline`) by a
  detached, named controller actor that moves a lost worker's streams to the others.

Ray is imported only here, when ``--ray`` is given; without it the rest of streamer works.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from streamer.errors import ConfigError, StreamerError

__all__ = ["NAMESPACE", "absolute_paths", "check_address", "connect", "require_ray"]

NAMESPACE = "streamer"  # the Ray namespace of the controller and the workers (named actors)


def require_ray() -> Any:
    """The ``ray`` module, or a one-line ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'streamer[cluster]'") from None
    return ray


def check_address(address: str | None) -> None:
    """A ``HOST:PORT`` address must accept a TCP connection (Ray itself retries for a
    minute); '' or None (a local cluster), 'auto' and ``ray://`` are left to Ray."""
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--ray: {address!r} is not HOST:PORT (the head node's GCS address, e.g. 10.0.0.5:6379), "
                          f"'auto' or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise StreamerError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                            f"`ray start --head` there, or check the address") from None


def connect(address: str | None) -> Any:
    """Joins the Ray cluster at ``address`` ('' or None: a local one, started for this run;
    'auto': the one this machine belongs to); returns the ``ray`` module."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    check_address(address)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        ray.init(address=address or None, namespace=NAMESPACE, logging_level="warning", log_to_driver=True,
                 include_dashboard=False if not address else None)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise StreamerError(f"cannot join the Ray cluster at {address or 'a local one'}: {exc}".splitlines()[0]) \
            from None
    return ray


def absolute_paths(config: Any) -> Any:
    """``config`` with every relative path made absolute here, on the driver: a Ray task
    or actor runs in a folder of Ray's, on whichever node (paths must name storage every
    node sees; the same path on each)."""
    def full(path: str | None) -> str | None:
        return path if path in (None, "", "-") else os.path.abspath(path)  # type: ignore[arg-type]

    o = config.output
    output = {"video": full(o.video), "events": full(o.events), "mot": full(o.mot), "outbox": full(o.outbox)}
    for name in ("clips", "snapshots"):
        evidence = getattr(o, name)
        if evidence is not None:
            output[name] = evidence.model_copy(update={"folder": full(evidence.folder)})
    detector = config.detector
    paths = {k.split(".", 1)[1]: full(v) for k, v in detector.inputs().items() if v and os.path.exists(v)}
    return config.model_copy(update={"output": o.model_copy(update=output),
                                     "detector": detector.model_copy(update=paths)})
