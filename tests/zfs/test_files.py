"""Tests of zfs.files: safe names, digests, chunk sources."""

from __future__ import annotations

import os

import pytest
import xxhash

from zfs.errors import FileChanged, SourceMissing, UnsafeName
from zfs.files import ChunkSource, Digest, check_name, file_digest


@pytest.mark.parametrize("name", ["a", "file.bin", "é" * 100, "x" * 255, ".hidden", "a..b"])
def test_check_name_accepts_plain_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc/passwd", "../x", "a\\b",
                                  "a\0b", "x" * 256, "é" * 128, None, b"abc", 3,
                                  ".zfs-partial"])
def test_check_name_refuses_paths_and_junk(name: object) -> None:
    with pytest.raises(UnsafeName):
        check_name(name)


def test_digest_is_xxh3_128_and_incremental() -> None:
    d = Digest()
    d.update(b"hello ")
    d.update(memoryview(b"world"))
    assert d.hexdigest() == xxhash.xxh3_128(b"hello world").hexdigest()


def file_digest_of(data: bytes) -> str:
    d = Digest()
    d.update(data)
    return d.hexdigest()


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
