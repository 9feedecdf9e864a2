"""The swarm's messages, as the cores build and read them; the shells encode them.

Push (down the trees from the sender, up them from the targets)::

    sender/parent                                child
    Open(stripe, members, ...)          ->               its subtree in preorder
                                        <-  Accept(stripe)    it opened (not its subtree)
    Chunk(index) + payload              ->               stripe index % stripes
                                        <-  Ack(stripe, count)    min(written, subtree)
    End(size, digest)                   ->
                                        <-  Done(stripe)      it and its subtree committed
                                        <-  Failed(culprit, kind, reason)
    Abort(reason)                       ->               discard, pass it down

Pull with peers (``rid`` names the shared file)::

    recipient                      owner                      peer
    Join(window)              ->
                              <-   Welcome(name, size, ...)
    Want(got, failed)         ->                              (reports; asks for more)
                              <-   Piece(index) + payload     (the owner serves), or
                              <-   Fetch(index, peer, endpoint)
    Get(index)                ------------------------------>
                              <------------------------------ Piece(index) + payload
                                                              or Decline(index, reason)
    GetDigests(page)          ->
                              <-   Digests(page, digests)     per-chunk, to check peers
    GetDigest                 ->
                              <-   Digest(digest)             the whole file, to commit
    Leave(ok, from_owner)     ->                              (bytes by source)
                              <-   Ended                      stop serving peers

Messages with a payload (``Chunk``, ``Piece``) carry the chunk as its own frame, never
inside the header. Failure kinds are spelled as push spells them, so a shell reports
one vocabulary whatever the transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

# Failure kinds of a swarm push (the same words as plain push's).
REFUSED = "refused"        # a target does not take this stream (registration, limits, name)
INTEGRITY = "integrity"    # size or digest differ at the end
PROTOCOL = "protocol"      # a message that breaks the exchange
IO = "io"                  # a target could not create or write its file
EXPIRED = "expired"        # no activity from upstream within the inactivity timeout
TIMEOUT = "timeout"        # a child did not answer within chunk_timeout
LOST = "lost"              # the runtime reported a site down
SOURCE = "source"          # the sender's own source could not be read

# Why a recipient could not get a chunk from a peer (Want.failed).
BAD = "bad"                # the piece did not match its digest: never point at that peer again
UNREACHABLE = "unreachable"  # a site cannot open a link to a peer (push: a relay to a child)
GONE = "gone"              # the link to the peer went down
SLOW = "slow"              # no answer within the request timeout
DECLINED = "declined"      # the peer said no (busy, does not hold it, share ended)
PEER_FAILURES = (BAD, UNREACHABLE, GONE, SLOW, DECLINED)


# ---- push ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Open:
    """Open a swarm push at a target and give it its subtree of one stripe.

    ``members`` is the receiver's subtree in preorder, the receiver first; it splits
    the rest among ``fanout`` children (:func:`zfs.protocol.swarm.plan.children`).
    """

    stream: str
    stripe: int
    members: tuple[str, ...]
    name: str
    size: int
    chunk_size: int
    stripes: int
    fanout: int
    chunk_timeout: float
    channel: str
    topic: str


@dataclass(frozen=True, slots=True)
class Accept:
    """The sender of this opened the stream for ``stripe`` (its subtree answers later)."""

    stream: str
    stripe: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """Chunk ``index`` of the file; its bytes follow as the payload frame."""

    stream: str
    index: int


@dataclass(frozen=True, slots=True)
class Ack:
    """The sender and its whole subtree hold the first ``count`` chunks of ``stripe``.

    Sent again unchanged as a keepalive while its parent waits, so that only the
    silent target itself is timed out, not every ancestor above it.
    """

    stream: str
    stripe: int
    count: int


@dataclass(frozen=True, slots=True)
class End:
    """The file ended at ``size`` bytes with whole-file ``digest``: commit when complete."""

    stream: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Done:
    """The sender of this and its whole subtree of ``stripe`` committed the file."""

    stream: str
    stripe: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The push failed at ``culprit`` (a target, or a link to it); pass it up, abort below."""

    stream: str
    culprit: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Abort:
    """The push is over without success: discard the partial file, pass it down."""

    stream: str
    reason: str


PushMessage = Union[Open, Accept, Chunk, Ack, End, Done, Failed, Abort]


@dataclass(frozen=True, slots=True)
class Send:
    """Command: send ``message`` to each of ``to``.

    A ``Chunk`` or ``Piece`` carries as its payload the chunk the core is handling: the
    one just received (to pass it on) or just read (the sender's, the owner's).
    """

    to: tuple[str, ...]
    message: Union[PushMessage, "PullMessage"]


# ---- pull with peers -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Join:
    """Start (or resume) a swarm download; ``endpoint`` is where we serve peers, if anywhere."""

    rid: str
    window: int
    endpoint: Optional[str]


@dataclass(frozen=True, slots=True)
class Welcome:
    """The file of ``rid``: name, size, resume key, chunk size and digests per page."""

    rid: str
    name: str
    size: int
    key: str
    chunk_size: int
    page_chunks: int


@dataclass(frozen=True, slots=True)
class Want:
    """Reports since the last Want, which free as many slots for more chunks.

    ``got``: chunks now verified and written. ``failed``: ``(index, peer, why)`` for
    each chunk a peer did not deliver, ``why`` one of :data:`PEER_FAILURES`. An empty
    Want is a nudge: the owner answers it with something, at least :class:`Wait`.
    """

    rid: str
    got: tuple[int, ...]
    failed: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True, slots=True)
class Fetch:
    """Get chunk ``index`` from ``peer``, which listens at ``endpoint``."""

    rid: str
    index: int
    peer: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to hand out now; more will come when a source frees up."""

    rid: str


@dataclass(frozen=True, slots=True)
class Rejoin:
    """The owner does not know this download (it restarted, or dropped us): Join again."""

    rid: str


@dataclass(frozen=True, slots=True)
class Get:
    """Ask a peer for chunk ``index`` (the owner pointed us at it)."""

    rid: str
    index: int


@dataclass(frozen=True, slots=True)
class Piece:
    """Chunk ``index`` of the shared file; its bytes follow as the payload frame."""

    rid: str
    index: int


@dataclass(frozen=True, slots=True)
class Decline:
    """A peer will not serve chunk ``index`` (busy, not held, share ended, bad request)."""

    rid: str
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class GetDigests:
    """Ask the owner for page ``page`` of the per-chunk digest table."""

    rid: str
    page: int


@dataclass(frozen=True, slots=True)
class Digests:
    """The digests of chunks ``page * page_chunks`` onwards, one per chunk."""

    rid: str
    page: int
    digests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetDigest:
    """Ask the owner for the whole-file digest (every chunk is written)."""

    rid: str


@dataclass(frozen=True, slots=True)
class Digest:
    """The whole-file digest."""

    rid: str
    digest: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Our download ended (``ok`` or not); ``from_owner`` bytes came from the owner.

    ``seeds``: a complete download goes on serving peers until the share ends.
    """

    rid: str
    ok: bool
    from_owner: int
    from_peers: int
    seeds: bool = True


@dataclass(frozen=True, slots=True)
class Ended:
    """The share of ``rid`` ended: stop serving it to peers."""

    rid: str


PullMessage = Union[Join, Welcome, Want, Fetch, Wait, Rejoin, Get, Piece, Decline, GetDigests,
                    Digests, GetDigest, Digest, Leave, Ended]
