"""NVIDIA FLARE's file streaming calls over zfs, for code ported from NVFlare line by line.

Where FLARE takes an ``fl_ctx`` or a ``cell``, pass the ``actors.Site``; where it takes
an FQCN or a target name, pass a site name. A FLARE-like dotted FQCN of a site cell,
``"server.client1"``, names its last part, the site ``client1`` (reached directly or
through a relay, as zfs routes), unless the whole name is a site this site knows. FLARE's
job cells (``"client1.<job id>"``) have no twin here: pass the site's name.

Push, ``FileStreamer``: a stream context is a plain dict (msgpack-able) that travels
with the file::

    FileStreamer.register_stream_processing(site, "app", "weights", dest_dir="/data",
                                            stream_done_cb=on_done, round=3)
    rc, ok = FileStreamer.stream_file("app", "weights", {"round": 3}, ["server"],
                                      "/models/w.bin", site)

``stream_done_cb(stream_ctx, fl_ctx, **cb_kwargs)`` gets the sender's dict plus the
file's properties, read with :meth:`FileStreamer.get_file_name` and friends.
``chunk_consumed_cb`` gets the same arguments after each chunk is written.

Pull, ``FileDownloader`` and ``download_file``, as in the reference document::

    tx_id = FileDownloader.new_transaction(site, timeout=60, timeout_cb=on_timeout, job=7)
    rid = FileDownloader.add_file(tx_id, "/data/model.bin", file_downloaded_cb=on_done, job=7)
    # ... send rid to the recipients; each of them:
    err, path = download_file("server", rid, per_request_timeout=10, cell=site,
                              location="/tmp/in", abort_signal=signal)

``timeout_cb(tx_id, file_names, **cb_kwargs)`` and
``file_downloaded_cb(ref_id, to_site, status, file_name, **cb_kwargs)`` as in FLARE.
``add_file`` gets no cell: the transaction is found among this process's owner actors
(:meth:`zfs.pull.transaction.Transaction.find`), so the facade keeps no registry of its own.
"""


from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from actors import ActorsError
import actors
from zfs.errors import ZfsError
from zfs.pull.calls import download
from zfs.pull.transaction import Transaction, share
from zfs.push.receiver import register_receiver
from zfs.push.sender import push_file
from zfs.results import Progress, ReceivedFile

log = logging.getLogger(__name__)

StreamContext = Dict[str, Any]

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_CHUNK_TIMEOUT = 30.0


def _site_of(cell: actors.Site, fqcn: str) -> str:
    """The site an FQCN names: ``"server.client1"`` -> ``"client1"``, unless this site
    knows a site by the whole dotted name (site names may hold dots)."""
    if "." not in fqcn or cell.state_of(fqcn) is not None:
        return fqcn
    return fqcn.rpartition(".")[2] or fqcn


class ReturnCode:
    """The return codes of :meth:`FileStreamer.stream_file`, as in FLARE."""

    OK = "OK"
    ERROR = "ERROR"


class StreamContextKey:
    """The keys of the file's properties in a received stream context."""

    FILE_NAME = "zfs.file_name"
    FILE_LOCATION = "zfs.file_location"
    FILE_SIZE = "zfs.file_size"
    BYTES_RECEIVED = "zfs.bytes_received"
    SENDER = "zfs.sender_site"
    CHANNEL = "zfs.channel"
    TOPIC = "zfs.topic"


def _context(context: Any) -> StreamContext:
    return dict(context) if isinstance(context, dict) else {}


def _done_context(received: ReceivedFile) -> StreamContext:
    ctx = _context(received.context)
    ctx.update({StreamContextKey.FILE_NAME: received.name,
                StreamContextKey.FILE_LOCATION: received.path,
                StreamContextKey.FILE_SIZE: received.size,
                StreamContextKey.BYTES_RECEIVED: received.size,
                StreamContextKey.SENDER: received.sender_site,
                StreamContextKey.CHANNEL: received.channel,
                StreamContextKey.TOPIC: received.topic})
    return ctx


def _chunk_context(progress: Progress) -> StreamContext:
    ctx = _context(progress.context)
    ctx.update({StreamContextKey.FILE_NAME: progress.name,
                StreamContextKey.FILE_SIZE: progress.total,
                StreamContextKey.BYTES_RECEIVED: progress.bytes_done,
                StreamContextKey.SENDER: progress.peer})
    return ctx


