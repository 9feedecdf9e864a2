"""The receiving side of a push: :func:`register_receiver` and the site's receiver actor.

:class:`ReceiverActor` (``"zfs.receiver"``, one per site) is a thin shell around
:class:`zfs.protocol.push_receiver.PushReceiver`. It holds every inbound stream, keyed
by (sender address, stream id), writes chunks into a :class:`~zfs.files.PartialFile`,
acks each by a tiny tell, checks and renames at the end.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional

import actors
from zfs.errors import IntegrityError, ZfsError
from zfs.files import PartialFile, sweep_stale_partials
from zfs.protocol import push_receiver as core
from zfs.callbacks import run_callback
from zfs.push_common import RECEIVER, Progress, ReceivedFile
from zfs.supervisor import Tick, watch_time

log = logging.getLogger(__name__)

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


class ReceiverActor(actors.Actor):
    """Every inbound push of this site: writes, acks, checks, renames, calls back.

    Args:
        max_streams: inbound streams open at once; more are refused.
    """

    def __init__(self, max_streams: int = 256) -> None:
        super().__init__()
        self._core = core.PushReceiver(max_streams)
        self._registrations: Dict[Any, _Registration] = {}
        self._files: Dict[core.Key, _Inbound] = {}
        self._next_sweep = 0.0

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        for inbound in self._files.values():
            inbound.partial.discard()
        self._files.clear()

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        if isinstance(message, dict):
            sid = message.get("sid")
            if self.sender and "/" in self.sender and isinstance(sid, str):
                self._on_stream(message, (self.sender, sid), now)
        elif isinstance(message, Tick):
            self._run(self._core.time_passed(message.now), None)
            self._sweep(message.now)
        elif isinstance(message, actors.PeerDown):
            self._run(self._core.site_lost(message.name, now), None)
        elif isinstance(message, _Registration):
            self._registrations[(message.channel, message.topic)] = message
            self._core.registration_added(message.channel, message.topic, message.limits)
        elif isinstance(message, _Unregister):
            self._registrations.pop((message.channel, message.topic), None)
            self._core.registration_removed(message.channel, message.topic)
        return None

    def _sweep(self, now: float) -> None:
        """Now and then, delete partial files that no stream has written for a while.

        They are what a receiver killed mid-stream left behind (ours are fresher: a
        stream silent that long has been dropped by the core already).
        """
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        for reg in list(self._registrations.values()):
            try:
                stale = sweep_stale_partials(reg.dest_dir, reg.limits.inactivity_timeout)
            except OSError as err:
                log.warning("cannot sweep %s: %s", reg.dest_dir, err)
                continue
            for path in stale:
                log.warning("removed %s: no stream wrote it for %g s", path,
                            reg.limits.inactivity_timeout)

    def _on_stream(self, msg: Dict[str, Any], key: core.Key, now: float) -> None:
        op, c = msg.get("op"), self._core
        if op == "chunk":
            payload = self.payload
            length = len(payload[0]) if len(payload) == 1 else 0
            self._run(c.chunk_received(key, msg.get("offset"), length, now), msg)
        elif op == "open":
            self._run(c.open_received(key, msg.get("name"), msg.get("size"),
                                      msg.get("chunk_size"), msg.get("channel"),
                                      msg.get("topic"), now), msg)
        elif op == "end":
            self._run(c.end_received(key, msg.get("size"), msg.get("digest"), now), msg)
        elif op == "abort":
            self._run(c.abort_received(key, str(msg.get("reason")), now), msg)

    def _run(self, cmds: List[Any], msg: Optional[Dict[str, Any]]) -> None:
        """Carry out the core's commands, feeding back what they cause, in order."""
        queue: Deque[Any] = deque(cmds)
        while queue:
            cmd = queue.popleft()
            now = time.monotonic()
            if isinstance(cmd, core.WriteChunk):
                queue.extend(self._write(cmd, now))
            elif isinstance(cmd, core.SendAck):
                self._reply(cmd.key, {"op": "ack", "received": cmd.received})
                self._chunk_done(cmd)
            elif isinstance(cmd, core.CreateFile):
                queue.extend(self._create(cmd, msg or {}, now))
            elif isinstance(cmd, core.CommitFile):
                queue.extend(self._commit(cmd, now))
            elif isinstance(cmd, core.Accept):
                self._reply(cmd.key, {"op": "accept"})
            elif isinstance(cmd, core.Refuse):
                log.info("push %s refused: %s", cmd.key, cmd.reason)
                self._reply(cmd.key, {"op": "refuse", "reason": cmd.reason})
            elif isinstance(cmd, core.SendDone):
                self._reply(cmd.key, {"op": "done"})
            elif isinstance(cmd, core.SendError):
                self._reply(cmd.key, {"op": "error", "kind": cmd.kind, "reason": cmd.reason})
            elif isinstance(cmd, core.Discard):
                inbound = self._files.pop(cmd.key, None)
                if inbound is not None:
                    log.info("push %s discarded: %s", cmd.key, cmd.reason)
                    inbound.partial.discard()

    def _reply(self, key: core.Key, msg: Dict[str, Any]) -> None:
        msg["sid"] = key[1]
        try:
            self.site.tell(key[0], msg)
        except actors.ActorsError as err:
            log.debug("push reply %s to %s not sent: %s", msg["op"], key[0], err)

    def _create(self, cmd: core.CreateFile, msg: Dict[str, Any], now: float) -> List[Any]:
        reg = self._registrations[cmd.registration]
        try:
            _check_room(reg.dest_dir, msg.get("size"))
            partial = PartialFile(reg.dest_dir, cmd.name)
        except (OSError, ZfsError) as err:
            return self._core.io_failed(cmd.key, f"cannot create the file: {err}", now)
        sender_site = cmd.key[0].partition("/")[0]
        self._files[cmd.key] = _Inbound(partial, reg, msg.get("context"), sender_site)
        return self._core.file_created(cmd.key, now)

    def _write(self, cmd: core.WriteChunk, now: float) -> List[Any]:
        data = self.payload[0]
        try:
            self._files[cmd.key].partial.write_at(cmd.offset, data)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot write: {err}", now)
        return self._core.chunk_written(cmd.key, cmd.offset, len(data), now)

    def _chunk_done(self, cmd: core.SendAck) -> None:
        inbound = self._files[cmd.key]
        if inbound.registration.on_chunk is not None:
            run_callback(inbound.registration.on_chunk, Progress(
                inbound.partial.name, cmd.received, cmd.size, inbound.sender_site,
                inbound.context))

    def _commit(self, cmd: core.CommitFile, now: float) -> List[Any]:
        inbound = self._files[cmd.key]
        try:
            location = inbound.partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            return self._core.commit_failed(cmd.key, err.reason, now)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot commit: {err}", now)
        del self._files[cmd.key]
        reg = inbound.registration
        if reg.on_done is not None:
            run_callback(reg.on_done, ReceivedFile(inbound.partial.name, location, cmd.size,
                                                   inbound.context, inbound.sender_site,
                                                   reg.channel, reg.topic))
        return self._core.committed(cmd.key, now)


