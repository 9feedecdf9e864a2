"""Delivering the messages a read batch brought in, one mailbox put per actor.

The I/O thread reads up to a batch of messages from a socket at a time. Putting
each into a pykka mailbox costs a lock and a wake-up; handing an actor everything
the batch holds for it in one :class:`Batch` costs that once. Order is kept: a batch
holds an actor's messages in arrival order, and batches go out in order. The payload
bytes handed to each actor are added to its ``actors.backlog.Backlog``, and a peer's
message whose payload would take it (or the site) past its bound of payload waiting
unhandled is refused instead (``actors.backlog.Waiting``).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from actors.backlog import Waiting
from actors.codec import Header, Kind
from actors.delivery import Batch, Delivery, RemoteReply, Replies, deliver
from actors.errors import UnknownActor
from actors.options import SiteOptions
from actors.ratelog import LogLimit
from actors.registry import Registry

log = logging.getLogger(__name__)

_ASK = Kind.ASK
#: Builds a named tuple without the Python-level ``__new__`` it would run per message.
_new = tuple.__new__


class Inbound:
    """Collects a read batch's deliveries per local actor; runs on the I/O thread only."""

    def __init__(self, site_name: str, options: SiteOptions, registry: Registry,
                 replies: Replies) -> None:
        self._site_name = site_name
        self._registry = registry
        self._replies = replies
        self._pending: dict[str, deque[tuple[Delivery, RemoteReply | None]]] = {}
        self._waiting = Waiting(options.max_peer_waiting_bytes, options.max_waiting_bytes)
        self._log = LogLimit(log)

    def add(self, peer: str, header: Header, payload: list[Any]) -> None:
        """Queue a TELL or ASK for its actor until :meth:`flush`."""
        is_ask = header.kind is _ASK
        reply = None
        if is_ask:
            reply = RemoteReply(self._replies, peer, header.corr,
                                f"{self._site_name}/{header.to}")
        if payload:
            frames = tuple(f.buffer for f in payload)
            size = sum(map(len, payload))
            if not self._waiting.admit(peer, size):
                self._refuse_payload(peer, header, reply, size)
                return
        else:
            frames, size = (), 0
        delivery = _new(Delivery, (header.body, header.sender, frames, is_ask, size))
        items = self._pending.get(header.to)
        if items is None:  # a deque: a Batch hands it to the actor as is
            items = self._pending[header.to] = deque()
        items.append((delivery, reply))

    def flush(self) -> None:
        """Hand every actor what the batch brought for it."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for name, items in pending.items():
            ref = self._registry.get(name)
            address = f"{self._site_name}/{name}"
            try:
                if ref is None:
                    raise UnknownActor(f"no actor at {address}")
                self._count(ref, items)
                if len(items) == 1:
                    deliver(ref, items[0][0], items[0][1], address)
                else:
                    deliver(ref, Batch(items), None, address)
            except UnknownActor as err:
                self._refuse(items, err)

    def _count(self, ref: Any, items: deque[tuple[Delivery, RemoteReply | None]]) -> None:
        """Add the payload bytes handed to ``ref`` to its Backlog (before they can be
        handled, so the count never runs below zero), noting whose they are."""
        backlog = None
        for delivery, _reply in items:
            if delivery.size:
                backlog = backlog or self._registry.backlog(ref)
                self._waiting.delivered(ref, backlog, _site_of(delivery.sender), delivery.size)

    def settle(self) -> None:
        """Count what actors have handled as no longer waiting (periodically)."""
        self._waiting.settle()

    def _refuse(self, items: deque[tuple[Delivery, RemoteReply | None]],
                err: UnknownActor) -> None:
        for delivery, reply in items:
            if delivery.size:
                self._waiting.release(_site_of(delivery.sender), delivery.size)
            if reply is not None:
                reply.fail("UnknownActor", str(err))
            else:
                self._log.warning("site %s: tell from %s dropped: %s", self._site_name,
                                  delivery.sender, err)

    def _refuse_payload(self, peer: str, header: Header, reply: RemoteReply | None,
                        size: int) -> None:
        """A message whose payload would pass the bounds of what may wait unhandled."""
        text = (f"site {self._site_name} holds too much payload from {peer} not yet handled "
                f"({self._waiting.by_peer.get(peer, 0) >> 20} MiB; {self._waiting.total >> 20} "
                f"MiB from all): send with a window of acks")
        if reply is not None:
            reply.fail("MailboxFull", text)
        else:
            self._log.warning("site %s: tell of %d bytes from %s to %s dropped: %s",
                              self._site_name, size, header.sender, header.to, text)


def _site_of(sender: str) -> str:
    """The site of a sender address (the I/O thread checked it is the peer's)."""
    return sender.partition("/")[0]
