"""``python -m benchmarks wan``: push and pull over slow links, by window size (issue 7).

A link with a round-trip time (20 ms and 50 ms by default) is emulated in user space
by the relay of :mod:`tests.support.linkemu`, running in this (parent) process: each
party connects to its peer through the relay, which delays each direction by half
the RTT. For each RTT and each window (1, 4, 8, 16 chunks of 1 MiB), a fresh pair of
processes moves one file:

- push: :func:`zfs.push_file` from a sender site to a receiver site
  (the parties of :mod:`benchmarks.push_parties`);
- pull: :func:`zfs.download` by a recipient site from an owner site
  (the parties of :mod:`benchmarks.pull_parties`);
- raw: a bare pyzmq DEALER sends 1 MiB frames to a ROUTER that acks each one, with
  1 and 8 frames in flight (the baseline of what the link allows).

Each row says MB/s beside the same transfer with one chunk in flight, and their
ratio. The issue's target: at 50 ms RTT, a 16 MiB window moves >= 5x the one-chunk
figure. A verdict compares a figure with that target; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import zmq

from benchmarks import rawzmq
from benchmarks.data import MiB, format_size, make_file, parse_size, warm, workdir
from benchmarks.options import machine, parse_counts, progress, unavailable
from benchmarks.procs import BenchError, Child, Parties
from benchmarks.worker import Link

try:
    from tests.support.linkemu import LinkEmulator
except ImportError:  # run from elsewhere than the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.linkemu import LinkEmulator

RTTS_MS = (20, 50)
WINDOWS = (1, 4, 8, 16)
RAW_WINDOWS = (1, 8)
TARGET_RATIO = 5.0
TARGET_AT = (50, 16)           # (RTT ms, window chunks) the target is about
_RELAY_BUFFER = 64 << 20       # bytes one direction may hold: > the largest window


@dataclass(frozen=True, slots=True)
class WanRow:
    """One cell of the table: a transfer's rate over one RTT with one window."""

    mode: str                 # "push", "pull" or "raw pyzmq"
    rtt_ms: int
    window_chunks: int
    mbs: Optional[float]      # None: not measured (see note)
    ratio: Optional[float]    # mbs / the same mode and RTT with one chunk in flight
    target: str
    verdict: str
    note: str = ""


# ---- parties (run in child processes by benchmarks.worker) ----------------------


