"""An owner's tracker and recipients (download + seeder) joined by an in-memory link that
can drop, repeat and reorder: the fake shells the pull-with-peers tests drive."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from zfs.protocol.swarm import download as d
from zfs.protocol.swarm import downloading as ds
from zfs.protocol.swarm import seeder as sd
from zfs.protocol.swarm import tracker as t
from zfs.protocol.swarm import wire as w

OWNER = "O/owner"
RID = "rid1"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Recipient:
    """A download and a seeder with their fake shell: the partial file is a dict."""

    address: str
    dl: d.SwarmDownload
    bad: bool = False                        # serves corrupted pieces
    alive: bool = True
    seeder: Optional[sd.Seeder] = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    pending: dict[int, bytes] = field(default_factory=dict)   # pieces being checked/written
    file: Optional[bytes] = None
    finish: Optional[ds.Finish] = None

    @property
    def site(self) -> str:
        return self.address.partition("/")[0]


@dataclass
class World:
    data: bytes
    tracker: t.Tracker
    recipients: dict[str, Recipient]
    rng: random.Random
    chunk_size: int
    page_chunks: int
    unreachable: set[frozenset[str]] = field(default_factory=set)   # pairs of sites
    now: float = 0.0
    link: list[tuple[str, str, Any, bytes]] = field(default_factory=list)
    drop: float = 0.0
    dup: float = 0.0
    sent: list[Any] = field(default_factory=list)   # every message put on the link

    def send(self, frm: str, to: str, msg: Any, payload: bytes = b"") -> None:
        self.sent.append(msg)
        if self.rng.random() < self.drop:
            return
        self.link.append((frm, to, msg, payload))
        if self.rng.random() < self.dup:
            self.link.append((frm, to, msg, payload))

    def chunk(self, index: int) -> bytes:
        return self.data[index * self.chunk_size:(index + 1) * self.chunk_size]

    # -- the owner's shell

    def run_owner(self, cmds: list[Any]) -> None:
        for cmd in cmds:
            if isinstance(cmd, w.Send):
                for to in cmd.to:
                    self.send(OWNER, to, cmd.message)
            elif isinstance(cmd, t.SendPiece):
                body = self.data[cmd.offset:cmd.offset + cmd.length]
                self.send(OWNER, cmd.to, w.Piece(RID, cmd.index), body)
            elif isinstance(cmd, t.SendDigests):
                digests = tuple(digest(self.chunk(i))
                                for i in range(cmd.first, cmd.first + cmd.count))
                self.send(OWNER, cmd.to, w.Digests(RID, cmd.page, digests))
            elif isinstance(cmd, t.SendDigest):
                self.send(OWNER, cmd.to, w.Digest(RID, digest(self.data)))

    def to_owner(self, frm: str, msg: Any) -> None:
        tr, now = self.tracker, self.now
        if isinstance(msg, w.Join):
            self.run_owner(tr.joined(frm, msg.window, msg.endpoint, now))
        elif isinstance(msg, w.Want):
            self.run_owner(tr.wanted(frm, msg.got, msg.failed, now))
        elif isinstance(msg, w.GetDigests):
            self.run_owner(tr.digests_requested(frm, msg.page))
        elif isinstance(msg, w.GetDigest):
            self.run_owner(tr.digest_requested(frm))
        elif isinstance(msg, w.Leave):
            self.run_owner(tr.left(frm, msg.ok, now))

    # -- a recipient's shell

    def run(self, r: Recipient, cmds: list[Any], payload: bytes = b"") -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, w.Send):
                for to in cmd.to:
                    self.send(r.address, to, cmd.message)
            elif isinstance(cmd, ds.OpenPartial):
                r.seeder = sd.Seeder(RID, size=r.dl.size, chunk_size=r.dl.chunk_size,
                                     max_uploads=2)
                cmds += r.dl.partial_opened(sorted(r.chunks), self.now)
            elif isinstance(cmd, ds.Dial):
                if frozenset((r.site, cmd.peer.partition("/")[0])) in self.unreachable:
                    cmds += r.dl.peer_unreachable(cmd.peer, self.now)
            elif isinstance(cmd, ds.CheckPiece):
                ok = digest(r.pending[cmd.index]) == cmd.digest
                if not ok:
                    del r.pending[cmd.index]
                cmds += r.dl.piece_checked(cmd.index, ok, self.now)
            elif isinstance(cmd, ds.WriteChunk):
                r.chunks[cmd.index] = r.pending.pop(cmd.index)
                assert r.seeder is not None
                r.seeder.chunk_held(cmd.index)
                cmds += r.dl.chunk_written(cmd.index, self.now)
            elif isinstance(cmd, ds.Commit):
                body = b"".join(r.chunks[i] for i in sorted(r.chunks))
                ok = len(body) == cmd.size and digest(body) == cmd.digest
                r.file = body if ok else None
                cmds += r.dl.committed() if ok else r.dl.commit_failed("mismatch")
            elif isinstance(cmd, ds.Finish):
                assert r.finish is None, "finished twice"
                r.finish = cmd
            elif isinstance(cmd, sd.ReadPiece):
                body = self.chunk(cmd.index)
                if r.bad:
                    body = bytes(b ^ 0x5A for b in body)
                assert r.seeder is not None
                self.send(r.address, cmd.to, w.Piece(RID, cmd.index), body)
                cmds += r.seeder.piece_read(cmd.to, cmd.index, len(body), self.now)

    def to_recipient(self, r: Recipient, frm: str, msg: Any, payload: bytes) -> None:
        dl, now = r.dl, self.now
        if isinstance(msg, w.Welcome):
            cmds = dl.welcomed(msg, now)
        elif isinstance(msg, w.Fetch):
            cmds = dl.fetch_received(msg, now)
        elif isinstance(msg, w.Wait):
            cmds = dl.wait_received(now)
        elif isinstance(msg, w.Rejoin):
            cmds = dl.rejoin_received(now)
        elif isinstance(msg, w.Digests):
            cmds = dl.digests_received(msg, now)
        elif isinstance(msg, w.Digest):
            cmds = dl.digest_received(msg.digest, now)
        elif isinstance(msg, w.Piece):
            cmds = dl.piece_received(frm, msg.index, len(payload), now)
            if any(isinstance(c, (ds.WriteChunk, ds.CheckPiece)) for c in cmds):
                r.pending[msg.index] = payload    # kept until written or found bad
        elif isinstance(msg, w.Decline):
            cmds = dl.declined(frm, msg.index, now)
        elif isinstance(msg, w.Get):
            cmds = r.seeder.get_received(frm, msg.index, now) if r.seeder else []
        elif isinstance(msg, w.Ended):
            if r.seeder is not None:
                r.seeder.share_ended()
            cmds = dl.refused("share ended")
        else:
            raise AssertionError(msg)
        self.run(r, cmds, payload)

    # -- the link

    def deliver(self, index: int = 0) -> None:
        frm, to, msg, payload = self.link.pop(index)
        if to == OWNER:
            self.to_owner(frm, msg)
        elif self.recipients[to].alive:
            self.to_recipient(self.recipients[to], frm, msg, payload)

    def tick(self, dt: float) -> None:
        self.now += dt
        self.run_owner(self.tracker.time_passed(self.now))
        for r in self.recipients.values():
            if r.alive:
                self.run(r, r.dl.time_passed(self.now))

    def kill(self, address: str) -> None:
        """A recipient's site dies; the runtime tells the owner and the other recipients."""
        victim = self.recipients[address]
        victim.alive = False
        self.link = [m for m in self.link if address not in (m[0], m[1])]
        self.run_owner(self.tracker.site_lost(victim.site, self.now))
        for r in self.recipients.values():
            if r.alive:
                self.run(r, r.dl.site_lost(victim.site, self.now))

    def settle(self, limit: int = 300_000) -> None:
        for _ in range(limit):
            if not any(r.alive and r.finish is None for r in self.recipients.values()):
                return
            if self.link:
                self.deliver(self.rng.randrange(len(self.link)) if self.drop or self.dup else 0)
            else:
                self.tick(1.0)
        raise AssertionError("the swarm pull did not settle")

    def start(self) -> None:
        for r in self.recipients.values():
            self.run(r, r.dl.started(self.now))


def make_world(data: bytes, n: int, *, chunk_size: int = 8, window: int = 4,
               page_chunks: int = 4, seed: int = 0, bad: tuple[int, ...] = (),
               nat: tuple[int, ...] = (), drop: float = 0.0, dup: float = 0.0,
               owner_slots: int = 2, unreachable: tuple[tuple[int, int], ...] = ()) -> World:
    tracker = t.Tracker(RID, name="f.bin", size=len(data), key="k", chunk_size=chunk_size,
                        page_chunks=page_chunks, owner_slots=owner_slots, peer_slots=2,
                        lease=8.0)
    recipients = {}
    for i in range(n):
        address = f"r{i}/dl"
        dl = d.SwarmDownload(RID, OWNER, endpoint=None if i in nat else f"tcp://r{i}",
                             window_chunks=window, request_timeout=2.0, retries=50)
        recipients[address] = Recipient(address, dl, bad=i in bad)
    pairs = {frozenset((f"r{a}", f"r{b}")) for a, b in unreachable}
    world = World(data, tracker, recipients, random.Random(seed), chunk_size, page_chunks,
                  pairs, drop=drop, dup=dup)
    world.start()
    return world
