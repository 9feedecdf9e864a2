"""Options where people put them: -q/-v after the command, host:port, names from ZFS_NAME,
--version, shell completion, and a site's first line being READY."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

import pytest

from tests.zfs.cli.conftest import (ZFS_STREAM, Terminal, clean_env, data, one_line_error,
                                    sharing, zfs)


@pytest.mark.parametrize("command", ["site", "pull"])     # every command gets them alike
def test_every_command_lists_quiet_and_verbose_in_its_help(command: str) -> None:
    result = zfs(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "-q, --quiet" in result.stdout and "-v, --verbose" in result.stdout


@pytest.mark.timeout(60)
def test_quiet_and_verbose_are_accepted_after_the_command_name(tmp_path: Path) -> None:
    source = data(tmp_path / "some.bin", 3 << 20)
    with sharing(tmp_path, source) as (_owner, [(rid, where)]):
        drawn = Terminal("pull", rid, "--from", where, "--out", str(tmp_path / "a"),
                         "--bwlimit", "6MB/s")
        quiet = Terminal("pull", rid, "--from", where, "--out", str(tmp_path / "b"),
                         "--bwlimit", "6MB/s", "-q")
        try:
            assert drawn.finish() == 0 and quiet.finish() == 0, drawn.output + quiet.output
        finally:
            drawn.close()
            quiet.close()
        assert "%|" in drawn.output
        assert "%|" not in quiet.output and "downloaded" in quiet.output
        verbose = zfs("pull", "not-a-rid", "--from", where, "--out", str(tmp_path), "-v")
        assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_version_names_the_installed_package() -> None:
    result = zfs("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"zfs-stream {importlib.metadata.version('zfs-stream')}"


def test_shell_completion_works_as_the_readme_says() -> None:
    """README: eval "$(_ZFS_STREAM_COMPLETE=bash_source zfs-stream)" (tests/test_readme.py)."""
    script = subprocess.run(ZFS_STREAM, capture_output=True, text=True, timeout=60,
                            env=clean_env(_ZFS_STREAM_COMPLETE="bash_source"))
    assert "complete " in script.stdout and "_zfs_stream_completion" in script.stdout
    words = subprocess.run(ZFS_STREAM, capture_output=True, text=True, timeout=60,
                           env=clean_env(_ZFS_STREAM_COMPLETE="bash_complete",
                                         COMP_WORDS="zfs-stream pu", COMP_CWORD="1"))
    assert words.stdout.split() == ["plain,pull", "plain,push"]


def test_a_port_out_of_range_or_missing_is_refused_before_anything_starts() -> None:
    one_line_error(zfs("site", "--name", "carol", "--bind", "127.0.0.1:70000"),
                   "--bind", "0 to 65535")
    one_line_error(zfs("share", __file__, "--bind", "127.0.0.1"), "--bind", "port")


@pytest.mark.timeout(60)
def test_a_site_binds_host_port_says_ready_first_and_logs_at_the_level_asked(
        tmp_path: Path) -> None:
    """host:port means tcp://host:port; ZFS_NAME names it; READY is its first line, the
    log lines come after it, and ZFS_LOG_LEVEL=ERROR silences them."""
    for level, expect_logs in ((None, True), ("ERROR", False)):
        env = clean_env(ZFS_NAME="hub", **({"ZFS_LOG_LEVEL": level} if level else {}))
        process = subprocess.Popen([*ZFS_STREAM, "site", "--bind", "127.0.0.1:0", "--receive",
                                    "a/b", "--dest", str(tmp_path / "in")], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert process.stdout is not None
            first = process.stdout.readline().split()
            assert first[:2] == ["READY", "hub"] and first[2].startswith("tcp://127.0.0.1:")
            assert int(first[2].rpartition(":")[2]) > 0
            process.terminate()
            rest = process.stdout.read()
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert ("receiving a/b into" in rest) is expect_logs, rest
        if not expect_logs:
            assert rest.strip() == "", rest
