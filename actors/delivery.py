"""How messages reach an actor's mailbox, and how its answers travel back.

A site hands each message to an actor as a :class:`Delivery` in a pykka envelope (or
several as one :class:`Batch`). An :class:`~actors.actor.Actor` unwraps it, so that
``on_receive`` gets the message exactly as sent while ``self.sender`` and
``self.payload`` say who sent it and carry its raw payload frames. Any other pykka
actor gets the message itself, one envelope each. The answer to an ask travels back
through a pykka ``Future`` whose ``set`` sends the reply (remote) or resolves the
asker's future (local): pykka's own actor loop calls it, so answering costs no extra
hop.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections import deque
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import pykka

# pykka hands replies to ``Envelope.reply_to``; building envelopes ourselves is the only
# way to give an ask a reply path that is not a blocking queue. pykka is pinned < 5.
from pykka._envelope import Envelope

from actors.errors import ActorError, UnknownActor
from actors.registry import Registry


class Acting(threading.local):
    """The address the current thread sends from: its actor's, or None for app code
    (a class default reads faster than a missing attribute's AttributeError)."""

    address: str | None = None


class Spawning(NamedTuple):
    """What an actor being spawned learns of its site (``Site.spawn`` sets it)."""

    host: Any  # the actors.Site; typed where it is read (actors.actor)
    name: str
    registry: Registry
    acting: Acting


#: Set by ``Site.spawn`` while the actor's ``__init__`` runs in the spawning thread.
SPAWNING: contextvars.ContextVar[Spawning | None] = contextvars.ContextVar(
    "actors_spawning", default=None
)


class Delivery(NamedTuple):
    """A message as the site hands it to an actor's mailbox (a named tuple: one per message)."""

    body: Any
    sender: str
    payload: tuple[Any, ...]
    answered: bool = False  # an ask: pykka hands an exception to the asker
    size: int = 0  # payload bytes from a peer, counted in the actor's Backlog


@dataclass(frozen=True, slots=True)
class Batch:
    """Several deliveries for one actor, handed over with one mailbox put."""

    items: deque[tuple[Delivery, Any]]  # (delivery, the future answering it, or None)


def deliver(ref: pykka.ActorRef[Any], delivery: Delivery | Batch,
            reply_to: pykka.Future[Any] | None, address: str) -> None:
    """Put a delivery in an actor's mailbox, with the future that carries its answer.

    An actor that does not unwrap deliveries (a plain pykka actor) gets each message
    as sent, in an envelope of its own.

    Raises:
        UnknownActor: the actor has stopped.
    """
    if not ref.is_alive():
        raise UnknownActor(f"no actor at {address}")
    inbox = ref.actor_inbox
    if getattr(ref.actor_class, "unwraps_deliveries", False):
        inbox.put(Envelope(delivery, reply_to=reply_to))
    elif isinstance(delivery, Batch):
        for item, reply in delivery.items:
            inbox.put(Envelope(item.body, reply_to=reply))
    else:
        inbox.put(Envelope(delivery.body, reply_to=reply_to))


class LocalReply(pykka.Future[Any]):
    """Answers a local ask by resolving the asker's future directly."""

    def __init__(self, future: ConcurrentFuture[Any], address: str) -> None:
        super().__init__()
        self._future = future
        self._address = address

    def set(self, value: Any = None) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def set_exception(self, exc_info: Any = None) -> None:
        exc = (exc_info or sys.exc_info())[1]
        if self._future.done():
            return
        if isinstance(exc, pykka.ActorDeadError):
            error: Exception = UnknownActor(f"{self._address} stopped before answering")
        else:
            error = ActorError(type(exc).__name__, str(exc), self._address)
            error.__cause__ = exc
        self._future.set_exception(error)


class Replies(Protocol):
    """How answers to remote asks leave (the site's ``actors.dispatch.Dispatcher``)."""

    def send_reply(self, peer: str, corr: int, address: str, value: Any) -> None: ...

    def send_failure(self, peer: str, corr: int, address: str, kind: str, text: str,
                     by_actor: bool = False) -> None: ...


class RemoteReply(pykka.Future[Any]):
    """Answers a remote ask by sending REPLY or FAIL back through the site."""

    def __init__(self, replies: Replies, peer: str, corr: int, address: str) -> None:
        super().__init__()
        self._replies = replies
        self._peer = peer
        self._corr = corr
        self._address = address

    def set(self, value: Any = None) -> None:
        self._replies.send_reply(self._peer, self._corr, self._address, value)

    def set_exception(self, exc_info: Any = None) -> None:
        exc = (exc_info or sys.exc_info())[1]
        if isinstance(exc, pykka.ActorDeadError):
            self.fail("UnknownActor", f"{self._address} stopped before answering")
        else:  # the actor's own exception: the asker gets an ActorError, as a local one does
            self._replies.send_failure(self._peer, self._corr, self._address,
                                       type(exc).__name__, str(exc), by_actor=True)

    def fail(self, kind: str, text: str) -> None:
        """Answer with the runtime's error ``kind`` (an ``actors.errors`` class name)."""
        self._replies.send_failure(self._peer, self._corr, self._address, kind, text)
