"""The layers of STYLE.md, checked by import-linter rather than by memory."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import REPO_ROOT

LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def test_imports_point_down() -> None:
    result = subprocess.run([sys.executable, "-c", LINT], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
