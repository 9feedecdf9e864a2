"""Push and pull between clients that reach each other only through a server.

The server and the other clients are separate OS processes; the test process is the
client "c1", linked to the server only (``actors.io.relay`` routes the rest).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support import netns
from tests.support.faults import (CHANNEL, CHUNK, MiB, assert_clean, gated, in_thread,
                                  make_file, network, partials, register)
from tests.support.procs import SiteProcess, wait_until
from zfs import download, push_file, push_file_async
from zfs.compat.flare import FileStreamer, ReturnCode, download_file
from zfs.errors import TransferAborted
from zfs.files import file_digest

__all__ = ["network"]  # a fixture, used by name

FAST = {"heartbeat_interval": 0.5, "heartbeat_timeout": 2.0}
SHARE = "tests.zfs.pull.test_pull:child_share"


def clients(server: SiteProcess, *names: str) -> list[SiteProcess]:
    """Client processes linked to ``server`` only."""
    return [SiteProcess(name, connect={"server": server.endpoint}, options=FAST).start()
            for name in names]


@pytest.fixture
def star() -> Iterator[tuple[actors.Site, SiteProcess, list[SiteProcess]]]:
    """A server, the clients c2 and c3, and the test's own client c1."""
    with SiteProcess("server", options=FAST) as server:
        procs = clients(server, "c2", "c3")
        try:
            with actors.Site("c1", connect={"server": server.endpoint}, **FAST) as c1:
                for proc in procs:
                    c1.wait_for(proc.name, 10)
                yield c1, server, procs
        finally:
            for proc in procs:
                proc.kill()


@pytest.mark.timeout(40)
def test_a_client_pushes_to_two_clients_and_pulls_from_one_through_the_server(
        star: Any, tmp_path: Path) -> None:
    c1, _server, (c2, c3) = star
    for proc in (c2, c3):
        register(c1, proc, tmp_path / proc.name, "relayed")
    src = make_file(tmp_path / "f.bin", 5 * MiB + 3)
    result = push_file(c1, ["c2", "c3"], src, channel=CHANNEL, topic="relayed")
    assert result.targets == ["c2", "c3"] and result.digest == file_digest(src)
    for name in ("c2", "c3"):
        assert file_digest(tmp_path / name / "f.bin") == file_digest(src)
    shared = make_file(tmp_path / "shared.bin", 3 * MiB + 1)
    rid = c2.call(c1, SHARE, [str(shared)], 30.0)["rids"][0]
    got = download(c1, "c2", rid, str(tmp_path / "pulled"))
    assert file_digest(got.path) == file_digest(shared)


@pytest.mark.timeout(40)
def test_a_relay_killed_mid_push_fails_it_promptly_naming_the_relay_on_both_ends(
        star: Any, tmp_path: Path) -> None:
    c1, server, (c2, _c3) = star
    register(c1, c2, tmp_path / "c2", "cut")
    gate = threading.Event()
    pushing = push_file_async(c1, ["c2"], gated(1 << 40, 8 * CHUNK, gate), name="victim",
                              channel=CHANNEL, topic="cut", chunk_size=CHUNK)
    wait_until(lambda: partials(tmp_path / "c2"), 10)
    server.kill()
    gate.set()
    with pytest.raises(TransferAborted, match="server") as caught:
        pushing.result(15)  # heartbeats notice the relay gone within ~2 s
    assert caught.value.site == "c2"
    assert_clean(tmp_path / "c2", "victim", timeout=10)  # the far end dropped its part too


@pytest.mark.timeout(40)
def test_a_relay_killed_mid_pull_fails_it_naming_the_relay(star: Any, tmp_path: Path) -> None:
    """As with a direct owner lost, the download waits ``request_timeout`` for it first."""
    c1, server, (c2, _c3) = star
    shared = make_file(tmp_path / "big.bin", 8 * MiB)
    rid = c2.call(c1, SHARE, [str(shared)], 30.0)["rids"][0]
    started, release = threading.Event(), threading.Event()

    def slow(progress: Any) -> None:
        started.set()
        release.wait(10)

    pulling = in_thread(download, c1, "c2", rid, str(tmp_path / "pulled"), chunk_size=CHUNK,
                        window_chunks=2, on_progress=slow, request_timeout=2.0)
    assert started.wait(10)
    server.kill()
    release.set()
    wait_until(lambda: "at" in pulling, 20)
    error = pulling.get("error")
    assert isinstance(error, TransferAborted) and "server" in str(error), pulling
    assert not (tmp_path / "pulled" / "big.bin").exists()


@pytest.mark.timeout(40)
def test_flare_dotted_names_reach_a_client_through_the_server(
        star: Any, tmp_path: Path) -> None:
    c1, _server, (c2, _c3) = star
    register(c1, c2, tmp_path / "c2", "flare")
    src = make_file(tmp_path / "w.bin", MiB + 1)
    assert FileStreamer.stream_file(CHANNEL, "flare", {"round": 1}, ["server.c2"], str(src),
                                    c1) == (ReturnCode.OK, True)
    assert file_digest(tmp_path / "c2" / "w.bin") == file_digest(src)
    rid = c2.call(c1, SHARE, [str(src)], 30.0)["rids"][0]
    error, path = download_file("server.c2", rid, 10.0, c1, str(tmp_path / "pulled"))
    assert error is None and path is not None and file_digest(path) == file_digest(src)


def tcp_reaches(site: actors.Site, endpoint: str) -> bool:
    """Whether a TCP connection to ``endpoint`` opens (called in a child)."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2.0).close()
    except OSError:
        return False
    return True


@pytest.mark.netns
@pytest.mark.timeout(60)
def test_clients_in_namespaces_that_cannot_reach_each_other_push_through_the_server(
        network: netns.Network, tmp_path: Path) -> None:
    sockets = Path(tempfile.mkdtemp(prefix="zfs-ns-"))  # a short path: sun_path is 108 bytes
    try:
        with actors.Site("server", bind=f"ipc://{sockets}/server.sock", **FAST) as server:
            hosts = [network.add_host(name) for name in ("n1", "n2")]
            for host in hosts:
                network.link_down(host.name)  # no IP path between the two namespaces
            link = {"server": str(server.endpoint)}
            with netns.NamespacedSite(hosts[0], "n1", connect=link) as n1, \
                    netns.NamespacedSite(hosts[1], "n2", connect=link) as n2:
                for name in ("n1", "n2"):
                    server.wait_for(name, 20)
                assert not n1.call(server, "tests.zfs.test_relay_transfers:tcp_reaches",
                                   n2.endpoint)
                register(server, n2, tmp_path / "n2", "ns")
                src = make_file(tmp_path / "f.bin", 3 * MiB + 5)
                result = n1.call(server, "tests.support.faults:child_push_file", "n2", "ns",
                                 str(src))
                assert result["targets"] == ["n2"]
                assert file_digest(tmp_path / "n2" / "f.bin") == file_digest(src)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
