"""Faults in a push: a receiver or a sender killed, a receiver stalled or not consuming.

Part of the fault tests (issue 7); the helpers, fixtures and ``child_*`` functions
live in :mod:`tests.support.faults`, which says what every fault test checks.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import (CHANNEL, CHUNK, MiB, assert_clean, assert_serving, gated,
                                  make_file, partials, pattern_digest, register, sites)
from tests.support.procs import wait_until
from zfs.errors import TransferAborted
from zfs.files import file_digest
from zfs import push_file, push_file_async, register_receiver

__all__ = ["sites"]   # a fixture, used by name


# ---------------------------------------------------------------- kill -9


@pytest.mark.timeout(60)
def test_receiver_killed_mid_push_fails_fast_naming_it_and_the_others_abort(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    procs = sites("rk1", "rk2", "rk3")
    for proc in procs:
        register(hub, proc, tmp_path / proc.name, "rkill")
    gate, other_gate = threading.Event(), threading.Event()
    victim = push_file_async(hub, ["rk1", "rk2", "rk3"], gated(1 << 40, 8 * CHUNK, gate),
                             name="victim", channel=CHANNEL, topic="rkill", chunk_size=CHUNK,
                             window_chunks=2)
    other_size = 3 * MiB + 5
    other = push_file_async(hub, ["rk1", "rk3"], gated(other_size, MiB, other_gate),
                            name="other", channel=CHANNEL, topic="rkill", chunk_size=CHUNK)
    for proc in procs:
        wait_until(lambda: len(partials(tmp_path / proc.name)) == (1 if proc.name == "rk2"
                                                                    else 2), 10)
    procs[1].kill()
    killed_at = time.monotonic()
    gate.set()
    with pytest.raises(TransferAborted) as caught:
        victim.result(10)
    assert time.monotonic() - killed_at < 5
    assert caught.value.site == "rk2"
    other_gate.set()
    assert other.result(20).size == other_size
    for name in ("rk1", "rk3"):
        assert_clean(tmp_path / name, "victim")
        assert file_digest(tmp_path / name / "other") == pattern_digest(other_size)
    assert_serving(hub, [procs[0], procs[2]], tmp_path)


@pytest.mark.timeout(60)
def test_sender_killed_mid_push_leaves_no_partial_after_the_inactivity_timeout(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    dest = tmp_path / "in"
    dest.mkdir()
    register_receiver(hub, channel=CHANNEL, topic="skill", dest_dir=str(dest),
                      inactivity_timeout=1.0)
    sender, bystander = sites("sk1", "sk2")
    gate = tmp_path / "open-other"
    sender.start_job(hub, "tests.support.faults:child_push_gated", "test", "skill", "orphan",
                     1 << 40, 4 * CHUNK, str(tmp_path / "never"))
    other = bystander.start_job(hub, "tests.support.faults:child_push_gated", "test", "skill",
                                "other", 2 * MiB + 1, MiB, str(gate))
    wait_until(lambda: len(partials(dest)) == 2, 10)
    sender.kill()
    wait_until(lambda: len(partials(dest)) == 1, 8)       # the orphan's, after ~1 s
    gate.touch()
    assert bystander.wait_job(hub, other, timeout=20)["state"] == "done"
    assert_clean(dest, "orphan")
    assert file_digest(dest / "other") == pattern_digest(2 * MiB + 1)
    assert_serving(hub, [bystander], tmp_path)


# ---------------------------------------------------------------- stalls


@pytest.mark.timeout(60)
def test_a_receiver_that_stops_reading_fails_the_push_and_recovers_after(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    frozen, fine = sites("frozen", "fine")
    register(hub, frozen, tmp_path / "frozen", "stop", inactivity_timeout=1.0)
    register(hub, fine, tmp_path / "fine", "stop")
    gate = threading.Event()
    victim = push_file_async(hub, ["fine", "frozen"], gated(1 << 40, 8 * CHUNK, gate),
                             name="victim", channel=CHANNEL, topic="stop", chunk_size=CHUNK,
                             window_chunks=4, chunk_timeout=10)
    wait_until(lambda: partials(tmp_path / "frozen"), 10)
    os.kill(frozen.pid, signal.SIGSTOP)          # it reads nothing, answers nothing
    try:
        stopped = time.monotonic()
        gate.set()
        other = push_file(hub, "fine", make_file(tmp_path / "o.bin", 2 * MiB),
                          channel=CHANNEL, topic="stop", chunk_size=CHUNK)
        assert other.size == 2 * MiB
        with pytest.raises(TransferAborted) as caught:
            victim.result(15)
        assert caught.value.site == "frozen" and time.monotonic() - stopped < 8
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert_clean(tmp_path / "fine", "victim")
    assert_clean(tmp_path / "frozen", "victim")
    assert_serving(hub, [frozen, fine], tmp_path)


@pytest.mark.timeout(60)
def test_a_receiver_whose_app_stops_consuming_times_the_push_out(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (busy,) = sites("busy")
    dest, gate = tmp_path / "busy", tmp_path / "unblock"
    dest.mkdir()
    busy.call(hub, "tests.support.faults:child_register_blocking", CHANNEL, "busy", str(dest),
              str(gate))
    src = make_file(tmp_path / "b.bin", 2 * MiB)
    started = time.monotonic()
    with pytest.raises(TransferAborted) as caught:
        push_file(hub, "busy", src, channel=CHANNEL, topic="busy", chunk_size=CHUNK,
                  chunk_timeout=1.5)
    assert caught.value.site == "busy" and time.monotonic() - started < 8
    gate.touch()
    assert_clean(dest, "b.bin")
    assert_serving(hub, [busy], tmp_path)
