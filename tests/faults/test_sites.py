"""Faults in the sites: full and read-only disks, sites restarted, memory held after transfers.

Part of the fault tests (issue 7); the helpers, fixtures and ``child_*`` functions
live in :mod:`tests.support.faults`, which says what every fault test checks.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors
from tests.support.faults import (CHANNEL, CHUNK, MiB, assert_clean, assert_serving, gated,
                                  make_file, mounted, partials, register, sites)
from tests.support.procs import wait_until
from zfs.errors import TransferAborted, ZfsError
from zfs.files import file_digest
from zfs import download, push_file, push_file_async, register_receiver, share

__all__ = ["mounted", "sites"]   # fixtures, used by name


# ---------------------------------------------------------------- disks


@pytest.mark.timeout(60)
def test_a_full_disk_fails_the_push_naming_the_site_and_removes_the_partial(
        hub: actors.Site, sites: Any, mounted: Any, tmp_path: Path) -> None:
    small = mounted("small", "size=8m")
    (df,) = sites("df")
    register(hub, df, small, "full")
    register(hub, df, tmp_path / "roomy", "roomy")
    other_gate = threading.Event()
    other = push_file_async(hub, "df", gated(2 * MiB, MiB, other_gate), name="other",
                            channel=CHANNEL, topic="roomy", chunk_size=CHUNK)
    big = make_file(tmp_path / "big.bin", 16 * MiB)
    with pytest.raises(TransferAborted) as caught:    # declared too big: refused up front
        push_file(hub, "df", big, channel=CHANNEL, topic="full", chunk_size=CHUNK)
    assert caught.value.site == "df"
    assert "space" in str(caught.value).lower(), caught.value
    assert_clean(small, "big.bin")
    opened = threading.Event()
    opened.set()
    with pytest.raises(TransferAborted) as caught:    # a stream of unknown size fills it
        push_file(hub, "df", gated(16 * MiB, 0, opened), name="stream.bin",
                  channel=CHANNEL, topic="full", chunk_size=CHUNK)
    assert caught.value.site == "df"
    assert "space" in str(caught.value).lower(), caught.value
    assert_clean(small, "stream.bin")
    other_gate.set()
    assert other.result(20).size == 2 * MiB
    fits = make_file(tmp_path / "fits.bin", 6 * MiB)   # the space came back with the partial
    push_file(hub, "df", fits, channel=CHANNEL, topic="full", chunk_size=CHUNK)
    assert file_digest(small / "fits.bin") == file_digest(fits)
    assert_serving(hub, [df], tmp_path)


@pytest.mark.timeout(60)
def test_a_full_disk_fails_the_download_and_removes_the_partial(
        hub: actors.Site, sites: Any, mounted: Any, tmp_path: Path) -> None:
    small = mounted("small", "size=8m")
    (owner,) = sites("dfo")
    big = make_file(tmp_path / "big.bin", 16 * MiB)
    rid = owner.call(hub, "tests.support.faults:child_share", [str(big)],
                     on_downloaded={"$recorder": "done"})[0]
    with pytest.raises(ZfsError) as caught:
        download(hub, "dfo", rid, str(small), chunk_size=CHUNK)
    assert "space" in str(caught.value).lower(), caught.value
    assert_clean(small, "big.bin")
    assert wait_until(lambda: owner.events(hub, "done"), 5) == [[rid, "test", "failed",
                                                                   "big.bin"]]
    assert_serving(hub, [owner], tmp_path)


@pytest.mark.timeout(60)
def test_a_destination_that_is_not_writable_fails_clearly(
        hub: actors.Site, sites: Any, mounted: Any, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        locked = mounted("locked", "ro,size=1m")     # root writes through any mode bits
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
    (ro,) = sites("ro")
    register(hub, ro, locked, "locked")
    src = make_file(tmp_path / "x.bin", 3 * CHUNK)
    with pytest.raises(TransferAborted) as caught:
        push_file(hub, "ro", src, channel=CHANNEL, topic="locked", chunk_size=CHUNK)
    assert caught.value.site == "ro"
    assert list(locked.iterdir()) == []
    rid = ro.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    with pytest.raises(ZfsError) as refused:
        download(hub, "ro", rid, str(locked), chunk_size=CHUNK)
    assert str(locked) in str(refused.value)
    assert list(locked.iterdir()) == []
    assert_serving(hub, [ro], tmp_path)


# ---------------------------------------------------------------- restarts


@pytest.mark.timeout(60)
def test_a_site_restarted_under_the_same_name_while_peers_are_connected(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (peer,) = sites("peer")
    (ra,) = sites("ra", peer=peer.endpoint)
    register(hub, ra, tmp_path / "ra1", "restart")
    gate = threading.Event()
    victim = push_file_async(hub, "ra", gated(1 << 40, 8 * CHUNK, gate), name="victim",
                             channel=CHANNEL, topic="restart", chunk_size=CHUNK,
                             window_chunks=2, chunk_timeout=10)
    wait_until(lambda: partials(tmp_path / "ra1"), 10)
    ra.kill()                                    # and back at once, before anyone noticed
    (ra2,) = sites("ra", peer=peer.endpoint)
    register(hub, ra2, tmp_path / "ra2", "restart")
    gate.set()
    with pytest.raises(TransferAborted) as caught:
        victim.result(15)
    assert caught.value.site == "ra"
    assert partials(tmp_path / "ra2") == [] and not (tmp_path / "ra2" / "victim").exists()
    assert not (tmp_path / "ra1" / "victim").exists()  # the killed one's partial: no owner
    src = make_file(tmp_path / "p.bin", MiB + 1)
    job = peer.start_job(hub, "tests.support.faults:child_push_file", "ra", "restart", str(src))
    assert peer.wait_job(hub, job, timeout=20)["state"] == "done"
    assert file_digest(tmp_path / "ra2" / "p.bin") == file_digest(src)
    assert_serving(hub, [ra2, peer], tmp_path)


@pytest.mark.timeout(60)
def test_a_receiver_restarted_on_the_same_folder_sweeps_what_its_killed_self_left(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (rs,) = sites("rs")
    dest = tmp_path / "rs"
    register(hub, rs, dest, "sweep", inactivity_timeout=1.0)
    gate = threading.Event()
    victim = push_file_async(hub, "rs", gated(1 << 40, 4 * CHUNK, gate), name="victim",
                             channel=CHANNEL, topic="sweep", chunk_size=CHUNK, window_chunks=2)
    wait_until(lambda: partials(dest), 10)
    rs.kill()
    gate.set()
    with pytest.raises(TransferAborted):
        victim.result(15)
    (again,) = sites("rs")
    register(hub, again, dest, "sweep", inactivity_timeout=1.0)
    assert_clean(dest, "victim", timeout=5)


# ---------------------------------------------------------------- memory


@pytest.mark.timeout(60)
def test_finished_transfers_leave_no_stopped_actor_refs_behind(tmp_path: Path) -> None:
    source = make_file(tmp_path / "s.bin", 1000)
    with actors.Site("lb", bind="tcp://127.0.0.1:0") as far, \
            actors.Site("la", connect={"lb": str(far.endpoint)}) as near:
        near.wait_for("lb", timeout=10)
        register_receiver(far, dest_dir=str(tmp_path))
        tx = share(far, timeout=60)
        rid = tx.add_file(source)
        for i in range(40):
            push_file(near, "lb", source, name=f"p{i}")
            download(near, "lb", rid, str(tmp_path / f"d{i}"))
        gc.collect()
        dead = [ref for ref in gc.get_objects()
                if isinstance(ref, pykka.ActorRef) and not ref.is_alive()]
        assert len(dead) < 10, f"{len(dead)} refs of stopped actors still held"
