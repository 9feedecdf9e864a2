"""``zfs-stream`` with folders: ``push DIR``, ``share DIR`` and ``pull RID`` of a tree,
and the same pull command resuming after the owner's ``share`` was restarted."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import pytest

from tests.support.procs import wait_until
from tests.support.trees import MiB, assert_same_tree, make_tree, staged
from tests.zfs.cli.test_cli import alice, cli, start

__all__ = ["alice"]   # a fixture, used by name


@pytest.mark.timeout(60)
def test_push_of_a_folder_then_again_reports_what_moved(alice: tuple, tmp_path: Path) -> None:
    _party, endpoint, inbox = alice
    source = make_tree(tmp_path / "job-output", large=2 * MiB, small=30)
    args = ["push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
            "--channel", "demo", "--topic", "files", "--json"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["files"] == record["files_sent"] + record["files_skipped"]
    assert record["bytes_moved"] == record["size"] and record["targets"] == ["alice"]
    assert_same_tree(source, inbox / "job-output")
    again = cli(*args[:-1])
    assert again.exit_code == 0, again.output
    assert "0 sent" in again.stdout and "0 B moved" in again.stdout
    refused = cli(*args[:-1], "--no-clobber")
    assert refused.exit_code != 0 and "no_clobber" in refused.stderr


@pytest.mark.timeout(120)
def test_the_same_pull_command_resumes_a_tree_after_the_owner_restarted(
        tmp_path: Path, config_home: Path) -> None:
    source = make_tree(tmp_path / "ckpt", large=24 * MiB, small=10)
    share_args = ["share", str(source), "--bind", "tcp://127.0.0.1:0", "--timeout", "60"]
    owner = start("owner", *share_args)
    try:
        line = owner.wait_line(lambda text: "zfs-stream pull" in text, 20)[-1]
        _, _, rid, _, where = line.split()
        out = tmp_path / "out"
        pull = start("pull", "pull", rid, "--from", where, "--out", str(out),
                     "--chunk-size", "64KiB", "--window", "1", "--request-timeout", "2",
                     "--retries", "0", log=tmp_path / "pull.log")
        try:
            wait_until(lambda: sum(p.stat().st_size for p in (out / ".zfs-partial").rglob("*")
                                   if p.is_file()) > 2 * MiB if (out / ".zfs-partial").exists()
                       else False, 30)
            owner.process.send_signal(signal.SIGKILL)
            owner.process.wait(10)
            assert pull.process.wait(30) != 0
        finally:
            pull.stop()
    finally:
        owner.stop()
    held = sum(p.stat().st_size for p in (out / ".zfs-partial").rglob("*") if p.is_file())
    assert held > 2 * MiB and not (out / "ckpt").exists()
    secret = config_home / "zfs-stream" / "rid-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # The owner's new process: the same port is not needed, the same RID is.
    owner = start("owner", *share_args)
    try:
        line = owner.wait_line(lambda text: "zfs-stream pull" in text, 20)[-1]
        _, _, again_rid, _, again_where = line.split()
        assert again_rid == rid
        result = cli("pull", rid, "--from", again_where, "--out", str(out), "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout.strip().splitlines()[-1])
        assert record["bytes_moved"] <= record["size"] - held + 64 * 1024
        assert_same_tree(source, out / "ckpt")
        assert staged(out) == []
    finally:
        owner.stop()
