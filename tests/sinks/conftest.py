"""Real Mosquitto and Redis servers on 127.0.0.1, started and stopped by the tests
(Debian's ``mosquitto`` and ``redis-server``, which ``.ci/run`` installs)."""

from __future__ import annotations

import pytest

from helpers import Server, binary, free_port


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Default outboxes (./streamer-outbox) land in the test's folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def mosquitto(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    (tmp_path / "mq").mkdir()
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {tmp_path / 'mq'}/\n"
    )
    server = Server([binary("mosquitto"), "-c", str(conf)], port).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_server(tmp_path):
    port = free_port()
    server = Server([binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp_path)], port).start()
    yield server
    server.stop()
