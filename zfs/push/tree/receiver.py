"""The receiving side of a tree push: the site's tree receiver actor.

:class:`TreeReceiverActor` (``"zfs.tree-receiver"``, one per site, spawned by
:func:`zfs.register_receiver` beside the file receiver, sharing its registrations)
drives :class:`zfs.protocol.push.tree.receiver.TreeReceiver`. It builds each tree in
a :class:`~zfs.tree.staging.Staging` folder named by the sender's site and the tree's
key, so the same push started again finds what an interrupted one left there. Preparing
(linking in the old tree's files, digesting what is held) runs on a small thread pool,
so the actor goes on serving other trees; chunks are written piece by piece into the
files they cover; at the end the stream's digest is checked and the tree renamed in.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import actors
from zfs.files import Digest
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.push.tree import receiver as core
from zfs.protocol.push.tree import receiving as steps
from zfs.protocol.tree.layout import Layout, Offer, pack_offers
from zfs.protocol.tree.manifest import Manifest
from zfs.results import Progress, ReceivedTree
from zfs.shell import Shell, run_callback
from zfs.supervisor import Tick, watch_time
from zfs.tree.removal import PUSH_PREFIX, sweep_stale_trees
from zfs.tree.staging import Staging

log = logging.getLogger(__name__)

TREE_RECEIVER = "zfs.tree-receiver"   # every site's; senders address "<site>/zfs.tree-receiver"

#: The receiver options (of ``register_receiver``) that concern trees.
TREE_OPTIONS = ("shared_write", "resume_timeout", "max_files", "max_manifest_size")
_SWEEP_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class TreeRegistration:
    """Accept trees on (channel, topic) into ``dest_dir`` (told by register_receiver)."""

    channel: str
    topic: str
    dest_dir: str
    on_done: Optional[Callable[[Any], Any]]
    on_chunk: Optional[Callable[[Progress], Any]]
    limits: core.TreeLimits
    shared_write: bool = False
    resume_timeout: float = 86400.0
    umask: int = 0o022


@dataclass(frozen=True, slots=True)
class TreeUnregistration:
    """Refuse new trees on (channel, topic)."""

    channel: str
    topic: str


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A staging folder is ready (or could not be made): from the pool."""

    key: steps.Key
    name: str
    staging: Optional[Staging]
    offers: tuple[Offer, ...] = ()
    error: Optional[BaseException] = None


@dataclass(slots=True)
class _Inbound:
    registration: TreeRegistration
    opening: steps.Opening
    manifest: Manifest
    context: Any
    sender_site: str
    staging_name: str
    staging: Optional[Staging] = None
    layout: Optional[Layout] = None
    own: dict[int, int] = field(default_factory=dict)
    digest: Digest = field(default_factory=Digest)
    held: int = 0


def staging_name(sender_site: str, key: str) -> str:
    """The staging folder of a tree pushed by ``sender_site`` under ``key``."""
    identity = Digest()
    identity.update(f"{sender_site}\0{key}".encode("utf-8", "surrogateescape"))
    return PUSH_PREFIX + identity.hexdigest()


