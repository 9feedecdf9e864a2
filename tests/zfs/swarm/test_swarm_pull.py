"""Pull with peers between separate OS processes over real sockets on 127.0.0.1.

The hub (this process) shares a file; each recipient is a child site that links to the
hub and, when the owner points it at a peer, dials that peer itself. Faults are made
in one child's own code (``tests.support.swarmpull``): a peer that serves corrupted
pieces, one that is killed while it serves, one that cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import actors
from tests.support.faults import MiB, make_file, partials, sites
from tests.support.mouth import Mouth
from tests.support.procs import SiteProcess, wait_until
from zfs import DownloadResult, TreeDownloadResult, download, download_async, share
from zfs.errors import FileChanged, TransferAborted
from zfs.files import file_digest
from zfs.partials import PARTIAL_DIR
from zfs.pull.transaction import owner_stats

__all__ = ["sites"]   # a fixture, used by name

PULL = "tests.support.swarmpull:child_pull"


def _pull_all(hub: actors.Site, procs: list[SiteProcess], rid: str, tmp_path: Path,
              timeout: float = 60.0, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Start a pull with peers in every child at once; return each one's result."""
    jobs = {proc.name: proc.start_job(hub, PULL, "test", rid, str(tmp_path / proc.name),
                                      **kwargs) for proc in procs}
    results = {}
    for proc in procs:
        state = proc.wait_job(hub, jobs[proc.name], timeout)
        assert state["state"] == "done", state
        results[proc.name] = state["result"]
    return results


def _peer_bytes(result: dict[str, Any]) -> dict[str, int]:
    return {peer: count for peer, count in result["from_peers"]}


