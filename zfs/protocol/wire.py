"""The messages sites exchange to push and pull files, typed, and their one encode.

A message travels as the body of an actor message: a msgpack array whose first item
names its kind, the rest its fields in order (``["chunk", sid, offset]``), and bulk
bytes as the message's raw payload frames, never inside the array. :func:`encode`
writes that array; reading one a peer sent is :func:`zfs.protocol.inbound.decode`'s,
apart because there nothing may be trusted.

Push, per stream ``sid`` (sender to receiver, then back)::

    Open(sid, name, size | None, chunk_size, window_chunks, channel, topic, context) ->
    Chunk(sid, offset) + one payload frame                             ->
    End(sid, size, digest)                                             ->
    Abort(sid, reason)                                                 ->
                                            <-  Accepted(sid) | Failed(sid, failure, reason)
                                            <-  Acked(sid, received)   (cumulative)
                                            <-  Committed(sid)

Pull, per RID (recipient to owner, then back)::

    InfoRequest(rid)           ->  <-  FileInfo(rid, name, size, key)
    PrefixRequest(rid, length) ->  <-  PrefixDigest(rid, length, digest)
    ChunkRequest(rid, offset, length, mark) -> <- ChunkData(rid, offset) + one payload frame
    MarkReport(rid, mark)      ->
    DigestRequest(rid)         ->  <-  FileDigest(rid, digest)
    DoneReport(rid, status)    ->
                                   <-  Refusal(rid, failure)   (instead of any answer)

A folder (a tree, :mod:`zfs.protocol.tree`) moves as its manifest and ONE virtual
stream, its files' contents end to end, in the same chunks, acks and requests. Push of
a tree, per stream ``sid``, to each target's tree receiver::

    TreeOpen(sid, name, key, files, size, manifest_size, chunk_size, window_chunks,
             channel, topic, context, no_clobber, check_existing) + the manifest    ->
                                 <-  Checking(sid)                 (while it digests)
                                 <-  TreeOffer(sid) + packed offers   | Failed(...)
    Checking(sid)                      ->   (while the sender digests what was offered)
    TreePlan(sid, size) + packed plan  ->   then Chunk / End / Abort as for a file,
                                 <-  Acked / Committed / Failed    as for a file

Pull of a tree, per RID: ``InfoRequest`` is answered by ``TreeInfo``; then::

    MetaRequest(rid, section, offset, length) -> <- MetaData(rid, section, offset) + bytes
    RangeDigestRequest(rid, offset, length)   -> <- RangeDigest(rid, offset, length, digest)
    ChunkRequest / ChunkData / MarkReport / DoneReport / Refusal   as for a file
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

from zfs.protocol.errors import Failure


class Status(str, enum.Enum):
    """How a recipient's download of one file ended, as it reports it to the owner."""

    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"


# ---- push -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Open:
    """Open a stream of the file ``name`` (``size`` None: a stream of unknown length).

    ``window_chunks`` is how many chunks the sender keeps un-acked: the receiver acks
    once per half window, not per chunk.
    """

    sid: str
    name: str
    size: Optional[int]
    chunk_size: int
    window_chunks: int
    channel: str
    topic: str
    context: Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """The next bytes of the stream, at ``offset``, in the message's one payload frame."""

    sid: str
    offset: int


@dataclass(frozen=True, slots=True)
class End:
    """The stream ended at ``size`` bytes with whole-file ``digest``: check and commit."""

    sid: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Discard the stream (another target failed, or the sender gave up)."""

    sid: str
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The receiver opened the stream."""

    sid: str


@dataclass(frozen=True, slots=True)
class Acked:
    """The receiver has written the first ``received`` bytes."""

    sid: str
    received: int


@dataclass(frozen=True, slots=True)
class Committed:
    """The receiver checked the file and renamed it into place."""

    sid: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The stream failed at the receiver (or was refused, ``Failure.REFUSED``)."""

    sid: str
    failure: Failure
    reason: str


# ---- pull -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InfoRequest:
    """What is the file of ``rid`` called, how big is it, and what key resumes it?"""

    rid: str


@dataclass(frozen=True, slots=True)
class FileInfo:
    """The file of ``rid``: its name, size, and the key of recipients' temporary files."""

    rid: str
    name: str
    size: int
    key: str


@dataclass(frozen=True, slots=True)
class PrefixRequest:
    """What is the digest of the file's first ``length`` bytes (to check a resume)?"""

    rid: str
    length: int


@dataclass(frozen=True, slots=True)
class PrefixDigest:
    """The digest of the file's first ``length`` bytes."""

    rid: str
    length: int
    digest: str


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """Send ``length`` bytes at ``offset``; the recipient holds every byte below ``mark``."""

    rid: str
    offset: int
    length: int
    mark: int


@dataclass(frozen=True, slots=True)
class ChunkData:
    """The bytes at ``offset``, in the message's one payload frame."""

    rid: str
    offset: int


@dataclass(frozen=True, slots=True)
class MarkReport:
    """The recipient holds every byte below ``mark`` (it had no request to carry it)."""

    rid: str
    mark: int


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """What is the whole file's digest?"""

    rid: str


