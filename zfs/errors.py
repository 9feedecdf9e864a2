"""Errors of file streaming, each named for the caller's next move.

Runtime errors (``actors.errors``) that reach a transfer are translated into these,
so app code catches one family: :class:`ZfsError`.
"""

from __future__ import annotations


class ZfsError(Exception):
    """Root of every error zfs raises."""


class UnsafeName(ZfsError, ValueError):
    """A file name from the network is not a plain name (path parts, NUL, empty...)."""


class UnsafeTree(ZfsError, ValueError):
    """A folder holds what zfs will not send: a link leading out of it, a name that
    cannot travel (not UTF-8, too long), a tree too large for a manifest."""


class SourceMissing(ZfsError, FileNotFoundError):
    """The file to send or share does not exist or cannot be read."""


class TransferAborted(ZfsError):
    """A push or download stopped before the file was complete.

    Attributes:
        reason: what went wrong, in words.
        site: the site that caused it (a target, the owner, or our own).
    """

    def __init__(self, reason: str, site: str = "") -> None:
        where = f"{site}: " if site else ""
        super().__init__(f"{where}{reason}")
        self.reason = reason
        self.site = site


class StreamRefused(TransferAborted):
    """A target refused the stream (no registration for its channel/topic, limits)."""


class IntegrityError(TransferAborted):
    """The received bytes do not match the sender's size or digest."""


class UnknownReference(ZfsError, LookupError):
    """The RID names no shared file (never existed, or forged)."""


class TransactionExpired(ZfsError):
    """The transaction that shared this RID timed out or was ended by its owner."""


class FileChanged(TransferAborted):
    """The file being sent or shared was changed or removed meanwhile."""


class InsecureLink(ZfsError):
    """``secure=True`` was asked for over a link that is not encrypted and authenticated."""
