"""A recipient's serving side in pull with peers: one :class:`Seeder` per RID it holds.

It answers other recipients' ``Get`` with chunks this site has verified and written,
while its own download runs and, by default, until the owner says the share ended.
It holds no chunk itself: it names one for the shell to read and send, and at most
``max_uploads`` are being read at once, so serving peers costs a bounded amount of
memory whatever the number of peers. Anything it cannot serve is declined at once, so
the requester goes back to the owner instead of waiting::

    SERVING --share_ended / stopped--> STOPPED   (every Get declined)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm.wire import Decline, Send


class SeederState(enum.Enum):
    """Whether a seeder still serves."""

    SERVING = "serving"
    STOPPED = "stopped"


SEEDER_TRANSITIONS: dict[SeederState, tuple[SeederState, ...]] = {
    SeederState.SERVING: (SeederState.STOPPED,),
    SeederState.STOPPED: (),
}


@dataclass(frozen=True, slots=True)
class ReadPiece:
    """Read chunk ``index`` (``length`` bytes at ``offset``) for ``to``; call ``piece_read``."""

    to: str
    index: int
    offset: int
    length: int


SeederCommand = Union[Send, ReadPiece]


class Seeder:
    """Serves the chunks of one RID that this site holds, to the peers that ask.

    Args:
        rid: the file's reference; ``size``, ``chunk_size``: as the owner's Welcome said.
        max_uploads: chunks being read for peers at once; more asks are declined.
    """

    def __init__(self, rid: str, *, size: int, chunk_size: int, max_uploads: int = 4) -> None:
        if size < 0 or chunk_size < 1 or max_uploads < 1:
            raise LocalProtocolError("size >= 0, chunk_size >= 1, max_uploads >= 1")
        self.rid, self.size, self.chunk_size = rid, size, chunk_size
        self.total = -(-size // chunk_size)
        self.state = SeederState.SERVING
        self.served = 0                          # bytes handed to the shell to send
        self._max = max_uploads
        self._held = 0
        self._reading: set[tuple[str, int]] = set()

    def chunk_held(self, index: int) -> None:
        """This site verified and wrote chunk ``index``: it may be served from now on."""
        if not 0 <= index < self.total:
            raise LocalProtocolError(f"chunk {index} is not in the file")
        self._held |= 1 << index

    def all_held(self) -> None:
        """This site holds the whole file (a finished or resumed download)."""
        self._held = (1 << self.total) - 1

    def get_received(self, requester: str, index: object, now: float) -> list[SeederCommand]:
        """A peer asks for chunk ``index``."""
        why = self._refusal(requester, index)
        if why is not None:
            return [Send((requester,), Decline(self.rid, index if type(index) is int else -1,
                                               why))]
        assert isinstance(index, int)
        self._reading.add((requester, index))
        offset = index * self.chunk_size
        return [ReadPiece(requester, index, offset, min(self.chunk_size, self.size - offset))]

    def piece_read(self, requester: str, index: int, length: int,
                   now: float) -> list[SeederCommand]:
        """The shell read the chunk and sent it as a ``Piece`` with its payload."""
        if (requester, index) not in self._reading:
            raise LocalProtocolError(f"piece_read({requester}, {index}) without a ReadPiece")
        self._reading.discard((requester, index))
        self.served += length
        return []

    def read_failed(self, requester: str, index: int, reason: str,
                    now: float) -> list[SeederCommand]:
        """The shell could not read the chunk: decline, so the requester goes elsewhere."""
        self._reading.discard((requester, index))
        return [Send((requester,), Decline(self.rid, index, f"io: {reason}"))]

    def share_ended(self) -> None:
        """The owner ended the share (or our caller stopped serving): decline from now on."""
        if self.state is SeederState.SERVING:
            self._move(SeederState.STOPPED)

    def _move(self, new: SeederState) -> None:
        if new not in SEEDER_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"seeder cannot go from {self.state.name} to {new.name}")
        self.state = new

    def _refusal(self, requester: str, index: object) -> Union[str, None]:
        if self.state is SeederState.STOPPED:
            return "ended"
        if type(index) is not int or not 0 <= index < self.total:
            return "bad request"
        if not self._held >> index & 1:
            return "not held"
        if len(self._reading) >= self._max or (requester, index) in self._reading:
            return "busy"
        return None
