"""The base class of actors hosted by a site: messages as sent, with sender and payload.

A site delivers each message as an ``actors.delivery.Delivery``; :class:`Actor`
unwraps it, so ``on_receive`` gets the message exactly as in pykka, while
``self.sender`` and ``self.payload`` tell who sent it and carry its raw payload
frames. Any pykka actor can be spawned on a site too; it gets the messages alone.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import pykka

from actors.backlog import Backlog
from actors.delivery import SPAWNING, Acting, Batch, Delivery
from actors.ratelog import LogLimit
from actors.site import Site

log = logging.getLogger(__name__)


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
    #: Read by ``actors.delivery.deliver``: this class unwraps Delivery and Batch.
    unwraps_deliveries = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spawning = SPAWNING.get()
        if spawning is None:
            raise TypeError(f"start {type(self).__name__} with site.spawn(...), not start()")
        self.site: Site = spawning.host
        self.name: str = spawning.name
        self.address = f"{self.site.name}/{self.name}"
        self._acting: Acting = spawning.acting
        self._backlog = Backlog(self.name)
        self._failure_log = LogLimit(log)  # a peer can make every message it sends fail
        # Known by name before its thread starts, so answers to what on_start sends
        # find it.
        spawning.registry.add(self.name, self.actor_ref, self._backlog)
        self.sender: str | None = None
        self.payload: tuple[Any, ...] = ()

    @staticmethod
    def _create_actor_inbox() -> Any:
        # pykka's default inbox is a queue.Queue (a lock and two conditions in Python);
        # SimpleQueue does the same put/get/empty in C, several times cheaper per message.
        return queue.SimpleQueue()

    def _actor_loop_setup(self) -> None:
        # Everything this actor's thread sends, from on_start on, is from this actor.
        self._acting.address = self.address
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
            self._failure_log.error("%s failed on a message from %s; going on",
                                    self.address, delivery.sender, exc_info=True)
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
