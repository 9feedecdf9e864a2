"""Pull of folders across OS processes: an owner child site shares, the test process pulls.

A tree with every kind of entry, compared file by file; a second pull that moves no
byte; an owner restarted mid-pull whose same RID (from its secret) resumes the same
download with the bytes counted; ``no_clobber``; a disk too small refused before a byte
is written, for a tree and for a single file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.faults import CHUNK, Throttle, in_thread, mounted, sites
from tests.support.trees import MiB, assert_same_tree, make_tree, staged
from zfs import StreamRefused, TransferAborted, TreeDownloadResult, UnknownReference, download

__all__ = ["mounted", "sites"]   # fixtures, used by name

SECRET = "5e" * 16


def _share(hub: actors.Site, owner: Any, path: Path, secret: str | None = SECRET) -> str:
    return str(owner.call(hub, "tests.support.trees:child_share_tree", str(path), secret))


@pytest.mark.timeout(90)
def test_a_pulled_tree_arrives_whole_and_pulling_it_again_moves_nothing(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (owner,) = sites("towner")
    source = make_tree(tmp_path / "dataset")
    rid = _share(hub, owner, source)
    out = tmp_path / "out"
    seen: list[Any] = []
    result = download(hub, "towner", rid, str(out), chunk_size=CHUNK, on_progress=seen.append)
    assert isinstance(result, TreeDownloadResult)
    files = sum(1 for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    assert (result.path, result.files, len(result.fetched)) == (str(out / "dataset"), files,
                                                                 files - 2)  # 2 empty files
    assert result.bytes_moved == result.size
    assert_same_tree(source, out / "dataset")
    assert seen and seen[-1].files == files and seen[-1].bytes_done == result.size

    again = download(hub, "towner", rid, str(out), chunk_size=CHUNK)
    assert again.bytes_moved == 0 and isinstance(again, TreeDownloadResult)
    assert again.fetched == () and len(again.skipped) == files
    assert_same_tree(source, out / "dataset")
    assert staged(out) == []


@pytest.mark.timeout(120)
def test_an_owner_restarted_mid_pull_serves_the_same_rid_and_the_pull_resumes(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    owner, source, rid, out, run = _pull_under_way(hub, sites, tmp_path, "phoenix2", 2.0)
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    owner.stop()                                              # a clean stop, mid-download
    run["thread"].join(30)
    error = run.get("error")
    assert isinstance(error, TransferAborted) and "kept" in str(error), run
    assert not (out / "weights").exists() and staged(out)
    (again,) = sites("phoenix2")                              # a new process, same secret
    assert _share(hub, again, source) == rid
    result = download(hub, "phoenix2", rid, str(out), chunk_size=CHUNK)
    assert isinstance(result, TreeDownloadResult)
    assert result.bytes_moved <= total - 6 * MiB + 4 * CHUNK, (result.bytes_moved, total)
    assert_same_tree(source, out / "weights")
    assert staged(out) == []


@pytest.mark.timeout(120)
def test_an_owner_back_without_the_share_fails_the_pull_at_once_keeping_its_files(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    """The owner's site restarts and shares nothing: the pull asks again whether the RID
    is shared and fails on the answer (before, its requests went unanswered until three
    request timeouts, here a minute, ran out)."""
    owner, _source, _rid, out, run = _pull_under_way(hub, sites, tmp_path, "phoenix3", 20.0)
    owner.stop()
    sites("phoenix3")                                         # back, sharing nothing
    run["thread"].join(40)                                    # well inside one timeout
    error = run.get("error")
    assert isinstance(error, UnknownReference) and "kept" in str(error), run
    assert not (out / "weights").exists() and staged(out)


def _pull_under_way(hub: actors.Site, sites: Any, tmp_path: Path, name: str,
                    request_timeout: float) -> tuple[Any, Path, str, Path, dict[str, Any]]:
    """A tree of 16 MiB and 20 small files shared by a site ``name`` in its own process,
    pulled slowly by ``hub`` in a thread; returned once 6 MiB of it arrived."""
    (owner,) = sites(name)
    source = make_tree(tmp_path / "weights", large=16 * MiB, small=20)
    rid = _share(hub, owner, source)
    out = tmp_path / "out"
    throttle = Throttle(0.03, 6 * MiB)
    run = in_thread(download, hub, name, rid, str(out), chunk_size=CHUNK, window_chunks=2,
                    on_progress=throttle, request_timeout=request_timeout)
    assert throttle.under_way.wait(30)
    return owner, source, rid, out, run


@pytest.mark.timeout(60)
def test_no_clobber_refuses_a_pull_whose_name_exists(hub: actors.Site, sites: Any,
                                                     tmp_path: Path) -> None:
    (owner,) = sites("clobber")
    source = tmp_path / "t"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    rid = _share(hub, owner, source, None)
    out = tmp_path / "out"
    (out / "t").mkdir(parents=True)
    with pytest.raises(StreamRefused) as caught:
        download(hub, "clobber", rid, str(out), no_clobber=True)
    assert "no_clobber" in str(caught.value)
    assert os.listdir(out / "t") == [] and staged(out) == []


@pytest.mark.timeout(60)
def test_a_disk_too_small_is_refused_before_writing_a_tree_or_a_file(
        hub: actors.Site, sites: Any, mounted: Any, tmp_path: Path) -> None:
    (owner,) = sites("bigowner")
    small = mounted("small", "size=2m")
    source = make_tree(tmp_path / "huge", large=4 * MiB, small=5)
    rid = _share(hub, owner, source, None)
    with pytest.raises(TransferAborted) as caught:
        download(hub, "bigowner", rid, str(small), chunk_size=CHUNK)
    assert "space" in str(caught.value)
    assert os.listdir(small) == []                            # nothing written, nothing left
    single = owner.call(hub, "tests.support.faults:child_share", [str(source / "large.bin")])[0]
    with pytest.raises(TransferAborted) as caught:
        download(hub, "bigowner", single, str(small), chunk_size=CHUNK)
    assert "space" in str(caught.value)
    assert os.listdir(small) == []


@pytest.mark.timeout(60)
def test_a_capped_tree_pull_takes_at_least_what_its_cap_allows(
        hub: actors.Site, sites: Any, tmp_path: Path) -> None:
    (owner,) = sites("capowner")
    source = tmp_path / "capped"
    source.mkdir()
    for i in range(12):
        (source / f"f{i}").write_bytes(os.urandom(128 << 10))
    rid = _share(hub, owner, source, None)
    rate, chunk = 1_000_000, 128 << 10
    result = download(hub, "capowner", rid, str(tmp_path / "out"), chunk_size=chunk,
                      window_chunks=2, bwlimit=rate)
    assert result.seconds >= (result.bytes_moved - chunk) / rate * 0.95, result.seconds
    assert_same_tree(source, tmp_path / "out" / "capped")
