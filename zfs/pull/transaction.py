"""Sharing files for pull: :func:`share` opens a :class:`Transaction`, files are added to it.

The app's side of the owner: each call is an ask to the site's
:class:`~zfs.pull.owner.OwnerActor`, which is spawned (with the supervisor) on first use
and, after a crash, revived with its predecessor's state.

RIDs are random (192 bits) unless the share has a ``secret``: then a RID is an HMAC of
the file's or folder's path under it, so the same path shared again, by an owner that
restarted, gets the same RID and a recipient's interrupted pull resumes with the command
it already has; without the secret nobody can derive one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from typing import Any, Optional

import pykka

import actors

from zfs.errors import SourceMissing, TransactionExpired, ZfsError
from zfs.files import check_name
from zfs.pace import check_rate
from zfs.pull.book import (OWNER, DownloadedCallback, OwnerState, TimeoutCallback, _AddFile,
                           _Bwlimit, _EndTx, _FindTx, _OpenTx, _Stats)
from zfs.pull.owner import OwnerActor
from zfs.supervisor import revive, supervise
from zfs.tree.walk import walk

_LOCAL_TIMEOUT = 10.0


def _owner(site: actors.Site) -> actors.LocalRef:
    """Return the site's owner actor, spawning it (and the supervisor) on first use."""
    ref = site.actor(OWNER)
    if ref is not None:
        return ref
    if revive(site, OWNER):                  # crashed, not yet restarted: keep its state
        ref = site.actor(OWNER)
        if ref is not None:
            return ref
    state = OwnerState()
    try:
        ref = site.spawn(OwnerActor, OWNER, state)
    except ValueError:                       # another thread won the race
        ref = site.actor(OWNER)
        if ref is None:
            raise
        return ref
    supervise(site, OWNER, OwnerActor, state)
    return ref


def _ask_owner(site: actors.Site, message: Any) -> Any:
    try:
        return _owner(site).ask(message, timeout=_LOCAL_TIMEOUT)
    except actors.ActorError as err:
        if isinstance(err.__cause__, ZfsError):  # the owner's own answer: raise it as is
            raise err.__cause__ from None
        raise


class Transaction:
    """A set of shared files that lives while recipients keep downloading.

    Made by :func:`share`; ``Transaction(site, tx_id)`` is a handle to an open one
    (``secret``: the share's, for stable RIDs).
    """

    def __init__(self, site: actors.Site, tx_id: str, secret: Optional[bytes] = None) -> None:
        self.site = site
        self.tx_id = tx_id
        self._secret = secret

    @staticmethod
    def find(tx_id: str) -> Transaction:
        """Return a handle to the open transaction ``tx_id`` of any site in this process.

        For callers that hold a transaction id but not its site (FLARE's ``add_file``);
        it asks each owner actor, so no registry of our own is kept.

        Raises:
            TransactionExpired: no owner holds an open transaction of that id.
        """
        for ref in pykka.ActorRegistry.get_by_class(OwnerActor):
            try:
                site = ref.ask(_FindTx(tx_id), timeout=_LOCAL_TIMEOUT)
            except pykka.ActorDeadError:
                continue
            if isinstance(site, actors.Site):
                return Transaction(site, tx_id)
        raise TransactionExpired(f"no open transaction {tx_id!r} in this process")

    def add_file(self, path: str | os.PathLike[str],
                 on_downloaded: Optional[DownloadedCallback] = None) -> str:
        """Share the file at ``path``; return its RID.

        ``on_downloaded(rid, to_site, status, file_name)`` is called once per recipient
        site, status ``"success"``, ``"failed"`` or ``"aborted"``.

        Raises:
            SourceMissing: no readable regular file at ``path``.
            UnsafeName: its base name cannot travel as a file name.
            TransactionExpired: the transaction timed out or was closed.
        """
        path = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(path)
        except OSError as err:
            raise SourceMissing(f"cannot share {path!r}: {err.strerror}") from err
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
            raise SourceMissing(f"not a readable regular file: {path!r}")
        name = check_name(os.path.basename(path))
        rid = self._reference("file", path)
        return str(_ask_owner(self.site, _AddFile(self.tx_id, rid, path, name, st.st_size,
                                                  st.st_mtime_ns, on_downloaded)))

    def add_tree(self, path: str | os.PathLike[str],
                 on_downloaded: Optional[DownloadedCallback] = None) -> str:
        """Share the folder at ``path``, every folder, file and link under it; return its RID.

        ``zfs.download`` of the RID fetches the whole tree; the callback is
        :meth:`add_file`'s, with the folder's name.

        Raises:
            SourceMissing: no readable folder at ``path``.
            UnsafeTree: a link in it leads out of it, or a name cannot travel.
            UnsafeName: its base name cannot travel as a name.
            TransactionExpired: the transaction timed out or was closed.
        """
        walked = walk(path)
        name = check_name(os.path.basename(walked.root.rstrip(os.sep)))
        rid = self._reference("tree", walked.root)
        return str(_ask_owner(self.site, _AddFile(
            self.tx_id, rid, walked.root, name, walked.manifest.size, 0, on_downloaded,
            walked)))

    def _reference(self, kind: str, path: str) -> str:
        if self._secret is None:
            return new_reference()
        return stable_reference(self._secret, kind, path)

    def close(self) -> None:
        """End the transaction now: its RIDs stop working ("expired"); no timeout callback."""
        _ask_owner(self.site, _EndTx(self.tx_id))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def new_reference() -> str:
    """An unguessable id (192 random bits) that is safe on a command line.

    URL-safe base64 may start with "-", which a shell command would take for an
    option, so such ids get a leading letter instead.
    """
    token = secrets.token_urlsafe(24)
    return token if token[0].isalnum() else "r" + token


