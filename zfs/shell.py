"""What every actor shell of zfs shares: one loop that carries out a core's commands.

A shell is an actor around a pure core (``zfs.protocol``): it turns what arrives (a
wire message, a tick, a peer event, the app's call) into a call of the core, and
carries out the commands the core answers with (read, write, send, call back). Each
shell lists both in two tables, message type to handler and command type to handler,
so the four shells share this one loop instead of four chains of ``isinstance``.

Also here: app callbacks, which must never break a transfer, the exception a
:class:`~zfs.protocol.errors.Failure` raises where the app waits, and :class:`Paced`,
which holds back the commands that put bytes on the link when a shell has a cap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import pykka

import actors
from zfs.errors import (FileChanged, InsecureLink, IntegrityError, StreamRefused,
                        TransactionExpired, TransferAborted, UnknownReference, UnsafeName,
                        ZfsError)
from zfs.pace import Pacer
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.inbound import decode

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

    def start(self, site: actors.Site, actor_class: type[pykka.Actor], name: str,
              args: tuple[Any, ...], begin: Any) -> Transfer[T]:
        """Spawn the actor that does the transfer (``args``, then this handle, are its
        arguments), bind to it, tell it ``begin``; return this handle.

        ``begin`` goes only once spawn has returned: before that the site may not know
        the actor's name yet and would drop a peer's first answer; and what the actor
        sends must leave from its ``on_receive``, where the site sends it as from the
        actor's own address.
        """
        ref = site.spawn(actor_class, name, *args, self)
        self.started(ref)
        ref.tell(begin)
        return self

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
    :func:`zfs.protocol.inbound.decode` reads them, and local messages) and
    ``self.carries_out`` (command type to handler) in ``__init__``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.receives: dict[type, Callable[[Any], Any]] = {}
        self.carries_out: dict[type, Handler] = {}

    def on_receive(self, message: Any) -> Any:
        if type(message) is list:  # a wire body: a peer's, until decode says it is ours
            try:
                message = decode(message)
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


def check_secure(site: actors.Site, secure: bool) -> None:
    """Refuse a transfer asked to be ``secure`` from a site whose links are not encrypted.

    Raises:
        InsecureLink: the site was started without the curve option.
    """
    if secure and not site.is_secure:
        raise InsecureLink(f"site {site.name} has no encrypted links (no curve option)")


def tell_or_log(site: actors.Site, address: str, body: Any,
                payload: tuple[Any, ...] = ()) -> bool:
    """Tell ``body`` (a wire body) to ``address``; False, logged, if the runtime cannot.

    A shell's reply to a site that is gone is not an error of the shell: the core
    learns of the loss from the runtime (``PeerDown``) or its own timeouts.
    """
    try:
        site.tell(address, body, payload=payload)
    except actors.ActorsError as err:
        kind = body[0] if isinstance(body, list) and body else type(body).__name__
        log.debug("%s to %s not sent: %s", kind, address, err)
        return False
    return True


def ask_for(actor: pykka.ActorRef[Any], site: actors.Site, address: str, body: Any,
            timeout: float, answered: Callable[[Future[Any]], Any]) -> None:
    """Ask ``address`` without blocking ``actor``; the done future comes back to it, as a
    message ``answered(future)``, whatever the answer (or the failure) was.

    An ask, not a tell, where a site without the actor must say so at once.

    Raises:
        actors.ActorsError: the ask could not be sent (the site is unknown or lost).
    """
    future = site.ask(address, body, timeout=timeout, block=False)

    def forward(done: Future[Any]) -> None:
        try:
            actor.tell(answered(done))
        except pykka.ActorDeadError:
            pass
    future.add_done_callback(forward)


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


@dataclass(frozen=True, slots=True)
class PaceWake:
    """Told to a paced shell by its timer: a held-back command may go now."""


class Paced:
    """A shell's commands that put bytes on the link, let go at most at ``rate`` bytes/s.

    The shell hands each such command to :meth:`carry_out` with its size and its
    handler; what may not go yet waits (see :class:`~zfs.pace.Pacer`), and a timer
    thread tells the actor :class:`PaceWake` when it may. The actor, never the timer,
    then calls :meth:`woken` and carries it out. With ``rate`` None every command goes
    at once and no timer is ever started.
    """

    def __init__(self, actor: Any, rate: Optional[float], burst: int) -> None:
        self._actor = actor
        self._pacer: Pacer[Any] = Pacer(rate, burst, time.monotonic())
        self._timer: Optional[threading.Timer] = None
        self._timer_at = float("inf")
        self._stopped = False

    def carry_out(self, command: Any, size: int, handler: Handler) -> list[Any]:
        """Carry out ``command`` now if the cap allows, else later; return what it caused."""
        if self._stopped:
            return []
        return self._run(self._pacer.offer(command, size, time.monotonic()), handler)

    def woken(self, handler: Handler) -> list[Any]:
        """The timer fired: carry out what may go now; return what it caused."""
        self._timer, self._timer_at = None, float("inf")
        if self._stopped:
            return []
        return self._run(self._pacer.due(time.monotonic()), handler)

    def set_rate(self, rate: Optional[float], handler: Handler) -> list[Any]:
        """Change the cap; carry out what may go under the new one; return what it caused."""
        self._pacer.set_rate(rate, time.monotonic())
        return [] if self._stopped else self._run(self._pacer.due(time.monotonic()), handler)

    def stop(self) -> None:
        """Stop the timer; what still waits is never carried out (the transfer ended)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self, ready: list[Any], handler: Handler) -> list[Any]:
        caused: list[Any] = []
        for command in ready:
            caused.extend(handler(command) or ())
        wake_at = self._pacer.wake_at
        if wake_at is not None and wake_at < self._timer_at and not self._stopped:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(0.0, wake_at - time.monotonic()), self._wake)
            self._timer.daemon = True
            self._timer_at = wake_at
            self._timer.start()
        return caused

    def _wake(self) -> None:
        """(The timer's thread.) Only tell the actor; it does the rest."""
        try:
            self._actor.tell(PaceWake())
        except pykka.ActorDeadError:  # it stopped meanwhile: nothing waits any more
            pass
