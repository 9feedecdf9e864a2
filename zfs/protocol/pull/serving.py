"""What the owner's core (:class:`~zfs.protocol.pull.owner.Shares`) asks its shell to do.

Small frozen commands, one per answer or event: tell a recipient a file's or a tree's
info, a section of a tree's manifest, a digest or a chunk; refuse a request; call the
app back for a download reported or a transaction timed out; log what the budget did.
The shell (``zfs.pull.owner``) carries each out; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from zfs.protocol.errors import Failure
from zfs.protocol.wire import Section, Status


@dataclass(frozen=True, slots=True)
class SendInfo:
    """Answer ``to`` with the file's name, size and resume key."""

    rid: str
    to: str
    name: str
    size: int
    key: str


@dataclass(frozen=True, slots=True)
class SendTreeInfo:
    """Answer ``to``: the RID is a tree of ``files`` files, ``size`` stream bytes."""

    rid: str
    to: str
    name: str
    key: str
    files: int
    size: int
    manifest_size: int


@dataclass(frozen=True, slots=True)
class SendMeta:
    """Tell ``to`` the ``length`` bytes at ``offset`` of the tree's ``section``.

    The digests' section may not be known yet: the shell sends it once it is.
    """

    rid: str
    to: str
    section: Section
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendRangeDigest:
    """Tell ``to`` the digest of the stream's ``length`` bytes at ``offset``."""

    rid: str
    to: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendPrefixDigest:
    """Tell ``to`` the digest of the file's first ``length`` bytes (to check a resume)."""

    rid: str
    to: str
    length: int


@dataclass(frozen=True, slots=True)
class SendChunk:
    """Read ``length`` bytes at ``offset`` and tell them to ``to`` as one payload frame."""

    rid: str
    to: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendDigest:
    """Tell ``to`` the whole-file digest."""

    rid: str
    to: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Tell ``to`` that the request for ``rid`` is refused, and why."""

    rid: str
    to: str
    failure: Failure


@dataclass(frozen=True, slots=True)
class Downloaded:
    """Call the file's callback: ``site`` finished ``rid`` with ``status``."""

    tx_id: str
    rid: str
    site: str
    status: Status
    name: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Call the transaction's timeout callback with its file names."""

    tx_id: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Released:
    """The file of ``rid`` is no longer shared: close its handles, drop its digests."""

    rid: str


@dataclass(frozen=True, slots=True)
class SiteCut:
    """``site`` held chunk bytes for too long without confirming any: its downloads were
    ended and its share of the budget freed (log it)."""

    site: str


OwnerCommand = Union[SendInfo, SendTreeInfo, SendMeta, SendRangeDigest, SendPrefixDigest,
                     SendChunk, SendDigest, Refuse, Downloaded, TimedOut, Released, SiteCut]
