"""``python -m benchmarks pull``: zfs pull against raw TCP (issue 4).

For each number of recipients (``--targets 1,4``): one owner process and that many
recipient processes over tcp on 127.0.0.1, downloading at once; first the raw TCP
baseline (the same as push's), then :func:`zfs.share` + :func:`zfs.download`
(see :mod:`benchmarks.pull_parties`), same file, same run. With ``--curve``, zfs
pull over plain links is the baseline and the same pull with CurveZMQ on every link
is ours (see :mod:`benchmarks.curve`).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import curve
from benchmarks.data import format_size, warm
from benchmarks.options import Options, unavailable
from benchmarks.procs import Parties, mib
from benchmarks.report import Report, Samples
from benchmarks.transfer import Scenario, check_sizes, common_notes, figures, params

SOURCE = "owner"


def run(options: Options) -> Report:
    """Measure both sides for every width, ``options.runs`` times, and return the table."""
    missing = unavailable("zfs", "share", "download")
    scenario = Scenario("pull", "zfs pull", SOURCE, "recipient", _title(options),
                        params(options), _pull, _notes(options, missing))
    return curve.run(options, scenario, missing)


def _pull(work: Path, source: Path, n: int, options: Options,
          keys: Path | None = None) -> Samples:
    """One pull by ``n`` recipients; over CURVE with the keypairs in ``keys`` if given."""
    timeout = options.transfer_timeout(n)
    tag = f"pull-curve-{n}" if keys else f"pull-{n}"
    keyed = {"keys": str(keys)} if keys else {}
    with Parties(work, plain=options.as_user) as parties:
        owner = parties.start("benchmarks.pull_parties:owner",
                              {"path": str(source), "timeout": timeout + 60, **keyed},
                              f"{tag}-owner")
        shared = owner.expect(60)
        recipients = []
        for i in range(n):
            dest = work / f"pull-{n}-r{i}"
            dest.mkdir(exist_ok=True)
            recipients.append(parties.start("benchmarks.pull_parties:recipient", {
                "name": f"r{i}", "endpoint": shared["endpoint"], "rid": shared["rid"],
                "dest_dir": str(dest), "window": options.window,
                "chunk_size": options.chunk_size, **keyed}, f"{tag}-r{i}"))
        for recipient in recipients:
            recipient.expect(60)
        warm(source, incoming=options.incoming(n * options.size), idle=options.idle)
        for recipient in recipients:
            recipient.send(op="go")
        done = [r.expect(timeout) for r in recipients]
        check_sizes([d["bytes"] for d in done], options.size)
        rss = {f"r{i}": mib(r.finish()) for i, r in enumerate(recipients)}
        rss[SOURCE] = mib(owner.finish())
    starts, ends = [d["start"] for d in done], [d["end"] for d in done]
    return figures(n, options.size, starts, ends, max(ends), rss)


def _title(options: Options) -> str:
    return (f"pull: {format_size(options.size)} file, one owner, "
            f"{' and '.join(map(str, options.targets))} concurrent recipient(s), each a process, "
            f"tcp 127.0.0.1; chunk {format_size(options.chunk_size)}, window {options.window}; "
            f"{options.runs} run(s)")


def _notes(options: Options, missing: str | None) -> list[str]:
    notes = [f"ours: not available: {missing}; baseline only"] if missing else []
    notes.append(
        "ours: the owner site shares the file (zfs.share, one transaction, add_file) "
        "before the clock starts; on go every recipient site calls zfs.download into its "
        "own folder at once; a recipient is done when download returns (file verified and "
        "renamed)."
    )
    return notes + common_notes(options, SOURCE)
