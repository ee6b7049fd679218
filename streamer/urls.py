"""URLs as they may be shown: credentials never appear in logs, events or errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["is_secret_name", "redact"]

# A query parameter carries a secret when a word of its name (lower case, split at '-' and
# '_') is one of these, or its name ends with one of the last group: ?token=, &api_key=,
# ?X-Amz-Signature=, ?passphrase= (SRT), ?accessToken=, &pw= ... (not ?keyint=).
_SECRET_WORDS = {"token", "secret", "password", "passwd", "passphrase", "pass", "pwd", "pw", "pin", "key", "apikey",
                 "auth", "authorization", "sig", "signature", "credential", "credentials", "session", "sessionid",
                 "cookie", "jwt", "otp"}
_SECRET_ENDS = ("token", "key", "secret", "password", "passwd", "signature", "auth", "sig")
_PARAM = re.compile(r"([?&;])([^=&#;?]*)=([^&#;]*)")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter (or option) of this name carries a secret."""
    n = name.strip().lower().replace("-", "_")
    return bool(_SECRET_WORDS.intersection(n.split("_"))) or n.endswith(_SECRET_ENDS)


def redact(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``; the one
    way a URL reaches a log line, an event or an error."""
    url = str(url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if password is not None:
        hostport = parts.netloc.rpartition("@")[2]  # as written (a bad port must not fail here)
        url = parts._replace(netloc=f"{parts.username}:***@{hostport}").geturl()
    return _PARAM.sub(lambda m: f"{m[1]}{m[2]}=***" if is_secret_name(m[2]) else m[0], url)
