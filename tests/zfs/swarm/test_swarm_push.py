"""Swarm push between separate OS processes over real sockets on 127.0.0.1.

The hub (this process) pushes; each target is a child site that links to the hub and,
when the plan says so, dials its children in the pipeline itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import actors
from tests.support.faults import (CHANNEL, CHUNK, MiB, assert_clean, make_file, partials,
                                  register, sites)
from tests.support.procs import wait_until
from zfs import push_file, push_file_async, register_receiver
from zfs.errors import StreamRefused, TransferAborted
from zfs.files import file_digest
from zfs.protocol.swarm.plan import plan

__all__ = ["sites"]   # a fixture, used by name


@pytest.mark.timeout(60)
def test_a_push_to_six_targets_goes_down_the_pipeline_and_every_copy_is_exact(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    names = [f"sw{i}" for i in range(6)]
    procs = sites(*names)
    for proc in procs:
        register(hub, proc, tmp_path / proc.name, "six")
    src = make_file(tmp_path / "model.bin", 6 * MiB + 7)
    result = push_file(hub, names, src, channel=CHANNEL, topic="six", chunk_size=CHUNK,
                       chunk_timeout=20)
    assert (result.route, result.note) == ("swarm", "")
    assert result.sender_bytes == src.stat().st_size and result.sender_copies == 1.0
    assert result.targets == names
    for name in names:
        assert file_digest(tmp_path / name / "model.bin") == file_digest(src)
        assert partials(tmp_path / name) == []


@pytest.mark.timeout(60)
def test_a_forwarding_target_killed_mid_push_aborts_every_target_naming_it(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    names = [f"sk{i}" for i in range(5)]
    procs = {proc.name: proc for proc in sites(*names)}
    chain = plan(names).trees[0]
    victim, stalled = chain[2], chain[-1]
    gate = tmp_path / "gate"
    for name, proc in procs.items():
        if name == stalled:     # its app holds the pipeline still once a chunk is in
            (tmp_path / name).mkdir()
            proc.call(hub, "tests.support.faults:child_register_blocking", CHANNEL, "kill",
                      str(tmp_path / name), str(gate))
        else:
            register(hub, proc, tmp_path / name, "kill")
    src = make_file(tmp_path / "big.bin", 64 * MiB)
    push = push_file_async(hub, names, src, channel=CHANNEL, topic="kill", chunk_size=CHUNK,
                           chunk_timeout=20)
    for name in names:
        wait_until(lambda: partials(tmp_path / name), 10)
    procs[victim].kill()
    with pytest.raises(TransferAborted) as caught:
        push.result(15)
    assert caught.value.site == victim
    gate.touch()
    for name in names:
        if name != victim:
            assert_clean(tmp_path / name, "big.bin")


@pytest.fixture
def local_targets(hub: actors.Site, tmp_path: Path) -> Iterator[list[actors.Site]]:
    """Four in-process target sites linked to the hub; the last listens nowhere."""
    targets = [actors.Site(f"lt{i}", bind=None if i == 3 else "tcp://127.0.0.1:0",
                           connect={"test": str(hub.endpoint)}) for i in range(4)]
    try:
        for site in targets:
            site.start()
            hub.wait_for(site.name, timeout=10)
            (tmp_path / site.name).mkdir()
            register_receiver(site, channel=CHANNEL, topic="local",
                              dest_dir=str(tmp_path / site.name))
        yield targets
    finally:
        for site in targets:
            site.stop()


@pytest.mark.timeout(30)
def test_targets_that_cannot_be_reached_get_the_file_the_star_way_and_the_result_says_why(
        hub: actors.Site, local_targets: list[actors.Site], tmp_path: Path) -> None:
    names = [site.name for site in local_targets]
    src = make_file(tmp_path / "star.bin", MiB + 3)
    result = push_file(hub, names, src, channel=CHANNEL, topic="local", chunk_size=CHUNK)
    assert result.route == "star" and "lt3" in result.note
    assert result.sender_copies == len(names)
    for name in names:
        assert file_digest(tmp_path / name / "star.bin") == file_digest(src)


@pytest.mark.timeout(30)
def test_swarm_false_keeps_the_star_and_an_early_abort_reaches_every_target(
        hub: actors.Site, local_targets: list[actors.Site], tmp_path: Path) -> None:
    names = [site.name for site in local_targets[:3]]
    src = make_file(tmp_path / "plain.bin", MiB)
    result = push_file(hub, names, src, channel=CHANNEL, topic="local", chunk_size=CHUNK,
                       swarm=False)
    assert result.route == "star" and result.note == ""
    push = push_file_async(hub, names, src, name="gone.bin", channel=CHANNEL, topic="local",
                           chunk_size=CHUNK, swarm=True)
    push.abort()
    with pytest.raises(TransferAborted):
        push.result(10)
    for name in names:
        assert_clean(tmp_path / name, "gone.bin")


@pytest.mark.timeout(30)
def test_a_target_that_refuses_a_swarm_push_is_named_and_no_target_keeps_the_file(
        hub: actors.Site, local_targets: list[actors.Site], tmp_path: Path) -> None:
    takers = [local_targets[0], local_targets[2]]
    for site in takers:
        register_receiver(site, channel=CHANNEL, topic="other",
                          dest_dir=str(tmp_path / site.name))
    names = [site.name for site in local_targets[:3]]
    src = make_file(tmp_path / "refused.bin", 2 * MiB)
    with pytest.raises(StreamRefused) as caught:
        push_file(hub, names, src, channel=CHANNEL, topic="other", chunk_size=CHUNK,
                  swarm=True)
    assert caught.value.site == "lt1"
    for name in names:
        assert_clean(tmp_path / name, "refused.bin")
