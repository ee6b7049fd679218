"""A real ``streamer serve`` subprocess on a free port, and what the tests read from it."""

from __future__ import annotations

import atexit
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from helpers import free_port
from prometheus_client.parser import text_string_to_metric_families

LAVFI = "lavfi:testsrc2=size=320x240:rate=25"


def write_dets(path: Path, frames: int = 20_000) -> Path:
    """MOT detections of one 40x60 box sweeping x from 10 to 288 at 2 px a frame (any source,
    by frame index): a track that crosses x=150 once every 140 frames."""
    with open(path, "w") as f:
        for i in range(1, frames + 1):
            f.write(f"{i},-1,{10 + (i * 2) % 280},100,40,60,0.9,-1,-1,-1\n")
    return path


class Serve:
    """``streamer serve`` in ``cwd``, listening on a free port."""

    def __init__(self, cwd: Path, *args: str, token: str | None = None) -> None:
        self.cwd, self.port, self.token = cwd, free_port(), token
        argv = [sys.executable, "-m", "streamer.cli", "serve", "--http", f"127.0.0.1:{self.port}", *args]
        if token:
            argv += ["--token", token]
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        atexit.register(self._kill)  # a test that fails midway leaves no service running
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                requests.get(self.url + "/healthz", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # bound, not yet serving
                if time.monotonic() > deadline:
                    raise AssertionError("serve did not listen within 60 s") from None
                time.sleep(0.1)

    def api(self, method: str, path: str, body=None, token: str | None = "default", **kw) -> requests.Response:
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        data = body if body is None or not isinstance(body, (dict, list)) else json.dumps(body)
        return requests.request(method, self.url + path, data=data, headers=headers, timeout=30, **kw)

    def streams(self) -> dict[str, dict]:
        response = self.api("GET", "/api/streams")
        assert response.status_code == 200, response.text
        return {s["id"]: s for s in response.json()["streams"]}

    def wait_state(self, state: str, ids, timeout: float = 30.0) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            streams = self.streams()
            if all(streams.get(i, {}).get("state") == state for i in ids):
                return streams
            if time.monotonic() > deadline:
                raise AssertionError(f"streams not {state} after {timeout}s: {streams}")
            time.sleep(0.2)

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` text parsed by prometheus-client: (name, sorted labels) to value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def summary_frames(out: str) -> dict[str, int]:
    """Per-stream processed frames from the summary ``serve`` prints at its end."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (\S+): (\d+) frames", out, re.M)}


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def balanced(events: list[dict], source: str) -> tuple[list[int], list[int]]:
    """Track ids started and ended of one source."""
    started = sorted(e["track_id"] for e in events if e["source_id"] == source and e["type"] == "track_started")
    ended = sorted(e["track_id"] for e in events if e["source_id"] == source and e["type"] == "track_ended")
    return started, ended
