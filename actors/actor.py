"""The base class of actors hosted by a site, and how messages reach them.

A site delivers each message as a :class:`Delivery` in a pykka envelope. The
:class:`Actor` base class unwraps it, so ``on_receive`` gets the message exactly as
in pykka, while ``self.sender`` and ``self.payload`` tell who sent it and carry its
raw payload frames. The answer to an ask travels back through a pykka ``Future``
whose ``set`` sends the reply (remote) or resolves the asker's future (local):
pykka's own actor loop calls it, so answering costs no extra hop.
"""

from __future__ import annotations

import contextvars
from collections import deque
import logging
import queue
import sys
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pykka

# pykka hands replies to ``Envelope.reply_to``; building envelopes ourselves is the only
# way to give an ask a reply path that is not a blocking queue. pykka is pinned < 5.
from pykka._envelope import Envelope

from actors.backlog import Backlog
from actors.errors import ActorError, UnknownActor

if TYPE_CHECKING:
    from actors.site import Site

log = logging.getLogger(__name__)

#: Set by ``Site.spawn`` while the actor's ``__init__`` runs in the spawning thread.
_SPAWNING: contextvars.ContextVar[tuple[Site, str] | None] = contextvars.ContextVar(
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


class Actor(pykka.ThreadingActor):
    """A pykka actor hosted by a :class:`~actors.site.Site` under a name.

    Start it with ``site.spawn(MyActor, "name", ...)``. Inside ``on_receive``,
    ``self.sender`` is the sender's address (``"site/actor"``, or ``"site"`` for app
    code) and ``self.payload`` the message's raw payload frames as memoryviews.
    """

    # The site owns every actor's lifetime: Site.stop stops its actors with a bounded
    # wait and logs one that would not stop. Such an actor, or one a program never
    # stopped, must not hold the process open forever after main has returned.
    use_daemon_thread = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spawning = _SPAWNING.get()
        if spawning is None:
            raise TypeError(f"start {type(self).__name__} with site.spawn(...), not start()")
        self.site, self.name = spawning
        self.address = f"{self.site.name}/{self.name}"
        # Known by name before its thread starts, so answers to what on_start sends
        # find it.
        self.site._actors[self.name] = self.actor_ref
        self._backlog = Backlog(self.name)
        self.site._backlogs[self.actor_ref] = self._backlog
        self.sender: str | None = None
        self.payload: tuple[Any, ...] = ()

    @staticmethod
    def _create_actor_inbox() -> Any:
        # pykka's default inbox is a queue.Queue (a lock and two conditions in Python);
        # SimpleQueue does the same put/get/empty in C, several times cheaper per message.
        return queue.SimpleQueue()

    def _actor_loop_setup(self) -> None:
        # Everything this actor's thread sends, from on_start on, is from this actor.
        self.site._acting.address = self.address
        super()._actor_loop_setup()

    def _handle_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Delivery:
            return self._receive(message)
        if kind is Batch:
            self._receive_batch(message)
            return None
        return super()._handle_receive(message)

    def _receive(self, delivery: Delivery) -> Any:
        self.sender, self.payload = delivery.sender, delivery.payload
        try:
            return self.on_receive(delivery.body)
        except Exception:
            if delivery.answered:
                raise
            # pykka stops an actor whose tell raised; a message from a peer must not
            # be able to do that, so log it and go on with the next message.
            log.exception("%s failed on a message from %s; going on", self.address,
                          delivery.sender)
            return None
        finally:
            self.sender, self.payload = None, ()
            if delivery.size:
                self._backlog.handled += delivery.size

    def _receive_batch(self, batch: Batch) -> None:
        """Handle each delivery in order, answering asks as pykka's loop would."""
        items = batch.items
        while items:
            delivery, reply = items.popleft()
            try:
                answer = self._receive(delivery)
            except Exception:
                if reply is not None:
                    reply.set_exception()
                continue
            if reply is not None:
                reply.set(answer)


def deliver(ref: pykka.ActorRef[Any], delivery: Delivery | Batch, reply_to: pykka.Future[Any] | None,
            address: str) -> None:
    """Put a delivery in an actor's mailbox, with the future that carries its answer.

    Raises:
        UnknownActor: the actor has stopped.
    """
    if not ref.is_alive():
        raise UnknownActor(f"no actor at {address}")
    ref.actor_inbox.put(Envelope(delivery, reply_to=reply_to))


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
