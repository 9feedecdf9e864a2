"""What an ``Open`` of a swarm push must be before a target takes it.

Two kinds of answer, as in plain push: an open that breaks the protocol (a subtree that
does not start with us, that loops, opens that disagree) fails the push naming the
parent that sent it; an open this target does not want (no registration for its
channel and topic, an unsafe name, over the registration's limits) is refused, naming
this target, before anything is created.
"""

from __future__ import annotations

from typing import Collection, Optional, Protocol

from zfs.protocol.names import name_problem
from zfs.protocol.swarm.wire import Open

MAX_MEMBERS = 1 << 20      # no subtree is larger than this many targets


class StreamLimits(Protocol):
    """What a registration accepts (plain push's ``Limits`` has these fields)."""

    @property
    def max_size(self) -> int:
        """The largest file taken, in bytes."""

    @property
    def max_chunk_size(self) -> int:
        """The largest chunk taken, in bytes."""

    @property
    def inactivity_timeout(self) -> float:
        """Seconds without a word from upstream before the stream is given up."""


def open_problem(me: str, sender: str, msg: Open, first: Optional[Open],
                 opened: Collection[int]) -> Optional[str]:
    """Return why ``msg`` from ``sender`` breaks the protocol at ``me``, or None.

    Args:
        first: the first Open of this stream we took, if any.
        opened: the stripes already opened.
    """
    members = msg.members
    if not isinstance(members, tuple) or not 0 < len(members) <= MAX_MEMBERS \
            or members[0] != me or not all(isinstance(m, str) for m in members):
        return "an open whose subtree does not start with us"
    if me in members[1:] or sender in members:
        return "an open whose subtree loops"
    if type(msg.stripe) is not int or msg.stripe in opened:
        return f"stripe {msg.stripe!r} opened twice"
    if type(msg.fanout) is not int or type(msg.stripes) is not int \
            or not 0 <= msg.stripe < msg.stripes or msg.fanout < 1:
        return f"bad stripe {msg.stripe!r} of {msg.stripes!r} or fanout {msg.fanout!r}"
    if type(msg.chunk_timeout) not in (int, float) or not msg.chunk_timeout > 0:
        return f"bad chunk timeout {msg.chunk_timeout!r}"
    if first is not None and _terms(msg) != _terms(first):
        return "opens of one stream disagree"
    return None


def refusal(msg: Open, limits: Optional[StreamLimits]) -> Optional[str]:
    """Return why this target does not take the stream at all, or None."""
    if limits is None:
        return "no receiver registered for this channel/topic"
    problem = name_problem(msg.name)
    if problem is not None:
        return problem
    if type(msg.size) is not int or not 0 <= msg.size <= limits.max_size:
        return f"size {msg.size!r} is not within 0..{limits.max_size}"
    if type(msg.chunk_size) is not int or not 0 < msg.chunk_size <= limits.max_chunk_size:
        return f"chunk size {msg.chunk_size!r} is not within 1..{limits.max_chunk_size}"
    return None


def _terms(msg: Open) -> tuple[object, ...]:
    """What every Open of one stream must agree on."""
    return (msg.stream, msg.name, msg.size, msg.chunk_size, msg.stripes, msg.fanout,
            msg.chunk_timeout, msg.channel, msg.topic)
