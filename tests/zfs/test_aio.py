"""The asyncio facade: awaitable push, download, tell and ask that never block the loop.

A "ticker" task counts loop turns while a call is awaited. The transfers' progress
callbacks (which run in actor threads) wait on a gate that only the ticker opens, after
it has ticked a few times: if the awaited call blocked the loop, the ticker could not
run, the gate would time out, and the test fails.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.echo import Collector, Echo, Hanger
from zfs import aio, register_receiver, share
from zfs.errors import UnknownReference
from zfs.files import file_digest

TICKS_TO_OPEN = 20


class Gate:
    """Opened by the ticker; waited on by progress callbacks in actor threads."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.timed_out = False
        self.waits = 0

    def wait(self, *_: Any) -> None:
        self.waits += 1
        if self.waits == 1 and not self.event.wait(5.0):  # only the first report waits
            self.timed_out = True


class Ticker:
    """A task that ticks every millisecond and opens the gate after a few ticks."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.ticks = 0
        self.max_gap = 0.0

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.ticks += 1
            if self.ticks == TICKS_TO_OPEN:
                self.gate.event.set()


async def while_ticking(coro: Any, gate: Gate) -> tuple[Any, Ticker]:
    """Await ``coro`` with a ticker running beside it."""
    ticker = Ticker(gate)
    task = asyncio.create_task(ticker.run())
    try:
        result = await asyncio.wait_for(coro, 30)
    finally:
        task.cancel()
    return result, ticker


@pytest.fixture
def beta(site: actors.Site) -> Iterator[actors.Site]:
    """A second site in this process, connected to the "test" site."""
    assert site.endpoint is not None
    with actors.Site("beta", bind="tcp://127.0.0.1:0", connect={"test": site.endpoint},
                     heartbeat_interval=0.5, heartbeat_timeout=2.0) as other:
        other.wait_for("test", timeout=10)
        site.wait_for("beta", timeout=10)
        yield other


def _data(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.timeout(60)
def test_push_file_is_awaited_while_the_loop_keeps_running(
        site: actors.Site, beta: actors.Site, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    register_receiver(beta, channel="aio", topic="t", dest_dir=str(inbox))
    source = _data(tmp_path / "up.bin", 3 << 20)
    gate = Gate()
    result, ticker = asyncio.run(while_ticking(aio.push_file(
        site, ["beta"], str(source), channel="aio", topic="t", chunk_size=256 << 10,
        window_chunks=2, on_progress=gate.wait), gate))
    assert result.size == 3 << 20 and result.targets == ["beta"]
    assert file_digest(inbox / "up.bin") == file_digest(source)
    assert gate.waits >= 1 and not gate.timed_out, "the loop was blocked during the push"
    assert ticker.ticks >= TICKS_TO_OPEN


@pytest.mark.timeout(60)
def test_download_is_awaited_while_the_loop_keeps_running(
        site: actors.Site, beta: actors.Site, tmp_path: Path) -> None:
    source = _data(tmp_path / "shared.bin", 3 << 20)
    tx = share(beta, timeout=30)
    rid = tx.add_file(source)
    gate = Gate()
    result, ticker = asyncio.run(while_ticking(aio.download(
        site, "beta", rid, str(tmp_path / "got"), chunk_size=256 << 10, window_chunks=2,
        on_progress=gate.wait), gate))
    tx.close()
    assert file_digest(result.path) == file_digest(source)
    assert gate.waits >= 1 and not gate.timed_out, "the loop was blocked during the download"
    assert ticker.ticks >= TICKS_TO_OPEN


def test_download_errors_are_raised_where_awaited(site: actors.Site, beta: actors.Site,
                                                  tmp_path: Path) -> None:
    tx = share(beta, timeout=30)
    with pytest.raises(UnknownReference):
        asyncio.run(aio.download(site, "beta", "no-such-rid", str(tmp_path)))
    tx.close()


def test_tell_and_ask_reach_a_remote_actor(site: actors.Site, beta: actors.Site) -> None:
    beta.spawn(Echo, "echo")
    beta.spawn(Collector, "collector")

    async def scenario() -> tuple[Any, Any]:
        answer = await aio.ask(site, "beta/echo", {"n": 1}, timeout=10)
        await aio.tell(site, "beta/collector", "first", payload=(b"abc",))
        await aio.tell(site, "beta/collector", "second")
        dump = await aio.ask(site, "beta/collector", "dump", timeout=10)
        return answer, dump

    answer, dump = asyncio.run(scenario())
    assert answer == {"got": {"n": 1}, "sender": "test", "payload": []}
    assert [record["body"] for record in dump] == ["first", "second"]


def test_a_slow_ask_leaves_the_loop_free_and_times_out(site: actors.Site,
                                                       beta: actors.Site) -> None:
    release = threading.Event()
    beta.spawn(Hanger, "sleeper", release)
    gate = Gate()
    try:
        with pytest.raises(actors.AskTimeout):
            asyncio.run(while_ticking(aio.ask(site, "beta/sleeper", "hi", timeout=0.5), gate))
    finally:
        release.set()
    assert gate.event.is_set(), "the ticker did not run while the ask was pending"
