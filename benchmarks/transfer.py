"""What push and pull share: the raw TCP fan-out baseline, parameters, size check,
figures, rows and notes.

A transfer run moves one file from one process (sender or owner) to ``n`` others.
Per-party MB/s is the file size over (that party's end - its start), with
``time.monotonic()`` read in each process (one clock system-wide on Linux); the
aggregate is ``n`` files over (last end - first start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.data import format_size, make_file, warm, workdir
from benchmarks.options import Options, machine, progress
from benchmarks.procs import Parties, mib
from benchmarks.report import Report, RowSpec, Samples, Target, build_rows

RSS_LIMIT = Target("value", "<=", 64, "MiB")


def raw_fanout(work: Path, source: Path, n: int, options: Options, source_label: str) -> Samples:
    """Send ``source`` over raw TCP to ``n`` receiver processes and return the figures."""
    timeout = options.transfer_timeout(n)
    with Parties(work, plain=options.as_user) as parties:
        receivers = [
            parties.start("benchmarks.rawtcp:receiver", {"dest": str(work / f"raw-r{i}.out")},
                          f"raw-{n}-r{i}")
            for i in range(n)
        ]
        ports = [receiver.expect(30)["port"] for receiver in receivers]
        sender = parties.start("benchmarks.rawtcp:sender", {"path": str(source), "ports": ports},
                               f"raw-{n}-{source_label}")
        sender.expect(30)
        warm(source, incoming=options.incoming(n * source.stat().st_size),
             idle=options.idle)
        sender.send(op="go")
        sent = sender.expect(timeout)
        done = [receiver.expect(timeout) for receiver in receivers]
        check_sizes([d["bytes"] for d in done], source.stat().st_size)
        rss = {source_label: mib(sender.finish())}
        rss.update({f"r{i}": mib(r.finish()) for i, r in enumerate(receivers)})
    ends = [d["done"] for d in done]
    return figures(n, source.stat().st_size, [sent["start"]] * n, ends, sent["end"], rss)


def figures(n: int, size: int, starts: list[float], ends: list[float], source_end: float,
            rss: dict[str, float]) -> Samples:
    """Turn one run's clock readings and peak RSS into named figures (keys ``n.*``)."""
    out: Samples = {}
    for i, (start, end) in enumerate(zip(starts, ends)):
        out[f"{n}.r{i}.mbs"] = size / max(end - start, 1e-9) / 1e6
    wall = max(max(ends), source_end) - min(starts)
    out[f"{n}.agg_mbs"] = n * size / max(max(ends) - min(starts), 1e-9) / 1e6
    out[f"{n}.wall_s"] = wall
    out.update({f"{n}.rss.{label}": value for label, value in rss.items()})
    return out


#: Issue 19's targets against raw TCP: one peer 0.8x in a plain process (--as-user),
#: 0.9x with the harness's tuning; four (or more) peers 0.6x aggregate.
ONE_PEER_AS_USER, ONE_PEER_TUNED, MANY_PEERS_AGGREGATE = 0.8, 0.9, 0.6


def row_specs(n: int, source_label: str, party: str, as_user: bool = False) -> list[RowSpec]:
    """The rows for one fan-out width: rates, wall time, every process's peak RSS."""
    head = f"{n} {party}{'s' if n > 1 else ''}:"
    if n == 1:
        one = ONE_PEER_AS_USER if as_user else ONE_PEER_TUNED
        specs = [RowSpec("1.r0.mbs", f"{head} MB/s", "MB/s", target=Target("ratio", ">=", one))]
    else:
        specs = [RowSpec(f"{n}.r{i}.mbs", f"{head} MB/s r{i}", "MB/s") for i in range(n)]
        specs.append(RowSpec(f"{n}.agg_mbs", f"{head} aggregate MB/s", "MB/s",
                             target=Target("ratio", ">=", MANY_PEERS_AGGREGATE)))
    specs.append(RowSpec(f"{n}.wall_s", f"{head} wall time", "s"))
    for label in [source_label, *(f"r{i}" for i in range(n))]:
        specs.append(RowSpec(f"{n}.rss.{label}", f"{head} peak RSS {label}", "MiB",
                             fold="max", target=RSS_LIMIT))
    return specs


def _cache_note(options: Options) -> str:
    if options.as_user:
        return ("page cache (--as-user): right before every run, ours and baseline alike, dirty "
                "pages are flushed (os.sync) and the source file is read once; nothing else: "
                "receivers write into whatever memory the kernel has, as a user's run does. "
                "Received files are written to the same file system (not fsynced) and deleted "
                "after each run." + _idle_note(options))
    return ("page cache: right before every run, ours and baseline alike, dirty pages are "
            "flushed (os.sync), the source file is read once, and a scratch file of the "
            "incoming size is written and deleted, so receivers write into recycled pages "
            "(this VM hands memory free for a few seconds back to its host, and writing into "
            "such memory costs up to 9x the CPU); received files are written to the same file "
            "system (not fsynced) and deleted after each run.")


def _idle_note(options: Options) -> str:
    if not options.idle:
        return ""
    return (f" Then the machine rests {options.idle:g} s before go (--idle), so both sides' "
            "receivers write into memory this VM has handed back to its host, as a long-"
            "running site between transfers does (without the rest, the side measured second "
            "can write into the pages the first side's deleted file just freed, if its "
            "processes start fast enough: raw TCP's do).")


