"""Swarm push and pull at scale, simulated: ``python -m benchmarks.swarmsim``.

The simulation drives the real protocol cores (:mod:`zfs.protocol.swarm`): a sender
and a relay per target for push, the owner's tracker and a download and a seeder per
recipient for pull. Only the shells are fake: the network is
:mod:`benchmarks.swarmsim_model` (every host's link capped each way, latencies drawn
per host), a chunk's bytes are a token (its index, or a corrupt one), digests are of
tokens, and reads and writes are instant. Every run checks that each surviving
recipient ends with every chunk right, and reports against the swarm bound: the file
at one link's rate (at the slowest surviving recipient's, when some are slow, or the
whole swarm's upload when that is lower).

Example: ``python -m benchmarks.swarmsim --recipients 8,16,1000,10000``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from benchmarks.swarmsim_model import (
    MBIT, OWNER, RID, Host, Net, Peer, Population, PullRun, PushRun, Sim, draw_hosts, host_of,
    neighbours, pick)
from zfs.protocol.swarm import download as dl
from zfs.protocol.swarm import downloading as ds
from zfs.protocol.swarm import sender as sn
from zfs.protocol.swarm import tracker as tr
from zfs.protocol.swarm.plan import children, plan


@dataclass
class Result:
    """One simulated transfer, as the table prints it."""

    mode: str
    n: int
    setting: str
    ok: bool
    seconds: float         # until the last surviving recipient had the file
    bound: float
    owner_copies: float
    peak_queue_chunks: float = 0.0
    survivors: int = 0
    note: str = ""
    wall: float = 0.0

    @property
    def ratio(self) -> float:
        """Time to all over the swarm bound (0 when there is no bound: an abort)."""
        return self.seconds / self.bound if self.bound else 0.0


def bound(size: int, hosts: dict[str, Host], origin: str, alive: Sequence[str]) -> float:
    """The least time any scheme needs: one link's rate, or the swarm's whole upload."""
    slowest = max(size / min(hosts[n].down, hosts[origin].up) for n in alive) if alive else 0
    upload = sum(h.up for h in hosts.values())
    return max(slowest, size * len(alive) / upload)


# ---- push ------------------------------------------------------------------------

def start_push(n: int, pop: Population, seed: int, fanout: int, chunks: int,
               chunk_size: int) -> tuple[PushRun, list[str]]:
    """Draw the hosts, plan the trees and start the sender; return the run and targets."""
    rng = random.Random(seed)
    hosts = draw_hosts(n, pop, rng, "S", "t")
    targets = [name for name in hosts if name != "S"]
    rng.shuffle(targets)
    layout = plan(targets, fanout)
    chunk_time = chunk_size / (pop.rate_mbit * MBIT)
    window = push_window(layout.depth, fanout, pop.latency_ms[1] / 1000, chunk_time)
    sender = sn.SwarmSender(layout, stream="st", name="f", channel="c", topic="t",
                            size=chunks * chunk_size, chunk_size=chunk_size,
                            window_chunks=window, chunk_timeout=5.0)
    sim = Sim()
    run = PushRun(sim, Net(sim, hosts), sender, chunk_size)
    run.run_sender(sender.start(0.0))
    sim.at(0.25, run.tick, 0.25)
    return run, targets


def run_push(n: int, pop: Population, seed: int, fanout: int, chunks: int,
             chunk_size: int) -> Result:
    """Push a file of ``chunks`` chunks to ``n`` targets over a plan of fan-out ``fanout``."""
    run, targets = start_push(n, pop, seed, fanout, chunks, chunk_size)
    run.sim.run(run.settled, until=600.0)
    sender, hosts = run.sender, run.net.hosts
    ok = run.finished is not None and run.finished.ok and len(run.committed) == n
    note = f"window {sender.window_chunks}, depth {sender.plan.depth}"
    return Result("push", n, f"fanout {fanout}", ok, max(run.committed.values(), default=0),
                  bound(sender.size, hosts, "S", targets), hosts["S"].sent / sender.size,
                  run.net.peak_queue / chunk_size, n, note)


def run_push_abort(n: int, pop: Population, seed: int, fanout: int, chunks: int,
                   chunk_size: int) -> Result:
    """Push as :func:`run_push`, but kill an inner target once all hold a third (or
    once the sender read the last chunk, for a file that fits in one window).

    Right means: the push fails naming it, and no target is left with a partial file
    (as in plain push, a target that committed before the failure keeps its checked file).
    """
    run, targets = start_push(n, pop, seed, fanout, chunks, chunk_size)
    trees = run.sender.plan.trees
    victim = (children(trees[0], fanout) or [trees[0]])[0][0]
    run.doomed = (run.sender.size // 3, victim, neighbours(trees, fanout, victim))
    run.sim.run(run.settled, until=600.0)
    left = [t for t in targets if t in run.files and t != victim]
    f = run.finished
    ok = f is not None and not f.ok and f.culprit == victim and not left
    note = f"{victim} killed at {run.killed_at:.2f} s: culprit {f.culprit} ({f.kind}); " \
        f"{len(left)} partial files left, {len(run.committed)} complete before it was " \
        f"known" if f else "did not end"
    return Result("push", n, f"fanout {fanout}, abort", ok, run.sim.now, 0.0,
                  run.net.hosts["S"].sent / run.sender.size, run.net.peak_queue / chunk_size,
                  n - 1, note)


def push_window(depth: int, fanout: int, max_latency: float, chunk_time: float) -> int:
    """Chunks in flight enough to cover a chunk's trip down the tree and its ack's back."""
    trip = depth * (fanout * chunk_time + 2 * max_latency) + depth * 2 * max_latency
    return max(4, int(trip / chunk_time * 1.1) + 2 * fanout)


# ---- pull ------------------------------------------------------------------------

@dataclass(frozen=True)
class PullSettings:
    """The knobs of the pull side (the tracker's and the downloads')."""

    window: int = 8
    peer_slots: int = 3
    owner_slots: int = 4
    join_spread: float = 0.05


def run_pull(n: int, pop: Population, seed: int, chunks: int, chunk_size: int,
             cfg: PullSettings = PullSettings()) -> Result:
    """Let ``n`` recipients pull a file of ``chunks`` chunks from one owner and each other."""
    rng = random.Random(seed)
    hosts = draw_hosts(n, pop, rng, "O", "r")
    names = [h for h in hosts if h != "O"]
    bad, nat = set(pick(rng, names, pop.bad)), set(pick(rng, names, pop.nat))
    dying = pick(rng, [name for name in names if name not in bad], pop.dying)
    size = chunks * chunk_size
    tracker = tr.Tracker(RID, name="f", size=size, key="k", chunk_size=chunk_size,
                         owner_slots=cfg.owner_slots, peer_slots=cfg.peer_slots)
    sim = Sim()
    run = PullRun(sim, Net(sim, hosts), tracker, {}, cfg.peer_slots, open=n)
    for name in names:
        address = f"{name}/dl"
        download = dl.SwarmDownload(RID, OWNER, window_chunks=cfg.window,
                                    endpoint=None if name in nat else f"tcp://{name}")
        p = run.peers[address] = Peer(address, download, name in bad)
        sim.at(rng.uniform(0, cfg.join_spread), lambda p=p: run.run_peer(
            p, p.download.started(sim.now)))
    one = size / (pop.rate_mbit * MBIT)
    for name in dying:
        sim.at(rng.uniform(0.1, 0.9) * one, run.kill, run.peers[f"{name}/dl"])
    sim.at(0.25, run.tick, 0.25)
    sim.run(lambda: run.open <= 0, until=600.0)
    alive = [name for name in names if hosts[name].alive]
    done = [run.peers[f"{a}/dl"] for a in alive]
    ok = all(p.finish is not None and p.finish.state is ds.DownloadState.DONE for p in done)
    ok = ok and all(p.file.get(i) == i for p in done for i in range(chunks))
    seconds = max((p.finished_at for p in done), default=0.0)
    from_peers = sum(sum(b for _, b in p.finish.from_peers) for p in done if p.finish)
    note = f"peers carried {from_peers / max(1, size * len(done)):.0%}"
    if bad or dying or nat:
        note += f"; {len(bad)} bad, {len(dying)} died, {len(nat)} behind NAT"
    slow = [p for p in done if hosts[host_of(p.address)].slow]
    if slow:
        fast = max((p.finished_at for p in done if p not in slow), default=0.0)
        note += f"; {len(slow)} slow; the others all done at {fast / one:.2f}x size/rate"
    return Result("pull", n, f"window {cfg.window}, {cfg.peer_slots} up/peer", ok, seconds,
                  bound(size, hosts, "O", alive), hosts["O"].sent / size,
                  run.net.peak_queue / chunk_size, len(alive), note)


# ---- the command line --------------------------------------------------------------

def fanouts(text: str, n: int) -> list[int]:
    """The push fan-outs to try: the given ones, or (``auto``) those worth trying at ``n``."""
    if text != "auto":
        return [int(f) for f in text.split(",")]
    if n <= 64:
        return [1, 2, 3, 4]          # a chain is in the running while it is short
    return [2, 3, 4] if n <= 2000 else [2, 3]


def table(results: list[Result]) -> str:
    """The results as a plain text table."""
    head = (f"{'mode':<5} {'N':>6} {'setting':<24} {'t-all s':>8} {'bound s':>8} "
            f"{'x bound':>7} {'owner':>6} {'queue':>6} {'ok':<3} notes")
    lines = [head, "-" * len(head)]
    for r in results:
        bound, ratio = (f"{r.bound:>8.2f}", f"{r.ratio:>7.2f}") if r.bound else ("-", "-")
        lines.append(f"{r.mode:<5} {r.n:>6} {r.setting:<24} {r.seconds:>8.2f} {bound:>8} "
                     f"{ratio:>7} {r.owner_copies:>6.2f} {r.peak_queue_chunks:>6.1f} "
                     f"{'yes' if r.ok else 'NO':<3} {r.note} [{r.wall:.0f} s]")
    return "\n".join(lines)


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.swarmsim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", default="8,16,1000,10000", help="N values, comma-separated")
    ap.add_argument("--mode", default="push,pull", help="push, pull or both")
    ap.add_argument("--chunks", type=int, default=128, help="chunks per file (default 128)")
    ap.add_argument("--chunk-kib", type=int, default=1024, help="KiB per chunk (default 1024)")
    ap.add_argument("--rate-mbit", type=float, default=400.0, help="every link, each way")
    ap.add_argument("--latency-ms", default="0.5,5", help="one-way latency range per host")
    ap.add_argument("--fanout", default="auto", help="push fan-outs to try, or auto")
    ap.add_argument("--window", type=int, default=8, help="pull: chunks under way per recipient")
    ap.add_argument("--peer-slots", type=int, default=3, help="pull: uploads per peer at once")
    ap.add_argument("--owner-slots", type=int, default=4, help="pull: the owner's uploads")
    ap.add_argument("--faults", action="store_true",
                    help="also run with 1%% slow (1/4 rate), 1%% dying, 0.5%% corrupting and "
                         "5%% unreachable recipients, and a push whose relay dies")
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args(argv)


def scenarios(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The runs the arguments ask for, as (label, thunk) pairs."""
    low, high = (float(x) for x in args.latency_ms.split(","))
    clean = Population(rate_mbit=args.rate_mbit, latency_ms=(low, high))
    faulty = Population(rate_mbit=args.rate_mbit, latency_ms=(low, high), slow=0.01,
                        dying=0.01, bad=0.005, nat=0.05)
    cfg = PullSettings(args.window, args.peer_slots, args.owner_slots)
    size = args.chunk_kib * 1024
    runs: list[tuple[str, Any]] = []
    modes = {"push", "pull"} if args.mode == "both" else set(args.mode.split(","))
    for n in (int(x) for x in args.recipients.split(",")):
        if "push" in modes:
            for f in fanouts(args.fanout, n):
                runs.append(("push", lambda n=n, f=f: run_push(
                    n, clean, args.seed, f, args.chunks, size)))
            if args.faults:
                runs.append(("push", lambda n=n: run_push_abort(
                    n, clean, args.seed, 2, args.chunks, size)))
        if "pull" in modes:
            runs.append(("pull", lambda n=n: run_pull(n, clean, args.seed, args.chunks, size,
                                                      cfg)))
            if args.faults:
                runs.append(("pull", lambda n=n: run_pull(n, faulty, args.seed, args.chunks,
                                                          size, cfg)))
    return runs


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the simulations asked for and print the table; 1 if a delivery went wrong."""
    args = parse(argv)
    print(f"file: {args.chunks} chunks of {args.chunk_kib} KiB; every link "
          f"{args.rate_mbit:g} Mbit/s each way; latency {args.latency_ms} ms one-way per "
          f"host; seed {args.seed}", flush=True)
    results = []
    for _, thunk in scenarios(args):
        started = time.perf_counter()
        result = thunk()
        result.wall = time.perf_counter() - started
        results.append(result)
        print(table([result]).splitlines()[-1], flush=True)
    print()
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
