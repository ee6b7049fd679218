"""The code's own rules, checked like behaviour: lint clean, no long functions, and the
runner knows stages only through their protocols."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

PACKAGES = ("streamer", "trackers", "sinks")
MAX_FUNCTION_LINES = 60


def python_files(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: make test installs it with the test extras (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", *PACKAGES, "tests", "benchmarks"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_over_60_lines():
    long = []
    for path in python_files(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


@pytest.mark.parametrize("module", ["streamer/pipeline.py", "streamer/processor.py"])
def test_runner_names_no_concrete_stage_and_probes_nothing(module):
    """Adding a detector, tracker or sink touches no runner code: the runtime and the
    per-source processor import no concrete stage and probe no optional method."""
    tree = ast.parse((REPO / module).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m and m.split(".")[0] in ("trackers", "sinks")}, imported
    assert not imported & {"streamer.detectors", "streamer.detectors.yolo", "streamer.detectors.mot"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"hasattr", "getattr"}, calls
    assert "Any" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
