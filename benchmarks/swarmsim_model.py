"""The simulated world of :mod:`benchmarks.swarmsim`: hosts, capped links, an event queue,
and the fake shells that drive the real swarm cores on them.

Each host has an upload and a download rate and an access latency; a message between
two hosts takes the sum of their latencies. A message with a payload (a chunk) also
queues for the sender's uplink and then the receiver's downlink, each a FIFO token
bucket at its rate, as ``tc tbf`` does: the uplink sends at most its rate whatever the
number of receivers, the downlink takes at most its rate whatever the number of
senders, and a chunk is cut through both (it arrives when the slower of the two is
done with it, plus the latency), not stored and forwarded. Small messages (opens,
acks, reports) cost latency only. Nothing models CPU or disk: writes and reads are
instant, so the figures are the network's and the protocol's, nothing else.

A host that dies stops sending and receiving at once; its neighbours' runtimes hear of
it after :data:`DETECT` seconds (ZeroMQ heartbeats), the owner's too.

The shells (:class:`PushRun`, :class:`PullRun`) do what a site's actors would: carry
the cores' commands out over the network and feed them what arrives. A chunk's bytes
are a token (its index, or -1 when a bad peer corrupts it) and a digest is of tokens,
so 10,000 hosts fit in memory and every delivery is still checked.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from zfs.protocol.swarm import download as dl
from zfs.protocol.swarm import downloading as ds
from zfs.protocol.swarm import relay as rl
from zfs.protocol.swarm import seeder as sd
from zfs.protocol.swarm import sender as sn
from zfs.protocol.swarm import tracker as tr
from zfs.protocol.swarm.opening import StreamLimits
from zfs.protocol.swarm import wire as w
from zfs.protocol.swarm.plan import children

MBIT = 1_000_000 / 8          # bytes per second in one Mbit/s
DETECT = 1.0                  # seconds before a runtime reports a dead neighbour


@dataclass(slots=True)
class Host:
    """One simulated host: its link's rates, its latency, and whether it lives."""

    name: str
    up: float                  # bytes/s
    down: float                # bytes/s
    latency: float             # one-way seconds to the switch
    up_free: float = 0.0       # when its uplink has sent everything queued
    down_free: float = 0.0
    alive: bool = True
    sent: int = 0              # payload bytes uploaded
    slow: bool = False


class Sim:
    """A discrete-event clock: callbacks run in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, when: float, call: Callable[..., None], *args: Any) -> None:
        """Run ``call(*args)`` at time ``when`` (not before now)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(when, self.now), self._seq, call, args))

    def run(self, done: Callable[[], bool], until: float) -> None:
        """Run events until ``done()`` or simulated time ``until``."""
        queue = self._queue
        while queue and not done():
            when, _, call, args = heapq.heappop(queue)
            if when > until:
                break
            self.now = when
            self.events += 1
            call(*args)


class Net:
    """Hosts joined by a switch; :meth:`send` delivers a message after its time."""

    def __init__(self, sim: Sim, hosts: dict[str, Host]) -> None:
        self.sim = sim
        self.hosts = hosts
        self.peak_queue = 0.0     # the most payload bytes queued at one host's uplink

    def send(self, src: str, dst: str, size: int, deliver: Callable[..., None],
             *args: Any) -> None:
        """Carry ``size`` payload bytes from ``src`` to ``dst``; then ``deliver(*args)``."""
        a, b = self.hosts[src], self.hosts[dst]
        if not a.alive:
            return
        now = self.sim.now
        latency = a.latency + b.latency
        if size == 0:
            self.sim.at(now + latency, self._arrive, b, deliver, args)
            return
        start = max(now, a.up_free)
        self.peak_queue = max(self.peak_queue, (start - now) * a.up + size)
        a.up_free = start + size / a.up
        a.sent += size
        b.down_free = max(b.down_free, start + latency) + size / b.down
        self.sim.at(max(b.down_free, a.up_free + latency), self._arrive, b, deliver, args)

    @staticmethod
    def _arrive(host: Host, deliver: Callable[..., None], args: tuple[Any, ...]) -> None:
        if host.alive:
            deliver(*args)


