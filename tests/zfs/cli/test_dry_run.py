"""``--dry-run``: every check a transfer makes, then what would move; nothing moves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.zfs.cli.conftest import data, one_line_error, receiving_site, sharing, zfs
from zfs.cli.settings import format_size

__all__ = ["receiving_site"]  # the fixture, used by name below


@pytest.mark.timeout(60)
def test_a_dry_push_says_what_would_go_where_and_sends_nothing(
        receiving_site: tuple[object, str, Path, Path], tmp_path: Path) -> None:
    _, endpoint, inbox, log = receiving_site
    source = data(tmp_path / "plan.bin", 2_500_000)
    push = ("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
            "--channel", "demo", "--topic", "files", "--dry-run")
    result = zfs(*push)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("would push plan.bin (2.5 MB) to alice on channel 'demo', "
                        "topic 'files'")
    assert lines[1].startswith(f"  alice at {endpoint}: receives it into {inbox}")
    assert lines[-1] == "2.5 MB to send in all; nothing was sent (--dry-run)"
    record = json.loads(zfs(*push, "--json").stdout)
    assert record == {"op": "push", "dry_run": True, "name": "plan.bin", "size": 2_500_000,
                      "targets": ["alice"], "channel": "demo", "topic": "files",
                      "bytes": 2_500_000}
    # The same checks as a push: a channel alice does not receive fails the dry run too.
    one_line_error(zfs(*push, "--topic", "other"), "alice", "'other'", "demo/files")
    assert not any(inbox.iterdir())
    assert "receiving plan.bin" not in log.read_text()


@pytest.mark.timeout(60)
def test_a_dry_pull_says_what_would_come_from_whom_and_writes_nothing(tmp_path: Path) -> None:
    source = data(tmp_path / "wanted.bin", 1_200_000)
    out = tmp_path / "not-yet"
    with sharing(tmp_path, source) as (_owner, [(rid, where)]):
        pull = ("pull", rid, "--from", where, "--out", str(out), "--dry-run")
        result = zfs(*pull)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"would download wanted.bin ({format_size(1_200_000)}) from owner into "
            f"{out / 'wanted.bin'}",
            "1.2 MB to fetch; nothing was downloaded (--dry-run)"]
        record = json.loads(zfs(*pull, "--json").stdout)
        assert record == {"op": "pull", "dry_run": True, "name": "wanted.bin",
                          "size": 1_200_000, "owner": "owner",
                          "path": str(out / "wanted.bin"), "have": 0, "bytes": 1_200_000}
        one_line_error(zfs("pull", "no-such-rid", "--from", where, "--dry-run"), "bad RID")
    assert not out.exists()
