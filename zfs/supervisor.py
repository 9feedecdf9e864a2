"""The supervisor: one actor per site that owns the passing of time and restarts crashes.

Why one owner of time: push and pull cores take ``now`` as an argument and never read
a clock; something must call them when nothing else happens (a request that timed
out, a transaction nobody touches any more). The supervisor tells :class:`Tick` to every
local actor that registered with :class:`WatchTime`, every ``tick_interval`` seconds.

A small thread of its own only tells the actor ``_Beat``; the actor stamps
``time.monotonic()`` and fans out, so every registry below is touched by the actor's
thread alone and needs no lock.

Leftovers: a file zfs made and could not delete (:func:`remove_later`) is retried on
every beat until it goes, instead of waiting for a sweep.

Restarts: an actor opts in with :class:`Supervise` (see :func:`supervise`). When the
supervisor learns it crashed (``Crashed``, told from the actor's ``on_failure``) or
finds it dead on two beats in a row without an :class:`Unsupervise` having arrived
(``on_stop`` runs only on a deliberate stop and should tell ``Unsupervise``), it spawns
it again with ``site.spawn`` and logs why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import actors
import pykka

log = logging.getLogger(__name__)

NAME = "zfs.supervisor"


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: ``now`` is ``time.monotonic()`` stamped by the supervisor."""

    now: float


@dataclass(frozen=True, slots=True)
class WatchTime:
    """Ask for a :class:`Tick` every interval, for the local actor of this name."""

    name: str


@dataclass(frozen=True, slots=True)
class Supervise:
    """Respawn the local actor ``name`` if it crashes, as ``site.spawn(cls, name, *args)``."""

    name: str
    cls: type
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unsupervise:
    """The actor ``name`` stops on purpose: do not respawn it."""

    name: str


@dataclass(frozen=True, slots=True)
class Crashed:
    """The actor ``name`` died of an unhandled error (told from its ``on_failure``)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Revive:
    """Ask: restart ``name`` now if it is supervised and dead; answers whether it runs."""

    name: str


@dataclass(frozen=True, slots=True)
class Registrations:
    """Ask for ``{"watching": [names], "supervising": [names]}`` (for tests and diagnostics)."""


@dataclass(frozen=True, slots=True)
class RemoveLater:
    """A file zfs made could not be deleted now (its folder is read-only, say): retry."""

    path: str


@dataclass(frozen=True, slots=True)
class _Beat:
    """The beat thread's nudge; the actor reads the clock itself."""


class SupervisorActor(actors.Actor):
    """Fan out :class:`Tick`, and restart supervised actors that crashed."""

    def __init__(self, tick_interval: float = 0.5) -> None:
        super().__init__()
        self._interval = tick_interval
        self._watchers: set[str] = set()
        self._supervised: dict[str, Supervise] = {}
        self._suspects: set[str] = set()     # found dead once; respawned if still dead next beat
        self._leftovers: set[str] = set()    # files to delete once we can
        self._stopping = threading.Event()
        self._beat_thread: threading.Thread | None = None

    def on_start(self) -> None:
        """Start the beat thread (it only tells; it never touches our state)."""
        me = self.actor_ref
        self._beat_thread = threading.Thread(
            target=self._beat, args=(me,), name=f"{NAME}.beat", daemon=True)
        self._beat_thread.start()

    def _beat(self, me: Any) -> None:
        while not self._stopping.wait(self._interval):
            if not _tell_live(me, _Beat()):
                return

    def on_stop(self) -> None:
        self._stopping.set()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Beat):
            self._on_beat(time.monotonic())
        elif isinstance(message, WatchTime):
            self._watchers.add(message.name)
        elif isinstance(message, Supervise):
            self._supervised[message.name] = message
            self._suspects.discard(message.name)
        elif isinstance(message, Unsupervise):
            self._supervised.pop(message.name, None)
            self._suspects.discard(message.name)
        elif isinstance(message, Crashed):
            self._restart(message.name, message.reason)
        elif isinstance(message, Revive):
            self._restart(message.name, "asked to revive it")
            return self.site.actor(message.name) is not None
        elif isinstance(message, RemoveLater):
            log.warning("cannot delete %s now; retrying until it goes", message.path)
            self._leftovers.add(message.path)
        elif isinstance(message, Registrations):
            return {"watching": sorted(self._watchers), "supervising": sorted(self._supervised)}
        return None

    def _on_beat(self, now: float) -> None:
        tick = Tick(now)
        for name in list(self._watchers):
            if not _tell_live(self.site.actor(name), tick):
                self._watchers.discard(name)    # dead: forget (a respawn registers again)
        self._check_supervised()
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        for path in list(self._leftovers):
            try:
                os.unlink(path)   # a link in its place is removed, never followed
            except FileNotFoundError:
                pass
            except OSError:
                continue
            self._leftovers.discard(path)
            log.info("deleted %s at last", path)

    def _check_supervised(self) -> None:
        for name in list(self._supervised):
            if self.site.actor(name) is not None:
                self._suspects.discard(name)
            elif name in self._suspects:
                self._restart(name, "found dead without a deliberate stop")
            else:
                # on_stop of a deliberate stop tells Unsupervise right after the actor
                # is marked dead: wait one beat so that message can arrive first.
                self._suspects.add(name)

    def _restart(self, name: str, reason: str) -> None:
        spec = self._supervised.get(name)
        self._suspects.discard(name)
        if spec is None:
            return
        if self.site.actor(name) is not None:
            return                                  # already running again
        log.warning("restarting actor %s of site %s: %s", name, self.site.name, reason)
        try:
            self.site.spawn(spec.cls, name, *spec.args, **spec.kwargs)
        except actors.SiteClosed:
            self._supervised.clear()                # the site is stopping: nothing to restart
        except Exception:  # noqa: BLE001 - the supervisor must outlive a bad restart
            log.exception("could not restart actor %s; giving up on it", name)
            self._supervised.pop(name, None)