def _malloc_note(options: Options) -> str:
    if options.as_user:
        return ("--as-user: every process, ours and raw, is a plain Python process with glibc's "
                "defaults (no actors.process.tune_malloc); zfs's sites use only what the "
                "library sets by itself.")
    return ("every process, ours and raw, runs with the malloc settings of our entry points "
            "(actors.process.tune_malloc: 2 arenas, freed chunk buffers kept for reuse).")


def common_notes(options: Options, source_label: str) -> list[str]:
    """Notes every transfer table carries: the baseline, the cache, units, the machine."""
    return [
        f"raw TCP: the {source_label} process socket.sendfile()s the file to every receiver, one "
        "thread per receiver (sendfile releases the GIL, so they overlap); each receiver "
        "fills one page-aligned 1 MiB buffer (an anonymous mmap; recv_into, MSG_WAITALL) and "
        "write()s it whole to its file. (Until 2026-12-01 the buffer was a bytearray, which "
        "starts 16 bytes past a page: the kernel copies into such memory several times "
        "slower on this host, so raw TCP read slower than it can be.)",
        _cache_note(options),
        f"file of {format_size(options.size)} ({options.size / 1e6:,.1f} MB); MB = 10^6 bytes; "
        "per-party MB/s = size / (its end - its start); aggregate = n x size / (last end - first "
        "start); wall = first start to the last party done.",
        "rates and times: median over runs, ratios: median of each run's ours/raw (the two "
        "sides of a run measured back to back, taking turns to go first); peak RSS: VmHWM of "
        "each process (the kernel's high-water mark of its own memory, read as it ends), max "
        "over runs; not wait4's ru_maxrss, which Linux raises to the spawning parent's peak "
        "across vfork+exec. Baseline RSS in the raw column, verdict on ours.",
        _malloc_note(options),
        f"verdicts compare a measurement with the issue's targets; they are not tests. "
        f"Machine: {machine()}.",
    ]


def params(options: Options) -> dict[str, Any]:
    """Return the options a push or pull table records as its parameters."""
    return {"size": options.size, "targets": list(options.targets), "runs": options.runs,
            "chunk_size": options.chunk_size, "window_chunks": options.window,
            "as_user": options.as_user, "idle_s": options.idle}


def check_sizes(received: list[int], size: int) -> None:
    """Raise unless every party received ``size`` bytes.

    Raises:
        RuntimeError: a party received another number of bytes.
    """
    wrong = [got for got in received if got != size]
    if wrong:
        raise RuntimeError(f"received {wrong} bytes instead of {size}")


#: ``measure(work, source, n, options, keys)``: one transfer to ``n`` parties, plain
#: links when ``keys`` is None, else CURVE with the keypairs in that folder.
Measure = Callable[[Path, Path, int, Options, Path | None], Samples]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What :func:`compare` needs to know about push or pull."""

    name: str                 # "push"
    ours: str                 # "zfs push"
    source: str               # the sending site's name and RSS label: "sender", "owner"
    party: str                # what the other sites are called in the rows: "target"
    title: str
    params: dict[str, Any]
    measure: Measure
    notes: list[str] = field(default_factory=list)


def _pair(work: Path, source: Path, n: int, options: Options, scenario: Scenario,
          missing: str | None, label: str, raw_first: bool) -> tuple[Samples, Samples]:
    """One run of the baseline and of ours (unless ``missing``), back to back.

    The sides take turns going first: whichever runs right after the test file is
    written, or after the other side's received files are deleted and synced, meets a
    busier disk.
    """
    def raw() -> Samples:
        progress(f"{label}: raw TCP")
        return raw_fanout(work, source, n, options, scenario.source)

    def ours() -> Samples:
        if missing is not None:
            return {}
        progress(f"{label}: {scenario.ours}")
        return scenario.measure(work, source, n, options, None)

    if raw_first:
        first = raw()
        return first, ours()
    first = ours()
    return raw(), first


def against_raw(options: Options, scenario: Scenario, missing: str | None) -> Report:
    """Measure ``scenario`` and the raw-TCP baseline for every width and run; the table."""
    report = Report(scenario.name, scenario.title, scenario.ours, "raw TCP",
                    params=scenario.params)
    specs: list[RowSpec] = []
    with workdir(options.dir) as work:
        source = work / "source.bin"
        progress(f"writing a {format_size(options.size)} test file in {work}")
        make_file(source, options.size)
        for n in options.targets:
            specs += row_specs(n, scenario.source, scenario.party, options.as_user)
        for run_no in range(1, options.runs + 1):
            base: Samples = {}
            ours: Samples = {}
            for n in options.targets:
                label = f"run {run_no}/{options.runs}, {n} {scenario.party}(s)"
                raw, mine = _pair(work, source, n, options, scenario, missing, label,
                                  raw_first=run_no % 2 == 1)
                base.update(raw)
                ours.update(mine)
            report.base_runs.append(base)
            report.ours_runs.append(ours)
    report.rows = build_rows(specs, report.ours_runs, report.base_runs)
    report.notes = scenario.notes
    return report
