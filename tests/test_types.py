"""Type annotations are checked by mypy, as STYLE.md asks, not by memory: the packages
and the benchmarks (a benchmark importing a name the packages no longer have fails here,
not on the day someone runs it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import REPO_ROOT


@pytest.mark.timeout(300)
def test_the_packages_and_benchmarks_are_mypy_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "actors", "zfs", "benchmarks"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
