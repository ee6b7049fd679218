"""A real Ray cluster of two nodes on this machine, for the cluster tests: ``ray start
--head`` (resource ``node_a``) and a second ``ray start --address`` (``node_b``), so a
test can pin an actor to a node. Torn down with ``ray stop`` whatever happens."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, free_port

RAY_ENV = {
    # the workers import this checkout (and the tests' helpers, for what tests pickle)
    "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
    "RAY_memory_monitor_refresh_ms": "0",  # no OOM killer polling on a small shared machine
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
}


def _ray_binary() -> str:
    ray = Path(sys.executable).with_name("ray")
    return str(ray) if ray.exists() else (shutil.which("ray") or "ray")


@pytest.fixture(scope="session")
def ray_cluster():
    """The head's address; the test process is connected to it (``streamer.cluster.connect``)."""
    pytest.importorskip("ray", reason="the cluster tests need Ray: pip install 'streamer[cluster]'")
    from streamer.cluster import connect

    env = {**os.environ, **RAY_ENV}
    os.environ.update(RAY_ENV)
    port, ray = free_port(), _ray_binary()
    common = ["--num-cpus=2", "--object-store-memory=80000000", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        '--resources={"node_a": 100}', f"--dashboard-agent-listen-port={free_port()}", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", '--resources={"node_b": 100}',
                        f"--dashboard-agent-listen-port={free_port()}", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        module = connect(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
        module.shutdown()
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
