"""What a peer or an unlucky operator can do to a transfer (issue 14), site by site.

Every receiver and owner here is a child process; the test process is the honest peer
and, with a raw ZeroMQ socket, the hostile one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq

import actors
from actors import codec
from actors.codec import Kind
from tests.support.faults import (CHANNEL, CHUNK, MiB, Throttle, assert_serving, frozen,
                                  gated, in_thread, make_file, partials, register, sites)
from tests.support.procs import SiteProcess, wait_until
from tests.support.rawpeer import greet, raw_dealer
from zfs import TransferAborted, UnknownReference, download, push_file
from zfs.files import file_digest
from zfs.partials import PARTIAL_DIR
from zfs.protocol import wire
from zfs.protocol.inbound import decode

__all__ = ["sites"]  # a fixture, used by name


def peak_rss(proc: SiteProcess) -> int:
    """The child's peak resident set so far (VmHWM), in bytes."""
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def info(hub: actors.Site, owner: str, rid: str) -> wire.FileInfo:
    answer = decode(hub.ask(f"{owner}/zfs.owner", wire.encode(wire.InfoRequest(rid)),
                                 timeout=10))
    assert isinstance(answer, wire.FileInfo), answer
    return answer


# ---- item 2: a finished file is never removed by zfs --------------------------------

