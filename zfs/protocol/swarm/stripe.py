"""One stripe's part at one relay: its parent, its children, and what each owes the other.

A :class:`~zfs.protocol.swarm.relay.Relay` holds one :class:`Leg` per stripe it was
opened for. The leg counts the stripe's chunks received from the parent and written
here, keeps each child's ack, accept and done, and says who is late: a child that owes
us an answer (it has not accepted, not acked all we passed on, or, once the End is
known, not said done) and has been silent since we last started its clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(slots=True)
class Leg:
    """The relay's part in one stripe: the parent above, the children below."""

    parent: str
    children: tuple[str, ...]
    chunks: int                            # chunks this stripe has in the whole file
    received: int = 0                      # chunks received from the parent, in order
    written: int = 0                       # chunks written here, in order
    acked_up: int = 0                      # the count in our last Ack to the parent
    accept_sent: bool = False
    done_sent: bool = False
    sent_up_at: float = 0.0                # when we last said something to the parent
    accepted: set[str] = field(default_factory=set)
    acks: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    heard: dict[str, float] = field(default_factory=dict)   # each child's last word

    @classmethod
    def opened(cls, parent: str, children: tuple[str, ...], chunks: int, now: float) -> "Leg":
        """A leg just opened: every child's clock starts now."""
        return cls(parent, children, chunks, sent_up_at=now,
                   acks={c: 0 for c in children}, heard={c: now for c in children})

    @property
    def complete(self) -> bool:
        """True once every chunk of the stripe has arrived from the parent."""
        return self.received == self.chunks

    def ack_count(self) -> int:
        """What we may ack up: chunks written here and acked by every child."""
        return min([self.written, *self.acks.values()])

    def owes(self, child: str, ending: bool) -> bool:
        """True while ``child`` owes us an answer (``ending``: the End went down)."""
        return child not in self.accepted or self.acks[child] < self.received \
            or (ending and child not in self.done)

    def start_clocks(self, now: float, ending: bool) -> None:
        """Start the clock of children that owed nothing until what we send them next."""
        for child in self.children:
            if not self.owes(child, ending):
                self.heard[child] = now

    def late(self, now: float, timeout: float, ending: bool) -> Optional[str]:
        """Return a child that owes an answer and was silent for ``timeout``, or None."""
        for child in self.children:
            if self.owes(child, ending) and now - self.heard[child] > timeout:
                return child
        return None

    def owes_up(self, finishing: bool) -> bool:
        """True while the parent waits on something that waits on our side only.

        ``finishing``: the End is known and every chunk of every stripe arrived. Not
        while we wait for data from above: then silence is the truth, and whoever waits
        for us times us out (a chunk lost on its way to us makes us the culprit, which
        is where the data stopped).
        """
        return not self.accept_sent or self.acked_up < self.received \
            or (finishing and not self.done_sent)
