"""``python -m benchmarks soak --minutes N``: many transfers, random kills, for N minutes (issue 7).

Three or four sites run as child processes (``python -m actors`` with a control actor,
as in the tests), each receiving pushes into its own folder; the parent hosts a small
site that drives them. Worker threads in the parent keep transfers going all the time:

- push: a random site pushes a file of random size to one or two others;
- pull: a random site shares a file, another downloads it.

Every transfer that succeeds is checked by digest in the parent (then its file is
deleted); every one that fails is recorded with its reason. Every ``--kill-every``
seconds a random site is killed with SIGKILL and restarted under the same name and
port (its peers reconnect by themselves). The RSS of every site is sampled as it
runs: it must not grow. At the end: no temporary file may be left behind by a live
site, and every site must still take a push.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import psutil

import actors
from benchmarks.data import MiB, make_file, workdir
from benchmarks.options import machine, progress

try:
    from tests.support.procs import SiteProcess
except ImportError:  # run from elsewhere than the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.procs import SiteProcess

from zfs.files import file_digest
from zfs.protocol.names import PARTIAL_DIR
from zfs import download, push_file, register_receiver, share

CHANNEL = TOPIC = "soak"
SIZES = (0, 1, 64 << 10, MiB + 3, 5 * MiB + 7, 24 * MiB + 1)   # the pool's file sizes
_OP_TIMEOUT = 120.0


@dataclass
class SoakReport:
    """What a soak run saw."""

    minutes: float
    sites: int
    completed: dict[str, int] = field(default_factory=dict)       # by kind
    bytes_verified: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # kind, reason, killed
    kills: int = 0
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # MiB over time
    leftovers: list[str] = field(default_factory=list)          # push temp files
    kept_for_resume: int = 0      # download temp files kept (owner lost), as designed
    final_check: dict[str, str] = field(default_factory=dict)

    def rss_growth(self) -> dict[str, Optional[float]]:
        """Per site incarnation: the last quarter's median RSS over the second quarter's."""
        growth: dict[str, Optional[float]] = {}
        for label, samples in self.rss.items():
            values = [v for _, v in samples]
            if len(values) < 8:
                growth[label] = None
                continue
            quarter = len(values) // 4
            early = statistics.median(values[quarter:2 * quarter])
            late = statistics.median(values[-quarter:])
            growth[label] = late / early if early else None
        return growth


# ---- run inside the child sites ------------------------------------------------------


def child_receive(site: actors.Site, dest: str) -> None:
    """Accept the soak's pushes into ``dest`` (streams silent for 10 s are dropped)."""
    register_receiver(site, channel=CHANNEL, topic=TOPIC, dest_dir=dest, inactivity_timeout=10.0)


def child_push(site: actors.Site, targets: list[str], path: str, name: str) -> dict[str, Any]:
    for target in targets:
        site.wait_for(target, timeout=10)
    result = push_file(site, targets, path, name=name, channel=CHANNEL, topic=TOPIC,
                       chunk_size=MiB, chunk_timeout=15.0)
    return {"size": result.size}


def child_share(site: actors.Site, path: str) -> str:
    tx = share(site, timeout=30.0)
    return tx.add_file(path)


def child_download(site: actors.Site, owner: str, rid: str, location: str) -> str:
    site.wait_for(owner, timeout=10)
    return download(site, owner, rid, location, request_timeout=5.0, retries=2).path


# ---- the parent -------------------------------------------------------------------------


