"""README.md's Python blocks run as pasted, and its copy of the settings table is the code's.

Each ```python block is written to a file and run by a fresh interpreter in an empty
folder, as a person pasting it into a file would run it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import REPO_ROOT
from zfs.cli import settings

README = (REPO_ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def first_line(snippet: str) -> str:
    return next(line for line in snippet.splitlines() if line.strip() and
                not line.startswith(("import", "from")))[:40]


def test_the_readme_has_python_blocks() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.timeout(90)
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"block{i}" for i in range(len(SNIPPETS))])
def test_a_readme_python_block_runs_as_pasted(snippet: str, tmp_path: Path) -> None:
    script = tmp_path / "pasted.py"
    script.write_text(snippet)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TMPDIR"] = str(tmp_path)            # what the block makes stays in the test's folder
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=80, env=env)
    assert result.returncode == 0, f"{first_line(snippet)}...\n{result.stderr}"


def test_the_readme_settings_table_is_the_one_in_the_code() -> None:
    def rows(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines()
                if line.startswith("| ") and line.count("|") == 6
                and line.split("|")[1].strip() in (*settings.PARSERS, "setting")]
    assert rows(README) == rows(settings.__doc__ or "")


def test_the_readme_says_how_to_complete_commands_and_which_units_it_prints() -> None:
    assert 'eval "$(_ZFS_STREAM_COMPLETE=bash_source zfs-stream)"' in README
    assert "decimal units: 1 kB = 1,000 bytes, 1 MB = 10^6 bytes" in README
