"""``python -m benchmarks scale``: push to N hosts and N hosts pulling, the swarm way
beside the star (issue 16).

An owner and N targets, each a site in its own network namespace on one bridge
(:mod:`tests.support.netns`), every host's link capped with ``tbf`` both ways (its
``eth0`` for what it sends, its wire in the hub for what it receives). For each N the
file moves twice each way asked (``--mode``), in the same run:

- push: the owner pushes it the swarm way (:mod:`zfs.swarm`) and the star way
  (``swarm=False``: every chunk to every target);
- pull: the owner shares it and the N targets download it at once, with peers
  (``zfs.download(..., swarm=True)``: they pass chunks to each other) and the star way
  (``swarm=False``: each takes every byte from the owner). A pull lasts from the first
  recipient's start to the last one's end (all processes share one monotonic clock);
  the share ends before the copies are checked, since a finished recipient serves the
  others until then.

The file is checked at every target after each run. The table gives seconds, their
ratio to the swarm bound (the file at one link's rate: no target can receive it faster),
the owner's upload in copies of the file (what its ``eth0`` sent, headers included), the
CPU the owner's and targets' processes used during the run as a share of all cores
("CPU"), and the whole machine's ("host": the kernel's bridging and any other work
included; near 100% the CPU, not the links, is the limit). The goals: at N targets the
swarm within ``GOALS[N]`` times the bound, and the owner uploading at most
``COPIES_GOAL`` copies.

Needs root (namespaces, ``tc``); says why and exits 0 without it. Every namespace it
makes is removed, on failure too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import actors
import zfs
from benchmarks.data import MiB, parse_size
from benchmarks.options import parse_counts
from zfs.files import file_digest
from zfs.pull.transaction import owner_stats

try:
    from tests.support import netns
except ImportError:  # run from elsewhere than the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support import netns

CHANNEL = TOPIC = "scale"
TARGETS = (1, 2, 4, 8, 16)
RATE_MBIT = 300
GOALS = {8: 1.3, 16: 1.5}      # the targets: seconds / bound at N targets
COPIES_GOAL = 1.5              # and the owner's upload, in copies of the file
MODES = {"push": ("push",), "pull": ("pull",), "both": ("push", "pull")}
WAIT_TIMEOUT = 600.0

# The owner process's open shares by RID, between owner_share and owner_unshare (two
# calls from the benchmark's process, which cannot hold a Transaction of another).
_SHARES: dict[str, zfs.Transaction] = {}


@dataclass(frozen=True, slots=True)
class Row:
    """One run: N targets, one way, how long, how much the owner sent, how busy the CPU."""

    n: int
    route: str
    seconds: float
    owner_copies: float
    cpu: float          # our processes' share of all cores
    host_cpu: float     # the machine's, kernel and other work included
    kind: str = "push"  # or "pull"


def owner_push(site: actors.Site, targets: list[str], path: str, swarm: bool,
               fanout: int = 0, window_chunks: int = 8,
               chunk_size: int = MiB) -> dict[str, Any]:
    """(In the owner's process.) Push ``path`` to ``targets``; say how long and which way."""
    for name in targets:
        site.wait_for(name, timeout=30)
    start = time.monotonic()
    result = zfs.push_file(site, targets, path, channel=CHANNEL, topic=TOPIC, swarm=swarm,
                           fanout=fanout, window_chunks=window_chunks,
                           chunk_size=chunk_size, chunk_timeout=60.0)
    return {"seconds": time.monotonic() - start, "route": result.route, "note": result.note}


def owner_share(site: actors.Site, path: str, timeout: float = 60.0) -> str:
    """(In the owner's process.) Share ``path``; return its RID once its digest is known,
    so that the pull does not time the owner's hashing."""
    tx = zfs.share(site, timeout=600)
    rid = tx.add_file(path)
    _SHARES[rid] = tx
    deadline = time.monotonic() + timeout
    while owner_stats(site)["digesting"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the owner still digests {path} after {timeout:g} s")
        time.sleep(0.05)  # poll interval of a deadline-bounded wait
    return rid


def owner_unshare(site: actors.Site, rid: str) -> None:
    """(In the owner's process.) End the share of ``rid``: its seeders stop serving."""
    _SHARES.pop(rid).close()


def recipient_pull(site: actors.Site, owner: str, rid: str, dest: str,
                   swarm: bool) -> dict[str, Any]:
    """(In a target's process.) Download ``rid`` into ``dest``; say when it began and
    ended (monotonic seconds), which way, and the bytes its peers served."""
    site.wait_for(owner, timeout=30)
    start = time.monotonic()
    result = zfs.download(site, owner, rid, dest, swarm=swarm, request_timeout=30)
    assert isinstance(result, zfs.DownloadResult)
    return {"start": start, "end": time.monotonic(), "route": result.route,
            "from_peers": sum(count for _, count in result.from_peers)}


def _tc(*args: str) -> str:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _cap(net: netns.Network, host: netns.Host, rate_mbit: int) -> None:
    """Cap what ``host`` sends (its eth0) and receives (its wire in the hub) at the rate."""
    spec = ["root", "tbf", "rate", f"{rate_mbit}mbit", "burst", "256kb", "latency", "50ms"]
    _tc("-n", host.netns, "qdisc", "add", "dev", "eth0", *spec)
    _tc("-n", net.hub, "qdisc", "add", "dev", host.wire, *spec)


def _sent_bytes(host: netns.Host) -> int:
    """What ``host``'s eth0 has sent so far (its tbf's counter)."""
    out = _tc("-s", "-n", host.netns, "qdisc", "show", "dev", "eth0")
    found = re.search(r"Sent (\d+) bytes", out)
    return int(found.group(1)) if found else 0


def _host_ticks() -> tuple[int, int]:
    """All CPU ticks of the machine so far, and the idle ones among them."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values), values[3] + values[4]      # all, idle + iowait


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time the processes ``pids`` have used so far (user and system)."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])     # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class _Meter:
    """What the owner's eth0 sent and the CPU used from now on, for one run."""

    def __init__(self, owner: netns.Host, pids: list[int]) -> None:
        self.owner, self.pids = owner, pids
        self.sent, self.used, self.start = _sent_bytes(owner), _cpu_seconds(pids), \
            time.monotonic()
        self.ticks, self.idle = _host_ticks()

    def cpu(self) -> tuple[float, float]:
        """Our processes' share of all cores so far, and the whole machine's."""
        elapsed = time.monotonic() - self.start
        cpu = (_cpu_seconds(self.pids) - self.used) / elapsed / (os.cpu_count() or 1)
        ticks, idle = _host_ticks()
        return cpu, 1 - (idle - self.idle) / max(1, ticks - self.ticks)

    def copies(self, size: int) -> float:
        """What the owner sent so far, in copies of a file of ``size`` bytes."""
        return (_sent_bytes(self.owner) - self.sent) / size


class Bench:
    """The hosts of one run: a control site here, the owner and targets in namespaces."""

    def __init__(self, net: netns.Network, work: Path, hub: actors.Site, count: int,
                 rate_mbit: int, fanout: int = 0, window_chunks: int = 8) -> None:
        self.work, self.hub, self.fanout, self.window = work, hub, fanout, window_chunks
        self.chunk_size = MiB
        self.targets: list[netns.NamespacedSite] = []
        for i in range(count):
            host = net.add_host(f"t{i}")
            _cap(net, host, rate_mbit)
            proc = netns.NamespacedSite(host, f"t{i}", connect={"bench": str(hub.endpoint)})
            proc.start()
            self.targets.append(proc)
        owner_host = net.add_host("owner")
        _cap(net, owner_host, rate_mbit)
        links = {"bench": str(hub.endpoint), **{t.name: t.endpoint for t in self.targets}}
        self.owner = netns.NamespacedSite(owner_host, "owner", connect=links)
        self.owner.start()
        for proc in [*self.targets, self.owner]:
            hub.wait_for(proc.name, timeout=30)
        for proc in self.targets:
            (work / proc.name / "pull").mkdir(parents=True)
            proc.call(hub, "zfs:register_receiver", channel=CHANNEL, topic=TOPIC,
                      dest_dir=str(work / proc.name))

    def peak_rss(self) -> dict[str, int]:
        """Each process's peak resident memory so far (VmHWM), by site name."""
        return {proc.name: proc.memory()[1] for proc in [*self.targets, self.owner]}

    def stop(self) -> None:
        for proc in [*self.targets, getattr(self, "owner", None)]:
            if proc is not None:
                proc.kill()

    def _pids(self) -> list[int]:
        return [proc.pid for proc in [*self.targets, self.owner]]

    def _check(self, folders: list[Path], path: Path, digest: str) -> None:
        """Check the copy of ``path`` in each folder, then remove it."""
        for folder in folders:
            copy = folder / path.name
            if file_digest(copy) != digest:
                raise RuntimeError(f"{copy} is a wrong copy")
            copy.unlink()

    def push(self, n: int, path: Path, digest: str, swarm: bool) -> Row:
        """Push to the first ``n`` targets one way; check every copy; remove them."""
        names = [proc.name for proc in self.targets[:n]]
        meter = _Meter(self.owner.host, self._pids())
        job = self.owner.start_job(self.hub, "benchmarks.scale:owner_push", names, str(path),
                                   swarm, self.fanout, self.window, self.chunk_size)
        state = self.owner.wait_job(self.hub, job, timeout=WAIT_TIMEOUT)
        cpu, host_cpu = meter.cpu()
        if state["state"] != "done":
            raise RuntimeError(f"push to {n} ({'swarm' if swarm else 'star'}): {state}")
        outcome = state["result"]
        self._check([self.work / name for name in names], path, digest)
        copies = meter.copies(path.stat().st_size)
        return Row(n, outcome["route"], outcome["seconds"], copies, cpu, host_cpu, "push")

    def pull(self, n: int, path: Path, digest: str, swarm: bool) -> Row:
        """Let the first ``n`` targets download a share at once, one way; end the share;
        check every copy; remove them."""
        way = "swarm" if swarm else "star"
        procs = self.targets[:n]
        rid = self.owner.call(self.hub, "benchmarks.scale:owner_share", str(path),
                              timeout=90)
        try:
            meter = _Meter(self.owner.host, self._pids())
            jobs = [(proc, proc.start_job(self.hub, "benchmarks.scale:recipient_pull",
                                          "owner", rid, str(self.work / proc.name / "pull"),
                                          swarm)) for proc in procs]
            deadline = time.monotonic() + WAIT_TIMEOUT
            states = {proc.name: proc.wait_job(self.hub, job, max(1.0, deadline -
                                                                    time.monotonic()))
                      for proc, job in jobs}
            cpu, host_cpu = meter.cpu()
            copies = meter.copies(path.stat().st_size)
        finally:
            self.owner.call(self.hub, "benchmarks.scale:owner_unshare", rid)
        failed = {name: state for name, state in states.items() if state["state"] != "done"}
        if failed:
            raise RuntimeError(f"pull by {n} ({way}): " + "\n".join(
                f"{name}: {state['result']}\n{state.get('trace', '')}"
                for name, state in failed.items()))
        self._check([self.work / proc.name / "pull" for proc in procs], path, digest)
        ends = [state["result"] for state in states.values()]
        seconds = max(e["end"] for e in ends) - min(e["start"] for e in ends)
        return Row(n, _pull_way(swarm, [e["route"] for e in ends]), seconds, copies, cpu,
                   host_cpu, "pull")

    def measure(self, kind: str, n: int, path: Path, digest: str, swarm: bool) -> Row:
        """One run of ``kind`` ("push" or "pull") for ``n`` targets, one way."""
        return (self.push if kind == "push" else self.pull)(n, path, digest, swarm)


def _pull_way(swarm: bool, routes: list[str]) -> str:
    """The way a pull went, named as a push's: "swarm" if every recipient pulled with
    peers, "star" if every one from the owner only ("mixed" otherwise)."""
    if all(route == "swarm" for route in routes):
        return "swarm"
    if all(route == "direct" for route in routes):
        return "star"
    return "mixed"


def _write_file(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes; return its digest."""
    with open(path, "wb") as out:
        for _ in range(size // MiB):
            out.write(os.urandom(MiB))
        out.write(os.urandom(size % MiB))
    return file_digest(path)


def run(size: int, counts: tuple[int, ...], rate_mbit: int, fanout: int = 0,
        window_chunks: int = 8, star: bool = True, chunk_size: int = MiB,
        folder: Optional[str] = None, peaks: Optional[dict[str, int]] = None,
        kinds: tuple[str, ...] = ("push",)) -> list[Row]:
    """Measure every N of every kind ("push", "pull") both ways (or the swarm's only) on
    one network of max(counts), the pushes first; ``peaks`` gets each process's peak
    resident memory over the whole run."""
    rows: list[Row] = []
    peaks = {} if peaks is None else peaks
    netns.remove_stale()
    with tempfile.TemporaryDirectory(prefix="zfs-scale-", dir=folder) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        path = work / "file.bin"
        digest = _write_file(path, size)
        with netns.Network() as net, \
                actors.Site("bench", bind=f"ipc://{work}/ctl.sock") as hub:
            bench = Bench(net, work, hub, max(counts), rate_mbit, fanout, window_chunks)
            bench.chunk_size = chunk_size
            try:
                for kind in kinds:
                    for n in counts:
                        for swarm in (True, False) if star else (True,):
                            rows.append(bench.measure(kind, n, path, digest, swarm))
                peaks.update(bench.peak_rss())
            finally:
                bench.stop()
    return rows


def _verdict(row: Row, bound: float) -> str:
    """The goals a swarm row is held to, met or not."""
    if row.route != "swarm":
        return ""
    verdicts = []
    goal = GOALS.get(row.n)
    if goal is not None:
        met = row.seconds <= goal * bound
        verdicts.append(f"<= {goal}x bound: {'met' if met else 'NOT met'}")
    met = row.owner_copies <= COPIES_GOAL
    verdicts.append(f"copies <= {COPIES_GOAL}: {'met' if met else 'NOT met'}")
    return "; ".join(verdicts)


def render(rows: list[Row], size: int, rate_mbit: int) -> str:
    """The table: each N's swarm and star runs, pushes then pulls, against the bound and
    each other."""
    bound = size * 8 / (rate_mbit * 1e6)
    kinds = " and ".join(dict.fromkeys(row.kind for row in rows)) or "push"
    lines = [f"{kinds} of {size / MiB:.0f} MiB, every link {rate_mbit} Mbit/s each way "
             f"(tbf); swarm bound (size / link rate) {bound:.2f} s",
             f"{'kind':>4} {'N':>3} {'way':>6} {'seconds':>8} {'x bound':>8} {'x star':>7} "
             f"{'owner copies':>13} {'CPU':>5} {'host':>5}  goal"]
    star = {(row.kind, row.n): row.seconds for row in rows if row.route == "star"}
    for row in rows:
        ratio = row.seconds / star.get((row.kind, row.n), float("nan"))
        lines.append(f"{row.kind:>4} {row.n:>3} {row.route:>6} {row.seconds:>8.2f} "
                     f"{row.seconds / bound:>8.2f} {ratio:>7.2f} {row.owner_copies:>13.2f} "
                     f"{row.cpu:>5.0%} {row.host_cpu:>5.0%}  {_verdict(row, bound)}".rstrip())
    return "\n".join(lines)


def unavailable() -> Optional[str]:
    """Why this benchmark cannot run here, or None."""
    if shutil.which("tc") is None:
        return "no `tc` command (iproute2)"
    return netns.unavailable()


def main(argv: Optional[list[str]] = None) -> int:
    """Parse the options, run, print the table."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="both",
                    help="push, pull or both (both: the pushes, then the pulls)")
    ap.add_argument("--size", type=parse_size, default=64 * MiB, help="file size (64MiB)")
    ap.add_argument("--targets", type=parse_counts, default=TARGETS,
                    help="comma-separated target counts (1,2,4,8,16)")
    ap.add_argument("--rate", type=int, default=RATE_MBIT, help="link rate, Mbit/s (300)")
    ap.add_argument("--fanout", type=int, default=0,
                    help="children per target in a swarm push (0: the library's choice)")
    ap.add_argument("--window", type=int, default=8,
                    help="chunks in flight in a push, at least (the swarm may use more)")
    ap.add_argument("--chunk", type=parse_size, default=MiB, help="chunk size of a push (1MiB)")
    ap.add_argument("--dir", default=None,
                    help="where the file and the targets' copies go (default: the temp "
                         "folder; /dev/shm takes the disk out of the measure)")
    ap.add_argument("--no-star", action="store_true", help="measure the swarm only")
    args = ap.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"scale: skipped: {reason}")
        return 0
    peaks: dict[str, int] = {}
    rows = run(args.size, tuple(args.targets), args.rate, args.fanout, args.window,
               not args.no_star, args.chunk, args.dir, peaks, MODES[args.mode])
    print(render(rows, args.size, args.rate))
    owner, targets = peaks.pop("owner", 0), max(peaks.values(), default=0)
    print(f"peak RSS over the run: owner {owner / MiB:.1f} MiB, targets up to "
          f"{targets / MiB:.1f} MiB (the issue's target: <= 64 MiB each)")
    return 0
