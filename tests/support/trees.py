"""Folders for the tree tests: a tree with every kind of entry, and a file-by-file check.

:func:`make_tree` writes nested folders, an empty folder, a 0-byte file, a large file,
many small ones, a link that stays inside, and modes a receiver must tame (setuid,
group-writable, read-only), with chosen modification times. :func:`assert_same_tree`
compares a received tree with its source entry by entry: content, mode as
:func:`zfs.tree.modes.received_mode` says, modification time, link target. The
``child_*`` functions run inside child sites (through their "ctl" actor).
"""

from __future__ import annotations

import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

import actors
from tests.support.procs import wait_until
from zfs import share
from zfs.files import file_digest
from zfs.protocol.names import PARTIAL_DIR
from zfs.tree.modes import current_umask, received_mode
from zfs.protocol.tree.manifest import Kind

KiB, MiB = 1 << 10, 1 << 20


def make_tree(root: Path, large: int = 6 * MiB, small: int = 200) -> Path:
    """Write a tree with every kind of entry under ``root`` (made); return ``root``."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n")
    (root / "zero.bin").write_bytes(b"")
    (root / "a" / "empty-file").write_bytes(b"")
    (root / "large.bin").write_bytes(os.urandom(large))
    smalls = root / "small"
    smalls.mkdir()
    for i in range(small):
        (smalls / f"s{i:04d}.txt").write_bytes(os.urandom(100 + i % 900))
    (root / "setuid.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "setuid.sh", 0o4755)
    (root / "shared.txt").write_bytes(b"group writable\n")
    os.chmod(root / "shared.txt", 0o664)
    (root / "readonly.txt").write_bytes(b"read only\n")
    os.chmod(root / "readonly.txt", 0o444)
    os.symlink("a/b", root / "link-to-b")
    os.chmod(root / "a" / "b", 0o750)
    when = time.time() - 86400 * 30
    for i, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(path, ns=(int(when * 1e9) + i * 1_000_001,) * 2, follow_symlinks=False)
    os.utime(root, ns=(int(when * 1e9),) * 2)
    return root


def tree_listing(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: kind, mode, mtime, digest or link target."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if PARTIAL_DIR in rel.split(os.sep):
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (Kind.LINK, None, st.st_mtime_ns, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = (Kind.DIR, stat.S_IMODE(st.st_mode), st.st_mtime_ns, None)
        else:
            out[rel] = (Kind.FILE, stat.S_IMODE(st.st_mode), st.st_mtime_ns, file_digest(path))
    return out


def assert_same_tree(source: Path, received: Path, umask: int | None = None) -> None:
    """``received`` holds exactly ``source``'s entries: content, mode (as received), time."""
    umask = current_umask() if umask is None else umask
    want, got = tree_listing(source), tree_listing(received)
    assert sorted(got) == sorted(want), set(got) ^ set(want)
    for rel, (kind, mode, mtime, what) in want.items():
        got_kind, got_mode, got_mtime, got_what = got[rel]
        assert got_kind is kind, rel
        assert got_what == what, f"{rel}: content or target differs"
        assert got_mtime == mtime, f"{rel}: mtime {got_mtime} != {mtime}"
        if kind is not Kind.LINK:
            assert got_mode == received_mode(mode, kind, umask), f"{rel}: mode {got_mode:o}"
    root_want, root_got = source.stat(), received.stat()
    assert root_got.st_mtime_ns == root_want.st_mtime_ns
    assert not (received.parent / PARTIAL_DIR).exists() or \
        not any((received.parent / PARTIAL_DIR).iterdir())


def staged(dest: Path) -> list[str]:
    """What is in progress in ``dest``'s partial folder."""
    folder = dest / PARTIAL_DIR
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def wait_staged(dest: Path, timeout: float = 20.0) -> list[str]:
    """Wait until a tree is being staged in ``dest`` with some bytes in it."""
    def some() -> list[str]:
        folder = dest / PARTIAL_DIR
        if not folder.is_dir():
            return []
        return [str(p) for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0]
    return wait_until(some, timeout)


def raw_manifest(entries: list[tuple[bytes, int, int, int, str, str]]) -> bytes:
    """A manifest's bytes written without any check: (kind, mode, mtime, size, path,
    target) per entry, as a hostile peer may send."""
    out = [struct.pack(">4sI", b"ZFT1", len(entries))]
    for kind, mode, mtime, size, path, target in entries:
        raw = path.encode()
        out.append(struct.pack(">cHqQH", kind, mode, mtime, size, len(raw)) + raw)
        if kind == b"l":
            out.append(struct.pack(">H", len(target.encode())) + target.encode())
    return b"".join(out)


# ---- run inside child sites ----------------------------------------------------------

def child_share_tree(site: actors.Site, path: str, secret_hex: str | None = None,
                     timeout: float = 60.0) -> str:
    secret = bytes.fromhex(secret_hex) if secret_hex else None
    return share(site, timeout=timeout, secret=secret).add_tree(path)
