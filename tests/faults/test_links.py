"""Faults in the links: a relay cut mid-push or mid-download, a veth taken down.

Part of the fault tests (issue 7); the helpers, fixtures and ``child_*`` functions
live in :mod:`tests.support.faults`, which says what every fault test checks. Links
are cut with the user-space relay of ``tests.support.linkemu``, or by taking a veth
down between network namespaces (``tests.support.netns``; skipped where namespaces
cannot be made).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support import linkemu, netns
from tests.support.faults import (CHANNEL, CHUNK, MiB, Throttle, assert_clean, assert_serving,
                                  gated, in_thread, lost, make_file, network, owner_bytes,
                                  partials, register, sites, via_relay)
from tests.support.procs import SiteProcess, wait_until
from zfs.errors import TransferAborted
from zfs.files import file_digest
from zfs import download, push_file_async

__all__ = ["network", "sites", "via_relay"]   # fixtures, used by name


# ---------------------------------------------------------------- links cut


@pytest.mark.timeout(60)
def test_link_cut_mid_push_fails_the_push_cleanly_and_the_site_serves_once_restored(
        hub: actors.Site, sites: Any, via_relay: Any, tmp_path: Path) -> None:
    far = sites.far("far1")
    (near,) = sites("near")
    link = via_relay(far)
    register(hub, far, tmp_path / "far", "cut", inactivity_timeout=1.0)
    register(hub, near, tmp_path / "near", "cut")
    gate = threading.Event()
    victim = push_file_async(hub, "far1", gated(1 << 40, 16 * CHUNK, gate),
                             name="victim", channel=CHANNEL, topic="cut",
                             chunk_size=CHUNK, window_chunks=2, chunk_timeout=10)
    other_gate = threading.Event()
    other = push_file_async(hub, "near", gated(MiB + 9, MiB // 2, other_gate),
                            name="other", channel=CHANNEL, topic="cut", chunk_size=CHUNK)
    wait_until(lambda: partials(tmp_path / "far"), 10)
    link.cut()
    cut_at = time.monotonic()
    gate.set()
    with pytest.raises(TransferAborted) as caught:
        victim.result(15)
    assert caught.value.site == "far1" and time.monotonic() - cut_at < 5
    other_gate.set()
    assert other.result(20).size == MiB + 9
    link.restore()
    hub.wait_for("far1", timeout=15)
    assert_clean(tmp_path / "far", "victim")
    assert_serving(hub, [far, near], tmp_path)


def _download_across_a_cut(hub: actors.Site, sites: Any, via_relay: Any, tmp_path: Path,
                           name: str, **download_args: Any
                           ) -> tuple[dict[str, Any], SiteProcess, str, Path]:
    """Start a slowed download from ``name`` through a relay, cut the link mid-way, restore."""
    far = sites.far(name)
    link = via_relay(far)
    source = make_file(tmp_path / "d.bin", 4 * MiB)
    rid = far.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    throttle = Throttle(0.02, MiB)
    run = in_thread(download, hub, name, rid, str(tmp_path / "in"), chunk_size=CHUNK,
                    window_chunks=2, on_progress=throttle, **download_args)
    assert throttle.under_way.wait(20)
    link.cut()
    wait_until(lambda: lost(hub, name), 5)
    link.restore()
    hub.wait_for(name, timeout=15)
    return run, far, rid, source


@pytest.mark.timeout(60)
def test_download_retries_and_resumes_by_itself_across_a_short_cut(
        hub: actors.Site, sites: Any, via_relay: Any, tmp_path: Path) -> None:
    run, _, _, source = _download_across_a_cut(hub, sites, via_relay, tmp_path, "far2",
                                               request_timeout=2.0, retries=5)
    run["thread"].join(30)
    assert "result" in run, run.get("error")
    assert file_digest(run["result"].path) == file_digest(source)


@pytest.mark.timeout(60)
def test_download_cut_mid_way_fails_naming_the_owner_and_the_next_one_resumes(
        hub: actors.Site, sites: Any, via_relay: Any, tmp_path: Path) -> None:
    run, far, rid, source = _download_across_a_cut(hub, sites, via_relay, tmp_path, "far3")
    run["thread"].join(30)
    dest = tmp_path / "in"
    if "error" in run:                  # today's behaviour: fail fast, keep the bytes
        assert isinstance(run["error"], TransferAborted) and run["error"].site == "far3"
        assert not (dest / "d.bin").exists() and len(partials(dest)) == 1
        before = owner_bytes(hub, far)
        path = download(hub, "far3", rid, str(dest), chunk_size=CHUNK).path
        assert owner_bytes(hub, far) - before < source.stat().st_size, "did not resume"
    else:
        path = run["result"].path
    assert file_digest(path) == file_digest(source)
    assert partials(dest) == []
    assert_serving(hub, [far], tmp_path)


# ---------------------------------------------------------------- the relay itself


@pytest.mark.timeout(30)
def test_connections_dropped_while_one_is_being_relayed_never_join_unstarted_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cause of a test that failed by chance under load: a drop found a connection
    listed before its threads had started and joined them ("cannot join thread before
    it is started"). A connection is listed once started; a drop meanwhile waits."""
    starting, go = threading.Event(), threading.Event()
    start = linkemu._Connection.start

    def slow_start(connection: Any) -> None:
        starting.set()
        go.wait(10)
        start(connection)

    monkeypatch.setattr(linkemu._Connection, "start", slow_start)
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        target.listen(4)
        with linkemu.LinkEmulator(target.getsockname()) as link, \
                socket.create_connection(("127.0.0.1", link.port), timeout=10):
            assert starting.wait(10)
            errors: list[BaseException] = []

            def drop() -> None:
                try:
                    link.drop_connections()
                except BaseException as err:  # the race raised here, in the test's thread
                    errors.append(err)

            dropper = threading.Thread(target=drop)
            dropper.start()
            dropper.join(0.5)  # it waits for the start (or, before the fix, has failed)
            go.set()
            dropper.join(10)
            assert not dropper.is_alive() and errors == []
            assert link.stats()["live"] == 0


