"""Push of folders across OS processes: the test process sends, child sites receive.

A tree with every kind of entry, to two targets, compared file by file (content, mode,
time); a rerun that moves nothing; an interrupted push resumed with the bytes counted;
what a sender may not send (a link out of the tree), what it skips (a FIFO), what a
hostile peer's manifest cannot do (``..``), and ``no_clobber``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import actors
from actors import codec
from actors.codec import Kind
from tests.support.faults import CHANNEL, Throttle, register
from tests.support.procs import SiteProcess, start_sites
from tests.support.rawpeer import greet, next_of, raw_dealer
from tests.support.trees import (MiB, assert_same_tree, make_tree, raw_manifest, staged,
                                 tree_listing)
from zfs import (StreamRefused, TransferAborted, UnsafeTree, push_tree, push_tree_async)
from zfs.protocol import wire
from zfs.protocol.inbound import decode
from zfs.protocol.tree.manifest import Entry, Manifest
from zfs.protocol.tree.manifest import Kind as EntryKind

CHUNK = 256 << 10


@pytest.fixture(scope="module")
def pair(hub: actors.Site) -> Iterator[list[SiteProcess]]:
    procs = start_sites(hub, "tree1", "tree2")
    yield procs
    for proc in procs:
        proc.kill()


@pytest.mark.timeout(90)
def test_a_tree_reaches_two_targets_whole_then_a_rerun_moves_nothing(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    source = make_tree(tmp_path / "model")
    for proc in pair:
        register(hub, proc, tmp_path / proc.name, "whole")
    seen: list[Any] = []
    result = push_tree(hub, ["tree1", "tree2"], str(source), channel=CHANNEL, topic="whole",
                       chunk_size=CHUNK, on_progress=seen.append)
    files = sum(1 for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    assert (result.name, result.files, result.size) == ("model", files, total)
    assert result.bytes_moved == total and not result.ignored
    assert sorted(result.targets) == ["tree1", "tree2"]
    for proc in pair:
        assert_same_tree(source, tmp_path / proc.name / "model")
        assert staged(tmp_path / proc.name) == []
    last = seen[-1]
    assert (last.bytes_done, last.total, last.files_done, last.files) == (total, total, files,
                                                                           files)

    again = push_tree(hub, ["tree1", "tree2"], str(source), channel=CHANNEL, topic="whole",
                      chunk_size=CHUNK)
    assert again.bytes_moved == 0 and again.sent == () and len(again.skipped) == files
    (source / "small" / "s0007.txt").write_bytes(b"changed")
    third = push_tree(hub, ["tree1", "tree2"], str(source), channel=CHANNEL, topic="whole",
                      chunk_size=CHUNK)
    assert third.sent == ("small/s0007.txt",) and third.bytes_moved == len(b"changed")
    for proc in pair:
        assert_same_tree(source, tmp_path / proc.name / "model")


@pytest.mark.timeout(90)
def test_an_interrupted_push_resumes_sending_only_what_the_targets_lack(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    source = make_tree(tmp_path / "ckpt", large=12 * MiB, small=50)
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    for proc in pair:
        register(hub, proc, tmp_path / proc.name, "resume")
    throttle = Throttle(0.02, 5 * MiB)
    # Capped at 4 MB/s so the abort lands seconds before the end however busy the
    # machine (a push calls on_progress at most 10 times a second: its sleep alone
    # does not slow it enough).
    first = push_tree_async(hub, ["tree1", "tree2"], str(source), channel=CHANNEL,
                            topic="resume", chunk_size=CHUNK, window_chunks=2,
                            on_progress=throttle, bwlimit=4e6)
    assert throttle.under_way.wait(30)
    first.abort()
    with pytest.raises(TransferAborted) as caught:
        first.result(20)
    assert "resume" in str(caught.value)
    for proc in pair:
        assert not (tmp_path / proc.name / "ckpt").exists()     # never a half tree
        assert staged(tmp_path / proc.name)                      # what arrived is kept
    resumed = push_tree(hub, ["tree1", "tree2"], str(source), channel=CHANNEL, topic="resume",
                        chunk_size=CHUNK)
    assert 0 < resumed.bytes_moved <= total - 5 * MiB + 3 * CHUNK, resumed.bytes_moved
    for proc in pair:
        assert_same_tree(source, tmp_path / proc.name / "ckpt")
        assert staged(tmp_path / proc.name) == []


@pytest.mark.timeout(60)
def test_a_link_leading_out_of_the_folder_is_refused_before_anything_is_sent(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    source = tmp_path / "leaky"
    (source / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink("../../secret.txt", source / "sub" / "escape")
    register(hub, pair[0], tmp_path / "in", "leak")
    with pytest.raises(UnsafeTree) as caught:
        push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="leak")
    assert "sub/escape" in str(caught.value) and "outside" in str(caught.value)
    os.unlink(source / "sub" / "escape")
    os.symlink("/etc/passwd", source / "abs")
    with pytest.raises(UnsafeTree):
        push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="leak")
    assert not (tmp_path / "in" / "leaky").exists() and staged(tmp_path / "in") == []


@pytest.mark.timeout(60)
def test_a_fifo_is_skipped_with_a_warning_and_the_rest_arrives(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="zfs.tree.walk")
    source = tmp_path / "withfifo"
    source.mkdir()
    (source / "data.txt").write_bytes(b"data")
    os.mkfifo(source / "pipe")
    register(hub, pair[0], tmp_path / "in", "fifo")
    result = push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="fifo")
    assert result.ignored == ("pipe",)
    assert "skipped" in caplog.text and "pipe" in caplog.text
    got = tmp_path / "in" / "withfifo"
    assert sorted(os.listdir(got)) == ["data.txt"]


@pytest.mark.timeout(60)
def test_no_clobber_refuses_a_tree_whose_name_exists_and_leaves_it_alone(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    source = tmp_path / "keep"
    source.mkdir()
    (source / "new.txt").write_bytes(b"new")
    dest = tmp_path / "in"
    register(hub, pair[0], dest, "clobber")
    (dest / "keep").mkdir()
    (dest / "keep" / "mine.txt").write_bytes(b"mine")
    with pytest.raises(StreamRefused) as caught:
        push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="clobber", no_clobber=True)
    assert caught.value.site == "tree1" and "no_clobber" in str(caught.value)
    assert os.listdir(dest / "keep") == ["mine.txt"]
    push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="clobber")
    assert os.listdir(dest / "keep") == ["new.txt"]            # replaced whole, at once


@pytest.mark.timeout(60)
def test_a_link_planted_in_the_old_tree_is_never_followed(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_bytes(b"precious")
    dest = tmp_path / "in"
    register(hub, pair[0], dest, "planted")
    (dest / "t").mkdir()
    os.symlink(outside, dest / "t" / "sub")                    # DEST/t/sub -> outside
    source = tmp_path / "t"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "x.txt").write_bytes(b"precious")        # same size and bytes
    push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="planted")
    assert (outside / "x.txt").read_bytes() == b"precious" and os.listdir(outside) == ["x.txt"]
    assert not (dest / "t" / "sub").is_symlink()
    assert (dest / "t" / "sub" / "x.txt").read_bytes() == b"precious"


@pytest.mark.timeout(60)
def test_a_hostile_manifest_naming_dot_dot_is_refused_and_writes_nothing(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path,
        context: zmq.Context) -> None:
    dest = tmp_path / "in"
    register(hub, pair[0], dest, "hostile")
    before = tree_listing(tmp_path)
    honest = Manifest((Entry("", EntryKind.DIR, 0o755, 0),
                       Entry("x", EntryKind.FILE, 0o644, 0, 4))).encode()
    evil = raw_manifest([(b"d", 0o755, 0, 0, "", ""), (b"f", 0o644, 0, 4, "../x", "")])
    sock = raw_dealer(context, pair[0].endpoint)
    greet(sock, "evil", "e1")
    for name, manifest in (("../up", honest), ("t", evil)):
        body = wire.encode(wire.TreeOpen("s1", name, "k", 1, 4, len(manifest), CHUNK, 8,
                                         CHANNEL, "hostile", None, False, True))
        sock.send_multipart([codec.encode(Kind.TELL, "zfs.tree-receiver", "evil/x", 0, body),
                             manifest])
        reply = next_of(sock, Kind.TELL)  # past the site's route announcements
        answer = decode(reply.body)
        assert isinstance(answer, wire.Failed) and answer.failure.value == "refused", answer
    sock.close()
    assert tree_listing(tmp_path) == before
    assert not (tmp_path / "up").exists() and not (tmp_path / "x").exists()


@pytest.mark.timeout(60)
def test_a_capped_tree_push_takes_at_least_what_its_cap_allows(
        hub: actors.Site, pair: list[SiteProcess], tmp_path: Path) -> None:
    source = tmp_path / "capped"
    source.mkdir()
    for i in range(12):
        (source / f"f{i}").write_bytes(os.urandom(128 << 10))
    register(hub, pair[0], tmp_path / "in", "capped")
    rate, chunk = 1_000_000, 128 << 10
    result = push_tree(hub, "tree1", str(source), channel=CHANNEL, topic="capped",
                       chunk_size=chunk, bwlimit=rate)
    # A token bucket of one chunk lets the first chunk go at once, the rest at the rate.
    assert result.seconds >= (result.bytes_moved - chunk) / rate * 0.95, result.seconds
    assert_same_tree(source, tmp_path / "in" / "capped")
