"""What a person gets for a mistake: one line that says what is wrong and what to do.

Each test runs the real ``zfs-stream`` in a child process, as a person at a shell would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from actors import security
from tests.support.procs import wait_until
from tests.zfs.cli.conftest import (ZFS_STREAM, clean_env, data, one_line_error,
                                    receiving_site, serve, sharing, zfs)
from zfs.files import file_digest

__all__ = ["receiving_site"]  # the fixture, used by name below

Site = tuple[object, str, Path, Path]


# ---- files that are not files ----------------------------------------------------------

def test_a_directory_is_pushed_as_a_folder_and_a_missing_one_named(tmp_path: Path) -> None:
    # Folders travel whole (issue 17): the only mistake left is the site it goes to.
    one_line_error(zfs("push", str(tmp_path), "--to", "alice", "--connect",
                       "alice=127.0.0.1:9", "--connect-timeout", "1"), "cannot reach site alice")
    one_line_error(zfs("share", str(tmp_path / "nowhere")), "no such file")


@pytest.mark.timeout(60)
def test_push_reads_standard_input_under_the_name_given_with_as(
        receiving_site: Site, tmp_path: Path) -> None:
    _, endpoint, inbox, _ = receiving_site
    target = ["--to", "alice", "--connect", f"alice={endpoint}", "--channel", "demo",
              "--topic", "files"]
    one_line_error(zfs("push", "-", *target, stdin=b"x"), "standard input", "--as NAME")
    payload = os.urandom(300_000)
    for path, name in (("-", "from-dash.bin"), ("/dev/stdin", "from-dev.bin")):
        result = zfs("push", path, "--as", name, *target, stdin=payload)
        assert result.returncode == 0, result.stderr
        assert f"pushed {name} to alice (300.0 kB)" in result.stdout
        assert (inbox / name).read_bytes() == payload
    one_line_error(zfs("share", "-"), "standard input", "push it instead")


# ---- sites that are not what we expected ------------------------------------------------

@pytest.mark.timeout(60)
def test_a_plain_push_to_a_site_with_keys_is_told_to_bring_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    security.new_keypair("alpha", keys)
    with serve("alpha", "site", "--name", "alpha", "--keys", str(keys), "--receive", "a/b",
               "--dest", str(tmp_path / "in"), ready="READY") as (_party, lines):
        endpoint = lines[-1].split()[2]
        started = time.monotonic()
        line = one_line_error(zfs("push", str(data(tmp_path / "f", 10)), "--to", "alpha",
                                  "--connect", f"alpha={endpoint}", "--connect-timeout", "30"),
                              "alpha", "requires keys", "--keys")
        # The greeting told: no need to wait out the 30 s connect timeout.
        assert time.monotonic() - started < 30, line


@pytest.mark.timeout(60)
def test_keys_without_a_name_ask_for_name_or_zfs_name(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    security.new_keypair("pusher", keys)
    one_line_error(zfs("push", str(data(tmp_path / "f", 10)), "--to", "alpha", "--connect",
                       "alpha=127.0.0.1:9", "--keys", str(keys)), "--name NAME", "ZFS_NAME")
    named = zfs("push", str(tmp_path / "f"), "--to", "alpha", "--connect", "alpha=127.0.0.1:9",
                "--keys", str(keys), "--connect-timeout", "1",
                env=clean_env(ZFS_NAME="pusher"))
    line = one_line_error(named, "site pusher", "alpha")  # it got past the name: keys of pusher
    assert "ZFS_NAME" not in line


@pytest.mark.timeout(60)
def test_another_site_at_the_endpoint_is_named_as_such(receiving_site: Site,
                                                        tmp_path: Path) -> None:
    _, endpoint, _, _ = receiving_site
    line = one_line_error(zfs("push", str(data(tmp_path / "f", 10)), "--to", "bob",
                              "--connect", f"bob={endpoint}"),
                          f"at {endpoint} listens site 'alice', not 'bob'", "--connect bob=")
    assert "key" not in line


@pytest.mark.timeout(60)
def test_a_channel_the_site_does_not_receive_is_named_with_those_it_does(
        receiving_site: Site, tmp_path: Path) -> None:
    _, endpoint, inbox, log = receiving_site
    line = one_line_error(zfs("push", str(data(tmp_path / "report.bin", 1000)), "--to",
                              "alice", "--connect", f"alice={endpoint}", "--channel", "demo",
                              "--topic", "nope"),
                          "alice", "'demo'", "'nope'", "demo/files", "--receive demo/nope")
    assert "does not receive" in line
    wait_until(lambda: "refused 'report.bin' from push-" in log.read_text(), 10)
    assert not inbox.exists() or not any(inbox.iterdir())


@pytest.mark.timeout(60)
def test_a_dest_that_is_a_file_or_cannot_be_made_stops_the_site_before_ready(
        tmp_path: Path) -> None:
    a_file = data(tmp_path / "not-a-folder", 10)
    for dest, words in ((a_file, ("is a file",)), (a_file / "sub", ("cannot write", "sub"))):
        result = zfs("site", "--name", "carol", "--receive", "a/b", "--dest", str(dest))
        one_line_error(result, str(dest), *words)
        assert "READY" not in result.stdout


# ---- pulls ---------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_rid_typo_leaves_no_folder_behind(tmp_path: Path) -> None:
    with sharing(tmp_path, data(tmp_path / "f.bin", 1000)) as (_owner, [(_rid, where)]):
        out = tmp_path / "new-folder"
        one_line_error(zfs("pull", "not-the-rid", "--from", where, "--out", str(out)),
                       "bad RID")
        assert not out.exists()


@pytest.mark.timeout(60)
def test_a_pull_without_room_fails_before_a_byte_moves(tmp_path: Path) -> None:
    """A sparse file bigger than the free space of the recipient's disk."""
    out = tmp_path / "out"
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    huge = tmp_path / "huge.img"
    with open(huge, "wb") as f:
        f.truncate(free + (1 << 40))
    with sharing(tmp_path, huge) as (owner, [(rid, where)]):
        try:
            one_line_error(zfs("pull", rid, "--from", where, "--out", str(out)),
                           "disk full", "huge.img", "free")
            assert not out.exists()
        finally:
            owner.process.kill()    # it would digest the whole sparse file before exiting


