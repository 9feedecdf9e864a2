"""The command line: ``python -m benchmarks messages|push|pull|relay|tree|wan|soak [options]``.

Prints one table per scenario (and writes it as JSON with ``--json FILE``). With
``--curve``, push and pull compare zfs with CurveZMQ on against zfs over plain links
(see :mod:`benchmarks.curve`) instead of zfs against raw TCP. Exit
status 0 means the measurement ran, whatever its verdicts; 1 means it could not run.
``wan`` and ``soak`` have options of their own and are handed to their modules'
``main`` (``python -m benchmarks wan --help``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import messages, pull, push, relay, tree
from benchmarks.data import parse_size
from benchmarks.options import Options, parse_counts
from benchmarks.procs import BenchError
from benchmarks.report import Report

SCENARIOS: dict[str, Callable[[Options], Report]] = {
    "messages": messages.run,
    "push": push.run,
    "pull": pull.run,
    "relay": relay.run,
    "tree": tree.run,
}

#: Scenarios that can compare CURVE on and off (``--curve``).
CURVE_SCENARIOS = ("push", "pull")

#: Scenarios with a command line of their own: name -> module with ``main(argv)``.
DELEGATED = {"wan": "benchmarks.wan", "soak": "benchmarks.soak", "scale": "benchmarks.scale"}

log = logging.getLogger(__name__)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    """Build the argument parser (its help is the harness's usage text)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=sorted(SCENARIOS),
                    help=f"also: {', '.join(sorted(DELEGATED))} (each with its own --help)")
    ap.add_argument("--size", type=_size, default=1 << 30,
                    help="file size (push, pull) or bytes of 1 MiB payloads (messages); "
                         "default 1GiB")
    ap.add_argument("--runs", type=int, default=1, help="runs per side; medians are reported")
    ap.add_argument("--targets", type=parse_counts, default=(1, 4),
                    help="fan-out widths for push / recipients for pull, e.g. 1,4")
    ap.add_argument("--chunk-size", type=_size, default=1 << 20, help="push/pull chunk size")
    ap.add_argument("--window", type=int, default=8, help="chunks (messages) in flight")
    ap.add_argument("--messages", type=int, default=100_000, help="small tells (messages)")
    ap.add_argument("--asks", type=int, default=2000, help="timed asks (messages)")
    ap.add_argument("--files", type=int, default=10_000,
                    help="tree: small files (4 KiB) in the many-files folder")
    ap.add_argument("--dir", default=None, help="where data files go (default: the temp dir)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds a party may take beyond 20 MB/s of transfer")
    ap.add_argument("--curve", action="store_true",
                    help="push, pull: measure zfs with CurveZMQ on and off in the same run "
                         "and report the ratio (instead of zfs against raw TCP)")
    ap.add_argument("--as-user", action="store_true",
                    help="push, pull: every party a plain process, as a user's program is "
                         "(no tune_malloc, no page-cache recycling before a run), raw TCP too")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="push, pull with --as-user: seconds every run rests after the "
                         "page-cache flush before go, ours and raw alike, so both sides' "
                         "receivers write into memory left idle, as on a quiet machine "
                         "between transfers (6 is enough here)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here as JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run one scenario, print its table; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        delegate: Callable[[list[str]], int] = importlib.import_module(DELEGATED[argv[0]]).main
        return delegate(argv[1:])
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.runs < 1 or args.window < 1 or args.size < 1 or args.files < 1 or args.idle < 0:
        print("--runs, --window, --size and --files must be positive, --idle not negative",
              file=sys.stderr)
        return 2
    if args.idle and not (args.as_user and args.scenario in ("push", "pull")):
        print("--idle applies to push and pull with --as-user (a tuned run recycles the "
              "page cache instead of resting)", file=sys.stderr)
        return 2
    if args.curve and args.scenario not in CURVE_SCENARIOS:
        print(f"--curve applies to {' and '.join(CURVE_SCENARIOS)} only", file=sys.stderr)
        return 2
    options = Options(size=args.size, runs=args.runs, targets=args.targets,
                      chunk_size=args.chunk_size, window=args.window, messages=args.messages,
                      asks=args.asks, dir=args.dir, timeout=args.timeout,
                      curve=args.curve, files=args.files, as_user=args.as_user,
                      idle=args.idle)
    load_before = os.getloadavg()[0]
    try:
        report = SCENARIOS[args.scenario](options)
    except BenchError as err:
        print(f"{args.scenario}: could not measure: {err}", file=sys.stderr)
        return 1
    report.notes.append(
        f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"(other work on the machine makes rates noisy; compare ratios, use --runs 3)")
    for note in report.notes:
        if note.startswith("ours: not available"):
            print(f"{args.scenario}: {note}")
    print(report.render())
    if args.json:
        report.dump(args.json)
    return 0
