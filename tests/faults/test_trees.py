"""Faults in a folder's push: a target killed mid-tree, a target whose disk is too small.

Part of the fault tests; the helpers and fixtures live in :mod:`tests.support.faults`
and :mod:`tests.support.trees`. What every fault test checks holds for trees too: the
failure names the site; no tree is ever presented half (the final name holds the whole
old tree or nothing); what is left in a partial folder is swept; the survivors serve.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import (CHANNEL, Throttle, assert_serving, mounted, register,
                                  sites)
from tests.support.procs import wait_until
from tests.support.trees import MiB, assert_same_tree, make_tree, staged
from zfs import TransferAborted, push_tree, push_tree_async

__all__ = ["mounted", "sites"]   # fixtures, used by name

CHUNK = 256 << 10


@pytest.mark.timeout(90)
def test_a_target_killed_mid_tree_fails_the_push_naming_it_and_no_tree_appears(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    alive, victim = sites("tk1", "tk2")
    for proc in (alive, victim):
        register(hub, proc, tmp_path / proc.name, "tkill", resume_timeout=1.0)
    source = make_tree(tmp_path / "run", large=12 * MiB, small=40)
    throttle = Throttle(0.02, 4 * MiB)
    # Capped at 4 MB/s, so the kill lands seconds before the end, however busy the
    # machine: each target commits on its own once the last byte is checked, so a
    # target killed after that point fails the push without taking back the others'.
    push = push_tree_async(hub, ["tk1", "tk2"], str(source), channel=CHANNEL, topic="tkill",
                           chunk_size=CHUNK, window_chunks=2, on_progress=throttle,
                           bwlimit=4e6)
    assert throttle.under_way.wait(30)
    victim.kill()
    killed = time.monotonic()
    with pytest.raises(TransferAborted) as caught:
        push.result(20)
    assert caught.value.site == "tk2" and time.monotonic() - killed < 10
    for proc in (alive, victim):
        assert not (tmp_path / proc.name / "run").exists()      # no half tree anywhere
    assert staged(tmp_path / "tk1")                              # kept to resume...
    wait_until(lambda: staged(tmp_path / "tk1") == [], 15)       # ...swept once abandoned
    (again,) = sites("tk2")                                     # restarted on the same disk
    register(hub, again, tmp_path / "tk2", "tkill", resume_timeout=1.0)
    wait_until(lambda: staged(tmp_path / "tk2") == [], 15)       # its leftovers swept too
    result = push_tree(hub, ["tk1", "tk2"], str(source), channel=CHANNEL, topic="tkill",
                       chunk_size=CHUNK)
    assert sorted(result.targets) == ["tk1", "tk2"]
    for name in ("tk1", "tk2"):
        assert_same_tree(source, tmp_path / name / "run")
    assert_serving(hub, [alive, again], tmp_path)


@pytest.mark.timeout(60)
def test_a_target_whose_disk_is_too_small_refuses_the_tree_before_writing(
        hub: actors.Site, sites: Any, mounted: Any, tmp_path: Path) -> None:
    fits, small = sites("roomy", "cramped")
    disk = mounted("cramped", "size=3m")
    register(hub, fits, tmp_path / "roomy", "full")
    register(hub, small, disk, "full")
    source = make_tree(tmp_path / "big", large=5 * MiB, small=10)
    with pytest.raises(TransferAborted) as caught:
        push_tree(hub, ["roomy", "cramped"], str(source), channel=CHANNEL, topic="full",
                  chunk_size=CHUNK)
    assert caught.value.site == "cramped" and "space" in str(caught.value)
    assert os.listdir(disk) == [] or staged(disk) == [] and os.listdir(disk) == [".zfs-partial"]
    assert os.statvfs(disk).f_bfree == os.statvfs(disk).f_blocks    # not a byte written
    assert not (tmp_path / "roomy" / "big").exists()
    assert_serving(hub, [fits, small], tmp_path)