@pytest.mark.timeout(60)
def test_after_a_share_ended_a_pull_says_so(tmp_path: Path) -> None:
    with sharing(tmp_path, data(tmp_path / "f.bin", 1000), extra=("--timeout", "1")) \
            as (owner, [(rid, where)]):
        assert owner.process.wait(20) == 0
        line = one_line_error(zfs("pull", rid, "--from", where, "--out", str(tmp_path / "o"),
                                  "--connect-timeout", "1"),
                              "nothing listens there", "the share has ended")
        assert "no answer" not in line


@pytest.mark.timeout(90)
def test_two_pulls_into_one_folder_take_turns_and_the_second_uses_the_first(
        tmp_path: Path) -> None:
    source = data(tmp_path / "big.iso", 3 << 20)
    out = tmp_path / "out"
    with sharing(tmp_path, source) as (_owner, [(rid, where)]):
        pull = [*ZFS_STREAM, "pull", rid, "--from", where, "--out", str(out)]
        first = subprocess.Popen([*pull, "--bwlimit", "2MB/s"], env=clean_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        second = None
        try:
            wait_until(lambda: any(out.glob("*.zfs-pull-lock")), 20)
            # Hold the first still while the second arrives, however slowly it starts.
            first.send_signal(signal.SIGSTOP)
            second = subprocess.Popen(pull, env=clean_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            assert second.stderr is not None
            waiting = second.stderr.readline()
            first.send_signal(signal.SIGCONT)
            first_out, first_err = first.communicate(timeout=30)
            second_out, second_err = second.communicate(timeout=30)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.kill()
        assert first.returncode == 0, first_err
        assert second.returncode == 0, second_err
        assert "downloaded" in first_out
        assert waiting.startswith("waiting for another pull of big.iso"), waiting
        assert "already here: another pull got it" in second_out
        assert file_digest(out / "big.iso") == file_digest(source)
        assert sorted(p.name for p in out.iterdir()) == ["big.iso"]
