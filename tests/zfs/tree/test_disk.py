"""What trees do on disk, in this process: the walk, the stream's reader, the staging
folder and its rename into place, deletion that never follows a link, received modes."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import pytest

from tests.support.trees import assert_same_tree, make_tree, tree_listing
from zfs import FileChanged, SourceMissing, UnsafeTree
from zfs.protocol.names import PARTIAL_DIR
from zfs.protocol.tree.manifest import Kind
from zfs.tree import swap as swap_module
from zfs.tree.modes import current_umask, received_mode
from zfs.tree.removal import PUSH_PREFIX, PULL_PREFIX, remove_tree, sweep_stale_trees
from zfs.tree.source import TreeSource
from zfs.tree.staging import Staging
from zfs.tree.walk import walk


def copy_tree(source: Path, dest: Path, name: str, check_existing: bool = True,
              staging_name: str = PUSH_PREFIX + "x") -> Staging:
    """Build ``dest/name`` from ``source`` as a receiver would, without a network."""
    walked = walk(source)
    staging = Staging(str(dest), name, staging_name, walked.manifest, current_umask())
    held = dict(staging.holdings(check_existing))
    with TreeSource(walked.root, walked.manifest) as reader:
        good = {f: n for f, n in held.items() if staging.offers([(f, n)]) and
                staging.offers([(f, n)])[0].digest == reader.digest(f, n)}
        staging.apply(good)
        from zfs.protocol.tree.layout import Layout
        layout = Layout(walked.manifest.sizes(), [good.get(f, 0) for f in
                                                  range(len(walked.manifest.files))])
        if layout.size:
            data = memoryview(reader.read(layout, 0, layout.size))
            for piece in layout.pieces(0, layout.size):
                staging.write(piece.file, piece.offset, data[piece.at:piece.at + piece.length])
    return staging


def test_the_walk_lists_every_entry_in_order_and_refuses_what_cannot_travel(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="zfs.tree.walk")
    root = make_tree(tmp_path / "t", large=1000, small=3)
    os.mkfifo(root / "fifo")
    (root / PARTIAL_DIR).mkdir()
    walked = walk(root)
    paths = [e.path for e in walked.manifest.entries]
    assert paths[0] == "" and paths == sorted(paths, key=lambda p: p.split("/"))
    assert walked.skipped == (PARTIAL_DIR, "fifo")
    assert "skipped" in caplog.text
    kinds = {e.path: e.kind for e in walked.manifest.entries}
    assert kinds["link-to-b"] is Kind.LINK and kinds["empty"] is Kind.DIR
    os.symlink("../../outside", root / "a" / "escape")
    with pytest.raises(UnsafeTree, match="outside"):
        walk(root)
    os.unlink(root / "a" / "escape")
    os.mkdir(os.path.join(os.fsencode(root), b"bad-\xff"))
    with pytest.raises(UnsafeTree, match="UTF-8"):
        walk(root)
    with pytest.raises(SourceMissing):
        walk(tmp_path / "nowhere")


def test_a_file_changed_or_swapped_for_a_link_after_the_walk_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_bytes(b"aaaa")
    (root / "b").write_bytes(b"bbbb")
    walked = walk(root)
    with TreeSource(walked.root, walked.manifest) as reader:
        assert bytes(reader.read(reader.layout, 0, 8)) == b"aaaabbbb"
        (root / "a").write_bytes(b"AAAAA")
        with pytest.raises(FileChanged):
            reader.read(reader.layout, 0, 4)
        os.unlink(root / "b")
        os.symlink("/etc/hostname", root / "b")
        with pytest.raises(FileChanged):
            reader.read(reader.layout, 4, 4)


def test_a_staged_tree_replaces_an_older_one_at_once_keeping_what_matches(
        tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", large=300_000, small=20)
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_tree(source, dest, "t").commit()
    assert_same_tree(source, dest / "t")
    old_inode = (dest / "t" / "large.bin").stat().st_ino
    (dest / "t" / "stray.txt").write_bytes(b"not in the source")
    (source / "small" / "s0003.txt").write_bytes(b"new content")
    staging = copy_tree(source, dest, "t")
    assert (dest / "t" / "stray.txt").exists()          # the old tree is whole until the swap
    staging.commit()
    assert_same_tree(source, dest / "t")
    assert (dest / "t" / "large.bin").stat().st_ino == old_inode     # kept, not rewritten
    assert os.listdir(dest) == ["t"]                     # no staging, no trash left


def test_without_renameat2_the_old_tree_is_moved_aside_never_half_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_tree(tmp_path / "src", large=1000, small=3)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "t").mkdir()
    (dest / "t" / "old.txt").write_bytes(b"old")

    def missing(*_args: object) -> None:
        raise OSError(errno.ENOSYS, "no renameat2")
    monkeypatch.setattr(swap_module, "_renameat2", missing)
    copy_tree(source, dest, "t").commit()
    assert_same_tree(source, dest / "t")
    assert os.listdir(dest) == ["t"]


def test_a_resumed_staging_folder_drops_what_the_manifest_no_longer_names(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", large=5000, small=5)
    dest = tmp_path / "dest"
    dest.mkdir()
    staging = copy_tree(source, dest, "t")
    staging.close()                                     # interrupted before the commit
    stage = dest / PARTIAL_DIR / (PUSH_PREFIX + "x")
    (stage / "junk").mkdir()
    (stage / "junk" / "x").write_bytes(b"x")
    os.unlink(source / "zero.bin")
    staging = copy_tree(source, dest, "t")
    staging.commit()
    assert_same_tree(source, dest / "t")


def test_deleting_a_tree_removes_links_never_their_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"keep")
    doomed = tmp_path / "doomed"
    (doomed / "ro").mkdir(parents=True)
    os.symlink(outside, doomed / "link")
    (doomed / "ro" / "f").write_bytes(b"f")
    os.chmod(doomed / "ro", 0o500)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(fd, "doomed")
    finally:
        os.close(fd)
    assert not doomed.exists() and (outside / "keep.txt").read_bytes() == b"keep"


def test_the_sweep_removes_abandoned_pushed_trees_and_trash_only(tmp_path: Path) -> None:
    partial = tmp_path / PARTIAL_DIR
    for name in (PUSH_PREFIX + "old", PUSH_PREFIX + "fresh", PUSH_PREFIX + "busy",
                 PULL_PREFIX + "old", "trash-1", "push-0123"):
        (partial / name).mkdir(parents=True)
    long_ago = time.time() - 3600
    for name in (PUSH_PREFIX + "old", PUSH_PREFIX + "busy", PULL_PREFIX + "old"):
        os.utime(partial / name, (long_ago, long_ago))
    removed = sweep_stale_trees(str(tmp_path), 60.0, frozenset({PUSH_PREFIX + "busy"}))
    assert sorted(os.path.basename(p) for p in removed) == sorted([PUSH_PREFIX + "old", "trash-1"])
    assert sorted(os.listdir(partial)) == sorted([PUSH_PREFIX + "fresh", PUSH_PREFIX + "busy",
                                                  PULL_PREFIX + "old", "push-0123"])


@pytest.mark.parametrize(("mode", "kind", "umask", "shared", "expected"), [
    (0o4755, Kind.FILE, 0o022, False, 0o755),           # never setuid
    (0o2775, Kind.DIR, 0o002, False, 0o755),            # never setgid, nor group-writable
    (0o666, Kind.FILE, 0o002, True, 0o664),             # unless asked: minus the umask only
    (0o000, Kind.FILE, 0o022, False, 0o400),            # its owner can read it
    (0o500, Kind.DIR, 0o022, False, 0o700),             # and enter and write a folder
    (0o1777, Kind.DIR, 0o022, False, 0o755),            # no sticky bit either
])
def test_received_modes(mode: int, kind: Kind, umask: int, shared: bool, expected: int) -> None:
    assert received_mode(mode, kind, umask, shared) == expected


def test_the_umask_is_read_without_changing_it() -> None:
    before = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027
    finally:
        os.umask(before)


def test_tree_listing_sees_through_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", large=10, small=1)
    listing = tree_listing(root)
    assert listing["link-to-b"][0] is Kind.LINK and listing["link-to-b"][3] == "a/b"
    logging.getLogger(__name__).debug("%d entries", len(listing))
