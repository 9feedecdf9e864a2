"""Push between sites in separate OS processes: sizes, fan-out, refusals, faults.

The test process hosts the site "test"; targets are child processes driven through
their "ctl" actor. Targets and senders killed mid-push are in tests/faults/test_push.py.
"""

from __future__ import annotations

import io
import shutil
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import CHANNEL, partials
from tests.support.procs import SiteProcess, start_sites, wait_until
from zfs.errors import (InsecureLink, SourceMissing, StreamRefused, TransferAborted,
                        UnsafeName)
from zfs.files import file_digest
from zfs.protocol import wire
from zfs.protocol.errors import Failure
from zfs.protocol.inbound import decode
from zfs import Progress, push_file, push_file_async, register_receiver

CHUNK = 64 << 10


# ---------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module")
def trio(hub: actors.Site) -> Iterator[list[SiteProcess]]:
    """Three target sites, shared by the tests that do not kill them."""
    procs = start_sites(hub, "beta", "gamma", "delta")
    yield procs
    for proc in procs:
        proc.kill()


def register(hub: actors.Site, proc: SiteProcess, dest: Path, topic: str, **options: Any) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    proc.call(hub, "zfs:register_receiver", channel="test", topic=topic,
              dest_dir=str(dest), on_done={"$recorder": f"done-{topic}"}, **options)


def make_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes in which no two 1 MiB blocks are equal (fast to make)."""
    block = bytearray(os.urandom(min(size, 1 << 20)))
    with open(path, "wb") as f:
        for i in range(0, size, 1 << 20):
            block[:8] = i.to_bytes(8, "big")[: len(block)]
            f.write(block[: size - i])
    return path


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("n_targets", [1, 3])
def test_push_delivers_every_edge_size_to_every_target(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path, n_targets: int) -> None:
    procs = trio[:n_targets]
    topic = f"sizes{n_targets}"
    for proc in procs:
        register(hub, proc, tmp_path / proc.name, topic)
    sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7]
    for size in sizes:
        src = make_file(tmp_path / f"f{size}.bin", size)
        result = push_file(hub, [p.name for p in procs], src, channel="test", topic=topic,
                           chunk_size=CHUNK, window_chunks=4, context={"size": size})
        assert result.size == size and result.targets == [p.name for p in procs]
        assert result.digest == file_digest(src)
        for proc in procs:
            got = tmp_path / proc.name / src.name
            assert file_digest(got) == file_digest(src)
    for proc in procs:
        done = proc.events(hub, f"done-{topic}")
        assert [d[0]["size"] for d in done] == sizes
        assert [d[0]["context"] for d in done] == [{"size": s} for s in sizes]
        first = done[0][0]
        assert first["path"] == str(tmp_path / proc.name / "f0.bin")
        assert (first["sender_site"], first["channel"], first["topic"]) == ("test", "test", topic)
        assert partials(tmp_path / proc.name) == []


@pytest.mark.timeout(120)
def test_push_of_200_mib_with_1_mib_chunks(hub: actors.Site, trio: list[SiteProcess],
                                           tmp_path: Path) -> None:
    beta = trio[0]
    register(hub, beta, tmp_path / "beta", "big")
    src = make_file(tmp_path / "big.bin", 200 << 20)
    seen: list[Progress] = []
    result = push_file(hub, ["beta"], src, channel="test", topic="big", on_progress=seen.append)
    got = tmp_path / "beta" / "big.bin"
    assert got.stat().st_size == 200 << 20
    assert file_digest(got) == file_digest(src) == result.digest
    assert seen and seen[-1] == Progress("big.bin", 200 << 20, 200 << 20, "beta")
    assert len(seen) < 200                 # throttled, not one call per chunk


def test_unregistered_topic_fails_naming_the_site_and_leaves_nothing(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    beta, gamma, delta = trio
    register(hub, beta, tmp_path / "beta", "partly")
    register(hub, delta, tmp_path / "delta", "partly")
    src = make_file(tmp_path / "x.bin", 3 * CHUNK)
    with pytest.raises(StreamRefused) as caught:
        push_file(hub, ["beta", "gamma", "delta"], src, channel="test", topic="partly",
                  chunk_size=CHUNK)
    assert caught.value.site == "gamma"
    for name in ("beta", "delta"):
        wait_until(lambda: partials(tmp_path / name) == [], 5)
        assert not (tmp_path / name / "x.bin").exists()


def test_a_site_with_no_receiver_at_all_refuses_at_once(hub: actors.Site,
                                                        tmp_path: Path) -> None:
    src = make_file(tmp_path / "x.bin", 10)
    with actors.Site("bare", connect={"test": hub.endpoint}):
        hub.wait_for("bare", timeout=10)
        started = time.monotonic()
        with pytest.raises(StreamRefused) as caught:
            push_file(hub, "bare", src, chunk_timeout=20.0)
    assert caught.value.site == "bare" and time.monotonic() - started < 5


def test_two_concurrent_sends_to_the_same_target_do_not_mix(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    beta = trio[0]
    register(hub, beta, tmp_path / "beta", "concurrent")
    a = make_file(tmp_path / "a.bin", 40 * CHUNK + 3)
    b = make_file(tmp_path / "b.bin", 37 * CHUNK + 11)
    futures = [push_file_async(hub, "beta", src, channel="test", topic="concurrent",
                               chunk_size=CHUNK, window_chunks=2) for src in (a, b)]
    results = [f.result(30) for f in futures]
    assert [r.name for r in results] == ["a.bin", "b.bin"]
    for src in (a, b):
        assert file_digest(tmp_path / "beta" / src.name) == file_digest(src)


def test_stream_source_needs_a_name_and_arrives_whole(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    beta = trio[0]
    register(hub, beta, tmp_path / "beta", "stream")
    data = os.urandom(3 * CHUNK + 5)
    with pytest.raises(ValueError):
        push_file(hub, "beta", io.BytesIO(data), channel="test", topic="stream")
    result = push_file(hub, "beta", io.BytesIO(data), name="s.bin", channel="test",
                       topic="stream", chunk_size=CHUNK)
    assert result.size == len(data)
    assert (tmp_path / "beta" / "s.bin").read_bytes() == data


def test_bad_calls_fail_before_anything_is_sent(hub: actors.Site, trio: list[SiteProcess],
                                                tmp_path: Path) -> None:
    with pytest.raises(SourceMissing):
        push_file(hub, "beta", tmp_path / "missing.bin")
    src = make_file(tmp_path / "ok.bin", 10)
    with pytest.raises(UnsafeName):
        push_file(hub, "beta", src, name="../escape")
    with pytest.raises(InsecureLink):
        push_file(hub, "beta", src, secure=True)
    with pytest.raises(ValueError):
        push_file(hub, ["beta", "beta"], src)
    with pytest.raises(TransferAborted) as caught:
        push_file(hub, "nowhere", src)
    assert caught.value.site == "nowhere"
    with pytest.raises(TransferAborted) as caught:
        push_file(hub, "beta", src, context={"not msgpack": object()})
    assert caught.value.site == "test" and "encode" in caught.value.reason


class Prober(actors.Actor):
    """Tells raw push messages on the test's behalf and keeps the replies it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict) and "to" in message:
            self.site.tell(message["to"], message["msg"])
        elif message == "replies":
            return list(self.replies)
        else:
            self.replies.append(message)
        return None