class FileStreamer:
    """Push a file to one or more sites; receivers register per channel and topic."""

    @staticmethod
    def register_stream_processing(fl_ctx: Any, channel: str, topic: str,
                                   dest_dir: Optional[str] = None,
                                   stream_done_cb: Optional[Callable[..., Any]] = None,
                                   chunk_consumed_cb: Optional[Callable[..., Any]] = None,
                                   **cb_kwargs: Any) -> None:
        """Register for files pushed on (channel, topic), received into ``dest_dir``.

        Args:
            fl_ctx: our site.
            dest_dir: the folder for received files (default: the system temp folder).
            stream_done_cb: ``cb(stream_ctx, fl_ctx, **cb_kwargs)`` once a file is in place.
            chunk_consumed_cb: the same, after each chunk is written.
        """
        on_done = on_chunk = None
        if stream_done_cb is not None:
            def on_done(received: ReceivedFile) -> None:
                stream_done_cb(_done_context(received), fl_ctx, **cb_kwargs)
        if chunk_consumed_cb is not None:
            def on_chunk(progress: Progress) -> None:
                chunk_consumed_cb(_chunk_context(progress), fl_ctx, **cb_kwargs)
        register_receiver(fl_ctx, channel=channel, topic=topic, dest_dir=dest_dir,
                          on_done=on_done, on_chunk=on_chunk)

    @staticmethod
    def stream_file(channel: str, topic: str, stream_ctx: Optional[StreamContext],
                    targets: Union[str, List[str]], file_name: str, fl_ctx: Any,
                    chunk_size: Optional[int] = None, chunk_timeout: Optional[float] = None,
                    optional: bool = False, secure: bool = False) -> Tuple[str, bool]:
        """Stream the file at path ``file_name`` to ``targets``; blocks until done.

        Args:
            stream_ctx: app data (a msgpack-able dict) for the receivers' callbacks.
            optional: log a failure at debug level only.
            secure: require encrypted links (fails at once without them).

        Returns:
            ``(ReturnCode.OK, True)``, or ``(ReturnCode.ERROR, False)`` on any failure.
        """
        names = [targets] if isinstance(targets, str) else list(targets)
        try:
            push_file(fl_ctx, [_site_of(fl_ctx, name) for name in names], file_name,
                      channel=channel, topic=topic,
                      context=dict(stream_ctx or {}),
                      chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
                      chunk_timeout=chunk_timeout or DEFAULT_CHUNK_TIMEOUT, secure=secure,
                      swarm=False)    # the facade keeps the original's star
        except (ZfsError, ValueError) as err:
            log.log(logging.DEBUG if optional else logging.ERROR,
                    "stream_file %s to %s failed: %s", file_name, targets, err)
            return ReturnCode.ERROR, False
        return ReturnCode.OK, True

    @staticmethod
    def get_file_name(stream_ctx: StreamContext) -> Optional[str]:
        """Return the received file's base name (in ``stream_done_cb``)."""
        return stream_ctx.get(StreamContextKey.FILE_NAME)

    @staticmethod
    def get_file_location(stream_ctx: StreamContext) -> Optional[str]:
        """Return the received file's full path (in ``stream_done_cb``)."""
        return stream_ctx.get(StreamContextKey.FILE_LOCATION)

    @staticmethod
    def get_file_size(stream_ctx: StreamContext) -> Optional[int]:
        """Return the received file's size in bytes (in ``stream_done_cb``)."""
        return stream_ctx.get(StreamContextKey.FILE_SIZE)

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
    def new_transaction(cls, cell: actors.Site, timeout: float,
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


def download_file(from_fqcn: str, ref_id: str, per_request_timeout: float, cell: actors.Site,
                  location: Optional[str] = None, secure: bool = False,
                  optional: bool = False,
                  abort_signal: Any = None) -> Tuple[Optional[str], Optional[str]]:
    """Download the file ``ref_id`` from site ``from_fqcn`` into folder ``location``.

    ``optional`` (FLARE: quieter logs) only lowers the level of our failure log line.

    Returns:
        ``(None, full_path)`` on success, else ``(error_message, None)``.
    """
    try:
        path = download(cell, _site_of(cell, from_fqcn), ref_id, location,
                        request_timeout=per_request_timeout, abort_signal=abort_signal,
                        secure=secure).path
    except (ZfsError, ActorsError, OSError) as err:
        log.log(logging.DEBUG if optional else logging.WARNING,
                "download of %s from %s failed: %s", ref_id, from_fqcn, err)
        return f"{type(err).__name__}: {err}", None
    return None, path