class TreeReceiverActor(Shell):
    """Every inbound tree of this site: prepares, writes, acks, checks, renames in."""

    def __init__(self) -> None:
        super().__init__()
        self._core = core.TreeReceiver()
        self._registrations: dict[tuple[str, str], TreeRegistration] = {}
        self._trees: dict[steps.Key, _Inbound] = {}
        self._preparing: dict[str, Future[Any]] = {}   # staging name -> its prepare job
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="zfs.tree-receiver")
        self._next_sweep = 0.0
        self.receives = {
            wire.TreeOpen: self._on_open, wire.TreePlan: self._on_plan,
            wire.Chunk: self._on_chunk,
            wire.End: lambda m: self._stream(m, self._core.end_received, m.size, m.digest),
            wire.Abort: lambda m: self._stream(m, self._core.abort_received, m.reason),
            wire.Checking: lambda m: self._stream(m, self._core.checking_received),
            Tick: self._on_tick, _Prepared: self._on_prepared,
            actors.PeerDown: lambda event: self.run(self._core.site_lost(
                event.name, time.monotonic())),
            TreeRegistration: self._register, TreeUnregistration: self._unregister,
        }
        self.carries_out = {
            steps.Prepare: self._prepare, steps.SendOffer: self._offer,
            steps.SendChecking: lambda cmd: self._reply(cmd.key, wire.Checking(cmd.key[1])),
            steps.ApplyPlan: self._apply, steps.WriteChunk: self._write, steps.SendAck: self._ack,
            steps.CommitTree: self._commit,
            steps.SendDone: lambda cmd: self._reply(cmd.key, wire.Committed(cmd.key[1])),
            steps.SendError: lambda cmd: self._reply(cmd.key, wire.Failed(
                cmd.key[1], cmd.failure, cmd.reason)),
            steps.Release: lambda cmd: self._end(cmd.key, cmd.reason, discard=False),
            steps.Discard: lambda cmd: self._end(cmd.key, cmd.reason, discard=True),
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        for inbound in self._trees.values():
            if inbound.staging is not None:
                inbound.staging.close()      # kept: the same push started again resumes
        self._trees.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what arrives

    def _key(self, sid: str) -> Optional[steps.Key]:
        sender = self.sender
        return (sender, sid) if sender and "/" in sender else None

    def _stream(self, message: Any, event: Callable[..., list[Any]], *args: Any) -> None:
        key = self._key(message.sid)
        if key is not None:
            self.run(event(key, *args, time.monotonic()))

    def _on_open(self, message: wire.TreeOpen) -> None:
        key = self._key(message.sid)
        if key is None:
            return
        manifest = b"".join(bytes(frame) for frame in self.payload)
        if len(manifest) != message.manifest_size:
            self._reply(key, wire.Failed(key[1], Failure.REFUSED, "manifest of the wrong size"))
            return
        opening = steps.Opening(message.name, message.key, message.files, message.size,
                               message.chunk_size, message.channel, message.topic,
                               message.no_clobber, message.check_existing,
                               message.window_chunks)
        cmds = self._core.open_received(key, opening, manifest, time.monotonic())
        prepare = next((c for c in cmds if isinstance(c, steps.Prepare)), None)
        if prepare is not None:
            site = key[0].partition("/")[0]
            self._trees[key] = _Inbound(
                self._registrations[(message.channel, message.topic)], opening,
                prepare.manifest, message.context, site, staging_name(site, message.key))
        self.run(cmds)

    def _on_plan(self, message: wire.TreePlan) -> None:
        plan = bytes(self.payload[0]) if len(self.payload) == 1 else b""
        self._stream(message, self._core.plan_received, message.size, plan)

    def _on_chunk(self, message: wire.Chunk) -> None:
        payload = self.payload
        length = len(payload[0]) if len(payload) == 1 else 0
        self._stream(message, self._core.chunk_received, message.offset, length)

    def on_bad_message(self, body: Any, error: RemoteProtocolError) -> None:
        """A malformed message ends its tree (if it names one of the sender's)."""
        super().on_bad_message(body, error)
        sid = body[1] if type(body) is list and len(body) > 1 else None
        key = self._key(sid) if isinstance(sid, str) else None
        if key is None:
            return
        if key in self._core.streams:
            self.run(self._core.protocol_broken(key, str(error), time.monotonic()))
        elif body[0] == "tree":
            self._reply(key, wire.Failed(key[1], Failure.REFUSED, f"bad open: {error}"))

    def _on_tick(self, tick: Tick) -> None:
        self.run(self._core.time_passed(tick.now))
        if tick.now >= self._next_sweep:
            self._next_sweep = tick.now + _SWEEP_INTERVAL
            self._sweep()

    def _register(self, message: TreeRegistration) -> None:
        self._registrations[(message.channel, message.topic)] = message
        self._core.registration_added(message.channel, message.topic, message.limits)

    def _unregister(self, message: TreeUnregistration) -> None:
        self._registrations.pop((message.channel, message.topic), None)
        self._core.registration_removed(message.channel, message.topic)

    def _sweep(self) -> None:
        """Delete staging folders of pushes that never came back, and leftover trash."""
        in_use = frozenset(t.staging_name for t in self._trees.values())
        for reg in list(self._registrations.values()):
            for path in sweep_stale_trees(reg.dest_dir, reg.resume_timeout, in_use):
                log.info("removed %s: an interrupted tree nobody resumed", path)

    # -- preparing, off the actor's thread

    def _prepare(self, cmd: steps.Prepare) -> None:
        inbound = self._trees[cmd.key]
        reg = inbound.registration
        previous = self._preparing.get(inbound.staging_name)
        job = self._pool.submit(_prepare_staging, reg, inbound.staging_name, cmd.manifest,
                                cmd.opening, previous)
        self._preparing[inbound.staging_name] = job
        me, key, name = self.actor_ref, cmd.key, inbound.staging_name

        def done(finished: Future[Any]) -> None:
            try:
                staging, offers = finished.result()
                message = _Prepared(key, name, staging, tuple(offers))
            except BaseException as err:  # noqa: BLE001 - told to the actor, which fails the tree
                message = _Prepared(key, name, None, error=err)
            try:
                me.tell(message)
            except Exception:  # noqa: BLE001 - we stopped meanwhile
                if message.staging is not None:
                    message.staging.close()
        job.add_done_callback(done)

    def _on_prepared(self, message: _Prepared) -> None:
        job = self._preparing.get(message.name)
        if job is not None and job.done():   # else a later open of the same tree prepares
            del self._preparing[message.name]
        inbound = self._trees.get(message.key)
        if inbound is None:                  # ended meanwhile (sender lost, opened again)
            if message.staging is not None:
                message.staging.close()
            return
        now = time.monotonic()
        if message.error is not None:
            error = message.error
            if isinstance(error, FileExistsError):
                self.run(self._core.refused_here(message.key, f"{inbound.opening.name} exists "
                                                 "and no_clobber is set", now))
            else:
                self.run(self._core.io_failed(message.key, f"cannot prepare the tree: {error}",
                                              now))
            return
        inbound.staging = message.staging
        self.run(self._core.prepared(message.key, message.offers, now))

    # -- what the core asks for

    def _reply(self, key: steps.Key, message: wire.Message, payload: tuple[Any, ...] = ()) -> None:
        try:
            self.site.tell(key[0], wire.encode(message), payload=payload)
        except actors.ActorsError as err:
            log.debug("tree reply %s to %s not sent: %s", type(message).__name__, key[0], err)

    def _offer(self, cmd: steps.SendOffer) -> None:
        self._reply(cmd.key, wire.TreeOffer(cmd.key[1]), (pack_offers(cmd.offers),))

    def _apply(self, cmd: steps.ApplyPlan) -> list[Any]:
        inbound, now = self._trees[cmd.key], time.monotonic()
        assert inbound.staging is not None
        try:
            inbound.staging.apply(cmd.own)
        except OSError as err:
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            return self._core.io_failed(cmd.key, f"cannot make the tree: {err.strerror or err}",
                                        now, discard=full)
        inbound.layout, inbound.own = cmd.layout, dict(cmd.own)
        inbound.held = inbound.manifest.size - cmd.layout.size
        return self._core.plan_applied(cmd.key, now)

    def _write(self, cmd: steps.WriteChunk) -> list[Any]:
        inbound, now = self._trees[cmd.key], time.monotonic()
        assert inbound.staging is not None and inbound.layout is not None
        data = memoryview(self.payload[0])
        inbound.digest.update(data)
        try:
            for piece in inbound.layout.pieces(cmd.offset, len(data)):
                skip = max(0, inbound.own.get(piece.file, 0) - piece.offset)
                if skip < piece.length:      # below what we hold: the same bytes, discarded
                    inbound.staging.write(piece.file, piece.offset + skip,
                                          data[piece.at + skip:piece.at + piece.length])
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot write: {err}", now)
        return self._core.chunk_written(cmd.key, cmd.offset, len(data), now)

    def _ack(self, cmd: steps.SendAck) -> None:
        self._reply(cmd.key, wire.Acked(cmd.key[1], cmd.received))
        inbound = self._trees[cmd.key]
        callback = inbound.registration.on_chunk
        if callback is not None and inbound.layout is not None:
            files = len(inbound.manifest.files)
            done = inbound.layout.files_done(cmd.received)
            current = inbound.manifest.file(done).path if done < files else ""
            run_callback(callback, Progress(inbound.opening.name, inbound.held + cmd.received,
                                            inbound.manifest.size, inbound.sender_site,
                                            inbound.context, done, files, current))

    def _commit(self, cmd: steps.CommitTree) -> list[Any]:
        inbound, now = self._trees[cmd.key], time.monotonic()
        assert inbound.staging is not None and inbound.layout is not None
        if inbound.digest.hexdigest() != cmd.digest:
            return self._core.commit_failed(cmd.key, "the stream's digest differs", now)
        try:
            path = inbound.staging.commit(inbound.opening.no_clobber)
        except FileExistsError:
            return self._core.refused_here(cmd.key, f"{inbound.opening.name} exists and "
                                           "no_clobber is set", now)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot put the tree in place: {err}", now)
        inbound.staging = None
        del self._trees[cmd.key]
        reg = inbound.registration
        if reg.on_done is not None:
            run_callback(reg.on_done, ReceivedTree(
                inbound.opening.name, path, inbound.manifest.size, inbound.context,
                inbound.sender_site, reg.channel, reg.topic, len(inbound.manifest.files),
                inbound.layout.size))
        log.info("received tree %s (%d files) from %s: %s", inbound.opening.name,
                 len(inbound.manifest.files), inbound.sender_site, path)
        return self._core.committed(cmd.key, now)

    def _end(self, key: steps.Key, reason: str, discard: bool) -> None:
        inbound = self._trees.pop(key, None)
        if inbound is None:
            return
        log.info("tree %s from %s ended (%s): %s", inbound.opening.name, inbound.sender_site,
                 "discarded" if discard else "kept for a resume", reason)
        if inbound.staging is None:
            return                           # still preparing: _on_prepared closes it
        try:
            if discard:
                inbound.staging.discard()
            else:
                inbound.staging.close()
        except OSError as err:
            log.warning("cannot clean up %s: %s", inbound.staging.path, err)


def _prepare_staging(reg: TreeRegistration, name: str, manifest: Manifest,
                     opening: steps.Opening, previous: Optional[Future[Any]]
                     ) -> tuple[Staging, list[Offer]]:
    """Open the staging folder and digest what it holds (on a pool thread)."""
    if previous is not None:             # an earlier open of the same tree: after it
        try:
            previous.result(timeout=600)
        except BaseException:  # noqa: BLE001 - its own stream reports its failure
            pass
    if opening.no_clobber and os.path.lexists(os.path.join(reg.dest_dir, opening.name)):
        raise FileExistsError(errno.EEXIST, "exists", opening.name)
    staging = Staging(reg.dest_dir, opening.name, name, manifest, reg.umask, reg.shared_write)
    try:
        holdings = staging.holdings(opening.check_existing)
        return staging, staging.offers(holdings)
    except BaseException:
        staging.close()
        raise