@dataclass(frozen=True, slots=True)
class Population:
    """How the simulated hosts are drawn (all seeded)."""

    rate_mbit: float = 400.0
    latency_ms: tuple[float, float] = (0.5, 5.0)       # one-way, uniform per host
    slow: float = 0.0                                  # fraction of slow recipients
    slow_factor: float = 0.25                          # their rate, as a fraction
    dying: float = 0.0                                 # fraction that die mid-way
    bad: float = 0.0                                   # fraction serving corrupt pieces
    nat: float = 0.0                                   # fraction nobody can reach


def draw_hosts(n: int, pop: Population, rng: random.Random, origin: str,
               prefix: str) -> dict[str, Host]:
    """Return the origin host and ``n`` recipients ``prefix0..``, drawn from ``pop``."""
    rate = pop.rate_mbit * MBIT
    hosts = {origin: Host(origin, rate, rate, rng.uniform(*pop.latency_ms) / 1000)}
    for i in range(n):
        slow = rng.random() < pop.slow
        r = rate * (pop.slow_factor if slow else 1.0)
        name = f"{prefix}{i}"
        hosts[name] = Host(name, r, r, rng.uniform(*pop.latency_ms) / 1000, slow=slow)
    return hosts


def pick(rng: random.Random, names: list[str], fraction: float) -> list[str]:
    """Return about ``fraction`` of ``names`` (at least one if the fraction is not 0)."""
    if fraction <= 0 or not names:
        return []
    count = max(1, round(fraction * len(names)))
    return sorted(rng.sample(names, min(count, len(names))))


# ---- the shells of push: a sender and a relay per target ---------------------------

