"""Faults in a download: the owner killed mid-pull, restarted, or restarted sharing nothing.

Part of the fault tests (issue 7); the helpers, fixtures and ``child_*`` functions
live in :mod:`tests.support.faults`, which says what every fault test checks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import (CHUNK, MiB, Throttle, assert_serving, in_thread, make_file,
                                  owner_bytes, partials, sites)
from tests.support.procs import wait_until
from zfs.errors import TransferAborted, UnknownReference
from zfs.files import file_digest
from zfs import download

__all__ = ["sites"]   # a fixture, used by name


# ---------------------------------------------------------------- kill -9


@pytest.mark.timeout(90)
def test_owner_killed_mid_pull_then_restarted_fails_clearly_then_serves_again(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    owner, owner2 = sites("owner", "owner2")
    source = make_file(tmp_path / "o.bin", 4 * MiB)
    other = make_file(tmp_path / "other.bin", 2 * MiB)
    rid = owner.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    other_rid = owner2.call(hub, "tests.support.faults:child_share", [str(other)])[0]
    dest = tmp_path / "in"
    throttle, other_throttle = Throttle(0.02, MiB), Throttle(0.01, 0)
    # A lost owner is waited for up to per_request_timeout x retries (here 4 s).
    run = in_thread(download, hub, "owner", rid, str(dest), chunk_size=CHUNK, window_chunks=2,
                    on_progress=throttle, request_timeout=2.0, retries=2)
    bystander = in_thread(download, hub, "owner2", other_rid, str(dest), chunk_size=CHUNK,
                          window_chunks=2, on_progress=other_throttle)
    assert throttle.under_way.wait(20)
    owner.kill()
    killed = time.monotonic()
    run["thread"].join(15)
    assert isinstance(run.get("error"), TransferAborted), run
    assert run["error"].site == "owner" and run["at"] - killed < 10
    assert not (dest / "o.bin").exists()
    bystander["thread"].join(30)
    assert file_digest(bystander["result"].path) == file_digest(other)
    (restarted,) = sites("owner")
    new_rid = restarted.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    with pytest.raises(UnknownReference):          # the old RID: a clear refusal
        download(hub, "owner", rid, str(dest), request_timeout=5)
    path = download(hub, "owner", new_rid, str(dest), chunk_size=CHUNK).path
    assert file_digest(path) == file_digest(source)
    assert_serving(hub, [restarted, owner2], tmp_path)


@pytest.mark.timeout(60)
def test_an_old_rid_at_a_restarted_owner_that_shares_nothing_fails_fast_and_clearly(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (owner,) = sites("owner3")
    rid = owner.call(hub, "tests.support.faults:child_share",
                     [str(make_file(tmp_path / "s.bin", 10))])[0]
    owner.kill()
    wait_until(lambda: "owner3" not in hub.peers(), 10)
    sites("owner3")
    started = time.monotonic()
    with pytest.raises(UnknownReference):
        download(hub, "owner3", rid, str(tmp_path / "in"), request_timeout=1.0, retries=1)
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(90)
def test_download_after_the_owner_restarted_and_shared_again_resumes(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (owner,) = sites("owner")
    size = 4 * MiB
    source = make_file(tmp_path / "r.bin", size)
    rid = owner.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    dest = tmp_path / "in"
    throttle = Throttle(0.02, size // 2)
    run = in_thread(download, hub, "owner", rid, str(dest), chunk_size=CHUNK, window_chunks=2,
                    on_progress=throttle, request_timeout=2.0, retries=2)
    assert throttle.under_way.wait(20)
    owner.kill()
    run["thread"].join(15)
    assert isinstance(run.get("error"), TransferAborted), run
    (restarted,) = sites("owner")
    new_rid = restarted.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    path = download(hub, "owner", new_rid, str(dest), chunk_size=CHUNK).path
    assert file_digest(path) == file_digest(source)
    assert owner_bytes(hub, restarted) <= size - size // 2 + 2 * CHUNK, "did not resume"
    assert partials(dest) == []