@pytest.mark.timeout(90)
def test_six_recipients_pull_from_each_other_and_every_copy_is_exact(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    procs = sites(*[f"pp{i}" for i in range(6)])
    src = make_file(tmp_path / "model.bin", 16 * MiB + 5)
    before = owner_stats(hub)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        results = _pull_all(hub, procs, rid, tmp_path)
        stats = owner_stats(hub)
    size = src.stat().st_size
    for proc in procs:
        result = results[proc.name]
        assert result["route"] == "swarm" and result["size"] == size
        assert file_digest(result["path"]) == file_digest(src)
        assert set(_peer_bytes(result)) <= {p.name for p in procs} - {proc.name}
    from_peers = sum(sum(_peer_bytes(r).values()) for r in results.values())
    owner_sent = stats["swarm_owner_bytes"] - before.get("swarm_owner_bytes", 0)
    assert from_peers > 0 and stats["swarm_peer_bytes"] >= from_peers
    assert owner_sent + from_peers >= 6 * size      # every byte came from one of them
    for proc in procs:
        wait_until(lambda: partials(tmp_path / proc.name) == [], 10)


@pytest.mark.timeout(90)
def test_a_peer_serving_corrupted_pieces_is_dropped_and_the_others_finish_exact(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    liar, *honest = sites("liar", "hn0", "hn1", "hn2")
    src = make_file(tmp_path / "data.bin", 8 * MiB + 1)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        _pull_all(hub, [liar], rid, tmp_path)       # it holds the whole file, and seeds
        liar.call(hub, "tests.support.swarmpull:child_serve_corrupt")
        results = _pull_all(hub, honest, rid, tmp_path)
        stats = owner_stats(hub)
    assert stats["swarm_banned"] >= 1               # someone asked it, and it was dropped
    for proc in honest:
        result = results[proc.name]
        assert file_digest(result["path"]) == file_digest(src)
        assert "liar" not in _peer_bytes(result)


@pytest.mark.timeout(90)
def test_a_serving_recipient_killed_mid_way_leaves_the_others_to_finish(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    seeder, *rest = sites("seed", "kr0", "kr1", "kr2")
    src = make_file(tmp_path / "big.bin", 24 * MiB)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        _pull_all(hub, [seeder], rid, tmp_path)      # it serves every chunk from now on
        jobs = {proc.name: proc.start_job(hub, PULL, "test", rid, str(tmp_path / proc.name),
                                          delay=0.05) for proc in rest}
        for proc in rest:
            wait_until(lambda: partials(tmp_path / proc.name), 20)
        seeder.kill()
        for proc in rest:
            state = proc.wait_job(hub, jobs[proc.name], 60)
            assert state["state"] == "done", state
            assert file_digest(state["result"]["path"]) == file_digest(src)


@pytest.mark.timeout(90)
def test_a_peer_nobody_can_reach_is_avoided_and_everyone_still_finishes(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    hidden, *rest = sites("hidden", "ur0", "ur1", "ur2")
    hidden.call(hub, "tests.support.swarmpull:child_advertise_nowhere")
    src = make_file(tmp_path / "far.bin", 6 * MiB)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        _pull_all(hub, [hidden], rid, tmp_path)     # it holds all, "listening" at a closed port
        results = _pull_all(hub, rest, rid, tmp_path)
    for proc in rest:
        result = results[proc.name]
        assert file_digest(result["path"]) == file_digest(src)
        assert "hidden" not in _peer_bytes(result)
        assert result["note"] == "" or "could not be reached" in result["note"]


@pytest.fixture
def deaf_sites(hub: actors.Site) -> Iterator[list[actors.Site]]:
    """Three in-process recipients that listen nowhere: none can serve the others."""
    recipients = [actors.Site(f"deaf{i}", bind=None, connect={"test": str(hub.endpoint)})
                  for i in range(3)]
    try:
        for site in recipients:
            site.start()
            hub.wait_for(site.name, timeout=10)
        yield recipients
    finally:
        for site in recipients:
            site.stop()


@pytest.mark.timeout(60)
def test_recipients_that_cannot_serve_each_other_get_everything_from_the_owner(
        hub: actors.Site, deaf_sites: list[actors.Site], tmp_path: Path) -> None:
    src = make_file(tmp_path / "alone.bin", 3 * MiB + 7)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        results = [download(site, "test", rid, tmp_path / site.name, swarm=True)
                   for site in deaf_sites]
    for result in results:
        assert isinstance(result, DownloadResult)
        assert result.route == "swarm" and result.from_peers == ()
        assert "listens nowhere" in result.note
        assert result.from_owner == result.size == src.stat().st_size
        assert file_digest(result.path) == file_digest(src)


@pytest.mark.timeout(60)
def test_a_tree_is_pulled_the_plain_way_even_when_swarm_is_asked(
        hub: actors.Site, deaf_sites: list[actors.Site], tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    folder.mkdir()
    make_file(folder / "a.bin", 100_000)
    with share(hub, timeout=60) as tx:
        rid = tx.add_tree(folder)
        result = download(deaf_sites[0], "test", rid, tmp_path / "got", swarm=True)
    assert isinstance(result, TreeDownloadResult) and result.files == 1
    assert file_digest(tmp_path / "got" / "tree" / "a.bin") == file_digest(folder / "a.bin")


@pytest.mark.timeout(60)
def test_a_pull_cut_off_from_its_owner_keeps_its_chunks_and_resumes_with_them(
        tmp_path: Path) -> None:
    src = make_file(tmp_path / "resume.bin", 40 * MiB)
    dest = tmp_path / "got"
    secret = b"s" * 32                        # the same RID when shared again

    def owner_site() -> actors.Site:          # it links to the recipient, as a server would
        site = actors.Site("owner2", bind="tcp://127.0.0.1:0",
                           connect={"rcv": str(recipient.endpoint)}).start()
        site.wait_for("rcv", timeout=10)
        return site

    with actors.Site("rcv", bind="tcp://127.0.0.1:0") as recipient:
        owner = owner_site()
        try:
            rid = share(owner, timeout=60, secret=secret).add_file(src)
            recipient.wait_for("owner2", timeout=10)
            pull = download_async(recipient, "owner2", rid, dest, swarm=True,
                                  on_progress=lambda progress: time.sleep(0.1))  # slowly
            wait_until(lambda: list((dest / PARTIAL_DIR).glob("*.held")), 20)
        finally:
            owner.stop()                      # the owner's site goes away mid-pull
        with pytest.raises(TransferAborted) as caught:
            pull.result(20)
        assert "resume" in str(caught.value) and not (dest / "resume.bin").exists()
        owner = owner_site()
        try:
            assert share(owner, timeout=60, secret=secret).add_file(src) == rid
            recipient.wait_for("owner2", timeout=10)
            result = download(recipient, "owner2", rid, dest, swarm=True, seed=False)
        finally:
            owner.stop()
    assert 0 < result.bytes_moved < result.size
    assert file_digest(result.path) == file_digest(src) and partials(dest) == []


@pytest.mark.timeout(60)
def test_hostile_swarm_messages_to_the_owner_are_refused_and_it_goes_on_serving(
        hub: actors.Site, deaf_sites: list[actors.Site], tmp_path: Path) -> None:
    src = make_file(tmp_path / "kept.bin", 2 * MiB)
    folder = tmp_path / "folder"
    folder.mkdir()
    site = deaf_sites[0]
    mouth = site.spawn(Mouth, "mouth")
    with share(hub, timeout=60) as tx:
        rid, tree = tx.add_file(src), tx.add_tree(folder)
        bodies: list[Any] = [
            ["swarm-join", rid, 2**62, "tcp://" + "x" * 5000],      # malformed: dropped
            ["swarm-join", "no-such-rid", 4, None],                  # unknown: refused
            ["swarm-join", tree, 4, None],                           # a tree: refused
            ["swarm-want", rid, [10**9], [[0, "x/y", "bad"]]],       # not joined: rejoin
            ["swarm-get-digests", rid, 10**9], ["swarm-leave", rid, True, -1, 0, True],
            ["swarm-join", rid, 4, None], ["swarm-want", rid, [10**6, 0], []],
            ["swarm-get-digests", rid, 99], ["swarm-leave", rid, False, 0, 0, False],
        ]
        for body in bodies:
            mouth.tell({"to": "test/zfs.owner", "body": body})
        heard = wait_until(lambda: len(mouth.ask("heard")) >= 5 and mouth.ask("heard"), 10)
        kinds = [body[0] for body in heard]
        assert kinds.count("refusal") == 2 and "swarm-rejoin" in kinds
        assert "swarm-welcome" in kinds
        result = download(deaf_sites[1], "test", rid, tmp_path / "after", swarm=True)
    assert file_digest(result.path) == file_digest(src)


@pytest.mark.timeout(60)
def test_an_owner_cap_holds_back_what_it_serves_to_a_pull_with_peers(tmp_path: Path) -> None:
    src = make_file(tmp_path / "capped.bin", 4 * MiB)
    rate = 2e6                                  # bytes/s; the cap's bucket holds 1 MiB
    with actors.Site("capped", bind="tcp://127.0.0.1:0") as owner, \
            actors.Site("slow", bind=None, connect={"capped": str(owner.endpoint)}) as site:
        owner.wait_for("slow", timeout=10)
        with share(owner, timeout=60, bwlimit=rate) as tx:
            result = download(site, "capped", tx.add_file(src), tmp_path / "got", swarm=True)
    assert isinstance(result, DownloadResult) and result.route == "swarm"
    assert file_digest(result.path) == file_digest(src)
    # The cap can only make it slower (a busy machine too), never faster than this.
    assert result.seconds >= (src.stat().st_size - MiB) / rate * 0.9


@pytest.mark.timeout(60)
def test_a_file_changed_after_it_was_shared_fails_the_pull_and_leaves_nothing(
        hub: actors.Site, deaf_sites: list[actors.Site], tmp_path: Path) -> None:
    src = make_file(tmp_path / "moving.bin", 2 * MiB)
    with share(hub, timeout=60) as tx:
        rid = tx.add_file(src)
        with open(src, "ab") as f:
            f.write(b"more")                     # no longer the file that was shared
        with pytest.raises(FileChanged):
            download(deaf_sites[2], "test", rid, tmp_path / "moved", swarm=True)
    assert not (tmp_path / "moved" / "moving.bin").exists()
    assert partials(tmp_path / "moved") == []