@dataclass
class PushRun:
    """A sender and a relay per target, driven over the simulated network."""

    sim: Sim
    net: Net
    sender: sn.SwarmSender
    chunk_size: int
    relays: dict[str, rl.Relay] = field(default_factory=dict)
    unfinished: dict[str, None] = field(default_factory=dict)   # relays not yet ended
    files: dict[str, dict[int, int]] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)
    finished: Optional[sn.Finished] = None
    finished_at: float = 0.0
    limits: StreamLimits = field(default_factory=lambda: _Limits())
    doomed: Optional[tuple[int, str, list[str]]] = None   # kill it once all hold so many bytes
    killed_at: float = 0.0

    def run_sender(self, cmds: list[Any]) -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, sn.ReadChunk):
                self._token = cmd.index
                cmds += self.sender.chunk_read(cmd.index, cmd.length, self.sim.now)
                if cmd.index == self.sender.total - 1:
                    self._doom(self.doomed[0] if self.doomed else 0)   # no later than this
            elif isinstance(cmd, sn.Progressed):
                self._doom(cmd.bytes_done)
            elif isinstance(cmd, w.Send):
                self.post("S", cmd, self._token if isinstance(cmd.message, w.Chunk) else -1)
            elif isinstance(cmd, sn.SendEnd):
                self.post("S", w.Send(cmd.to, w.End("st", cmd.size, "whole")), -1)
            elif isinstance(cmd, sn.Finished):
                self.finished, self.finished_at = cmd, self.sim.now

    def _doom(self, bytes_done: int) -> None:
        """Kill the doomed target once every target holds its share of the file."""
        if self.doomed is not None and bytes_done >= self.doomed[0]:
            self.kill(*self.doomed[1:])
            self.doomed = None

    def run_relay(self, me: str, cmds: list[Any], token: int) -> None:
        relay = self.relays[me]
        self._carry_out(me, relay, cmds, token)
        if relay.finished:
            self.unfinished.pop(me, None)

    def _carry_out(self, me: str, relay: rl.Relay, cmds: list[Any], token: int) -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, w.Send):
                self.post(me, cmd, token)
            elif isinstance(cmd, rl.CreateFile):
                self.files[me] = {}
                cmds += relay.file_created(self.sim.now)
            elif isinstance(cmd, rl.WriteChunk):
                self.files[me][cmd.index] = token
                cmds += relay.chunk_written(cmd.index, self.sim.now)
            elif isinstance(cmd, rl.CommitFile):
                tokens = self.files.pop(me)
                right = all(tokens.get(i) == i for i in range(self.sender.total))
                if right and cmd.digest == "whole":
                    self.committed[me] = self.sim.now
                    cmds += relay.committed(self.sim.now)
                else:
                    cmds += relay.commit_failed("digest mismatch", self.sim.now)
            elif isinstance(cmd, rl.Discard):
                self.files.pop(me, None)

    def post(self, src: str, cmd: w.Send, token: int) -> None:
        size = self.sender.chunk_size if isinstance(cmd.message, w.Chunk) else 0
        for to in cmd.to:
            self.net.send(src, to, size, self.arrive, src, to, cmd.message, token)

    def arrive(self, src: str, to: str, msg: Any, token: int) -> None:
        now = self.sim.now
        if to == "S":
            s = self.sender
            if isinstance(msg, w.Accept):
                self.run_sender(s.accepted(src, msg.stripe, now))
            elif isinstance(msg, w.Ack):
                self.run_sender(s.ack_received(src, msg.stripe, msg.count, now))
            elif isinstance(msg, w.Done):
                self.run_sender(s.done_received(src, msg.stripe, now))
            elif isinstance(msg, w.Failed):
                self.run_sender(s.failed_received(src, msg.culprit, msg.kind, msg.reason, now))
            return
        if to not in self.relays:
            if not isinstance(msg, w.Open):
                return
            self.relays[to] = rl.Relay(to, self.limits)
            self.unfinished[to] = None
        length = min(self.chunk_size, self.sender.size - getattr(msg, "index", 0) * self.chunk_size)
        self.run_relay(to, _relay_input(self.relays[to], src, msg, length, now), token)

    def tick(self, every: float) -> None:
        now = self.sim.now
        self.run_sender(self.sender.time_passed(now))
        for name in list(self.unfinished):
            self.run_relay(name, self.relays[name].time_passed(now), -1)
        if not self.settled():
            self.sim.at(now + every, self.tick, every)

    def settled(self) -> bool:
        """True once the sender finished and every living target's relay too."""
        return self.finished is not None and not self.unfinished

    def kill(self, victim: str, neighbours: list[str]) -> None:
        self.killed_at = self.sim.now
        self.net.hosts[victim].alive = False
        self.unfinished.pop(victim, None)        # a dead site's relay is nobody's to end
        self.sim.at(self.sim.now + DETECT, self.lost, victim, neighbours)

    def lost(self, victim: str, neighbours: list[str]) -> None:
        self.run_sender(self.sender.target_lost(victim, self.sim.now))
        for name in neighbours:
            if name in self.relays and self.net.hosts[name].alive:
                self.run_relay(name, self.relays[name].site_lost(victim, self.sim.now), -1)


@dataclass(frozen=True)
class _Limits:
    max_size: int = 1 << 50
    max_chunk_size: int = 64 << 20
    inactivity_timeout: float = 60.0


def _relay_input(relay: rl.Relay, src: str, msg: Any, length: int,
                 now: float) -> list[rl.RelayCommand]:
    """Call the relay's input for one message (``length``: a chunk's payload bytes)."""
    if isinstance(msg, w.Open):
        return relay.open_received(src, msg, now)
    if isinstance(msg, w.Chunk):
        return relay.chunk_received(src, msg.index, length, now)
    if isinstance(msg, w.End):
        return relay.end_received(src, msg.size, msg.digest, now)
    if isinstance(msg, w.Abort):
        return relay.abort_received(src, msg.reason, now)
    if isinstance(msg, w.Accept):
        return relay.accept_received(src, msg.stripe, now)
    if isinstance(msg, w.Ack):
        return relay.ack_received(src, msg.stripe, msg.count, now)
    if isinstance(msg, w.Done):
        return relay.done_received(src, msg.stripe, now)
    assert isinstance(msg, w.Failed)
    return relay.failed_received(src, msg.culprit, msg.kind, msg.reason, now)


