"""What every actor shell of zfs shares: one loop that carries out a core's commands.

A shell is an actor around a pure core (``zfs.protocol``): it turns what arrives (a
wire message, a tick, a peer event, the app's call) into a call of the core, and
carries out the commands the core answers with (read, write, send, call back). Each
shell lists both in two tables, message type to handler and command type to handler,
so the four shells share this one loop instead of four chains of ``isinstance``.

Also here: app callbacks, which must never break a transfer, and the exception a
:class:`~zfs.protocol.errors.Failure` raises where the app waits.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import actors
from zfs.errors import (FileChanged, IntegrityError, StreamRefused, TransactionExpired,
                        TransferAborted, UnknownReference, UnsafeName, ZfsError)
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError

log = logging.getLogger(__name__)

#: A handler of one message or command type; what it returns are the commands it caused.
Handler = Callable[[Any], Optional[Iterable[Any]]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AbortRequested:
    """Told to a transfer's actor by :meth:`Transfer.abort`."""


class Transfer(Future[T]):
    """A push or download under way: a future of its result that can also abort it.

    ``abort()`` stops the transfer soon (its targets or its owner are told) and the
    future then raises :class:`~zfs.errors.TransferAborted`; it does nothing once the
    transfer has ended.
    """

    def __init__(self) -> None:
        super().__init__()
        self._actor: actors.LocalRef | None = None

    def started(self, actor: actors.LocalRef) -> None:
        """Bind the handle to the actor doing the transfer (the API calls this)."""
        self._actor = actor

    def abort(self) -> None:
        """Ask the transfer to stop; its future then raises TransferAborted."""
        if self._actor is None or self.done():
            return
        try:
            self._actor.tell(AbortRequested())
        except actors.ActorsError:
            pass  # it ended meanwhile: its future says how


class Shell(actors.Actor):
    """An actor that drives a core: messages in, commands out.

    Subclasses fill ``self.receives`` (message type to handler: wire messages as
    :mod:`zfs.protocol.wire` decodes them, and local messages) and ``self.carries_out``
    (command type to handler) in ``__init__``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.receives: dict[type, Callable[[Any], Any]] = {}
        self.carries_out: dict[type, Handler] = {}

    def on_receive(self, message: Any) -> Any:
        if type(message) is list:  # a wire body: a peer's, until decode says it is ours
            try:
                message = wire.decode(message)
            except RemoteProtocolError as err:
                self.on_bad_message(message, err)
                return None
        handler = self.receives.get(type(message))
        if handler is None:
            log.debug("%s: ignored %s from %s", self.address, type(message).__name__,
                      self.sender)
            return None
        return handler(message)

    def on_bad_message(self, body: Any, error: RemoteProtocolError) -> None:
        """A peer sent a body that is no message of ours (a subclass may fail a stream)."""
        log.warning("%s: bad message from %s dropped: %s", self.address, self.sender, error)

    def run(self, commands: Iterable[Any]) -> None:
        """Carry out ``commands`` in order, then the commands they caused, in order."""
        run_commands(commands, self.carries_out)


def run_commands(commands: Iterable[Any], handlers: Mapping[type, Handler]) -> None:
    """Carry out ``commands`` in order; what a handler returns joins the end of the queue."""
    queue = deque(commands)
    while queue:
        command = queue.popleft()
        caused = handlers[type(command)](command)
        if caused:
            queue.extend(caused)


def run_callback(callback: Callable[..., Any], *args: Any) -> None:
    """Run an app callback; its errors are logged, never allowed to break a transfer."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - app code must not kill the actor
        log.exception("callback %r failed", callback)


def failure_error(failure: Failure, reason: str, site: str, note: str = "") -> ZfsError:
    """The exception a transfer that ended with ``failure`` raises where the app waits.

    Args:
        reason: what went wrong, in words.
        site: the site that caused it (a target, the owner, or our own).
        note: what the caller should know besides (appended, after "; ").
    """
    tail = f"; {note}" if note else ""
    if failure is Failure.UNKNOWN:
        return UnknownReference(f"{site}: no such RID{tail}")
    if failure is Failure.EXPIRED:
        return TransactionExpired(f"{site}: the transaction of this RID expired or ended{tail}")
    if failure is Failure.UNSAFE_NAME:
        return UnsafeName(f"{site}: {reason}{tail}")
    if failure is Failure.ABORTED:
        return TransferAborted(f"aborted by the caller{tail}", site)
    cls = _ERRORS.get(failure, TransferAborted)
    return cls(f"{failure.value}: {reason}{tail}", site)


_ERRORS: dict[Failure, type[TransferAborted]] = {
    Failure.REFUSED: StreamRefused,
    Failure.INTEGRITY: IntegrityError,
    Failure.CHANGED: FileChanged,
}
