"""``python -m benchmarks messages``: our runtime against raw pyzmq (issues 2 and 19).

Two parties per side, each in its own process, over tcp on 127.0.0.1: a client
and a server. Ours are two :class:`actors.Site` s (see
:mod:`benchmarks.messages_parties`); the baseline is a bare DEALER talking to a bare
ROUTER (see :mod:`benchmarks.rawzmq`). Both sides run the same three measurements
in the same run, one side after the other.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data import MiB, format_size, workdir
from benchmarks.options import Options, machine, progress, unavailable
from benchmarks.procs import Parties, mib
from benchmarks.report import Report, RowSpec, Samples, Target, build_rows

#: Issue 19's targets against raw pyzmq: small tells 0.5x, ask p50 within 2x.
ROWS = [
    RowSpec("tell_rate", "tell: small messages per second", "msg/s",
            target=Target("ratio", ">=", 0.5)),
    RowSpec("ask_p50_us", "ask round trip p50", "us", target=Target("ratio", "<=", 2)),
    RowSpec("ask_p99_us", "ask round trip p99", "us"),
    RowSpec("payload_mbs", "1 MiB payload throughput", "MB/s", target=Target("ratio", ">=", 0.8)),
    RowSpec("window_mbs", "1 MiB payloads, windowed, each acked", "MB/s"),
    RowSpec("rss_client", "peak RSS client (sender)", "MiB", fold="max"),
    RowSpec("rss_server", "peak RSS server (receiver)", "MiB", fold="max"),
]


def run(options: Options) -> Report:
    """Measure both sides ``options.runs`` times and return the table."""
    payloads = max(options.size // MiB, 1)
    params = {"messages": options.messages, "asks": options.asks,
              "payloads": payloads, "window": options.window}
    missing = unavailable("actors", "Site", "Actor")
    report = Report("messages", _title(options, payloads), "zfs actors", "raw pyzmq",
                    params=dict(params, runs=options.runs))
    timeout = options.timeout + options.messages / 2000 + payloads * MiB / 20e6
    with workdir(options.dir) as work:
        for run_no in range(1, options.runs + 1):
            sides = [("raw pyzmq", "benchmarks.rawzmq", report.base_runs)]
            if missing is None:
                sides.append(("zfs actors", "benchmarks.messages_parties", report.ours_runs))
            if run_no % 2 == 0:  # the sides take turns going first, as in push and pull
                sides.reverse()
            for name, module, runs in sides:
                progress(f"run {run_no}/{options.runs}: {name}")
                runs.append(_measure(module, params, work, timeout))
    report.rows = build_rows(ROWS, report.ours_runs, report.base_runs)
    report.notes = _notes(options, missing)
    return report


def _measure(module: str, params: dict[str, int], work: Path, timeout: float) -> Samples:
    with Parties(work) as parties:
        server = parties.start(f"{module}:server", {}, "server")
        endpoint = server.expect(timeout=30)["endpoint"]
        client = parties.start(f"{module}:client", dict(params, endpoint=endpoint), "client")
        results: Samples = client.expect(timeout)
        results["rss_client"] = mib(client.finish())
        results["rss_server"] = mib(server.finish())
    return results


def _title(options: Options, payloads: int) -> str:
    return (f"messages: two sites in separate processes, tcp 127.0.0.1; {options.messages} tells, "
            f"{options.asks} asks, {payloads} x 1 MiB ({format_size(payloads * MiB)}) payloads, "
            f"window {options.window}; {options.runs} run(s)")


def _notes(options: Options, missing: str | None) -> list[str]:
    notes = []
    if missing:
        notes.append(f"ours: not available: {missing}; baseline only")
    notes += [
        "tell: N small tells (a 3-field msgpack map), then one ask for the count; it queues "
        "behind the tells, so its answer means all N were handled. Raw: N one-frame "
        "DEALER messages, then a request for the count.",
        "ask: sequential round trips after a warm-up; raw: DEALER -> ROUTER echo ping-pong.",
        "1 MiB payload throughput: as tell, N messages each carrying one 1 MiB frame "
        "(copy=False) from the app thread, then one ask for the count; only flow control "
        "holds the sender back (ZeroMQ's high-water marks; ours also the site's "
        "pending-bytes limit). This is ZeroMQ's own throughput test (remote_thr/local_thr) "
        "shape. The receiver discards the bytes on both sides.",
        f"windowed: the same frames, at most {options.window} un-acked in flight; the "
        "receiver acks every message with a tiny message and the sender sends the next "
        "(ours: a pump actor that tells the chunks and gets the acks, as zfs push's sender "
        "does; raw: one loop sending and receiving). Each chunk's ack is a round trip "
        "through both sides' threads, what the ask row measures; no target of its own.",
        "MB = 10^6 bytes; rates and times: median over runs, ratios: median of each run's "
        "ours/raw (the two sides of a run measured back to back, taking turns to go first); "
        "peak RSS: VmHWM of each process (the kernel's high-water mark of its own memory, "
        "read as it ends), max over runs; not wait4's ru_maxrss, which Linux raises to the "
        "spawning parent's peak across vfork+exec.",
        "every process, ours and raw, runs with the malloc settings of our entry points "
        "(actors.process.tune_malloc: 2 arenas, freed chunk buffers kept for reuse).",
        "verdicts compare a measurement with the targets of issue 2 as the speed issue (19) "
        "raised them (tells >= 0.5x, ask p50 <= 2x); they are not tests. "
        f"Machine: {machine()}.",
    ]
    return notes