def ensure_supervisor(site: actors.Site, tick_interval: float = 0.5) -> Any:
    """Return the site's supervisor, spawning it on first use.

    Safe from several threads (``Site.spawn_once``).

    Returns:
        The local ref of ``"zfs.supervisor"``.
    """
    return site.spawn_once(SupervisorActor, NAME, tick_interval)


def supervise(site: actors.Site, name: str, cls: type, *args: Any, **kwargs: Any) -> None:
    """Ask the site's supervisor to respawn the local actor ``name`` if it crashes."""
    ensure_supervisor(site).tell(Supervise(name, cls, tuple(args), dict(kwargs)))


def revive(site: actors.Site, name: str, timeout: float = 10.0) -> bool:
    """Restart the supervised actor ``name`` now if it died; return whether it runs.

    For code about to spawn an actor it found dead: the supervisor's restart keeps the
    arguments the actor was registered with (its state), a fresh spawn would not.
    """
    return bool(ensure_supervisor(site).ask(Revive(name), timeout=timeout))


def unsupervise(site: actors.Site, name: str) -> None:
    """Tell the supervisor that ``name`` stops on purpose (call it from ``on_stop``)."""
    _tell_supervisor(site, Unsupervise(name))


def remove_later(site: actors.Site, path: str) -> None:
    """Have the supervisor delete ``path`` as soon as it can (a partial file zfs made)."""
    ensure_supervisor(site).tell(RemoveLater(path))


def report_crash(site: actors.Site, name: str, error: BaseException | None) -> None:
    """Tell the supervisor that ``name`` crashed (call it from ``on_failure``)."""
    _tell_supervisor(site, Crashed(name, repr(error)))


def _tell_supervisor(site: actors.Site, message: Any) -> None:
    """Tell the running supervisor, if any (it may stop between the lookup and the tell)."""
    _tell_live(site.actor(NAME), message)


def watch_time(site: actors.Site, name: str) -> None:
    """Register the local actor ``name`` for a :class:`Tick` every interval.

    An actor that starts while its site stops gets no ticks (the site stops it next);
    its ``on_start`` must not fail for that.
    """
    try:
        ensure_supervisor(site).tell(WatchTime(name))
    except actors.SiteClosed:
        log.debug("site %s is stopping: %s gets no ticks", site.name, name)


def _tell_live(ref: pykka.ActorRef[Any] | actors.LocalRef | None, message: Any) -> bool:
    """Tell ``message`` to ``ref``; False if there is no such actor or it has stopped
    (it may stop between the lookup and the tell)."""
    if ref is None:
        return False
    try:
        ref.tell(message)
    except (pykka.ActorDeadError, actors.UnknownActor):
        return False
    return True
