"""streamer/urls.py: what a URL may show (redaction) and what a sink's endpoint must be."""

from __future__ import annotations

import re

import pytest

from streamer.urls import endpoint_identity, endpoint_problem, redact


@pytest.mark.parametrize("url, shown", [
    # Azure SAS: the signature is sig=; some tools pass the whole token as sas=
    ("https://a.blob.core.windows.net/c/v.mp4?sv=2022-11-02&se=2026-01-01&sp=r&sig=SASSEC10",
     "https://a.blob.core.windows.net/c/v.mp4?sv=2022-11-02&se=2026-01-01&sp=r&sig=***"),
    ("https://h/x?a=1&credential=SASSEC10&sas=SASSEC10", "https://h/x?a=1&credential=***&sas=***"),
    # GCP and AWS signed URLs: the signature and the session token; the key's id and scope may show
    ("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Date=20260101T000000Z"
     "&X-Goog-Signature=SASSEC10", "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Date=20260101T000000Z&X-Goog-Signature=***"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Security-Token=SASSEC10&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=***&X-Amz-Expires=60"),
    # Azure Functions' key, a webhook's HMAC
    ("https://f.azurewebsites.net/api/hook?code=SASSEC10", "https://f.azurewebsites.net/api/hook?code=***"),
    ("http://h/hook?hmac=SASSEC10&codec=h264", "http://h/hook?hmac=***&codec=h264"),
])
def test_signed_url_secrets_are_redacted(url, shown):
    assert redact(url) == shown
    assert "SASSEC10" not in redact(f"streamer: {url} failed")


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:8080/a", None),
    ("https://[::1]:443/a", None),
    ("mqtt://broker.example.com", None),
    ("http://127.0.0.1:65536/a",
     "URL 'http://127.0.0.1:65536/a' cannot be read (Port out of range 0-65535); write it as scheme://host:port/..."),
    ("http://127.0.0.1:0/a", "URL 'http://127.0.0.1:0/a': port 0 is not 1-65535"),
    ("http://u:S3CRET@:80/a", "URL 'http://u:***@:80/a' has no host; write it as http://host:port/..."),
    ("http://bad_host!/a", "URL 'http://bad_host!/a': 'bad_host!' is not a host name or address"),
    ("rtsp://h/a", "URL 'rtsp://h/a' must start with http:// or https://"),
])
def test_endpoint_problem(url, problem):
    assert endpoint_problem(url, ("http", "https") if not url.startswith("mqtt") else ("mqtt",)) == problem


def test_endpoint_identity_is_a_file_name_without_credentials():
    ident = endpoint_identity("webhook", "https://user:S3CRET@Hooks.Example.com/a/b?token=S3CRET&x=1")
    assert re.fullmatch(r"webhook-hooks\.example\.com-443-[0-9a-f]{8}", ident)
    assert "S3CRET" not in ident and "/" not in ident
    assert ident == endpoint_identity("webhook", "https://other:pw@hooks.example.com:443/a/b?token=NEW&x=1")
    assert ident != endpoint_identity("webhook", "https://hooks.example.com/a/b?x=2")
    assert endpoint_identity("webhook", "http://[::1]:9/a").startswith("webhook-__1-9-")