@dataclass(frozen=True, slots=True)
class FileDigest:
    """The whole file's digest."""

    rid: str
    digest: str


@dataclass(frozen=True, slots=True)
class DoneReport:
    """How the recipient's download of ``rid`` ended."""

    rid: str
    status: Status


@dataclass(frozen=True, slots=True)
class Refusal:
    """The owner will not serve ``rid``: ``failure`` says why."""

    rid: str
    failure: Failure


# ---- trees --------------------------------------------------------------------------

class Section(str, enum.Enum):
    """A part of a shared tree other than its stream, fetched by pages."""

    MANIFEST = "manifest"   # the manifest's bytes (zfs.protocol.tree.manifest)
    DIGESTS = "digests"     # the files' digests end to end (zfs.protocol.tree.layout)


@dataclass(frozen=True, slots=True)
class TreeOpen:
    """Open a stream of the tree ``name``, its manifest in the payload frames.

    ``key`` names the tree's staging folder at the target, with the sender's site: the
    same push started again finds what it left there. ``size`` is the bytes of all its
    files, ``manifest_size`` the payload's; ``window_chunks`` as in :class:`Open`.
    ``no_clobber``: refuse if ``name`` exists; ``check_existing``: offer files already
    at the final place (else only what an interrupted push of it left).
    """

    sid: str
    name: str
    key: str
    files: int
    size: int
    manifest_size: int
    chunk_size: int
    window_chunks: int
    channel: str
    topic: str
    context: Any
    no_clobber: bool
    check_existing: bool


@dataclass(frozen=True, slots=True)
class TreeOffer:
    """The target opened the tree; the payload's offers say what it already holds."""

    sid: str


@dataclass(frozen=True, slots=True)
class Checking:
    """Still digesting: the target what it holds (it owes its offer), or the sender what
    the targets offered (it owes the plan)."""

    sid: str


@dataclass(frozen=True, slots=True)
class TreePlan:
    """The stream will be ``size`` bytes; the payload is this target's plan."""

    sid: str
    size: int


@dataclass(frozen=True, slots=True)
class TreeInfo:
    """The RID is a tree: its name, resume key, file count, stream and manifest sizes."""

    rid: str
    name: str
    key: str
    files: int
    size: int
    manifest_size: int


@dataclass(frozen=True, slots=True)
class MetaRequest:
    """Send ``length`` bytes at ``offset`` of the tree's ``section``."""

    rid: str
    section: Section
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class MetaData:
    """Bytes of ``section`` at ``offset``, in the message's one payload frame."""

    rid: str
    section: Section
    offset: int


@dataclass(frozen=True, slots=True)
class RangeDigestRequest:
    """What is the digest of the stream's ``length`` bytes at ``offset``?"""

    rid: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class RangeDigest:
    """The digest of the stream's ``length`` bytes at ``offset``."""

    rid: str
    offset: int
    length: int
    digest: str


Message = Union[Open, Chunk, End, Abort, Accepted, Acked, Committed, Failed,
                InfoRequest, FileInfo, PrefixRequest, PrefixDigest, ChunkRequest, ChunkData,
                MarkReport, DigestRequest, FileDigest, DoneReport, Refusal,
                TreeOpen, TreeOffer, Checking, TreePlan, TreeInfo, MetaRequest, MetaData,
                RangeDigestRequest, RangeDigest]


#: Each kind's name on the wire and its class.
KINDS: dict[str, type] = {
    "open": Open, "chunk": Chunk, "end": End, "abort": Abort, "accepted": Accepted,
    "acked": Acked, "committed": Committed, "failed": Failed,
    "info?": InfoRequest, "info": FileInfo, "prefix?": PrefixRequest, "prefix": PrefixDigest,
    "chunk?": ChunkRequest, "data": ChunkData, "mark": MarkReport, "digest?": DigestRequest,
    "digest": FileDigest, "report": DoneReport, "refusal": Refusal,
    "tree": TreeOpen, "offer": TreeOffer, "checking": Checking, "plan": TreePlan,
    "tree-info": TreeInfo, "meta?": MetaRequest, "meta": MetaData,
    "range?": RangeDigestRequest, "range": RangeDigest,
}
#: Each class's wire name and field names, for encode.
_LAYOUT: dict[type, tuple[str, tuple[str, ...]]] = {
    cls: (tag, tuple(f.name for f in fields(cls))) for tag, cls in KINDS.items()}


def encode(message: Message) -> list[Any]:
    """The wire body of ``message`` (msgpack-able; enums go as their values)."""
    tag, names = _LAYOUT[type(message)]
    return [tag, *(_plain(getattr(message, name)) for name in names)]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


__all__ = ["KINDS", "Abort", "Accepted", "Acked", "Checking", "ChunkData", "ChunkRequest",
           "Chunk", "Committed", "DigestRequest", "DoneReport", "End", "Failed", "FileDigest",
           "FileInfo", "InfoRequest", "MarkReport", "Message", "MetaData", "MetaRequest",
           "Open", "PrefixDigest", "PrefixRequest", "RangeDigest", "RangeDigestRequest",
           "Refusal", "Section", "Status", "TreeInfo", "TreeOffer", "TreeOpen", "TreePlan",
           "encode"]
