"""Files being received: apart from user files, never through a link, retried if stuck."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.support.faults import frozen
from zfs.errors import IntegrityError, UnsafeName
from zfs.files import Digest
from zfs.partials import PARTIAL_DIR, PartialFile, sweep_stale_partials


def digest_of(data: bytes) -> str:
    d = Digest()
    d.update(data)
    return d.hexdigest()


def in_progress(folder: Path) -> list[str]:
    where = folder / PARTIAL_DIR
    return sorted(os.listdir(where)) if where.exists() else []


def test_a_partial_lives_in_the_partial_folder_until_its_checked_commit(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    with PartialFile(tmp_path, "out.bin") as pf:
        assert in_progress(tmp_path) == [pf.temp_name] and pf.temp_name.startswith("push-")
        assert stat.S_IMODE(os.stat(pf.temp_path).st_mode) == 0o600
        for off in range(0, len(data), 65536):
            pf.write_at(off, data[off:off + 65536])
        assert sorted(os.listdir(tmp_path)) == [PARTIAL_DIR]   # nothing under a final name
        final = pf.commit(len(data), digest_of(data))
    assert final == str(tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert in_progress(tmp_path) == []


def test_a_user_file_shaped_like_an_old_partial_is_never_touched(tmp_path: Path) -> None:
    lookalike = tmp_path / ".x.tmp-0123456789abcdef.zfs-partial"
    lookalike.write_bytes(b"the user's")
    os.utime(lookalike, (0, 0))
    PartialFile(tmp_path, "a").discard()
    assert sweep_stale_partials(tmp_path, 1.0) == []
    assert lookalike.read_bytes() == b"the user's"


def test_out_of_order_writes_are_reread_and_a_keyed_partial_resumes(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    pf = PartialFile(tmp_path, "x")
    pf.write_at(5000, data[5000:])
    pf.write_at(0, data[:5000])
    pf.commit(len(data), digest_of(data))
    assert (tmp_path / "x").read_bytes() == data
    first = PartialFile(tmp_path, "r", key="k1")
    first.write_at(0, data[:400])
    first.close()                            # a run that ended: the bytes stay
    second = PartialFile(tmp_path, "r", key="k1")
    assert second.existing_size == 400 and second.digest_prefix(400) == digest_of(data[:400])
    second.write_at(400, data[400:1000])
    second.commit(1000, digest_of(data[:1000]))
    assert (tmp_path / "r").read_bytes() == data[:1000]


@pytest.mark.parametrize("size, digest", [(4, None), (3, "0" * 32)])
def test_a_mismatch_deletes_the_partial_and_keeps_the_old_file(
        tmp_path: Path, size: int, digest: str | None) -> None:
    (tmp_path / "f").write_bytes(b"old")
    pf = PartialFile(tmp_path, "f")
    pf.write_at(0, b"new")
    with pytest.raises(IntegrityError):
        pf.commit(size, digest or digest_of(b"new"))
    assert in_progress(tmp_path) == []
    assert (tmp_path / "f").read_bytes() == b"old"


def test_a_long_name_and_an_empty_file(tmp_path: Path) -> None:
    name = "n" * 255
    pf = PartialFile(tmp_path, name)
    pf.write_at(0, b"z")
    pf.commit(1, digest_of(b"z"))
    assert (tmp_path / name).read_bytes() == b"z"
    assert PartialFile(tmp_path, "empty").commit(0, Digest().hexdigest()).endswith("empty")


@pytest.mark.parametrize("name", ["../evil", "a/b", "", PARTIAL_DIR])
def test_unsafe_names_and_keys_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeName):
        PartialFile(tmp_path, name)
    with pytest.raises(UnsafeName):
        PartialFile(tmp_path, "ok", key=name or "..")


def test_a_symlink_planted_at_a_partials_name_is_refused_not_written_through(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "dest"
    (dest / PARTIAL_DIR).mkdir(parents=True)
    os.symlink(outside, dest / PARTIAL_DIR / "pull-k1")
    with pytest.raises(OSError):
        PartialFile(dest, "f", key="k1")
    os.link(outside, dest / PARTIAL_DIR / "pull-k2")          # a hard link: refused too
    with pytest.raises(OSError):
        PartialFile(dest, "f", key="k2")
    assert outside.read_bytes() == b"precious"


def test_a_symlink_planted_as_the_partial_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(elsewhere, dest / PARTIAL_DIR)
    with pytest.raises(OSError):
        PartialFile(dest, "f")
    assert os.listdir(elsewhere) == []


def test_a_final_name_that_is_a_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "f")
    pf = PartialFile(dest, "f")
    pf.write_at(0, b"new")
    pf.commit(3, digest_of(b"new"))
    assert not os.path.islink(dest / "f") and (dest / "f").read_bytes() == b"new"
    assert outside.read_bytes() == b"precious"


def test_a_partial_that_cannot_be_deleted_says_so(tmp_path: Path) -> None:
    pf = PartialFile(tmp_path, "f")
    with frozen(tmp_path / PARTIAL_DIR):
        assert pf.discard() is False and pf.left_behind
    assert in_progress(tmp_path) == [pf.temp_name]


def test_the_sweep_removes_only_old_push_partials_not_in_use(tmp_path: Path) -> None:
    old = PartialFile(tmp_path, "old.bin")
    busy = PartialFile(tmp_path, "busy.bin")
    fresh = PartialFile(tmp_path, "fresh.bin")
    keyed = PartialFile(tmp_path, "keyed.bin", key="resume-key")
    (tmp_path / "plain.txt").write_text("not ours")
    past = time.time() - 120
    for partial in (old, busy, keyed):
        os.utime(partial.temp_path, (past, past))
    assert sweep_stale_partials(tmp_path, 60, frozenset({busy.temp_name})) == [old.temp_path]
    for partial in (busy, fresh, keyed):
        assert os.path.exists(partial.temp_path)
    assert (tmp_path / "plain.txt").exists()
    for partial in (busy, fresh, keyed):
        partial.discard()