HOSTILE = ["../evil", "/etc/evil", "a/../../evil", "", ".", "..", "evil\0.txt", "x" * 300,
           "..\\evil", 42, None]


def test_hostile_names_are_refused_and_nothing_lands_outside(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    beta = trio[0]
    dest = tmp_path / "deep" / "dest"
    register(hub, beta, dest, "hostile")
    replies = _probe(hub, [["open", f"s{i}", name, 1, 1, 1, "test", "hostile", None]
                           for i, name in enumerate(HOSTILE)])
    assert {type(r) for r in replies} == {wire.Failed}
    assert {r.failure for r in replies} == {Failure.REFUSED}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "dest"]


def _probe(hub: actors.Site, opens: list[Any]) -> list[Any]:
    """Send raw open messages to beta's receiver; return its answers, decoded."""
    prober = hub.spawn(Prober, "prober")
    try:
        for msg in opens:
            prober.tell({"to": "beta/zfs.receiver", "msg": msg})

        def all_replies() -> Any:
            got = hub.ask("test/prober", "replies", timeout=5)
            return [decode(body) for body in got] if len(got) == len(opens) else None
        return wait_until(all_replies, 10)
    finally:
        prober.stop()


def _open(sid: str, size: int, topic: str) -> list[Any]:
    return wire.encode(wire.Open(sid, f"{sid}.bin", size, 1, 1, "test", topic, None))


def test_a_declared_size_over_the_free_disk_is_refused_before_writing(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    register(hub, trio[0], dest, "huge", max_size=1 << 62)
    free = shutil.disk_usage(tmp_path).free
    (reply,) = _probe(hub, [_open("huge", free * 4, "huge")])
    assert reply.failure is Failure.REFUSED and "free" in reply.reason
    assert list(dest.iterdir()) == []


def test_one_site_cannot_open_more_than_its_share_of_streams(
        hub: actors.Site, trio: list[SiteProcess], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    register(hub, trio[0], dest, "flood")
    replies = _probe(hub, [_open(f"f{i}", 10, "flood") for i in range(40)])
    refused = [r for r in replies if isinstance(r, wire.Failed)]
    assert len(refused) == 40 - 32
    assert all("too many streams from site test" in r.reason for r in refused)


@pytest.mark.timeout(60)
def test_receivers_drop_the_partial_file_of_a_sender_stalled_mid_stream(
        hub: actors.Site, tmp_path: Path) -> None:
    """The sender is alive but silent: the receiver's inactivity timeout drops the file.

    A sender killed mid-stream is tests/faults/test_push.py's
    test_sender_killed_mid_push_leaves_no_partial_after_the_inactivity_timeout.
    """
    dest = tmp_path / "in"
    dest.mkdir()
    register_receiver(hub, channel=CHANNEL, topic="stalled", dest_dir=str(dest),
                      inactivity_timeout=1.0)
    with start_sites(hub, "alpha")[0] as alpha:
        alpha.start_job(hub, "tests.support.faults:child_push_gated", "test", "stalled",
                        "orphan", 1 << 40, 4 * CHUNK, str(tmp_path / "never"))
        wait_until(lambda: partials(dest), 10)
        stalled_at = time.monotonic()
        wait_until(lambda: partials(dest) == [], 6)
        assert time.monotonic() - stalled_at > 0.9
        # The file goes first, then its emptied .zfs-partial folder, a moment later.
        wait_until(lambda: list(dest.iterdir()) == [], 5)