class Soak:
    """The sites, the pool of files, the workers, the killer and the RSS sampler."""

    def __init__(self, work: Path, n_sites: int, rng: random.Random, report: SoakReport) -> None:
        self.work, self.rng, self.report = work, rng, report
        self.names = [f"s{i}" for i in range(n_sites)]
        self.procs: dict[str, SiteProcess] = {}
        self.ports: dict[str, int] = {}
        self.incarnation: Counter = Counter()   # bumped by every start and every kill
        self.starts: Counter = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = self._make_pool()
        self.hub = actors.Site("soak", bind="tcp://127.0.0.1:0", heartbeat_interval=0.5,
                               heartbeat_timeout=3.0)

    def _make_pool(self) -> list[tuple[Path, str]]:
        pool = []
        for i, size in enumerate(SIZES):
            path = self.work / "pool" / f"f{i}-{size}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            make_file(path, size)
            pool.append((path, file_digest(path)))
        return pool

    def inbox(self, name: str) -> Path:
        return self.work / "sites" / name

    def start_site(self, name: str) -> None:
        """Start (or restart, same port) site ``name``; it connects to the sites before it."""
        index = self.names.index(name)
        connect = {"soak": str(self.hub.endpoint)}
        connect.update({n: f"tcp://127.0.0.1:{self.ports[n]}" for n in self.names[:index]})
        bind = f"tcp://127.0.0.1:{self.ports.get(name, 0)}"
        proc = SiteProcess(name, connect=connect, bind=bind).start()
        self.ports[name] = int(proc.endpoint.rsplit(":", 1)[1])
        self.hub.wait_for(name, timeout=20)
        self.inbox(name).mkdir(parents=True, exist_ok=True)
        proc.call(self.hub, "benchmarks.soak:child_receive", str(self.inbox(name)))
        with self.lock:
            self.procs[name] = proc
            self.incarnation[name] += 1
            self.starts[name] += 1

    def alive(self) -> list[str]:
        with self.lock:
            return [n for n, p in self.procs.items() if p.process and p.process.poll() is None]

    # -- one transfer

    def one_transfer(self, op_no: int) -> None:
        names = self.alive()
        if len(names) < 2:
            return
        source, digest = self.rng.choice(self.pool)
        kind = self.rng.choice(("push", "pull"))
        sender = self.rng.choice(names)
        others = [n for n in names if n != sender]
        epochs = dict(self.incarnation)
        try:
            if kind == "push":
                targets = self.rng.sample(others, min(len(others), self.rng.choice((1, 2))))
                files = self._push(sender, targets, source, f"op{op_no}-{source.name}")
            else:
                files = self._pull(sender, self.rng.choice(others), source, op_no)
            for path in files:
                if file_digest(path) != digest:
                    raise AssertionError(f"digest mismatch: {path}")
            with self.lock:
                self.report.completed[kind] = self.report.completed.get(kind, 0) + 1
                self.report.bytes_verified += source.stat().st_size * len(files)
            for path in files:
                path.unlink()
                if path.parent.name.startswith("pull-"):
                    path.parent.rmdir()
        except Exception as err:  # noqa: BLE001 - a soak records every failure and goes on
            killed = epochs != dict(self.incarnation)
            with self.lock:
                self.report.failures.append({"kind": kind, "killed_meanwhile": killed,
                                             "reason": _reason(err)})

    def proc(self, name: str) -> SiteProcess:
        with self.lock:
            proc = self.procs.get(name)
        if proc is None:
            raise RuntimeError(f"site {name} is down (killed)")
        return proc

    def _push(self, sender: str, targets: list[str], source: Path, name: str) -> list[Path]:
        proc = self.proc(sender)
        job = proc.start_job(self.hub, "benchmarks.soak:child_push", targets, str(source), name)
        _job_result(proc.wait_job(self.hub, job, timeout=_OP_TIMEOUT))
        return [self.inbox(t) / name for t in targets]

    def _pull(self, owner: str, recipient: str, source: Path, op_no: int) -> list[Path]:
        rid = self.proc(owner).call(self.hub, "benchmarks.soak:child_share", str(source))
        location = self.inbox(recipient) / f"pull-{op_no}"
        proc = self.proc(recipient)
        job = proc.start_job(self.hub, "benchmarks.soak:child_download", owner, rid,
                             str(location))
        path = Path(_job_result(proc.wait_job(self.hub, job, timeout=_OP_TIMEOUT)))
        return [path]

    # -- the loops

    def worker(self, counter: list[int]) -> None:
        while not self.stop.is_set():
            with self.lock:
                counter[0] += 1
                op_no = counter[0]
            self.one_transfer(op_no)

    def killer(self, every: float) -> None:
        while not self.stop.wait(self.rng.uniform(every / 2, every * 1.5)):
            name = self.rng.choice(self.names)
            progress(f"soak: kill -9 {name}")
            with self.lock:
                proc = self.procs.pop(name, None)
                self.incarnation[name] += 1
            if proc is not None:          # (None: its last restart failed)
                proc.kill()
                self.report.kills += 1
            self.stop.wait(0.5)           # the site stays dead a little while
            try:
                self.start_site(name)
            except Exception as err:      # noqa: BLE001 - record, try again next round
                self.report.failures.append({"kind": "restart", "killed_meanwhile": True,
                                             "reason": _reason(err)})

    def sampler(self, started: float, every: float) -> None:
        while not self.stop.wait(every):
            with self.lock:
                procs = [(n, p, self.starts[n]) for n, p in self.procs.items()]
            for name, proc, epoch in procs:
                try:
                    rss = psutil.Process(proc.pid).memory_info().rss / MiB
                except psutil.Error:
                    continue
                series = self.report.rss.setdefault(f"{name}#{epoch}", [])
                series.append((round(time.monotonic() - started, 1), round(rss, 1)))

    def finish(self) -> None:
        """Look for leftovers, check every site still takes a push, stop everything."""
        deadline = time.monotonic() + 12.0   # the receivers' inactivity timeout, and some
        while self._push_partials() and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in self.alive():
            for path in self.inbox(name).rglob(f"{PARTIAL_DIR}/*"):
                if path.name.startswith("pull-"):
                    self.report.kept_for_resume += 1
                else:
                    self.report.leftovers.append(str(path))
        probe = self.pool[3][0]
        for name in self.alive():
            try:
                others = [n for n in self.alive() if n != name]
                self._push(others[0], [name], probe, f"final-{name}")
                self.report.final_check[name] = "serving"
            except Exception as err:  # noqa: BLE001
                self.report.final_check[name] = f"NOT serving: {_reason(err)}"

    def _push_partials(self) -> list[Path]:
        return [p for name in self.alive()
                for p in self.inbox(name).glob(f"{PARTIAL_DIR}/push-*")]

    def close(self) -> None:
        for proc in list(self.procs.values()):
            proc.kill()
        self.hub.stop()


