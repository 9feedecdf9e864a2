"""``python -m benchmarks scale``: push to N hosts, the swarm way beside the star (issue 16).

An owner and N targets, each a site in its own network namespace on one bridge
(:mod:`tests.support.netns`), every host's link capped with ``tbf`` both ways (its
``eth0`` for what it sends, its wire in the hub for what it receives). For each N the
owner pushes the same file twice in the same run: the swarm way (:mod:`zfs.swarm`) and
the star way (``swarm=False``: every chunk to every target). The file is checked at
every target after each push. The table gives seconds, their ratio to the swarm bound
(the file at one link's rate: no target can receive it faster), the owner's upload in
copies of the file (what its ``eth0`` sent, headers included), the CPU the owner's and
targets' processes used during the push as a share of all cores ("CPU"), and the whole
machine's ("host": the kernel's bridging and any other work included; near 100% the
CPU, not the links, is the limit).

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
from benchmarks.data import MiB, parse_size
from benchmarks.options import parse_counts
from zfs import push_file
from zfs.files import file_digest

try:
    from tests.support import netns
except ImportError:  # run from elsewhere than the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support import netns

CHANNEL = TOPIC = "scale"
TARGETS = (1, 2, 4, 8, 16)
RATE_MBIT = 300
GOALS = {8: 1.3, 16: 1.5}      # the targets: seconds / bound at N targets


@dataclass(frozen=True, slots=True)
class Row:
    """One push: N targets, one way, how long, how much the owner sent, how busy the CPU."""

    n: int
    route: str
    seconds: float
    owner_copies: float
    cpu: float          # our processes' share of all cores
    host_cpu: float     # the machine's, kernel and other work included


def owner_push(site: actors.Site, targets: list[str], path: str, swarm: bool,
               fanout: int = 0, window_chunks: int = 8,
               chunk_size: int = MiB) -> dict[str, Any]:
    """(In the owner's process.) Push ``path`` to ``targets``; say how long and which way."""
    for name in targets:
        site.wait_for(name, timeout=30)
    start = time.monotonic()
    result = push_file(site, targets, path, channel=CHANNEL, topic=TOPIC, swarm=swarm,
                       fanout=fanout, window_chunks=window_chunks, chunk_size=chunk_size,
                       chunk_timeout=60.0)
    return {"seconds": time.monotonic() - start, "route": result.route, "note": result.note}


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
            self.targets.append(proc.start())
        owner_host = net.add_host("owner")
        _cap(net, owner_host, rate_mbit)
        links = {"bench": str(hub.endpoint), **{t.name: t.endpoint for t in self.targets}}
        self.owner = netns.NamespacedSite(owner_host, "owner", connect=links).start()
        for proc in [*self.targets, self.owner]:
            hub.wait_for(proc.name, timeout=30)
        for proc in self.targets:
            (work / proc.name).mkdir()
            proc.call(hub, "zfs:register_receiver", channel=CHANNEL, topic=TOPIC,
                      dest_dir=str(work / proc.name))

    def peak_rss(self) -> dict[str, int]:
        """Each process's peak resident memory so far (VmHWM), by site name."""
        return {proc.name: proc.memory()[1] for proc in [*self.targets, self.owner]}

    def stop(self) -> None:
        for proc in [*self.targets, getattr(self, "owner", None)]:
            if proc is not None:
                proc.kill()

    def push(self, n: int, path: Path, digest: str, swarm: bool) -> Row:
        """Push to the first ``n`` targets one way; check every copy; remove them."""
        names = [proc.name for proc in self.targets[:n]]
        pids = [proc.pid for proc in [*self.targets, self.owner]]
        sent, used, start = _sent_bytes(self.owner.host), _cpu_seconds(pids), time.monotonic()
        ticks, idle = _host_ticks()
        job = self.owner.start_job(self.hub, "benchmarks.scale:owner_push", names, str(path),
                                   swarm, self.fanout, self.window, self.chunk_size)
        state = self.owner.wait_job(self.hub, job, timeout=600)
        cpu = (_cpu_seconds(pids) - used) / (time.monotonic() - start) / (os.cpu_count() or 1)
        ticks2, idle2 = _host_ticks()
        host_cpu = 1 - (idle2 - idle) / max(1, ticks2 - ticks)
        if state["state"] != "done":
            raise RuntimeError(f"push to {n} ({'swarm' if swarm else 'star'}): {state}")
        outcome = state["result"]
        for name in names:
            copy = self.work / name / path.name
            if file_digest(copy) != digest:
                raise RuntimeError(f"{name} holds a wrong copy")
            copy.unlink()
        copies = (_sent_bytes(self.owner.host) - sent) / path.stat().st_size
        return Row(n, outcome["route"], outcome["seconds"], copies, cpu, host_cpu)


def run(size: int, counts: tuple[int, ...], rate_mbit: int, fanout: int = 0,
        window_chunks: int = 8, star: bool = True, chunk_size: int = MiB,
        folder: Optional[str] = None, peaks: Optional[dict[str, int]] = None) -> list[Row]:
    """Measure every N both ways (or the swarm's only) on one network of max(counts);
    ``peaks`` gets each process's peak resident memory over the whole run."""
    rows: list[Row] = []
    peaks = {} if peaks is None else peaks
    netns.remove_stale()
    with tempfile.TemporaryDirectory(prefix="zfs-scale-", dir=folder) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        path = work / "file.bin"
        with open(path, "wb") as out:
            for _ in range(size // MiB):
                out.write(os.urandom(MiB))
            out.write(os.urandom(size % MiB))
        digest = file_digest(path)
        with netns.Network() as net, \
                actors.Site("bench", bind=f"ipc://{work}/ctl.sock") as hub:
            bench = Bench(net, work, hub, max(counts), rate_mbit, fanout, window_chunks)
            bench.chunk_size = chunk_size
            try:
                for n in counts:
                    rows.append(bench.push(n, path, digest, swarm=True))
                    if star:
                        rows.append(bench.push(n, path, digest, swarm=False))
                peaks.update(bench.peak_rss())
            finally:
                bench.stop()
    return rows


def render(rows: list[Row], size: int, rate_mbit: int) -> str:
    """The table: each N's swarm and star pushes against the bound and each other."""
    bound = size * 8 / (rate_mbit * 1e6)
    lines = [f"push of {size / MiB:.0f} MiB, every link {rate_mbit} Mbit/s each way (tbf); "
             f"swarm bound (size / link rate) {bound:.2f} s",
             f"{'N':>3} {'way':>6} {'seconds':>8} {'x bound':>8} {'x star':>7} "
             f"{'owner copies':>13} {'CPU':>5} {'host':>5}  goal"]
    star = {row.n: row.seconds for row in rows if row.route == "star"}
    for row in rows:
        goal = GOALS.get(row.n)
        verdict = ""
        if goal is not None and row.route == "swarm":
            verdict = f"<= {goal}x bound: {'met' if row.seconds <= goal * bound else 'NOT met'}"
        ratio = row.seconds / star[row.n] if row.n in star else float("nan")
        lines.append(f"{row.n:>3} {row.route:>6} {row.seconds:>8.2f} {row.seconds / bound:>8.2f} "
                     f"{ratio:>7.2f} {row.owner_copies:>13.2f} {row.cpu:>5.0%} "
                     f"{row.host_cpu:>5.0%}  {verdict}")
    return "\n".join(lines)


def unavailable() -> Optional[str]:
    """Why this benchmark cannot run here, or None."""
    if shutil.which("tc") is None:
        return "no `tc` command (iproute2)"
    return netns.unavailable()


def main(argv: Optional[list[str]] = None) -> int:
    """Parse the options, run, print the table."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__)
    ap.add_argument("--size", type=parse_size, default=64 * MiB, help="file size (64MiB)")
    ap.add_argument("--targets", type=parse_counts, default=TARGETS,
                    help="comma-separated target counts (1,2,4,8,16)")
    ap.add_argument("--rate", type=int, default=RATE_MBIT, help="link rate, Mbit/s (300)")
    ap.add_argument("--fanout", type=int, default=0,
                    help="children per target in the swarm (0: the library's choice)")
    ap.add_argument("--window", type=int, default=8,
                    help="chunks in flight, at least (the swarm may use more)")
    ap.add_argument("--chunk", type=parse_size, default=MiB, help="chunk size (1MiB)")
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
               not args.no_star, args.chunk, args.dir, peaks)
    print(render(rows, args.size, args.rate))
    owner, targets = peaks.pop("owner", 0), max(peaks.values(), default=0)
    print(f"peak RSS over the run: owner {owner / MiB:.1f} MiB, targets up to "
          f"{targets / MiB:.1f} MiB (the issue's target: <= 64 MiB each)")
    return 0
