"""URLs as they may be shown: credentials never appear in logs, events or errors."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["endpoint_identity", "endpoint_problem", "is_secret_name", "redact", "shown"]

# A query parameter carries a secret when a word of its name (lower case, split at '-' and
# '_') is one of these, or its name ends with one of the last group: ?token=, &api_key=,
# ?X-Amz-Signature=, ?passphrase= (SRT), ?accessToken=, &pw= ... (not ?keyint=).
# Signed URLs: Azure SAS carries its secret in sig= (and some tools pass a whole token as
# sas=); AWS in X-Amz-Signature and X-Amz-Security-Token, GCP in X-Goog-Signature; Azure
# Functions' key is ?code=. Their other fields (se/sp/sv/st expiry and rights,
# X-Amz-Credential / X-Goog-Credential: the key's id and scope) are not secrets, but
# "credential" is kept: what it names elsewhere often is one.
_SECRET_WORDS = {"token", "secret", "password", "passwd", "passphrase", "pass", "pwd", "pw", "pin", "key", "apikey",
                 "auth", "authorization", "sig", "signature", "credential", "credentials", "session", "sessionid",
                 "cookie", "jwt", "otp", "sas", "code", "hmac"}
_SECRET_ENDS = ("token", "key", "secret", "password", "passwd", "signature", "auth", "sig")
_URL = re.compile(r"[A-Za-z][\w+.-]*://\S+")
_PARAM = re.compile(r"([?&;#])([^=&#;?]*)=([^&#;]*)")  # the query, and key=value in a fragment (#access_token=)


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
    elif m and m[2] and not re.search(r"[/?#]", m[2]):  # a user alone is most often a token (https://TOKEN@host/)
        url = f"{m[1]}***@{url[m.end():]}"
    return _PARAM.sub(lambda p: f"{p[1]}{p[2]}=***" if is_secret_name(p[2]) else p[0], url)


def redact(text: str) -> str:
    """``text`` with the password and secret query values of every URL in it replaced by
    ``***``: the one way a URL reaches a log line, an event or an error."""
    return _URL.sub(lambda m: _one(m[0]), str(text))


def shown(uri: str, limit: int = 200) -> str:
    """A source's URI as logs, the summary and errors show it: redacted, and a very long
    one cut in the middle (a 120 KB URL was written out on every retry)."""
    text = redact(uri)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2:]}"


_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def endpoint_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """What is wrong with a network endpoint's URL (scheme, host, port), in words with the
    URL redacted, or None when it can be used."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # 'Port out of range 0-65535', 'Invalid IPv6 URL', a port not a number
        why = str(exc).replace(url, shown)
        return f"URL {shown!r} cannot be read ({why}); write it as scheme://host:port/..."
    if parts.scheme not in schemes:
        return f"URL {shown!r} must start with " + " or ".join(s + "://" for s in schemes)
    host = parts.hostname or ""
    bracketed = parts.netloc.rpartition("@")[2].startswith("[")
    if not host:
        return f"URL {shown!r} has no host; write it as {schemes[0]}://host:port/..."
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"URL {shown!r}: [{host}] is not an IPv6 address"
    elif not _HOST.match(host):
        return f"URL {shown!r}: {host[:80]!r} is not a host name or address"
    if port is not None and not 1 <= port <= 65535:
        return f"URL {shown!r}: port {port} is not 1-65535"
    return None


def endpoint_identity(kind: str, url: str, *keys: str) -> str:
    """A file-name-safe identity of an endpoint: ``kind`` and where events go (host, port,
    path, the query without its secrets, and ``keys``: a topic or stream template), never
    the credentials. Two sinks with one identity would deliver to the same place.

    ``webhook-hooks.example.com-443-3f2a9c1d``: readable host and port, and a hash of the
    whole so that another path or topic is another identity."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883, "redis": 6379, "rediss": 6379}
    host, port = (parts.hostname or "").lower(), parts.port or default.get(parts.scheme, 0)
    query = "&".join(p for p in parts.query.split("&") if p and not is_secret_name(p.split("=", 1)[0]))
    whole = "\n".join([kind, parts.scheme, host, str(port), parts.path, query, *keys])
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", host).strip(".")[:60] or "host"
    return f"{kind}-{readable}-{port}-{digest}"
