"""What a pull owner digests, on its pool's threads, never on its actor's.

A shared file's digest (whole, or of its first bytes for a resume) is computed from the
disk at low priority and only for the file that was shared: one that changed since is
refused (``FileChanged``). A shared tree's digest is that of its files' digests, which
are computed once when it is added. Every long hash ends early once the owner stops.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future

from zfs.errors import FileChanged, TransferAborted
from zfs.files import Digest, digest_range
from zfs.protocol.tree.layout import pack_digests
from zfs.tree.source import TreeSource
from zfs.tree.walk import Walked

_DIGEST_BLOCK = 1 << 20


def in_the_background() -> None:
    """Lower this thread's priority: hashing a shared file must not slow the transfers.

    Linux applies nice per thread, so the digest threads yield the cores to the
    threads moving chunks. Elsewhere this is a no-op.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def digest_of(path: str, size: int, mtime_ns: int, length: int,
               stop: threading.Event) -> str:
    """Digest the first ``length`` bytes, refusing a file that is not the one shared.

    Ends early once ``stop`` is set: a stopping owner must not hold its process open
    while it hashes a large file (the pool's threads are joined at exit).
    """
    check_same(path, size, mtime_ns)
    with open(path, "rb", buffering=0) as f:
        digest, got = digest_range(f.fileno(), length, _DIGEST_BLOCK, stop)
    if stop.is_set():
        raise TransferAborted("the owner is stopping")
    if got < length:
        raise FileChanged(f"{path!r} shrank while being read")
    check_same(path, size, mtime_ns)
    return digest


def tree_digests(walked: Walked, stop: threading.Event) -> bytes:
    """Every file's digest, packed (on the digest pool; ends early once ``stop`` is set)."""
    with TreeSource(walked.root, walked.manifest) as source:
        return pack_digests([source.digest(number, walked.manifest.file(number).size, stop)
                             for number in range(len(walked.manifest.files))])


def range_digest(walked: Walked, offset: int, length: int) -> str:
    with TreeSource(walked.root, walked.manifest) as source:
        return source.range_digest(offset, length)


def check_same(path: str, size: int, mtime_ns: int) -> None:
    try:
        st = os.stat(path)
    except OSError as err:
        raise FileChanged(f"{path!r} is gone: {err.strerror}") from err
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChanged(f"{path!r} changed since it was shared")


def digest_of_digests(done: Future[bytes], out: Future[str]) -> None:
    """A tree's own digest: of its files' digests, end to end."""
    try:
        digest = Digest()
        digest.update(done.result())
        out.set_result(digest.hexdigest())
    except Exception as err:  # noqa: BLE001 - the pool's error, handed on
        out.set_exception(err)
