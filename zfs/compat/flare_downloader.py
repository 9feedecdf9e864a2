"""FLARE's ``FileDownloader`` (pull) over :mod:`zfs.pull`, for code ported from NVFlare.

Where FLARE takes a ``cell`` this takes our :class:`actors.Site`; an FQCN is a site
name. As in the reference document::

    tx_id = FileDownloader.new_transaction(site, timeout=60, timeout_cb=on_timeout, job=7)
    rid = FileDownloader.add_file(tx_id, "/data/model.bin", file_downloaded_cb=on_done, job=7)
    # ... send rid to the recipients; each of them:
    err, path = download_file("server", rid, per_request_timeout=10, cell=site,
                              location="/tmp/in", abort_signal=signal)

``timeout_cb(tx_id, file_names, **cb_kwargs)`` and
``file_downloaded_cb(ref_id, to_site, status, file_name, **cb_kwargs)`` as in FLARE.
``add_file`` gets no cell: the transaction is found among this process's owner actors
(:meth:`zfs.pull.Transaction.find`), so the facade keeps no registry of its own.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Optional, Tuple

from actors import ActorsError
from zfs.errors import ZfsError
from zfs.pull import Transaction, download, share

log = logging.getLogger(__name__)


class Signal:
    """An abort flag: ``trigger()`` it; ``triggered`` / ``is_set()`` read it (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def trigger(self, value: Any = True) -> None:
        """Raise the flag (``value`` is accepted for FLARE compatibility and ignored)."""
        self._event.set()

    @property
    def triggered(self) -> bool:
        """Whether the flag was raised."""
        return self._event.is_set()

    def is_set(self) -> bool:
        """Whether the flag was raised (the interface ``zfs.pull.download`` polls)."""
        return self._event.is_set()


class FileDownloader:
    """Owner side of FLARE's pull: transactions of files, one RID per file."""

    @classmethod
    def new_transaction(cls, cell: Any, timeout: float,
                        timeout_cb: Optional[Callable[..., Any]] = None,
                        **cb_kwargs: Any) -> str:
        """Create a transaction on site ``cell``; return its id.

        ``timeout_cb(tx_id, file_names, **cb_kwargs)`` is called once, when no recipient
        has shown activity on any of its files for ``timeout`` seconds.
        """
        on_timeout = functools.partial(timeout_cb, **cb_kwargs) if timeout_cb else None
        return share(cell, timeout=timeout, on_timeout=on_timeout).tx_id

    @classmethod
    def add_file(cls, transaction_id: str, file_name: str,
                 file_downloaded_cb: Optional[Callable[..., Any]] = None,
                 **cb_kwargs: Any) -> str:
        """Add the file at path ``file_name`` to the transaction; return its RID.

        ``file_downloaded_cb(ref_id, to_site, status, file_name, **cb_kwargs)`` is called
        once per recipient, status "success", "failed" or "aborted".

        Raises:
            TransactionExpired: no such open transaction in this process.
            SourceMissing: no readable file at ``file_name``.
        """
        on_downloaded = (functools.partial(file_downloaded_cb, **cb_kwargs)
                         if file_downloaded_cb else None)
        return Transaction.find(transaction_id).add_file(file_name, on_downloaded)

    @classmethod
    def end_transaction(cls, transaction_id: str) -> None:
        """End a transaction now (its RIDs then fail as expired; no timeout callback)."""
        Transaction.find(transaction_id).close()


def download_file(from_fqcn: str, ref_id: str, per_request_timeout: float, cell: Any,
                  location: Optional[str] = None, secure: bool = False,
                  optional: bool = False,
                  abort_signal: Any = None) -> Tuple[Optional[str], Optional[str]]:
    """Download the file ``ref_id`` from site ``from_fqcn`` into folder ``location``.

    ``optional`` (FLARE: quieter logs) only lowers the level of our failure log line.

    Returns:
        ``(None, full_path)`` on success, else ``(error_message, None)``.
    """
    try:
        path = download(cell, from_fqcn, ref_id, location,
                        per_request_timeout=per_request_timeout, abort_signal=abort_signal,
                        secure=secure)
    except (ZfsError, ActorsError, OSError) as err:
        log.log(logging.DEBUG if optional else logging.WARNING,
                "download of %s from %s failed: %s", ref_id, from_fqcn, err)
        return f"{type(err).__name__}: {err}", None
    return None, path