@pytest.mark.timeout(60)
def test_a_pushed_file_shaped_like_an_old_partial_is_kept_after_sweeps(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (receiver,) = sites("sweeper")
    dest = tmp_path / "dest"
    register(hub, receiver, dest, "sweep", inactivity_timeout=0.5)
    lookalike = ".x.tmp-0123456789abcdef.zfs-partial"
    user_file = dest / ".y.tmp-fedcba9876543210.zfs-partial"
    user_file.write_bytes(b"the user's own")
    src = make_file(tmp_path / "payload.bin", 3 * CHUNK)
    push_file(hub, "sweeper", src, name=lookalike, channel=CHANNEL, topic="sweep",
              chunk_size=CHUNK)
    # A stale push partial of a receiver that died: the sweep's proof of having run.
    orphan = dest / PARTIAL_DIR / "push-00000000deadbeef"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    os.utime(orphan, (0, 0))
    wait_until(lambda: not orphan.exists(), 10)
    assert file_digest(dest / lookalike) == file_digest(src)
    assert user_file.read_bytes() == b"the user's own"


# ---- item 13: a pull never writes through a planted link ----------------------------

@pytest.mark.timeout(60)
def test_a_pull_refuses_a_symlink_planted_where_its_partial_goes(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (owner,) = sites("linker")
    src = make_file(tmp_path / "shared.bin", 2 * CHUNK)
    rid = owner.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    key = info(hub, "linker", rid).key
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    out = tmp_path / "out"
    (out / PARTIAL_DIR).mkdir(parents=True)
    os.symlink(outside, out / PARTIAL_DIR / f"pull-{key}")
    with pytest.raises(TransferAborted):
        download(hub, "linker", rid, str(out), chunk_size=CHUNK)
    assert outside.read_bytes() == b"precious"
    assert not (out / "shared.bin").exists()
    os.unlink(out / PARTIAL_DIR / f"pull-{key}")             # the operator removes it
    result = download(hub, "linker", rid, str(out), chunk_size=CHUNK)
    assert file_digest(result.path) == file_digest(src) and not os.path.islink(result.path)


# ---- item 14: a partial that cannot be deleted is retried, not left -----------------

@pytest.mark.timeout(60)
def test_a_push_that_fails_on_a_read_only_folder_leaves_no_partial_once_it_can_go(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (receiver,) = sites("ro2")
    dest = tmp_path / "dest"
    register(hub, receiver, dest, "ro")
    gate = threading.Event()
    run = in_thread(push_file, hub, "ro2", gated(8 * CHUNK, 4 * CHUNK, gate), name="x.bin",
                    channel=CHANNEL, topic="ro", chunk_size=CHUNK)
    wait_until(lambda: partials(dest), 10)
    with frozen(dest / PARTIAL_DIR):                          # the folder turns read-only
        gate.set()
        run["thread"].join(30)
        assert isinstance(run.get("error"), TransferAborted) and run["error"].site == "ro2"
        assert partials(dest)                                 # cannot go yet
    wait_until(lambda: partials(dest) == [], 10)             # retried as soon as it can
    assert not (dest / "x.bin").exists()
    src = make_file(tmp_path / "x.bin", 8 * CHUNK)
    push_file(hub, "ro2", src, channel=CHANNEL, topic="ro", chunk_size=CHUNK)
    assert file_digest(dest / "x.bin") == file_digest(src)


# ---- item 8: an owner that restarted must not cost what a download holds ------------

@pytest.mark.timeout(90)
def test_a_pull_keeps_its_bytes_when_the_restarted_owner_forgets_the_rid(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    src = make_file(tmp_path / "big.bin", 8 * MiB)
    out = tmp_path / "out"
    (owner,) = sites("phoenix")
    rid = owner.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    throttle = Throttle(0.02, 4)
    run = in_thread(download, hub, "phoenix", rid, str(out), chunk_size=CHUNK,
                    window_chunks=2, on_progress=throttle, request_timeout=5.0)
    assert throttle.under_way.wait(20)
    owner.stop()
    (again,) = sites("phoenix")                               # same name, new process
    run["thread"].join(30)
    error = run.get("error")
    assert isinstance(error, (UnknownReference, TransferAborted)), run
    assert "kept" in str(error) and "resume" in str(error)
    held = sum((out / p).stat().st_size for p in partials(out))
    assert held > 0
    new_rid = again.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    result = download(hub, "phoenix", new_rid, str(out), chunk_size=CHUNK)
    assert file_digest(result.path) == file_digest(src)
    assert result.bytes_moved <= src.stat().st_size - held + CHUNK   # it resumed
    assert partials(out) == []


@pytest.mark.timeout(60)
def test_a_pull_from_a_killed_owner_fails_within_one_request_timeout_keeping_its_bytes(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    src = make_file(tmp_path / "big.bin", 8 * MiB)
    out = tmp_path / "out"
    (owner,) = sites("mortal")
    rid = owner.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    throttle = Throttle(0.02, 4)
    run = in_thread(download, hub, "mortal", rid, str(out), chunk_size=CHUNK,
                    window_chunks=2, on_progress=throttle, request_timeout=2.0, retries=10)
    assert throttle.under_way.wait(20)
    owner.kill()
    run["thread"].join(20)      # ten retries of 2 s would take 20 s; one wait is 2 s
    assert isinstance(run.get("error"), TransferAborted), run
    assert "not back within 2 s" in str(run["error"]) and "kept" in str(run["error"])
    assert partials(out)


# ---- items 3 and 4: the owner's memory is its budget, whatever a peer asks ----------

def _hostile_requests(context: zmq.Context, endpoint: str, rid: str, names: int,
                      length: int) -> zmq.Socket:
    """A raw peer "evil" that asks ``length`` bytes at offset 0 under ``names`` download
    names, and never reads an answer."""
    sock = raw_dealer(context, endpoint)
    sock.setsockopt(zmq.RCVHWM, 1)
    greet(sock, "evil", "e1")
    for index in range(names):
        body = wire.encode(wire.ChunkRequest(rid, 0, length, 0))
        sock.send(codec.encode(Kind.TELL, "zfs.owner", f"evil/dl{index}", 0, body))
    return sock


@pytest.mark.timeout(90)
def test_an_owner_holds_its_budget_not_a_chunk_per_name_while_serving_others(
        hub: actors.Site, sites: Any, tmp_path: Path, context: zmq.Context) -> None:
    (owner,) = sites("thrifty")
    src = make_file(tmp_path / "shared.bin", 64 * MiB)
    rid = owner.call(hub, "tests.support.faults:child_share", [str(src)])[0]
    before = peak_rss(owner)
    many = _hostile_requests(context, owner.endpoint, rid, 5000, MiB)      # item 3
    slow = _hostile_requests(context, owner.endpoint, rid, 300, 8 * MiB)   # item 4
    result = download(hub, "thrifty", rid, str(tmp_path / "honest"), request_timeout=10)
    assert file_digest(result.path) == file_digest(src)
    grown = peak_rss(owner) - before
    # Two pools of the 16 MiB budget, plus the honest window and allocator slack.
    assert grown < 80 * MiB, f"owner grew by {grown >> 20} MiB"
    many.close()
    slow.close()
    assert_serving(hub, [owner], tmp_path)
