"""Real Mosquitto and Redis servers on 127.0.0.1, started and stopped by the tests
(Debian's ``mosquitto`` and ``redis-server``, which ``.ci/run`` installs)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Default outboxes (./streamer-outbox) land in the test's folder."""
    monkeypatch.chdir(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name.split('-')[0]})")
    return path


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Server:
    """A server process that can be stopped and started again on the same port."""

    def __init__(self, argv: list[str], port: int) -> None:
        self.argv, self.port = argv, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # graceful: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


@pytest.fixture()
def mosquitto(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    (tmp_path / "mq").mkdir()
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {tmp_path / 'mq'}/\n"
    )
    server = Server([_binary("mosquitto"), "-c", str(conf)], port).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_server(tmp_path):
    port = free_port()
    server = Server([_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp_path)], port).start()
    yield server
    server.stop()
