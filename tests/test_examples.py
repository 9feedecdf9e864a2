"""The examples under examples/ (the README's ten-line Python examples) run as written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.procs import REPO_ROOT


def run_example(name: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / name)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.timeout(70)
def test_push_example() -> None:
    out = run_example("push_example.py")
    assert "receiver: report.bin, 5242880 bytes from sender" in out
    assert "sender: pushed report.bin, 5242880 bytes" in out


@pytest.mark.timeout(70)
def test_pull_example() -> None:
    out = run_example("pull_example.py")
    assert "recipient: downloaded model.bin, 5242880 bytes" in out