def raw_client(params: dict[str, Any], link: Link) -> None:
    """Send ``count`` 1 MiB frames to :func:`benchmarks.rawzmq.server` with ``window``
    un-acked; report the timing."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(params["endpoint"])
    dealer.send(b"m")                                  # the server takes frames zero-copy
    dealer.send_multipart([b"d", b"warm-up"])
    dealer.recv()
    count = params["count"]
    start = time.monotonic()
    rawzmq.send_windowed(dealer, os.urandom(MiB), count, params["window"])
    end = time.monotonic()
    dealer.send_multipart([b"q"])
    dealer.close()
    context.term()
    link.send(start=start, end=end, bytes=count * MiB)
    link.wait_quit()


# ---- one cell each ----------------------------------------------------------------


def _relay(endpoint: str, rtt_ms: int) -> LinkEmulator:
    return LinkEmulator.to_endpoint(endpoint, delay=rtt_ms / 2000,
                                    buffer_bytes=_RELAY_BUFFER).start()


def _push(work: Path, source: Path, size: int, rtt_ms: int, window: int,
          timeout: float) -> float:
    dest = work / f"push-{rtt_ms}-{window}"
    dest.mkdir(exist_ok=True)
    with Parties(work) as parties:
        receiver = parties.start("benchmarks.push_parties:receiver", {
            "name": "r0", "dest_dir": str(dest), "timeout": timeout}, f"wan-push-r-{rtt_ms}-{window}")
        with _relay(receiver.expect(30)["endpoint"], rtt_ms) as relay:
            sender = parties.start("benchmarks.push_parties:sender", {
                "targets": {"r0": relay.endpoint}, "path": str(source), "chunk_size": MiB,
                "window": window}, f"wan-push-s-{rtt_ms}-{window}")
            sender.expect(60)
            warm(source)
            sender.send(op="go")
            sent = sender.expect(timeout)
            done = receiver.expect(timeout)
            _check(done["bytes"], size, "push")
            _finish(sender, receiver)
    return size / max(done["done"] - sent["start"], 1e-9) / 1e6


def _pull(work: Path, source: Path, size: int, rtt_ms: int, window: int,
          timeout: float) -> float:
    dest = work / f"pull-{rtt_ms}-{window}"
    dest.mkdir(exist_ok=True)
    with Parties(work) as parties:
        owner = parties.start("benchmarks.pull_parties:owner", {
            "path": str(source), "timeout": timeout}, f"wan-pull-o-{rtt_ms}-{window}")
        shared = owner.expect(60)
        with _relay(shared["endpoint"], rtt_ms) as relay:
            recipient = parties.start("benchmarks.pull_parties:recipient", {
                "name": "r0", "endpoint": relay.endpoint, "rid": shared["rid"],
                "dest_dir": str(dest), "window": window, "chunk_size": MiB},
                f"wan-pull-r-{rtt_ms}-{window}")
            recipient.expect(60)
            warm(source)
            recipient.send(op="go")
            done = recipient.expect(timeout)
            _check(done["bytes"], size, "pull")
            _finish(recipient, owner)
    return size / max(done["end"] - done["start"], 1e-9) / 1e6


def _raw(work: Path, size: int, rtt_ms: int, window: int, timeout: float) -> float:
    with Parties(work) as parties:
        server = parties.start("benchmarks.rawzmq:server", {}, f"wan-raw-s-{rtt_ms}-{window}")
        with _relay(server.expect(30)["endpoint"], rtt_ms) as relay:
            client = parties.start("benchmarks.wan:raw_client", {
                "endpoint": relay.endpoint, "window": window, "count": max(size // MiB, 1)},
                f"wan-raw-c-{rtt_ms}-{window}")
            done = client.expect(timeout)
            _finish(client, server)
    return done["bytes"] / max(done["end"] - done["start"], 1e-9) / 1e6


def _check(got: int, size: int, mode: str) -> None:
    if got != size:
        raise BenchError(f"{mode}: {got} bytes arrived instead of {size}")


def _finish(*children: Child) -> None:
    for child in children:
        child.finish()


# ---- the table ----------------------------------------------------------------------


def run(size: int = 64 * MiB, rtts_ms: tuple[int, ...] = RTTS_MS,
        windows: tuple[int, ...] = WINDOWS, raw_windows: tuple[int, ...] = RAW_WINDOWS,
        modes: tuple[str, ...] = ("push", "pull", "raw"), base_dir: Optional[str] = None,
        timeout: float = 300.0) -> list[WanRow]:
    """Measure every (mode, RTT, window) cell once and return the table's rows.

    Args:
        size: bytes moved per cell (one file; raw sends ``size // 1 MiB`` frames).
        rtts_ms: round-trip times to emulate, in milliseconds.
        windows: chunks (of 1 MiB) in flight for push and pull; 1 is always measured.
        raw_windows: frames in flight for the raw pyzmq baseline.
        modes: which of "push", "pull", "raw" to measure.
        base_dir: where the work folder goes (default: the temp dir).
        timeout: seconds a party may take to answer.
    """
    windows = tuple(sorted(set(windows) | {1}))
    raw_windows = tuple(sorted(set(raw_windows) | {1}))
    missing = {"push": unavailable("zfs", "push_file", "register_receiver"),
               "pull": unavailable("zfs", "download", "share"), "raw": None}
    figures: dict[tuple[str, int, int], Optional[float]] = {}
    with workdir(base_dir) as work:
        source = work / "source.bin"
        progress(f"writing a {format_size(size)} test file in {work}")
        make_file(source, size)
        for rtt in rtts_ms:
            for mode in modes:
                for window in (raw_windows if mode == "raw" else windows):
                    figures[(mode, rtt, window)] = _cell(
                        work, source, size, mode, rtt, window, timeout, missing[mode])
    return _rows(figures, missing)


def _cell(work: Path, source: Path, size: int, mode: str, rtt: int, window: int,
          timeout: float, missing: Optional[str]) -> Optional[float]:
    if missing is not None:
        return None
    progress(f"{mode}: RTT {rtt} ms, window {window}")
    if mode == "push":
        return _push(work, source, size, rtt, window, timeout)
    if mode == "pull":
        return _pull(work, source, size, rtt, window, timeout)
    return _raw(work, size, rtt, window, timeout)


def _rows(figures: dict[tuple[str, int, int], Optional[float]],
          missing: dict[str, Optional[str]]) -> list[WanRow]:
    rows = []
    for (mode, rtt, window), mbs in figures.items():
        one = figures.get((mode, rtt, 1))
        ratio = mbs / one if mbs is not None and one else None
        target = verdict = ""
        if mode != "raw" and (rtt, window) == TARGET_AT:
            target = f">= {TARGET_RATIO:g}x"
            verdict = "" if ratio is None else ("PASS" if ratio >= TARGET_RATIO else "MISS")
        note = f"not measured: {missing[mode]}" if mbs is None and missing.get(mode) else ""
        rows.append(WanRow("raw pyzmq" if mode == "raw" else mode, rtt, window, mbs, ratio,
                           target, verdict, note))
    return rows


def render(rows: list[WanRow], size: int) -> str:
    """Return the rows as an aligned plain-text table with its title and notes."""
    header = ["mode", "RTT", "window", "MB/s", "x one in flight", "target", "verdict"]
    body = [[r.mode, f"{r.rtt_ms} ms", f"{r.window_chunks} x 1 MiB",
             "n/a" if r.mbs is None else f"{r.mbs:,.1f}",
             "n/a" if r.ratio is None else f"{r.ratio:.2f}x", r.target, r.verdict]
            for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [f"wan: {format_size(size)} per cell through a delaying relay on 127.0.0.1, "
             "one process per party", ""]
    for n, line in enumerate([header, *body]):
        lines.append("  ".join(c.rjust(widths[i]) if i in (3, 4) else c.ljust(widths[i])
                               for i, c in enumerate(line)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = sorted({r.note for r in rows if r.note})
    lines += ["", *(f"* {note}" for note in notes),
              "* relay: tests.support.linkemu in the parent process; each direction delayed by "
              "RTT/2, queue bounded at 64 MiB per direction; MB = 10^6 bytes.",
              "* push: sender start to the receiver's completion callback (file checked and "
              "renamed); pull: the recipient's download() call; raw: first send to last ack.",
              f"* one run per cell (no medians); verdicts are not tests. Machine: {machine()}."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the WAN table and print it; return 0 if it was measured, 1 if it could not be."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks wan",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=64 * MiB, help="bytes per cell")
    ap.add_argument("--rtt", type=parse_counts, default=RTTS_MS, help="RTTs in ms, e.g. 20,50")
    ap.add_argument("--windows", type=parse_counts, default=WINDOWS, help="e.g. 1,4,8,16")
    ap.add_argument("--modes", default="push,pull,raw", help="any of push,pull,raw")
    ap.add_argument("--dir", default=None, help="where data files go (default: the temp dir)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m in ("push", "pull", "raw"))
    try:
        rows = run(args.size, args.rtt, args.windows, modes=modes, base_dir=args.dir,
                   timeout=args.timeout)
    except BenchError as err:
        print(f"wan: could not measure: {err}", file=sys.stderr)
        return 1
    print(render(rows, args.size))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