def _check_room(dest_dir: str, size: object) -> None:
    """Refuse a declared size the folder's disk cannot hold, before writing a byte.

    Raises:
        OSError: ENOSPC, naming the sizes.
    """
    if type(size) is not int:
        return
    free = shutil.disk_usage(dest_dir).free
    if size > free:
        raise OSError(errno.ENOSPC, f"not enough space: {size} bytes declared, {free} "
                      f"free in {dest_dir}")


def _receiver(site: Any) -> Any:
    """The site's receiver actor, spawned on first use (safe if two threads race)."""
    return site.spawn_once(ReceiverActor, RECEIVER)


def register_receiver(site: Any, channel: str = "default", topic: str = "default",
                      dest_dir: Optional[str] = None,
                      on_done: Optional[Callable[[ReceivedFile], Any]] = None,
                      on_chunk: Optional[Callable[[Progress], Any]] = None,
                      **options: Any) -> None:
    """Accept pushes for (channel, topic) into ``dest_dir`` from now on.

    Registering the same (channel, topic) again replaces the earlier registration.
    Callbacks run in the receiver actor's thread; their exceptions are logged.

    Args:
        dest_dir: where received files go (default: the system temp folder).
        on_done: called with a :class:`ReceivedFile` once a file is checked and in place.
        on_chunk: called with a :class:`Progress` after each chunk is written.
        **options: ``inactivity_timeout`` (seconds, default 60) after which a silent
            stream is dropped, ``max_size`` and ``max_chunk_size`` (bytes) accepted.

    Raises:
        NotADirectoryError: ``dest_dir`` is not an existing folder.
        TypeError: an unknown option.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown receiver options: {', '.join(unknown)}")
    dest = os.path.abspath(dest_dir if dest_dir is not None else tempfile.gettempdir())
    if not os.path.isdir(dest):
        raise NotADirectoryError(f"not a folder: {dest!r}")
    limits = core.Limits(**options)
    _receiver(site).tell(_Registration(channel, topic, dest, on_done, on_chunk, limits))


def unregister_receiver(site: Any, channel: str = "default", topic: str = "default") -> None:
    """Refuse new pushes for (channel, topic); streams in progress finish."""
    ref = site.actor(RECEIVER)
    if ref is not None:
        ref.tell(_Unregister(channel, topic))
