"""The receiving side of a push: :func:`register_receiver` and the site's receiver actor.

:class:`ReceiverActor` (``"zfs.receiver"``, one per site) drives
:class:`zfs.protocol.push.receiver.PushReceiver`. It holds every inbound stream, keyed
by (sender address, stream id), writes chunks into a :class:`~zfs.files.PartialFile`,
acks each by a tiny tell, checks and renames at the end.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import actors
from zfs.errors import IntegrityError, ZfsError
from zfs.partials import PartialFile, check_room, sweep_stale_partials
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.push import receiver as core
from zfs.protocol.push.tree.receiver import TreeLimits
from zfs.push.tree.receiver import (TREE_OPTIONS, TREE_RECEIVER, TreeReceiverActor,
                                    TreeRegistration, TreeUnregistration)
from zfs.results import Progress, ReceivedFile
from zfs.shell import Shell, run_callback
from zfs.supervisor import Tick, remove_later, watch_time
from zfs.swarm.relay import RELAY, RelayActor, SwarmRegistration, SwarmUnregistration
from zfs.tree.modes import current_umask

log = logging.getLogger(__name__)

RECEIVER = "zfs.receiver"    # every site's receiver actor; senders address "<site>/zfs.receiver"

_OPTIONS = ("inactivity_timeout", "max_size", "max_chunk_size")

#: How often the receiver looks for partial files left by a killed predecessor.
_SWEEP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class _Registration:
    channel: str
    topic: str
    dest_dir: str
    on_done: Optional[Callable[[ReceivedFile], Any]]
    on_chunk: Optional[Callable[[Progress], Any]]
    limits: core.Limits


@dataclass(frozen=True, slots=True)
class _Unregister:
    channel: str
    topic: str


@dataclass(slots=True)
class _Inbound:
    partial: PartialFile
    registration: _Registration
    context: Any
    sender_site: str
    size: Optional[int]          # as the open declared it (None: a stream)


class ReceiverActor(Shell):
    """Every inbound push of this site: writes, acks, checks, renames, calls back.

    Args:
        max_streams: inbound streams open at once; more are refused.
    """

    def __init__(self, max_streams: int = 256) -> None:
        super().__init__()
        self._core = core.PushReceiver(max_streams)
        self._registrations: Dict[Any, _Registration] = {}
        self._files: Dict[core.Key, _Inbound] = {}
        self._opening: Optional[wire.Open] = None  # the Open being carried out
        self._next_sweep = 0.0
        self.receives = {
            wire.Open: self._on_open, wire.Chunk: self._on_chunk, wire.End: self._on_end,
            wire.Abort: lambda m: self._stream(m, self._core.abort_received, m.reason),
            Tick: self._on_tick,
            actors.PeerDown: lambda event: self.run(self._core.site_lost(
                event.name, time.monotonic())),
            _Registration: self._register, _Unregister: self._unregister,
        }
        self.carries_out = {
            core.WriteChunk: self._write, core.SendAck: self._ack,
            core.CreateFile: self._create, core.CommitFile: self._commit,
            core.Accept: lambda cmd: self._reply(cmd.key, wire.Accepted(cmd.key[1])),
            core.Refuse: self._refuse, core.SendDone: lambda cmd: self._reply(
                cmd.key, wire.Committed(cmd.key[1])),
            core.SendError: lambda cmd: self._reply(cmd.key, wire.Failed(
                cmd.key[1], cmd.failure, cmd.reason)),
            core.Discard: self._discard,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        for inbound in self._files.values():
            self._drop(inbound.partial)
        self._files.clear()

    def _drop(self, partial: PartialFile) -> None:
        """Delete a partial file now, or have the supervisor retry until it can."""
        if not partial.discard():
            remove_later(self.site, partial.temp_path)

    # -- what arrives

    def _key(self, sid: str) -> Optional[core.Key]:
        """The stream's key, if the message came from a peer's actor (not app code)."""
        sender = self.sender
        return (sender, sid) if sender and "/" in sender else None

    def _stream(self, message: Any, event: Callable[..., List[Any]], *args: Any) -> None:
        key = self._key(message.sid)
        if key is not None:
            self.run(event(key, *args, time.monotonic()))

    def _on_open(self, message: wire.Open) -> None:
        key = self._key(message.sid)
        if key is None:
            return
        self._opening = message
        try:
            self.run(self._core.open_received(
                key, message.name, message.size, message.chunk_size, message.channel,
                message.topic, time.monotonic(), window_chunks=message.window_chunks))
        finally:
            self._opening = None

    def _on_chunk(self, message: wire.Chunk) -> None:
        payload = self.payload
        length = len(payload[0]) if len(payload) == 1 else 0
        self._stream(message, self._core.chunk_received, message.offset, length)

    def _on_end(self, message: wire.End) -> None:
        self._stream(message, self._core.end_received, message.size, message.digest)

    def on_bad_message(self, body: Any, error: RemoteProtocolError) -> None:
        """A malformed message ends its stream (if it names one of the sender's), not the
        site; a malformed open is refused, saying why."""
        super().on_bad_message(body, error)
        sid = body[1] if type(body) is list and len(body) > 1 else None
        key = self._key(sid) if isinstance(sid, str) else None
        if key is None:
            return
        if key in self._core.streams:
            self.run(self._core.protocol_broken(key, str(error), time.monotonic()))
        elif body[0] == "open":
            self._reply(key, wire.Failed(key[1], Failure.REFUSED, f"bad open: {error}"))

    def _on_tick(self, tick: Tick) -> None:
        self.run(self._core.time_passed(tick.now))
        self._sweep(tick.now)

    def _register(self, message: _Registration) -> None:
        self._registrations[(message.channel, message.topic)] = message
        self._core.registration_added(message.channel, message.topic, message.limits)

    def _unregister(self, message: _Unregister) -> None:
        self._registrations.pop((message.channel, message.topic), None)
        self._core.registration_removed(message.channel, message.topic)

    def _sweep(self, now: float) -> None:
        """Now and then, delete partial files that no stream has written for a while.

        They are what a receiver killed mid-stream left behind (ours are fresher: a
        stream silent that long has been dropped by the core already).
        """
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        in_use = frozenset(inbound.partial.temp_name for inbound in self._files.values())
        for reg in list(self._registrations.values()):
            try:
                stale = sweep_stale_partials(reg.dest_dir, reg.limits.inactivity_timeout,
                                             in_use)
            except OSError as err:
                log.warning("cannot sweep %s: %s", reg.dest_dir, err)
                continue
            for path in stale:
                log.warning("removed %s: no stream wrote it for %g s", path,
                            reg.limits.inactivity_timeout)

    # -- what the core asks for

    def _reply(self, key: core.Key, message: wire.Message) -> None:
        try:
            self.site.tell(key[0], wire.encode(message))
        except actors.ActorsError as err:
            log.debug("push reply %s to %s not sent: %s", type(message).__name__, key[0], err)

    def _refuse(self, cmd: core.Refuse) -> None:
        log.info("push %s refused: %s", cmd.key, cmd.reason)
        self._reply(cmd.key, wire.Failed(cmd.key[1], Failure.REFUSED, cmd.reason))

    def _discard(self, cmd: core.Discard) -> None:
        inbound = self._files.pop(cmd.key, None)
        if inbound is not None:
            log.info("push %s discarded: %s", cmd.key, cmd.reason)
            self._drop(inbound.partial)

    def _create(self, cmd: core.CreateFile) -> List[Any]:
        reg, opening, now = self._registrations[cmd.registration], self._opening, time.monotonic()
        assert opening is not None
        try:
            check_room(reg.dest_dir, opening.size)
            partial = PartialFile(reg.dest_dir, cmd.name)
        except (OSError, ZfsError) as err:
            return self._core.io_failed(cmd.key, f"cannot create the file: {err}", now)
        sender_site = cmd.key[0].partition("/")[0]
        self._files[cmd.key] = _Inbound(partial, reg, opening.context, sender_site,
                                        opening.size)
        return self._core.file_created(cmd.key, now)

    def _write(self, cmd: core.WriteChunk) -> List[Any]:
        data, now, inbound = self.payload[0], time.monotonic(), self._files[cmd.key]
        try:
            inbound.partial.write_at(cmd.offset, data)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot write: {err}", now)
        caused = self._core.chunk_written(cmd.key, cmd.offset, len(data), now)
        if inbound.registration.on_chunk is not None:   # after every chunk, acked or not
            run_callback(inbound.registration.on_chunk, Progress(
                inbound.partial.name, cmd.offset + len(data), inbound.size,
                inbound.sender_site, inbound.context))
        return caused

    def _ack(self, cmd: core.SendAck) -> None:
        self._reply(cmd.key, wire.Acked(cmd.key[1], cmd.received))

    def _commit(self, cmd: core.CommitFile) -> List[Any]:
        inbound, now = self._files[cmd.key], time.monotonic()
        try:
            location = inbound.partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            self._drop(inbound.partial)
            return self._core.commit_failed(cmd.key, err.reason, now)
        except OSError as err:
            self._drop(inbound.partial)
            return self._core.io_failed(cmd.key, f"cannot commit: {err}", now)
        del self._files[cmd.key]
        reg = inbound.registration
        if reg.on_done is not None:
            run_callback(reg.on_done, ReceivedFile(inbound.partial.name, location, cmd.size,
                                                   inbound.context, inbound.sender_site,
                                                   reg.channel, reg.topic))
        return self._core.committed(cmd.key, now)


def register_receiver(site: actors.Site, channel: str = "default", topic: str = "default",
                      dest_dir: Optional[str] = None,
                      on_done: Optional[Callable[[ReceivedFile], Any]] = None,
                      on_chunk: Optional[Callable[[Progress], Any]] = None,
                      **options: Any) -> None:
    """Accept pushes for (channel, topic) into ``dest_dir`` from now on: files and trees.

    Registering the same (channel, topic) again replaces the earlier registration.
    Callbacks run in the receiver actor's thread; their exceptions are logged.

    Args:
        dest_dir: where received files and folders go (default: the system temp folder).
        on_done: called with a :class:`ReceivedFile` once a file is checked and in place
            (a :class:`ReceivedTree`, whose first fields are the same, for a folder).
        on_chunk: called with a :class:`Progress` after each chunk is written.
        **options: ``inactivity_timeout`` (seconds, default 60) after which a silent
            stream is dropped, ``max_size`` and ``max_chunk_size`` (bytes) accepted;
            for folders ``max_files``, ``max_manifest_size``, ``shared_write`` (keep
            group/world write bits, default False) and ``resume_timeout`` (seconds
            an interrupted folder's bytes wait for the same push to resume, a day).

    Raises:
        NotADirectoryError: ``dest_dir`` is not an existing folder.
        TypeError: an unknown option.
    """
    unknown = sorted(set(options) - set(_OPTIONS) - set(TREE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown receiver options: {', '.join(unknown)}")
    dest = os.path.abspath(dest_dir if dest_dir is not None else tempfile.gettempdir())
    if not os.path.isdir(dest):
        raise NotADirectoryError(f"not a folder: {dest!r}")
    limits = core.Limits(**{k: v for k, v in options.items() if k in _OPTIONS})
    tree_limits = TreeLimits(**{k: v for k, v in options.items()
                                if k in _OPTIONS or k in ("max_files", "max_manifest_size")})
    receiver = site.spawn_once(ReceiverActor, RECEIVER)
    receiver.tell(_Registration(channel, topic, dest, on_done, on_chunk, limits))
    relay = site.spawn_once(RelayActor, RELAY)
    relay.tell(SwarmRegistration(channel, topic, dest, on_done, on_chunk, limits))
    trees = site.spawn_once(TreeReceiverActor, TREE_RECEIVER)
    trees.tell(TreeRegistration(channel, topic, dest, on_done, on_chunk, tree_limits,
                                bool(options.get("shared_write", False)),
                                float(options.get("resume_timeout", 86400.0)),
                                current_umask()))


def unregister_receiver(site: actors.Site, channel: str = "default",
                        topic: str = "default") -> None:
    """Refuse new pushes for (channel, topic); streams in progress finish."""
    receiver = site.actor(RECEIVER)
    if receiver is not None:
        receiver.tell(_Unregister(channel, topic))
    trees = site.actor(TREE_RECEIVER)
    if trees is not None:
        trees.tell(TreeUnregistration(channel, topic))
    relay = site.actor(RELAY)
    if relay is not None:
        relay.tell(SwarmUnregistration(channel, topic))
