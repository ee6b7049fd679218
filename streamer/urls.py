"""URLs as they may be shown: credentials never appear in logs, events or errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["redact"]

# Query parameters that carry secrets in camera and streaming URLs (?token=..., &password=...).
_SECRET_PARAM = re.compile(r"(?i)([?&](?:[a-z_]*token|key|secret|pass(?:word)?|pwd|auth|sig(?:nature)?)=)[^&#]*")


def redact(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        url = parts._replace(netloc=netloc).geturl()
    return _SECRET_PARAM.sub(r"\1***", url)