def neighbours(trees: Sequence[Sequence[str]], fanout: int, victim: str) -> list[str]:
    """The targets linked to ``victim`` in any tree: its parents and its children."""
    out: set[str] = set()
    for tree in trees:
        stack = [tuple(tree)]
        while stack:
            members = stack.pop()
            subtrees = children(members, fanout)
            heads = {t[0] for t in subtrees}
            if members[0] == victim:
                out |= heads
            elif victim in heads:
                out.add(members[0])
            stack.extend(t for t in subtrees if len(t) > 1)
    return sorted(out)                       # in a set order would vary from run to run


# ---- the shells of pull: the owner, and a download and a seeder per recipient -----

OWNER, RID = "O/owner", "rid"


@dataclass
class Peer:
    """One recipient: its download, its seeder and its file (chunk index -> token)."""

    address: str
    download: dl.SwarmDownload
    bad: bool
    seeder: Optional[sd.Seeder] = None
    file: dict[int, int] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)
    finish: Optional[ds.Finish] = None
    finished_at: float = 0.0


@dataclass
class PullRun:
    """The owner's tracker and a download and seeder per recipient, on the network."""

    sim: Sim
    net: Net
    tracker: tr.Tracker
    peers: dict[str, Peer]
    peer_slots: int
    dialled: dict[str, dict[str, None]] = field(default_factory=dict)  # peer -> who dialled
    open: int = 0                                               # downloads not ended

    def send(self, src: str, to: str, msg: Any, size: int = 0, token: int = -1) -> None:
        self.net.send(host_of(src), host_of(to), size, self.arrive, src, to, msg, token)

    def run_owner(self, cmds: list[Any]) -> None:
        t = self.tracker
        for cmd in cmds:
            if isinstance(cmd, w.Send):
                for to in cmd.to:
                    self.send(OWNER, to, cmd.message)
            elif isinstance(cmd, tr.SendPiece):
                self.send(OWNER, cmd.to, w.Piece(RID, cmd.index), cmd.length, cmd.index)
            elif isinstance(cmd, tr.SendDigests):
                digests = tuple(f"d{i}" for i in range(cmd.first, cmd.first + cmd.count))
                self.send(OWNER, cmd.to, w.Digests(RID, cmd.page, digests))
            elif isinstance(cmd, tr.SendDigest):
                self.send(OWNER, cmd.to, w.Digest(RID, f"whole{t.total}"))

    def run_peer(self, p: Peer, cmds: list[Any], token: int = -1) -> None:
        now = self.sim.now
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, w.Send):
                for to in cmd.to:
                    self.send(p.address, to, cmd.message)
            elif isinstance(cmd, ds.OpenPartial):
                p.seeder = sd.Seeder(RID, size=p.download.size, chunk_size=p.download.chunk_size,
                                     max_uploads=self.peer_slots)
                cmds += p.download.partial_opened((), now)
            elif isinstance(cmd, ds.Dial):
                self.dialled.setdefault(cmd.peer, {})[p.address] = None
                if not self.net.hosts[host_of(cmd.peer)].alive:
                    self.sim.at(now + DETECT, self.unreachable, p, cmd.peer)
            elif isinstance(cmd, ds.CheckPiece):
                ok = f"d{p.pending[cmd.index]}" == cmd.digest
                if not ok:
                    del p.pending[cmd.index]
                cmds += p.download.piece_checked(cmd.index, ok, now)
            elif isinstance(cmd, ds.WriteChunk):
                p.file[cmd.index] = p.pending.pop(cmd.index)
                assert p.seeder is not None
                p.seeder.chunk_held(cmd.index)
                cmds += p.download.chunk_written(cmd.index, now)
            elif isinstance(cmd, ds.Commit):
                right = len(p.file) == self.tracker.total \
                    and all(p.file.get(i) == i for i in range(self.tracker.total))
                cmds += p.download.committed() if right and cmd.digest.startswith("whole") \
                    else p.download.commit_failed("mismatch")
            elif isinstance(cmd, ds.Finish):
                p.finish, p.finished_at = cmd, now
                self.open -= 1
            elif isinstance(cmd, sd.ReadPiece):
                self.send(p.address, cmd.to, w.Piece(RID, cmd.index), cmd.length,
                          -1 if p.bad else cmd.index)
                assert p.seeder is not None
                cmds += p.seeder.piece_read(cmd.to, cmd.index, cmd.length, now)

    def arrive(self, src: str, to: str, msg: Any, token: int) -> None:
        now = self.sim.now
        if to == OWNER:
            self.run_owner(_owner_input(self.tracker, src, msg, now))
            return
        p = self.peers[to]
        cmds: list[Any]
        if isinstance(msg, w.Piece):
            cmds = p.download.piece_received(src, msg.index, self.length(msg.index), now)
            if any(isinstance(c, (ds.WriteChunk, ds.CheckPiece)) for c in cmds):
                p.pending[msg.index] = token
        elif isinstance(msg, w.Get):
            cmds = p.seeder.get_received(src, msg.index, now) if p.seeder else []
        elif isinstance(msg, w.Ended):
            if p.seeder is not None:
                p.seeder.share_ended()
            cmds = p.download.refused("share ended")
        else:
            cmds = _download_input(p.download, src, msg, now)
        self.run_peer(p, cmds)

    def length(self, index: int) -> int:
        return min(self.tracker.chunk_size, self.tracker.size - index * self.tracker.chunk_size)

    def unreachable(self, p: Peer, peer: str) -> None:
        if self.net.hosts[host_of(p.address)].alive:
            self.run_peer(p, p.download.peer_unreachable(peer, self.sim.now))

    def kill(self, p: Peer) -> None:
        self.net.hosts[host_of(p.address)].alive = False
        if p.finish is None:
            self.open -= 1
        self.sim.at(self.sim.now + DETECT, self.lost, host_of(p.address), p.address)

    def lost(self, site: str, address: str) -> None:
        self.run_owner(self.tracker.site_lost(site, self.sim.now))
        for other in self.dialled.get(address, ()):
            q = self.peers[other]
            if self.net.hosts[host_of(other)].alive:
                self.run_peer(q, q.download.site_lost(site, self.sim.now))

    def tick(self, every: float) -> None:
        now = self.sim.now
        self.run_owner(self.tracker.time_passed(now))
        for p in self.peers.values():
            if p.finish is None and self.net.hosts[host_of(p.address)].alive:
                self.run_peer(p, p.download.time_passed(now))
        if self.open > 0:
            self.sim.at(now + every, self.tick, every)


