"""``python -m benchmarks push``: zfs push against raw TCP (issue 3).

For each fan-out width (``--targets 1,4``): one sender process and that many receiver
processes over tcp on 127.0.0.1, first the raw TCP baseline, then
:func:`zfs.push_file` (see :mod:`benchmarks.push_parties`), same file, same run.
With ``--curve``, zfs push over plain links is the baseline and the same push with
CurveZMQ on every link is ours (see :mod:`benchmarks.curve`).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import curve
from benchmarks.data import format_size, warm
from benchmarks.options import Options, unavailable
from benchmarks.procs import Parties, mib
from benchmarks.report import Report, Samples
from benchmarks.transfer import Scenario, check_sizes, common_notes, figures, params

SOURCE = "sender"


def run(options: Options) -> Report:
    """Measure both sides for every width, ``options.runs`` times, and return the table."""
    missing = unavailable("zfs", "push_file", "register_receiver")
    scenario = Scenario("push", "zfs push", SOURCE, "target", _title(options),
                        params(options), _push, _notes(options, missing))
    return curve.run(options, scenario, missing)


def _push(work: Path, source: Path, n: int, options: Options,
          keys: Path | None = None) -> Samples:
    """One push to ``n`` receivers; over CURVE with the keypairs in ``keys`` if given."""
    timeout = options.transfer_timeout(n)
    tag = f"push-curve-{n}" if keys else f"push-{n}"
    keyed = {"keys": str(keys)} if keys else {}
    with Parties(work, plain=options.as_user) as parties:
        receivers = []
        for i in range(n):
            dest = work / f"push-{n}-r{i}"
            dest.mkdir(exist_ok=True)
            receivers.append(parties.start(
                "benchmarks.push_parties:receiver",
                {"name": f"r{i}", "dest_dir": str(dest), "timeout": timeout, **keyed},
                f"{tag}-r{i}"))
        targets = {f"r{i}": r.expect(30)["endpoint"] for i, r in enumerate(receivers)}
        sender = parties.start("benchmarks.push_parties:sender", {
            "targets": targets, "path": str(source), "chunk_size": options.chunk_size,
            "window": options.window, **keyed}, f"{tag}-sender")
        sender.expect(60)
        warm(source, incoming=options.incoming(n * options.size), idle=options.idle)
        sender.send(op="go")
        sent = sender.expect(timeout)
        done = [r.expect(timeout) for r in receivers]
        check_sizes([d["bytes"] for d in done], options.size)
        rss = {SOURCE: mib(sender.finish())}
        rss.update({f"r{i}": mib(r.finish()) for i, r in enumerate(receivers)})
    ends = [d["done"] for d in done]
    return figures(n, options.size, [sent["start"]] * n, ends, sent["end"], rss)


def _title(options: Options) -> str:
    return (f"push: {format_size(options.size)} file, one sender to "
            f"{' and '.join(map(str, options.targets))} target(s), each a process, tcp 127.0.0.1; "
            f"chunk {format_size(options.chunk_size)}, window {options.window}; "
            f"{options.runs} run(s)")


def _notes(options: Options, missing: str | None) -> list[str]:
    notes = [f"ours: not available: {missing}; baseline only"] if missing else []
    notes.append(
        "ours: zfs.push_file from the sender site to receiver sites registered with "
        "zfs.register_receiver (each its own destination folder); a receiver is done when "
        "its completion callback runs (file renamed into place after its size and digest check)."
    )
    return notes + common_notes(options, SOURCE)
