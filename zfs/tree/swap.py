"""Putting a finished tree at its final name in one step (``renameat2``).

``DEST/NAME`` is at every moment the whole old tree or the whole new one: the new tree
is renamed in with ``RENAME_NOREPLACE`` where nothing is there, else exchanged with the
old one (``RENAME_EXCHANGE``), which the caller then deletes. Where the kernel has no
``renameat2``, the old tree is renamed aside first (a moment with no tree under the
name, never half of one).
"""

from __future__ import annotations

import ctypes
import errno
import os

_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def rename_into_place(src_dir: int, src: str, dst_dir: int, dst: str,
                      no_clobber: bool) -> bool:
    """Rename ``src`` to ``dst``, exchanging with what is there; True if something was
    (it is then at ``src``).

    Raises:
        FileExistsError: ``no_clobber`` and something is at ``dst`` (nothing moved).
        OSError: the rename failed.
    """
    try:
        _renameat2(src_dir, src, dst_dir, dst, _RENAME_NOREPLACE)
        return False
    except OSError as err:
        if err.errno == errno.EEXIST:
            if no_clobber:
                raise FileExistsError(errno.EEXIST, "exists and no_clobber is set", dst) from None
        elif err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
    try:
        _renameat2(src_dir, src, dst_dir, dst, _RENAME_EXCHANGE)
        return True
    except OSError as err:
        if err.errno == errno.ENOENT:        # gone meanwhile: a plain rename will do
            return rename_into_place(src_dir, src, dst_dir, dst, no_clobber)
        if err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
    return _rename_aside_first(src_dir, src, dst_dir, dst, no_clobber)


def _rename_aside_first(src_dir: int, src: str, dst_dir: int, dst: str,
                        no_clobber: bool) -> bool:
    """No renameat2 here: the old tree is moved aside first (never half a tree in place)."""
    aside = f"{src}.old"
    try:
        os.rename(dst, aside, src_dir_fd=dst_dir, dst_dir_fd=src_dir)
        had = True
    except FileNotFoundError:
        had = False
    if had and no_clobber:
        os.rename(aside, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        raise FileExistsError(errno.EEXIST, "exists and no_clobber is set", dst)
    os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
    if had:
        os.rename(aside, src, src_dir_fd=src_dir, dst_dir_fd=src_dir)
    return had


def _renameat2(src_dir: int, src: str, dst_dir: int, dst: str, flags: int) -> None:
    """renameat2(2) through libc; OSError(ENOSYS) where it is missing."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "renameat2", None)
    if call is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if call(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dst)
