"""What the owner of a swarm keeps per recipient: its state, holdings and leases.

The record apart from :class:`~zfs.protocol.swarm.tracker.Tracker`, whose rules decide
what goes in it. Member lifecycle::

    Join --> JOINED --first Want--> FETCHING --Leave(ok)--> SEEDING (serves until closed)
             any --site lost, Leave(not ok)--> forgotten
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

from zfs.protocol.errors import LocalProtocolError


class MemberState(enum.Enum):
    """Where a recipient's download is, as the owner sees it."""

    JOINED = "joined"
    FETCHING = "fetching"
    SEEDING = "seeding"


MEMBER_TRANSITIONS: dict[MemberState, tuple[MemberState, ...]] = {
    MemberState.JOINED: (MemberState.FETCHING,),
    MemberState.FETCHING: (MemberState.SEEDING,),
    MemberState.SEEDING: (),
}


@dataclass(slots=True)
class Member:
    """What the tracker knows of one recipient of the RID, kept small on purpose.

    Two bit sets of the chunks (held, under way), at most a window of leases and a
    bounded avoid set: a bit per chunk plus a constant, so a swarm of thousands costs
    the owner little. The counters mirror the leases, for the tracker's slot checks.
    """

    address: str
    endpoint: Optional[str]
    window: int
    state: MemberState = MemberState.JOINED
    have: int = 0                          # bit set: verified and written
    asked: int = 0                         # bit set: handed out, not reported
    leases: dict[int, Lease] = field(default_factory=dict)
    uploads: int = 0                       # leases pointing at it as the source
    owner_pieces: int = 0                  # leases with the owner as the source
    avoid: set[str] = field(default_factory=set)
    unreachable_by: set[str] = field(default_factory=set)
    owner_only: bool = False
    banned: bool = False
    heard: float = 0.0                     # its last Join or Want

    def move(self, new: MemberState) -> None:
        """Go to ``new``, if the lifecycle allows it.

        Raises:
            LocalProtocolError: not a legal move (a bug in the tracker).
        """
        if new not in MEMBER_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"member cannot go from {self.state.name} to {new.name}")
        self.state = new


@dataclass(slots=True)
class Lease:
    """One chunk handed out to a member: from whom, and until when it counts.

    It is freed on the member's report or at ``deadline``, whichever is first, so a
    lost message costs time, never a stuck upload slot.
    """

    source: Optional[Member]             # the peer, or None: the owner
    deadline: float