def stable_reference(secret: bytes, kind: str, path: str) -> str:
    """The RID of ``path`` (a "file" or a "tree") under ``secret``: the same every time,
    unguessable without the secret (HMAC-SHA256, 192 bits, safe on a command line)."""
    mac = hmac.new(secret, f"zfs-rid\0{kind}\0{path}".encode("utf-8", "surrogateescape"),
                   hashlib.sha256).digest()[:24]
    token = base64.urlsafe_b64encode(mac).decode("ascii")
    return token if token[0].isalnum() else "r" + token


def share(site: actors.Site, *, timeout: float = 60.0,
          on_timeout: Optional[TimeoutCallback] = None,
          bwlimit: Optional[float] = None,
          secret: Optional[bytes] = None) -> Transaction:
    """Open a transaction on ``site``; add files to it with :meth:`Transaction.add_file`
    (folders with :meth:`Transaction.add_tree`).

    Args:
        timeout: seconds without any recipient activity on any of its files after which
            it ends; ``on_timeout(tx_id, file_names)`` is then called once.
        bwlimit: bytes per second the site's owner may send to all its recipients
            together, for every transaction of the site, from now on (a setting of the
            site: ``float("inf")`` lifts it; None leaves it as it is, uncapped at first).
            Requests wait their turn under it: keep a recipient's window times chunk
            size well under ``bwlimit * request_timeout``, or they are sent again.
        secret: derive RIDs from it (at least 16 bytes, kept by the owner): the same
            path shared again, after a restart too, gets the same RID.

    Raises:
        ValueError: ``bwlimit`` is not above 0, or ``secret`` is shorter than 16 bytes.
    """
    check_rate(bwlimit)
    if secret is not None and len(secret) < 16:
        raise ValueError("a RID secret must be at least 16 bytes")
    if bwlimit is not None:
        _ask_owner(site, _Bwlimit(bwlimit))
    tx_id = new_reference()
    _ask_owner(site, _OpenTx(tx_id, float(timeout), on_timeout))
    return Transaction(site, tx_id, secret)


def owner_stats(site: actors.Site) -> dict[str, int]:
    """Counters of the site's owner: bytes and chunks sent, files open and shared, and
    shares whose digests are still being computed (``digesting``)."""
    return dict(_ask_owner(site, _Stats()))