def _job_result(state: dict[str, Any]) -> Any:
    if state["state"] != "done":
        result = state.get("result") or {}
        raise RuntimeError(f"{result.get('error', 'failed')}: {result.get('text', result)}")
    return state["result"]


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:200]


def run(minutes: float, n_sites: int = 4, workers: int = 4, kill_every: float = 20.0,
        seed: Optional[int] = None, base_dir: Optional[str] = None) -> SoakReport:
    """Soak ``n_sites`` sites for ``minutes`` and return what happened."""
    rng = random.Random(seed)
    report = SoakReport(minutes, n_sites)
    with workdir(base_dir) as work:
        soak = Soak(work, n_sites, rng, report)
        try:
            soak.hub.start()
            for name in soak.names:
                soak.start_site(name)
            started = time.monotonic()
            counter = [0]                      # op numbers, shared by the workers
            threads = [threading.Thread(target=soak.worker, args=(counter,), daemon=True)
                       for _ in range(workers)]
            threads.append(threading.Thread(target=soak.sampler, args=(started, 2.0),
                                            daemon=True))
            if kill_every > 0:
                threads.append(threading.Thread(target=soak.killer, args=(kill_every,),
                                                daemon=True))
            for thread in threads:
                thread.start()
            soak.stop.wait(minutes * 60)
            soak.stop.set()
            for thread in threads:
                thread.join(_OP_TIMEOUT + 30)
            soak.finish()
        finally:
            soak.close()
            shutil.rmtree(work / "pool", ignore_errors=True)
    return report


def render(report: SoakReport) -> str:
    """The soak's outcome as plain text."""
    lines = [f"soak: {report.minutes:g} min, {report.sites} sites, {report.kills} kill -9s",
             "", f"transfers completed: {sum(report.completed.values())} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(report.completed.items()))})",
             f"bytes verified by digest: {report.bytes_verified:,}",
             f"failures: {len(report.failures)} "
             f"({sum(not f['killed_meanwhile'] for f in report.failures)} with no kill meanwhile)"]
    reasons = Counter((f["kind"], f["killed_meanwhile"], f["reason"]) for f in report.failures)
    for (kind, killed, reason), count in reasons.most_common():
        lines.append(f"  {count:5d}  {kind:8s} {'after a kill' if killed else 'NO KILL':12s} {reason}")
    lines += ["", "RSS (MiB) per site incarnation: first, max, last, growth (last/second quarter)"]
    growth = report.rss_growth()
    for label, samples in sorted(report.rss.items()):
        values = [v for _, v in samples]
        g = growth[label]
        lines.append(f"  {label:8s} {values[0]:7.1f} {max(values):7.1f} {values[-1]:7.1f}  "
                     f"{'n/a (short)' if g is None else f'{g:.2f}x'}")
    lines += ["", "push temporary files still there 12 s after the last transfer (a receiver "
              f"killed mid-push leaves its own; nobody sweeps them): {len(report.leftovers)}",
              *(f"  {p}" for p in report.leftovers[:20]),
              f"download temporary files kept for a resume (owner lost): "
              f"{report.kept_for_resume}",
              "final check: " + ", ".join(f"{k} {v}" for k, v in sorted(report.final_check.items())),
              f"Machine: {machine()}."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the soak and print its outcome; 0 if it ran, whatever it found."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks soak",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--sites", type=int, default=4, choices=(2, 3, 4, 5, 6))
    ap.add_argument("--workers", type=int, default=4, help="transfers kept going at once")
    ap.add_argument("--kill-every", type=float, default=20.0,
                    help="mean seconds between kill -9s (0: none)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", default=None, help="where data files go (default: the temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the outcome here")
    args = ap.parse_args(argv)
    report = run(args.minutes, args.sites, args.workers, args.kill_every, args.seed, args.dir)
    print(render(report))
    if args.json:
        data = asdict(report)
        data["rss_growth"] = report.rss_growth()
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
