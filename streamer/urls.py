"""URLs as they may be shown: credentials never appear in logs, events or errors."""

from __future__ import annotations

import re

__all__ = ["is_secret_name", "redact"]

# A query parameter carries a secret when a word of its name (lower case, split at '-' and
# '_') is one of these, or its name ends with one of the last group: ?token=, &api_key=,
# ?X-Amz-Signature=, ?passphrase= (SRT), ?accessToken=, &pw= ... (not ?keyint=).
_SECRET_WORDS = {"token", "secret", "password", "passwd", "passphrase", "pass", "pwd", "pw", "pin", "key", "apikey",
                 "auth", "authorization", "sig", "signature", "credential", "credentials", "session", "sessionid",
                 "cookie", "jwt", "otp"}
_SECRET_ENDS = ("token", "key", "secret", "password", "passwd", "signature", "auth", "sig")
_URL = re.compile(r"[A-Za-z][\w+.-]*://\S+")
_PARAM = re.compile(r"([?&;])([^=&#;?]*)=([^&#;]*)")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter (or option) of this name carries a secret."""
    n = name.strip().lower().replace("-", "_")
    return bool(_SECRET_WORDS.intersection(n.split("_"))) or n.endswith(_SECRET_ENDS)


def _one(url: str) -> str:
    # user:password@ up to the last '@' of the authority: a password may hold '/', '?' or '#'
    # unencoded, which would end the authority for urlsplit and show the rest of it.
    m = re.match(r"^([A-Za-z][\w+.-]*://)([^@\s]*)@", url)
    if m and ":" in m[2]:
        user = m[2].split(":", 1)[0]
        url = f"{m[1]}{user}:***@{url[m.end():]}"
    return _PARAM.sub(lambda p: f"{p[1]}{p[2]}=***" if is_secret_name(p[2]) else p[0], url)


def redact(text: str) -> str:
    """``text`` with the password and secret query values of every URL in it replaced by
    ``***``: the one way a URL reaches a log line, an event or an error."""
    return _URL.sub(lambda m: _one(m[0]), str(text))
