"""The desired stream set on disk: overlaid on the config file's, replaced atomically."""

from __future__ import annotations

import json
import os

import pytest

from streamer.errors import ConfigError
from streamer.service.store import StreamStore


def test_put_and_deleted_streams_overlay_the_config_files(tmp_path):
    path = tmp_path / "state" / "streams.json"
    store = StreamStore(path)
    configured = {"a": {"uri": "lavfi:a"}, "b": {"uri": "lavfi:b"}}
    assert store.desired(configured) == configured and not path.exists()
    store.set("b", {"uri": "rtsp://cam/b", "id": "b"})
    store.set("c", {"uri": "lavfi:c", "id": "c"})
    store.delete("a")
    store.delete("c")
    again = StreamStore(path)
    assert again.desired(configured) == {"b": {"uri": "rtsp://cam/b", "id": "b"}}
    assert json.loads(path.read_text()) == {"version": 1, "streams": {"b": {"uri": "rtsp://cam/b", "id": "b"}},
                                            "deleted": ["a", "c"]}
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds camera credentials
    assert os.listdir(path.parent) == ["streams.json"]  # no temporary file left
    again.set("a", {"uri": "lavfi:a2"})  # put back after a delete
    assert StreamStore(path).desired(configured) == {"a": {"uri": "lavfi:a2"}, "b": {"uri": "rtsp://cam/b", "id": "b"}}


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 2, "streams": {}, "deleted": []}', '{"version": 1}'])
def test_a_bad_state_file_is_a_clear_error(tmp_path, text):
    path = tmp_path / "streams.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not a stream state file .*; move it away"):
        StreamStore(path)
