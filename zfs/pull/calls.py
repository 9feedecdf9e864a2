"""The app's calls that start a download: :func:`download` and :func:`download_async`.

Each checks its arguments, then spawns a :class:`~zfs.pull.download.DownloadActor`
(which hands a tree to a tree download, and a file pulled with peers to a swarm
download) and returns its future.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any, Callable, Optional

import actors
from zfs.pace import check_rate, fit_window
from zfs.pull.book import MAX_CHUNK_SIZE
from zfs.pull.download import Begin, DownloadActor, DownloadOptions
from zfs.results import DownloadResult, Progress, TreeDownloadResult
from zfs.shell import Transfer, check_secure
from zfs.supervisor import ensure_supervisor


def download_async(site: actors.Site, owner: str, rid: str,
                   dest_dir: Optional[str | os.PathLike[str]] = None, *,
                   window_chunks: int = 8, chunk_size: int = 1 << 20,
                   request_timeout: float = 10.0, retries: int = 3,
                   abort_signal: Any = None,
                   on_progress: Optional[Callable[[Progress], Any]] = None,
                   secure: bool = False, bwlimit: Optional[float] = None,
                   no_clobber: bool = False, check_existing: bool = True,
                   swarm: bool = False, seed: bool = True
                   ) -> Transfer[DownloadResult | TreeDownloadResult]:
    """Start downloading ``rid`` from site ``owner``; see :func:`download`.

    Returns:
        A :class:`~zfs.shell.Transfer` (a future) of the :class:`DownloadResult` (a
        :class:`TreeDownloadResult` for a tree); its exception is one of
        :func:`download`'s errors. ``abort()`` on it stops the download (what it
        verified stays for a resume only if the link was cut).
    """
    check_secure(site, secure)
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, not {chunk_size}")
    if window_chunks < 1 or retries < 0 or not request_timeout > 0:
        raise ValueError("window_chunks must be >= 1, retries >= 0 and request_timeout > 0")
    check_rate(bwlimit)
    window_chunks, chunk_size = fit_window(bwlimit, window_chunks, chunk_size, request_timeout)
    dest_dir = os.fspath(dest_dir) if dest_dir is not None else tempfile.gettempdir()
    os.makedirs(dest_dir, exist_ok=True)
    ensure_supervisor(site)
    transfer: Transfer[DownloadResult | TreeDownloadResult] = Transfer()
    options = DownloadOptions(owner, rid, dest_dir, window_chunks, chunk_size,
                               request_timeout, retries, abort_signal, on_progress, bwlimit,
                               no_clobber, check_existing, swarm, seed)
    return transfer.start(site, DownloadActor, f"zfs.dl.{secrets.token_hex(8)}", (options,),
                          Begin())


def download(site: actors.Site, owner: str, rid: str,
             dest_dir: Optional[str | os.PathLike[str]] = None, *,
             window_chunks: int = 8, chunk_size: int = 1 << 20,
             request_timeout: float = 10.0, retries: int = 3, abort_signal: Any = None,
             on_progress: Optional[Callable[[Progress], Any]] = None,
             secure: bool = False, bwlimit: Optional[float] = None,
             no_clobber: bool = False, check_existing: bool = True,
             swarm: bool = False, seed: bool = True) -> DownloadResult | TreeDownloadResult:
    """Download the file (or tree) ``rid`` shared by site ``owner`` into ``dest_dir``.

    A download interrupted earlier into the same folder resumes after its bytes are
    checked against the owner's. Requests that time out are sent again ``retries``
    times; ``abort_signal.is_set()`` stops it within a tick. ``bwlimit`` caps the bytes per
    second it asks the owner for (None: no cap); under a low cap the window and chunk
    size shrink so that no request waits past ``request_timeout`` (see
    :func:`zfs.pace.fit_window`). The disk's free space is checked before anything is
    written.

    A file already at ``dest_dir/<name>`` with the owner's size and digest is kept: no
    byte moves (``check_existing=False``: fetch it anyway). A tree RID
    (``Transaction.add_tree``) fetches the whole folder, keeping the files already there
    likewise, and the tree appears at once when every file is checked.

    ``swarm=True`` pulls a file with peers: other recipients of the same RID serve this
    one chunks they verified, and it serves them its own (the owner points each at the
    others), so N recipients take about the time one does and the owner sends about one
    copy. Every chunk from a peer is checked against the owner's SHA-256 of it before it
    is written; a peer that sends a bad one is dropped. This site serves from the
    endpoint it listens on (``Site(bind=...)``); one that listens nowhere only takes.
    With ``seed`` (the default) it goes on serving the file once it is in place, until
    the owner ends the share. The result's ``route`` and ``from_peers`` say how the bytes
    travelled. A tree is pulled the plain way (``swarm`` is ignored for it). The owner's
    cap (``share(..., bwlimit=)``) holds back what it serves a pull with peers too; this
    call's ``bwlimit`` does not apply to one.

    Args:
        no_clobber: refuse if ``dest_dir/<name>`` exists.

    Returns:
        The :class:`DownloadResult` (:class:`TreeDownloadResult` for a tree); its
        ``path`` is ``dest_dir/<owner's file name>``.

    Raises:
        UnknownReference, TransactionExpired, FileChanged, IntegrityError,
        TransferAborted (owner lost, no answer, aborted), StreamRefused (no_clobber),
        InsecureLink.
    """
    return download_async(site, owner, rid, dest_dir, window_chunks=window_chunks,
                          chunk_size=chunk_size, request_timeout=request_timeout,
                          retries=retries, abort_signal=abort_signal,
                          on_progress=on_progress, secure=secure, bwlimit=bwlimit,
                          no_clobber=no_clobber, check_existing=check_existing,
                          swarm=swarm, seed=seed).result()
