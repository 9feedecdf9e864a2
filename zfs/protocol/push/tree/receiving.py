"""What an inbound tree can be in, what its open says, and what the receiver asks its
shell to do.

The states and commands of :class:`~zfs.protocol.push.tree.receiver.TreeReceiver` (see
its module for the lifecycle), apart from its rules: the shell
(``zfs.push.tree.receiver``) carries the commands out and needs their shapes, not the
rules that choose them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from zfs.protocol.errors import Failure
from zfs.protocol.states import Transitions
from zfs.protocol.tree.layout import Layout, Offer
from zfs.protocol.tree.manifest import Manifest


class TreeStreamState(enum.Enum):
    """Where an inbound tree is in its lifecycle (it is forgotten when it ends)."""

    PREPARING = "preparing"
    OFFERED = "offered"
    RECEIVING = "receiving"
    COMMITTING = "committing"


TREE_STREAM_TRANSITIONS: Transitions[TreeStreamState] = {
    TreeStreamState.PREPARING: frozenset({TreeStreamState.OFFERED}),
    TreeStreamState.OFFERED: frozenset({TreeStreamState.RECEIVING}),
    TreeStreamState.RECEIVING: frozenset({TreeStreamState.COMMITTING}),
    TreeStreamState.COMMITTING: frozenset(),
}

Key = tuple[str, str]   # (sender address, stream id)


@dataclass(frozen=True, slots=True)
class Opening:
    """What a tree's open says (the wire message's fields, the manifest decoded apart)."""

    name: str
    key: str
    files: int
    size: int
    chunk_size: int
    channel: str
    topic: str
    no_clobber: bool
    check_existing: bool
    window_chunks: int = 1


@dataclass(frozen=True, slots=True)
class Prepare:
    """Open the staging folder, gather what is held, digest it; then call ``prepared``."""

    key: Key
    manifest: Manifest
    opening: Opening


@dataclass(frozen=True, slots=True)
class SendOffer:
    """Tell the sender the tree is open and what we hold."""

    key: Key
    offers: tuple[Offer, ...]


@dataclass(frozen=True, slots=True)
class SendChecking:
    """Tell the sender we are still digesting."""

    key: Key


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """Check the room, make the folders, links and empty files, drop what is not kept;
    then call ``plan_applied`` (or ``io_failed``)."""

    key: Key
    layout: Layout
    own: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write the current message's payload, the stream's bytes at ``offset``."""

    key: Key
    offset: int


@dataclass(frozen=True, slots=True)
class SendAck:
    """Tell the sender ``received`` bytes of the stream are written."""

    key: Key
    received: int


@dataclass(frozen=True, slots=True)
class CommitTree:
    """Check the stream's digest, set modes and times, put the tree in place."""

    key: Key
    digest: str


@dataclass(frozen=True, slots=True)
class SendDone:
    """Tell the sender the tree is committed."""

    key: Key


@dataclass(frozen=True, slots=True)
class SendError:
    """Tell the sender its tree failed here (or is refused: ``Failure.REFUSED``)."""

    key: Key
    failure: Failure
    reason: str


@dataclass(frozen=True, slots=True)
class Release:
    """Close the tree's files and forget it; its staging folder stays for a resume."""

    key: Key
    reason: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Delete the tree's staging folder and forget it (its bytes are wrong)."""

    key: Key
    reason: str


TreeReceiverCommand = Union[Prepare, SendOffer, SendChecking, ApplyPlan, WriteChunk, SendAck,
                            CommitTree, SendDone, SendError, Release, Discard]
