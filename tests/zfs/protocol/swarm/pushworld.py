"""A sender core and relay cores joined by an in-memory link that can drop, repeat,
reorder and lose sites: the fake shells the push tests drive."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from zfs.protocol.swarm import relay as r
from zfs.protocol.swarm import sender as s
from zfs.protocol.swarm import wire as w
from zfs.protocol.swarm.plan import Plan, plan

SENDER = "S"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def distinct_bytes(size: int) -> bytes:
    """Bytes in which no two chunks are equal, so a swapped chunk cannot go unseen."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest()
                    for i in range(size // 32 + 1))[:size]


@dataclass(frozen=True)
class Limits:
    max_size: int = 1 << 40
    max_chunk_size: int = 1 << 20
    inactivity_timeout: float = 30.0


@dataclass
class Target:
    """A relay core and its fake shell: the partial file in memory, commits recorded."""

    name: str
    limits: Optional[Limits]
    relay: Optional[r.Relay] = None
    partial: Optional[dict[int, bytes]] = None
    committed: Optional[bytes] = None
    alive: bool = True

    def core(self) -> r.Relay:
        if self.relay is None:
            self.relay = r.Relay(self.name, self.limits)
        return self.relay


@dataclass
class World:
    data: bytes
    sender: s.SwarmSender
    targets: dict[str, Target]
    now: float = 0.0
    link: list[tuple[str, str, Any, bytes]] = field(default_factory=list)  # from, to, msg, payload
    finished: Optional[s.Finished] = None
    progress: list[int] = field(default_factory=list)
    chunk: bytes = b""                           # the sender's chunk just read

    # -- the sender's shell

    def run_sender(self, cmds: list[Any]) -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, s.ReadChunk):
                body = self.data[cmd.offset:cmd.offset + cmd.length]
                self.chunk = body
                cmds += self.sender.chunk_read(cmd.index, len(body), self.now)
            elif isinstance(cmd, w.Send):
                payload = self.chunk if isinstance(cmd.message, w.Chunk) else b""
                for to in cmd.to:
                    self.link.append((SENDER, to, cmd.message, payload))
            elif isinstance(cmd, s.SendEnd):
                end = w.End("st", cmd.size, digest(self.data))
                for to in cmd.to:
                    self.link.append((SENDER, to, end, b""))
            elif isinstance(cmd, s.Progressed):
                self.progress.append(cmd.bytes_done)
            elif isinstance(cmd, s.Finished):
                assert self.finished is None, "finished twice"
                self.finished = cmd

    def to_sender(self, frm: str, msg: Any) -> None:
        core, now = self.sender, self.now
        if isinstance(msg, w.Accept):
            self.run_sender(core.accepted(frm, msg.stripe, now))
        elif isinstance(msg, w.Ack):
            self.run_sender(core.ack_received(frm, msg.stripe, msg.count, now))
        elif isinstance(msg, w.Done):
            self.run_sender(core.done_received(frm, msg.stripe, now))
        elif isinstance(msg, w.Failed):
            self.run_sender(core.failed_received(frm, msg.culprit, msg.kind, msg.reason, now))

    # -- a target's shell

    def run_target(self, t: Target, cmds: list[Any], payload: bytes = b"") -> None:
        core = t.core()
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, r.CreateFile):
                t.partial = {}
                cmds += core.file_created(self.now)
            elif isinstance(cmd, r.WriteChunk):
                assert t.partial is not None and len(payload) == cmd.length
                t.partial[cmd.index] = payload
                cmds += core.chunk_written(cmd.index, self.now)
            elif isinstance(cmd, r.CommitFile):
                assert t.partial is not None
                body = b"".join(t.partial[i] for i in sorted(t.partial))
                t.partial = None
                if len(body) == cmd.size and digest(body) == cmd.digest:
                    t.committed = body
                    cmds += core.committed(self.now)
                else:
                    cmds += core.commit_failed("mismatch", self.now)
            elif isinstance(cmd, r.Discard):
                t.partial = None
            elif isinstance(cmd, w.Send):
                for to in cmd.to:
                    self.link.append((t.name, to, cmd.message, payload))

    def to_target(self, t: Target, frm: str, msg: Any, payload: bytes) -> None:
        if t.relay is None and not isinstance(msg, w.Open):
            return                               # a stream this site does not know
        core, now = t.core(), self.now
        if isinstance(msg, w.Open):
            cmds = core.open_received(frm, msg, now)
        elif isinstance(msg, w.Chunk):
            cmds = core.chunk_received(frm, msg.index, len(payload), now)
        elif isinstance(msg, w.End):
            cmds = core.end_received(frm, msg.size, msg.digest, now)
        elif isinstance(msg, w.Abort):
            cmds = core.abort_received(frm, msg.reason, now)
        elif isinstance(msg, w.Accept):
            cmds = core.accept_received(frm, msg.stripe, now)
        elif isinstance(msg, w.Ack):
            cmds = core.ack_received(frm, msg.stripe, msg.count, now)
        elif isinstance(msg, w.Done):
            cmds = core.done_received(frm, msg.stripe, now)
        elif isinstance(msg, w.Failed):
            cmds = core.failed_received(frm, msg.culprit, msg.kind, msg.reason, now)
        else:
            raise AssertionError(msg)
        self.run_target(t, cmds, payload)

    # -- the link

    def deliver(self, index: int = 0) -> None:
        frm, to, msg, payload = self.link.pop(index)
        if to == SENDER:
            self.to_sender(frm, msg)
        elif self.targets[to].alive:
            self.to_target(self.targets[to], frm, msg, payload)

    def tick(self, dt: float) -> None:
        self.now += dt
        self.run_sender(self.sender.time_passed(self.now))
        for t in self.targets.values():
            if t.alive and t.relay is not None:
                self.run_target(t, t.relay.time_passed(self.now))

    def kill(self, name: str) -> None:
        """The target's site dies: its neighbours' runtimes tell them."""
        t = self.targets[name]
        t.alive = False
        t.partial = None                         # its disk is not ours to judge
        self.link = [m for m in self.link if name not in (m[0], m[1])]
        self.run_sender(self.sender.target_lost(name, self.now))
        for other in self.targets.values():
            if other.alive and other.relay is not None:
                self.run_target(other, other.relay.site_lost(name, self.now))

    def settle(self, limit: int = 100_000) -> None:
        """Deliver in order with no faults, letting time pass when the link is quiet.

        Every timeout here is under a minute, so a minute of silence means a stuck push.
        """
        quiet = 0
        for _ in range(limit):
            if self.link:
                quiet = 0
                self.deliver(0)
            elif (self.finished is None or self.busy()) and quiet < 12:
                quiet += 1
                self.tick(5.0)
            else:
                break
        assert self.finished is not None and not self.busy(), "the swarm push did not settle"

    def busy(self) -> bool:
        return any(t.alive and t.relay is not None and not t.relay.finished
                   for t in self.targets.values())


def make_world(data: bytes, n: int, fanout: int = 2, stripes: int = 0, chunk_size: int = 8,
               window: int = 4, refuse: tuple[str, ...] = (),
               the_plan: Optional[Plan] = None) -> World:
    names = [f"t{i}" for i in range(n)]
    layout = the_plan or plan(names, fanout, stripes)
    sender = s.SwarmSender(layout, stream="st", name="f.bin", channel="ch", topic="tp",
                           size=len(data), chunk_size=chunk_size, window_chunks=window,
                           chunk_timeout=10.0)
    targets = {name: Target(name, None if name in refuse else Limits()) for name in names}
    world = World(data, sender, targets)
    world.run_sender(sender.start(world.now))
    return world


def check_all_or_nothing(world: World) -> None:
    """Nothing partial is left anywhere, nothing wrong was committed, and success is total."""
    assert world.finished is not None
    for t in world.targets.values():
        assert t.partial is None, f"{t.name} kept a partial file"
        assert t.committed in (None, world.data), f"{t.name} committed wrong bytes"
        if t.alive and t.relay is not None:
            assert t.relay.finished, f"{t.name} is still {t.relay.state}"
    if world.finished.ok:
        assert all(t.committed == world.data for t in world.targets.values())
