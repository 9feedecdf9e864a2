"""Tests of zfs.files: safe names, digests, partial files, chunk sources."""

from __future__ import annotations

import os
from pathlib import Path
import stat

import pytest
import xxhash

from zfs.errors import FileChanged, IntegrityError, SourceMissing, UnsafeName
from zfs.files import ChunkSource, Digest, PartialFile, check_name, file_digest


@pytest.mark.parametrize("name", ["a", "file.bin", "é" * 100, "x" * 255, ".hidden", "a..b"])
def test_check_name_accepts_plain_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc/passwd", "../x", "a\\b",
                                  "a\0b", "x" * 256, "é" * 128, None, b"abc", 3])
def test_check_name_refuses_paths_and_junk(name: object) -> None:
    with pytest.raises(UnsafeName):
        check_name(name)


def test_digest_is_xxh3_128_and_incremental() -> None:
    d = Digest()
    d.update(b"hello ")
    d.update(memoryview(b"world"))
    assert d.hexdigest() == xxhash.xxh3_128(b"hello world").hexdigest()


def _partials(folder) -> list:
    return [p for p in os.listdir(folder) if p.endswith(".zfs-partial")]


def test_partial_file_commits_sequential_writes(tmp_path) -> None:
    data = os.urandom(300_000)
    with PartialFile(tmp_path, "out.bin") as pf:
        assert _partials(tmp_path) and stat.S_IMODE(os.stat(pf.temp_path).st_mode) == 0o600
        for off in range(0, len(data), 65536):
            pf.write_at(off, data[off:off + 65536])
        assert pf.size == len(data)
        assert not (tmp_path / "out.bin").exists()
        final = pf.commit(len(data), xxhash.xxh3_128(data).hexdigest())
    assert final == str(tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert _partials(tmp_path) == []


def test_partial_file_rereads_after_out_of_order_writes(tmp_path) -> None:
    data = os.urandom(10_000)
    pf = PartialFile(tmp_path, "x")
    pf.write_at(5000, data[5000:])
    pf.write_at(0, data[:5000])
    pf.commit(len(data), file_digest_of(data))
    assert (tmp_path / "x").read_bytes() == data


def file_digest_of(data: bytes) -> str:
    d = Digest()
    d.update(data)
    return d.hexdigest()


@pytest.mark.parametrize("size, digest", [(4, None), (3, "0" * 32)])
def test_partial_file_mismatch_deletes_temp_and_keeps_old_file(tmp_path, size, digest) -> None:
    (tmp_path / "f").write_bytes(b"old")
    pf = PartialFile(tmp_path, "f")
    pf.write_at(0, b"new")
    with pytest.raises(IntegrityError):
        pf.commit(size, digest or file_digest_of(b"new"))
    assert _partials(tmp_path) == []
    assert (tmp_path / "f").read_bytes() == b"old"


def test_partial_file_context_discards_unless_committed(tmp_path) -> None:
    with pytest.raises(RuntimeError):
        with PartialFile(tmp_path, "f") as pf:
            pf.write_at(0, b"abc")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_partial_file_zero_bytes(tmp_path) -> None:
    pf = PartialFile(tmp_path, "empty")
    assert pf.commit(0, Digest().hexdigest()).endswith("empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_partial_file_with_key_resumes(tmp_path) -> None:
    data = os.urandom(1000)
    pf = PartialFile(tmp_path, "r", key="k1")
    pf.write_at(0, data[:400])
    pf._close()  # simulate a crash: the temp file stays
    pf2 = PartialFile(tmp_path, "r", key="k1")
    assert pf2.existing_size == 400
    pf2.write_at(400, data[400:])
    pf2.commit(1000, file_digest_of(data))
    assert (tmp_path / "r").read_bytes() == data


def test_partial_file_long_name_keeps_temp_name_short(tmp_path) -> None:
    name = "n" * 255
    pf = PartialFile(tmp_path, name)
    assert len(os.path.basename(pf.temp_path).encode()) <= 255
    pf.write_at(0, b"z")
    pf.commit(1, file_digest_of(b"z"))
    assert (tmp_path / name).read_bytes() == b"z"


@pytest.mark.parametrize("name", ["../evil", "a/b", ""])
def test_partial_file_refuses_unsafe_names(tmp_path, name) -> None:
    with pytest.raises(UnsafeName):
        PartialFile(tmp_path, name)
    with pytest.raises(UnsafeName):
        PartialFile(tmp_path, "ok", key=name or "..")
    assert os.listdir(tmp_path) == []


def test_chunk_source_reads_and_detects_change(tmp_path) -> None:
    path = tmp_path / "src"
    data = os.urandom(5000)
    path.write_bytes(data)
    with ChunkSource(path) as src:
        assert src.size == 5000
        assert src.read(1000, 2000) == data[1000:3000]
        assert src.read(4000, 2000) == data[4000:]
        src.check_unchanged()
        with open(path, "ab") as f:
            f.write(b"more")
        with pytest.raises(FileChanged):
            src.check_unchanged()
    assert file_digest(path) == file_digest_of(data + b"more")


def test_chunk_source_missing_or_directory(tmp_path) -> None:
    with pytest.raises(SourceMissing):
        ChunkSource(tmp_path / "nope")
    with pytest.raises(SourceMissing):
        ChunkSource(tmp_path)


def test_sweep_removes_only_old_unkeyed_partials(tmp_path: Path) -> None:
    import time as _time

    from zfs.files import PartialFile, sweep_stale_partials
    old = PartialFile(tmp_path, "old.bin")
    fresh = PartialFile(tmp_path, "fresh.bin")
    keyed = PartialFile(tmp_path, "keyed.bin", key="resume-key")
    (tmp_path / "plain.txt").write_text("not ours")
    past = _time.time() - 120
    for path in (old.temp_path, keyed.temp_path):
        os.utime(path, (past, past))
    assert sweep_stale_partials(tmp_path, 60) == [old.temp_path]
    assert os.path.exists(fresh.temp_path) and os.path.exists(keyed.temp_path)
    assert (tmp_path / "plain.txt").exists()
    for partial in (fresh, keyed):
        partial.discard()