def host_of(address: str) -> str:
    """The host (site) of an actor address ``site/actor``."""
    return address.partition("/")[0]


def _owner_input(t: tr.Tracker, src: str, msg: Any, now: float) -> list[tr.TrackerCommand]:
    """Call the tracker's input for one message from a recipient."""
    if isinstance(msg, w.Join):
        return t.joined(src, msg.window, msg.endpoint, now)
    if isinstance(msg, w.Want):
        return t.wanted(src, msg.got, msg.failed, now)
    if isinstance(msg, w.GetDigests):
        return t.digests_requested(src, msg.page)
    if isinstance(msg, w.GetDigest):
        return t.digest_requested(src)
    assert isinstance(msg, w.Leave)
    return t.left(src, msg.ok, now)


def _download_input(d: dl.SwarmDownload, src: str, msg: Any,
                    now: float) -> list[ds.DownloadCommand]:
    """Call the download's input for one message from the owner or a peer."""
    if isinstance(msg, w.Welcome):
        return d.welcomed(msg, now)
    if isinstance(msg, w.Fetch):
        return d.fetch_received(msg, now)
    if isinstance(msg, w.Wait):
        return d.wait_received(now)
    if isinstance(msg, w.Rejoin):
        return d.rejoin_received(now)
    if isinstance(msg, w.Digests):
        return d.digests_received(msg, now)
    if isinstance(msg, w.Digest):
        return d.digest_received(msg.digest, now)
    assert isinstance(msg, w.Decline)
    return d.declined(src, msg.index, now)