# ---------------------------------------------------------------- namespaces


def test_without_root_or_iproute2_namespaces_are_refused_with_a_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root"
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert "no `ip` command" in str(netns.unavailable())


@pytest.mark.netns
@pytest.mark.timeout(90)
def test_veth_down_mid_transfer_fails_a_push_and_a_download_rides_it_out(
        network: netns.Network, tmp_path: Path) -> None:
    sockets = Path(tempfile.mkdtemp(prefix="zfs-ns-"))   # a short path: sun_path is 108 bytes
    try:
        _run_veth_faults(network, sockets / "test.sock", tmp_path)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _run_veth_faults(network: netns.Network, socket_path: Path, tmp_path: Path) -> None:
    with actors.Site("test", bind=f"ipc://{socket_path}") as hub:
        a_host, b_host = network.add_host("na"), network.add_host("nb")
        with netns.NamespacedSite(a_host, "na", connect={"test": str(hub.endpoint)}) as na:
            connect = {"test": str(hub.endpoint), "na": na.endpoint}
            with netns.NamespacedSite(b_host, "nb", connect=connect) as nb:
                hub.wait_for("na", timeout=20)
                hub.wait_for("nb", timeout=20)
                _push_across_veth_down(hub, network, na, nb, tmp_path)
                _download_across_veth_blip(hub, network, na, nb, tmp_path)


def _push_across_veth_down(hub: actors.Site, network: netns.Network, na: SiteProcess,
                          nb: SiteProcess, tmp_path: Path) -> None:
    dest, gate = tmp_path / "nb", tmp_path / "gate"
    register(hub, nb, dest, "veth", inactivity_timeout=2.0)
    job = na.start_job(hub, "tests.support.faults:child_push_gated", "nb", "veth", "victim",
                       1 << 40, 8 * CHUNK, str(gate), chunk_timeout=30.0)
    wait_until(lambda: partials(dest), 20)
    network.link_down("nb")
    down_at = time.monotonic()
    gate.touch()
    result = na.wait_job(hub, job, timeout=20)
    assert result["state"] == "failed" and result["result"]["site"] == "nb", result
    assert time.monotonic() - down_at < 10     # the runtime's heartbeat timeout, not 30 s
    network.link_up("nb")
    assert_clean(dest, "victim")
    # Back means a round trip on nb's own link as it is now. Each side had given the
    # other up (silent 6 s); a message nb had queued on its old connection reached na
    # with the link and brought nb up there on that connection, and 84 ms later that
    # connection's close (nb had dropped it) took nb down again: a push started in
    # between failed "connection lost" (seen by the lead; 2 runs in 14 here, with INFO
    # logs showing that sequence). The runtime is right to fail it; the test waited
    # for the wrong thing.
    assert nb.call(hub, "tests.support.echo:round_trip", "na", timeout=60)
    src = make_file(tmp_path / "after.bin", MiB)
    job = na.start_job(hub, "tests.support.faults:child_push_file", "nb", "veth", str(src))
    after = na.wait_job(hub, job, timeout=30)
    assert after["state"] == "done", after
    assert file_digest(dest / "after.bin") == file_digest(src)


def _download_across_veth_blip(hub: actors.Site, network: netns.Network, na: SiteProcess,
                               nb: SiteProcess, tmp_path: Path) -> None:
    source = make_file(tmp_path / "n.bin", 4 * MiB)
    rid = na.call(hub, "tests.support.faults:child_share", [str(source)])[0]
    dest = tmp_path / "nb-in"
    job = nb.start_job(hub, "tests.support.faults:child_download", "na", rid, str(dest),
                       delay=0.02, chunk_size=CHUNK, window_chunks=2)
    wait_until(lambda: [p for p in partials(dest) if (dest / p).stat().st_size >= MiB], 20)
    network.link_down("nb")
    # The fault's duration (shorter than the heartbeat timeout), not a wait for an event.
    threading.Event().wait(1.0)
    network.link_up("nb")
    result = nb.wait_job(hub, job, timeout=40)
    assert result["state"] == "done", result
    assert file_digest(result["result"]) == file_digest(source)
    assert partials(dest) == []
