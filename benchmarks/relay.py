"""``python -m benchmarks relay``: push and pull through a relay against direct (issue 15).

Each run moves the file client -> server -> client (both clients linked to the server
only, the server a separate process that forwards) and the same transfer over one
direct link, back to back, taking turns to go first: a push (:func:`zfs.push_file`
to one receiver) and a pull (:func:`zfs.download` of a shared file). The parties are
those of the push and pull benchmarks; the relay is :mod:`benchmarks.relay_parties`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data import format_size, make_file, warm, workdir
from benchmarks.options import Options, machine, progress
from benchmarks.procs import Child, Parties, mib
from benchmarks.relay_parties import RELAY
from benchmarks.report import Report, RowSpec, Samples, Target, build_rows
from benchmarks.transfer import RSS_LIMIT, check_sizes


def run(options: Options) -> Report:
    """Measure push and pull, relayed and direct, ``options.runs`` times; the table."""
    title = (f"relay: {format_size(options.size)} file, client -> server -> client vs "
             f"direct, each a process, tcp 127.0.0.1; chunk {format_size(options.chunk_size)}, "
             f"window {options.window}; {options.runs} run(s)")
    report = Report("relay", title, "relayed", "direct", params={
        "size": options.size, "runs": options.runs, "chunk_size": options.chunk_size,
        "window_chunks": options.window})
    with workdir(options.dir) as work:
        source = work / "source.bin"
        progress(f"writing a {format_size(options.size)} test file in {work}")
        make_file(source, options.size)
        for run_no in range(1, options.runs + 1):
            ours: Samples = {}
            base: Samples = {}
            for kind, measure in (("push", _push), ("pull", _pull)):
                order = (False, True) if run_no % 2 else (True, False)
                for relayed in order:
                    progress(f"run {run_no}/{options.runs}: {kind} "
                             f"{'relayed' if relayed else 'direct'}")
                    (ours if relayed else base).update(measure(work, source, options, relayed))
            report.ours_runs.append(ours)
            report.base_runs.append(base)
    report.rows = build_rows(_specs(), report.ours_runs, report.base_runs)
    report.notes = _notes()
    return report


def _specs() -> list[RowSpec]:
    specs = []
    for kind in ("push", "pull"):
        specs += [RowSpec(f"{kind}.mbs", f"{kind}: MB/s", "MB/s",
                          target=Target("ratio", ">=", 0.6)),
                  RowSpec(f"{kind}.rss.relay", f"{kind}: peak RSS relay", "MiB", fold="max",
                          target=RSS_LIMIT),
                  RowSpec(f"{kind}.rss.from", f"{kind}: peak RSS sending client", "MiB",
                          fold="max"),
                  RowSpec(f"{kind}.rss.to", f"{kind}: peak RSS receiving client", "MiB",
                          fold="max")]
    return specs


def _relay(parties: Parties, tag: str) -> tuple[Child | None, dict[str, str]]:
    child = parties.start("benchmarks.relay_parties:relay", {}, f"{tag}-relay")
    return child, {RELAY: child.expect(30)["endpoint"]}


def _setting(work: Path, kind: str, options: Options, relayed: bool) -> tuple[float, str, Path]:
    """One transfer's timeout (a relay's hop counts as a second transfer), its parties'
    tag and its destination folder (made)."""
    tag = f"relay-{kind}-{'relayed' if relayed else 'direct'}"
    dest = work / tag
    dest.mkdir(exist_ok=True)
    return options.transfer_timeout(2 if relayed else 1), tag, dest


def _push(work: Path, source: Path, options: Options, relayed: bool) -> Samples:
    """One push to one receiver, through the relay or direct."""
    timeout, tag, dest = _setting(work, "push", options, relayed)
    with Parties(work, plain=options.as_user) as parties:
        relay, via = _relay(parties, tag) if relayed else (None, {})
        receiver = parties.start("benchmarks.push_parties:receiver", {
            "name": "r0", "dest_dir": str(dest), "timeout": timeout, "connect": via},
            f"{tag}-r0")
        endpoint = receiver.expect(30)["endpoint"]
        sender = parties.start("benchmarks.push_parties:sender", {
            "targets": via or {"r0": endpoint}, "to": ["r0"], "path": str(source),
            "chunk_size": options.chunk_size, "window": options.window}, f"{tag}-sender")
        sender.expect(60)
        warm(source, incoming=options.incoming(options.size), idle=options.idle)
        sender.send(op="go")
        sent = sender.expect(timeout)
        done = receiver.expect(timeout)
        check_sizes([done["bytes"]], options.size)
        out = {"push.mbs": options.size / (done["done"] - sent["start"]) / 1e6,
               "push.rss.from": mib(sender.finish()), "push.rss.to": mib(receiver.finish())}
        if relay is not None:
            out["push.rss.relay"] = mib(relay.finish())
    return out


def _pull(work: Path, source: Path, options: Options, relayed: bool) -> Samples:
    """One download of a shared file, through the relay or direct."""
    timeout, tag, dest = _setting(work, "pull", options, relayed)
    with Parties(work, plain=options.as_user) as parties:
        relay, via = _relay(parties, tag) if relayed else (None, {})
        owner = parties.start("benchmarks.pull_parties:owner", {
            "path": str(source), "timeout": timeout + 60, "connect": via}, f"{tag}-owner")
        shared = owner.expect(60)
        recipient = parties.start("benchmarks.pull_parties:recipient", {
            "name": "r0", "endpoint": shared["endpoint"], "rid": shared["rid"],
            "dest_dir": str(dest), "window": options.window, "chunk_size": options.chunk_size,
            "connect": via}, f"{tag}-r0")
        recipient.expect(60)
        warm(source, incoming=options.incoming(options.size), idle=options.idle)
        recipient.send(op="go")
        done = recipient.expect(timeout)
        check_sizes([done["bytes"]], options.size)
        out = {"pull.mbs": options.size / (done["end"] - done["start"]) / 1e6,
               "pull.rss.from": mib(owner.finish()), "pull.rss.to": mib(recipient.finish())}
        if relay is not None:
            out["pull.rss.relay"] = mib(relay.finish())
    return out


def _notes() -> list[str]:
    return [
        "relayed: both clients link to the server only; the server forwards every chunk "
        "(actors.io.relay: it decodes the small routed header and hands the payload frames "
        "on as received). direct: the same parties linked to each other, no server.",
        "push MB/s = size / (receiver's completion callback - push start); pull MB/s = size "
        "/ download's own duration (file verified and renamed). MB = 10^6 bytes.",
        "rates: median over runs, ratio: median of each run's relayed/direct; peak RSS: "
        "VmHWM of each process as it ends, max over runs. The relay's RSS has no direct "
        "twin (n/a).",
        "page cache: as the push and pull benchmarks (dirty pages flushed, the source read "
        "once, incoming memory recycled, right before every transfer).",
        f"verdicts compare a measurement with the issue's targets; they are not tests. "
        f"Machine: {machine()}.",
    ]
