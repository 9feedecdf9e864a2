"""Pull across OS processes: owners and recipients as separate sites on loopback.

The ``child_*`` functions run inside child sites (called through their "ctl" actor). An
owner killed mid-download is in tests/faults/test_pull.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import Throttle, in_thread, owner_bytes, partials
from tests.support.procs import SiteProcess, start_sites, wait_until
from zfs.errors import (FileChanged, InsecureLink, TransactionExpired, TransferAborted,
                        UnknownReference)
from zfs.files import file_digest
from zfs import Transaction, download, share
from zfs.pull.transaction import owner_stats

MiB = 1 << 20


# ---- run inside child sites -------------------------------------------------------

def child_share(site: actors.Site, paths: list[str], timeout: float,
                on_timeout: Any = None, on_downloaded: Any = None) -> dict[str, Any]:
    tx = share(site, timeout=timeout, on_timeout=on_timeout)
    return {"tx_id": tx.tx_id, "rids": [tx.add_file(p, on_downloaded) for p in paths]}


def child_close(site: actors.Site, tx_id: str) -> None:
    Transaction(site, tx_id).close()


# ---- helpers ------------------------------------------------------------------------

def make_file(path: Path, size: int) -> str:
    path.write_bytes(os.urandom(size))
    return str(path)


@pytest.fixture
def owner(site: actors.Site) -> Iterator[SiteProcess]:
    with start_sites(site, "owner")[0] as proc:
        yield proc


# ---- tests ---------------------------------------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("recipients", [1, 4])
def test_recipients_download_the_same_files_at_once(site: actors.Site, owner: SiteProcess,
                                                    tmp_path: Path, recipients: int) -> None:
    sources = [make_file(tmp_path / "big.bin", 3 * MiB + 17), make_file(tmp_path / "b.txt", 1000),
               make_file(tmp_path / "empty", 0)]
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", sources, 30.0,
                        on_downloaded={"$recorder": "done"})
    procs = start_sites(site, *(f"r{i}" for i in range(recipients)), owner=owner.endpoint)
    try:
        jobs = [(proc, proc.start_job(site, "tests.support.faults:child_download", "owner", rid,
                                      str(tmp_path / proc.name), chunk_size=256 * 1024))
                for proc in procs for rid in shared["rids"]]
        results = [proc.wait_job(site, job, timeout=60) for proc, job in jobs]
    finally:
        for proc in procs:
            proc.kill()
    assert [r["state"] for r in results] == ["done"] * len(jobs), results
    for (proc, _), result, source in zip(jobs, results, sources * recipients):
        assert result["result"] == str(tmp_path / proc.name / os.path.basename(source))
        assert file_digest(result["result"]) == file_digest(source)
    events = wait_until(lambda: (e := owner.events(site, "done")) and len(e) >= len(jobs) and e,
                        timeout=10)
    assert sorted((e[0], e[1], e[2], e[3]) for e in events) == sorted(
        (rid, proc.name, "success", os.path.basename(src))
        for proc in procs for rid, src in zip(shared["rids"], sources))


def test_unknown_rid_fails_clearly(site: actors.Site, owner: SiteProcess, tmp_path: Path) -> None:
    owner.call(site, "tests.zfs.pull.test_pull:child_share", [], 30.0)
    with pytest.raises(UnknownReference):
        download(site, "owner", "no-such-rid-" + "x" * 20, str(tmp_path))


def test_expired_transaction_calls_back_once_then_the_rid_is_expired(
        site: actors.Site, owner: SiteProcess, tmp_path: Path) -> None:
    sources = [make_file(tmp_path / "a.bin", 1000), make_file(tmp_path / "b.bin", 10)]
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", sources, 1.0,
                        on_timeout={"$recorder": "timeout"})
    events = wait_until(lambda: owner.events(site, "timeout"), timeout=10)
    assert events == [[shared["tx_id"], ["a.bin", "b.bin"]]]
    with pytest.raises(TransactionExpired):
        download(site, "owner", shared["rids"][0], str(tmp_path / "in"))
    assert owner.events(site, "timeout") == events
    assert not os.path.exists(tmp_path / "in" / "a.bin")


def test_closed_transaction_refuses_its_rids_as_expired(site: actors.Site, owner: SiteProcess,
                                                        tmp_path: Path) -> None:
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", [make_file(tmp_path / "a", 10)],
                        30.0, on_timeout={"$recorder": "timeout"})
    owner.call(site, "tests.zfs.pull.test_pull:child_close", shared["tx_id"])
    with pytest.raises(TransactionExpired):
        download(site, "owner", shared["rids"][0], str(tmp_path / "in"))
    assert owner.events(site, "timeout") == []


def test_slow_recipient_that_progresses_outlives_the_timeout(
        site: actors.Site, owner: SiteProcess, tmp_path: Path) -> None:
    source = make_file(tmp_path / "slow.bin", MiB)
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", [source], 1.0,
                        on_timeout={"$recorder": "timeout"}, on_downloaded={"$recorder": "done"})
    started = time.monotonic()
    path = download(site, "owner", shared["rids"][0], str(tmp_path / "in"), window_chunks=1,
                    chunk_size=64 * 1024, on_progress=Throttle(0.15, 0)).path
    assert time.monotonic() - started > 2.0          # twice the transaction's timeout
    assert file_digest(path) == file_digest(source)
    assert owner.events(site, "timeout") == []
    wait_until(lambda: owner.events(site, "done"), timeout=5)
    # once nobody downloads any more, the transaction does time out
    assert wait_until(lambda: owner.events(site, "timeout"), timeout=10)


@pytest.mark.timeout(90)
def test_killed_recipient_resumes_where_it_was(site: actors.Site, owner: SiteProcess,
                                               tmp_path: Path) -> None:
    size = 8 * MiB
    source = make_file(tmp_path / "resume.bin", size)
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", [source], 60.0,
                        on_downloaded={"$recorder": "done"})
    rid, dest = shared["rids"][0], tmp_path / "in"
    with start_sites(site, "r1", owner=owner.endpoint)[0] as first:
        first.start_job(site, "tests.support.faults:child_download", "owner", rid, str(dest),
                        delay=0.02, chunk_size=128 * 1024, window_chunks=2)
        wait_until(lambda: owner_bytes(site, owner) >= size // 3, timeout=30)
        first.kill()
    wait_until(lambda: "r1" not in site.peers(), timeout=10)    # the restart is a new "r1"
    sent_first = owner_bytes(site, owner)
    assert sent_first < size
    assert len(partials(dest)) == 1 and not os.path.exists(dest / "resume.bin")
    with start_sites(site, "r1", owner=owner.endpoint)[0] as second:
        job = second.start_job(site, "tests.support.faults:child_download", "owner", rid,
                               str(dest))
        result = second.wait_job(site, job, timeout=30)
    assert result["state"] == "done", result
    sent_second = owner_bytes(site, owner) - sent_first
    assert 0 < sent_second < size
    assert file_digest(result["result"]) == file_digest(source)
    assert partials(dest) == []
    events = wait_until(lambda: owner.events(site, "done"), timeout=5)
    assert events == [[rid, "r1", "success", "resume.bin"]]    # once, though it ran twice


def test_source_changed_mid_download_fails_with_file_changed(
        site: actors.Site, owner: SiteProcess, tmp_path: Path) -> None:
    source = make_file(tmp_path / "c.bin", 2 * MiB)
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", [source], 60.0)
    throttle = Throttle(0.01, 256 * 1024)
    run = in_thread(download, site, "owner", shared["rids"][0], str(tmp_path / "in"),
                    chunk_size=32 * 1024, window_chunks=2, on_progress=throttle)
    assert throttle.under_way.wait(20)
    with open(source, "r+b") as f:
        f.write(b"changed!")
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    run["thread"].join(30)
    assert isinstance(run.get("error"), FileChanged), run
    assert not os.path.exists(tmp_path / "in" / "c.bin")
    assert not os.listdir(tmp_path / "in")            # no partial kept of a changed file


def test_abort_signal_stops_the_download_promptly(site: actors.Site, owner: SiteProcess,
                                                  tmp_path: Path) -> None:
    source = make_file(tmp_path / "ab.bin", 2 * MiB)
    shared = owner.call(site, "tests.zfs.pull.test_pull:child_share", [source], 60.0,
                        on_downloaded={"$recorder": "done"})
    abort = threading.Event()
    throttle = Throttle(0.02, 128 * 1024)
    run = in_thread(download, site, "owner", shared["rids"][0], str(tmp_path / "in"),
                    chunk_size=32 * 1024, window_chunks=2, abort_signal=abort,
                    on_progress=throttle)
    assert throttle.under_way.wait(20)
    abort.set()
    aborted = time.monotonic()
    run["thread"].join(10)
    assert isinstance(run.get("error"), TransferAborted), run
    assert run["at"] - aborted < 1.0
    assert not os.listdir(tmp_path / "in")
    events = wait_until(lambda: owner.events(site, "done"), timeout=5)
    assert events == [[shared["rids"][0], "test", "aborted", "ab.bin"]]


def test_download_from_a_site_we_do_not_know_fails_at_once(site: actors.Site,
                                                           tmp_path: Path) -> None:
    with pytest.raises(TransferAborted) as info:
        download(site, "nowhere", "rid", str(tmp_path))
    assert info.value.site == "nowhere"


def test_secure_download_needs_a_secure_link(site: actors.Site, tmp_path: Path) -> None:
    with pytest.raises(InsecureLink):
        download(site, "owner", "rid", str(tmp_path), secure=True)


def test_in_process_owner_serves_and_reports_stats(site: actors.Site, tmp_path: Path) -> None:
    source = make_file(tmp_path / "local.bin", MiB + 1)
    done: list[tuple[str, ...]] = []
    with start_sites(site, "rcpt")[0] as rcpt:
        with share(site, timeout=30) as tx:
            rid = tx.add_file(source, on_downloaded=lambda *a: done.append(a))
            job = rcpt.start_job(site, "tests.support.faults:child_download", "test", rid,
                                 str(tmp_path / "in"))
            result = rcpt.wait_job(site, job, timeout=30)
            assert result["state"] == "done", result
            wait_until(lambda: done, timeout=5)
    assert done == [(rid, "rcpt", "success", "local.bin")]
    assert owner_stats(site)["bytes_sent"] == MiB + 1


def test_owner_keeps_open_file_handles_bounded(site: actors.Site, tmp_path: Path) -> None:
    from zfs.pull.book import OWNER
    from zfs.pull.owner import OwnerActor
    site.spawn(OwnerActor, OWNER, None, 2)            # an owner allowed 2 open files
    sources = [make_file(tmp_path / f"f{i}", 1000 + i) for i in range(5)]
    with actors.Site("near", connect={"test": str(site.endpoint)}) as near:
        near.wait_for("test", timeout=10)
        with share(site, timeout=30) as tx:
            rids = [tx.add_file(s) for s in sources]
            for rid, source in zip(rids, sources):
                path = download(near, "test", rid, str(tmp_path / "in")).path
                assert file_digest(path) == file_digest(source)
            assert owner_stats(site)["open_files"] == 2
    assert owner_stats(site)["open_files"] == 0 and owner_stats(site)["shared_files"] == 0


def test_crashed_owner_is_restarted_and_keeps_serving_its_rids(site: actors.Site,
                                                               tmp_path: Path) -> None:
    from zfs.pull.book import OWNER, _AddFile
    source = make_file(tmp_path / "kept.bin", 100_000)
    with actors.Site("near", connect={"test": str(site.endpoint)}) as near:
        near.wait_for("test", timeout=10)
        tx = share(site, timeout=30)
        rid = tx.add_file(source)
        first = site.actor(OWNER)
        assert first is not None
        # told through pykka itself, not the site: an exception in it crashes the actor
        first.actor_ref.tell(_AddFile("no-such-tx", "r", source, "x", 1, 0, None))
        wait_until(lambda: (ref := site.actor(OWNER)) is not None and ref != first, timeout=5)
        path = download(near, "test", rid, str(tmp_path / "in")).path
        assert file_digest(path) == file_digest(source)
        tx.close()


def test_references_never_look_like_command_line_options() -> None:
    from zfs.pull.transaction import new_reference
    ids = {new_reference() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(rid[0].isalnum() and len(rid) >= 32 for rid in ids)


def test_a_stopping_owner_does_not_finish_hashing_a_huge_file_first(tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(200 << 30)                 # 200 GiB, sparse: minutes to hash in full
    with actors.Site("hasher") as owner:
        share(owner, timeout=60).add_file(huge)
        wait_until(lambda: [t for t in threading.enumerate()
                            if t.name.startswith("zfs.owner.digest") and t.is_alive()], 5)
    hashing = [t for t in threading.enumerate() if t.name.startswith("zfs.owner.digest")]
    for thread in hashing:
        thread.join(10)
    assert not [t.name for t in hashing if t.is_alive()], "still hashing after the site stopped"


@pytest.mark.timeout(60)
def test_pulling_a_file_already_there_moves_no_byte_and_a_changed_one_is_fetched(
        site: actors.Site, owner: SiteProcess, tmp_path: Path) -> None:
    source = make_file(tmp_path / "again.bin", 3 * MiB)
    rid = owner.call(site, "tests.zfs.pull.test_pull:child_share", [source], 60.0)["rids"][0]
    out = tmp_path / "out"
    assert download(site, "owner", rid, str(out)).bytes_moved == 3 * MiB
    again = download(site, "owner", rid, str(out))
    assert again.bytes_moved == 0 and again.path == str(out / "again.bin")
    with open(out / "again.bin", "r+b") as spoiled:
        spoiled.write(b"X")
    fixed = download(site, "owner", rid, str(out))
    assert fixed.bytes_moved == 3 * MiB and file_digest(fixed.path) == file_digest(source)
    assert download(site, "owner", rid, str(out), check_existing=False).bytes_moved == 3 * MiB
    assert partials(out) == []
