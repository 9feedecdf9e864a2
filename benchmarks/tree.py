"""``python -m benchmarks tree``: push and pull of folders against ``tar`` over raw TCP (issue 17).

Three folders, each moved from one process to another over tcp on 127.0.0.1: (a) one
file of ``--size`` bytes, (b) the same bytes as 64 files, (c) ``--files`` files of
4 KiB in 100 sub-folders. For each, in the same run and taking turns to go first:
``tar -c | socket | tar -x`` (:mod:`benchmarks.rawtar`), :func:`zfs.push_tree` to one
target and a pull of the folder's RID (:mod:`benchmarks.tree_parties`).

The issue's targets: (b) at least 0.9x the rate of (a) (many files cost no more than
one), (c) at least 0.5x the files per second of tar, and memory flat (peak RSS under
64 MiB whatever the folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data import _recycle_page_cache, format_size, make_file, workdir
from benchmarks.options import Options, machine, progress, unavailable
from benchmarks.procs import Parties, mib
from benchmarks.report import Report, RowSpec, Samples, Target, build_rows
from benchmarks.transfer import RSS_LIMIT

SMALL = 4096
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Folder:
    """One test folder: its key in the samples, what it is, where it is, its size."""

    key: str
    label: str
    path: Path
    size: int
    files: int


def run(options: Options) -> Report:
    """Measure every folder, ``options.runs`` times, and return the table."""
    missing = unavailable("zfs", "push_tree", "download", "share")
    report = Report("tree", _title(options), "zfs", "tar | TCP",
                    params={"size": options.size, "files": options.files,
                            "runs": options.runs, "chunk_size": options.chunk_size,
                            "window_chunks": options.window})
    with workdir(options.dir) as work:
        folders = _make_folders(work, options)
        for run_no in range(1, options.runs + 1):
            ours: Samples = {}
            base: Samples = {}
            for folder in folders:
                label = f"run {run_no}/{options.runs}, ({folder.key}) {folder.label}"
                tar_first = run_no % 2 == 1          # the sides take turns to go first
                if tar_first:
                    base.update(_tar(work, folder, options, label))
                ours.update(_ours(work, folder, options, label, missing))
                if not tar_first:
                    base.update(_tar(work, folder, options, label))
            for mode in ("push", "pull"):
                _derive(ours, base, mode)
            report.ours_runs.append(ours)
            report.base_runs.append(base)
    report.rows = build_rows(_specs(folders), report.ours_runs, report.base_runs)
    report.notes = _notes(options, missing)
    return report


def _make_folders(work: Path, options: Options) -> list[Folder]:
    progress(f"writing the test folders in {work}")
    one = work / "a" / "one-file"
    one.mkdir(parents=True)
    make_file(one / "data.bin", options.size)
    many = work / "b" / "64-files"
    many.mkdir(parents=True)
    part = max(1, options.size // 64)
    for i in range(64):
        make_file(many / f"shard-{i:02d}.bin", part)
    small = work / "c" / "small-files"
    pool = os.urandom(SMALL * 64)
    for i in range(options.files):
        folder = small / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        start = (i * 4099) % (len(pool) - SMALL)
        (folder / f"f{i:05d}.txt").write_bytes(pool[start:start + SMALL])
    return [Folder("a", f"one file of {format_size(options.size)}", one, options.size, 1),
            Folder("b", f"64 files of {format_size(part)}", many, 64 * part, 64),
            Folder("c", f"{options.files:,} files of 4 KiB", small, options.files * SMALL,
                   options.files)]


def _warm(folder: Folder, options: Options) -> None:
    """Flush, read the folder once (cached), and ready recycled pages for the receiver
    (see :func:`benchmarks.data.warm`; not with ``--as-user``)."""
    os.sync()
    buffer = bytearray(_BLOCK)
    for base, _dirs, names in os.walk(folder.path):
        for name in names:
            with open(os.path.join(base, name), "rb", buffering=0) as source:
                while source.readinto(buffer):
                    pass
    incoming = options.incoming(folder.size)
    if incoming:
        _recycle_page_cache(folder.path.parent / ".recycle", incoming + incoming // 8)


def _figures(prefix: str, folder: Folder, start: float, end: float, got: dict[str, float],
             rss: dict[str, float]) -> Samples:
    if (got["bytes"], got["files"]) != (folder.size, folder.files):
        raise RuntimeError(f"{prefix}: received {got['files']} files, {got['bytes']} bytes; "
                           f"sent {folder.files}, {folder.size}")
    seconds = max(end - start, 1e-9)
    out = {f"{prefix}.mbs": folder.size / seconds / 1e6, f"{prefix}.files_s": folder.files / seconds,
           f"{prefix}.s": seconds}
    out.update({f"{prefix}.rss.{side}": value for side, value in rss.items()})
    return out


def _tar(work: Path, folder: Folder, options: Options, label: str) -> Samples:
    progress(f"{label}: tar | TCP")
    dest = work / f"tar-{folder.key}"
    dest.mkdir()
    timeout = options.transfer_timeout()
    with Parties(work, plain=options.as_user) as parties:
        receiver = parties.start("benchmarks.rawtar:receiver", {"dest": str(dest)},
                                 f"tar-{folder.key}-receiver")
        port = receiver.expect(30)["port"]
        sender = parties.start("benchmarks.rawtar:sender", {
            "port": port, "parent": str(folder.path.parent), "name": folder.path.name},
            f"tar-{folder.key}-sender")
        sender.expect(30)
        _warm(folder, options)
        sender.send(op="go")
        sent = sender.expect(timeout)
        got = receiver.expect(timeout)
        rss = {"sender": mib(sender.finish()), "receiver": mib(receiver.finish())}
    samples = _figures(f"{folder.key}", folder, sent["start"], got["done"], got, rss)
    # Both of ours compare with the same baseline.
    return {f"{mode}.{key}": value for mode in ("push", "pull") for key, value in samples.items()}


def _ours(work: Path, folder: Folder, options: Options, label: str,
          missing: str | None) -> Samples:
    if missing is not None:
        return {}
    return {**_push(work, folder, options, label), **_pull(work, folder, options, label)}


def _push(work: Path, folder: Folder, options: Options, label: str) -> Samples:
    progress(f"{label}: zfs push_tree")
    timeout = options.transfer_timeout()
    dest = work / f"push-{folder.key}"
    dest.mkdir()
    with Parties(work, plain=options.as_user) as parties:
        receiver = parties.start("benchmarks.tree_parties:receiver", {
            "name": "r0", "dest_dir": str(dest), "timeout": timeout}, f"push-{folder.key}-r0")
        endpoint = receiver.expect(30)["endpoint"]
        sender = parties.start("benchmarks.tree_parties:sender", {
            "targets": {"r0": endpoint}, "path": str(folder.path),
            "chunk_size": options.chunk_size, "window": options.window},
            f"push-{folder.key}-sender")
        sender.expect(60)
        _warm(folder, options)
        sender.send(op="go")
        sent = sender.expect(timeout)
        got = receiver.expect(timeout)
        rss = {"sender": mib(sender.finish()), "receiver": mib(receiver.finish())}
    dest.rmdir()
    return _figures(f"push.{folder.key}", folder, sent["start"], got["done"], got, rss)


def _pull(work: Path, folder: Folder, options: Options, label: str) -> Samples:
    progress(f"{label}: zfs pull (add_tree, download)")
    timeout = options.transfer_timeout()
    dest = work / f"pull-{folder.key}"
    dest.mkdir()
    with Parties(work, plain=options.as_user) as parties:
        owner = parties.start("benchmarks.tree_parties:owner", {
            "path": str(folder.path), "timeout": timeout + 60}, f"pull-{folder.key}-owner")
        shared = owner.expect(120)
        recipient = parties.start("benchmarks.tree_parties:recipient", {
            "name": "r0", "endpoint": shared["endpoint"], "rid": shared["rid"],
            "dest_dir": str(dest), "window": options.window, "chunk_size": options.chunk_size},
            f"pull-{folder.key}-r0")
        recipient.expect(60)
        _warm(folder, options)
        recipient.send(op="go")
        got = recipient.expect(timeout)
        rss = {"sender": mib(owner.finish()), "receiver": mib(recipient.finish())}
    dest.rmdir()
    return _figures(f"pull.{folder.key}", folder, got["start"], got["end"], got, rss)


def _derive(ours: Samples, base: Samples, mode: str) -> None:
    """(b) against (a): the rate of 64 files over that of one, each side its own."""
    for samples in (ours, base):
        a, b = samples.get(f"{mode}.a.mbs"), samples.get(f"{mode}.b.mbs")
        if a and b:
            samples[f"{mode}.b_over_a"] = b / a


def _specs(folders: list[Folder]) -> list[RowSpec]:
    specs: list[RowSpec] = []
    for mode in ("push", "pull"):
        for folder in folders:
            head = f"{mode} ({folder.key}) {folder.label}:"
            specs.append(RowSpec(f"{mode}.{folder.key}.mbs", f"{head} MB/s", "MB/s"))
            if folder.key == "c":
                specs.append(RowSpec(f"{mode}.c.files_s", f"{head} files/s", "files/s",
                                     target=Target("ratio", ">=", 0.5)))
        specs.append(RowSpec(f"{mode}.b_over_a", f"{mode}: rate of (b) / rate of (a)", "x",
                             target=Target("value", ">=", 0.9)))
        for folder in folders:
            for side in ("sender", "receiver"):
                specs.append(RowSpec(f"{mode}.{folder.key}.rss.{side}",
                                     f"{mode} ({folder.key}): peak RSS {side}", "MiB",
                                     fold="max", target=RSS_LIMIT))
    return specs


def _title(options: Options) -> str:
    return (f"tree: folders of {format_size(options.size)} (one file; 64 files) and "
            f"{options.files:,} files of 4 KiB, one process to another, tcp 127.0.0.1; chunk "
            f"{format_size(options.chunk_size)}, window {options.window}; {options.runs} run(s)")


def _notes(options: Options, missing: str | None) -> list[str]:
    notes = [f"ours: not available: {missing}; baseline only"] if missing else []
    return notes + [
        "ours: push = zfs.push_tree from a sender site to a receiver site (done when its "
        "on_done runs: every file checked, the tree renamed into place, modes and times set); "
        "pull = zfs.download of a RID from Transaction.add_tree (the owner digested the "
        "folder before the clock starts, as a share that waits for recipients has).",
        "baseline: tar -c of the folder, its output on a TCP socket, tar -x from the socket "
        "into an empty folder (modes and times restored); done when tar -x exits. Push and "
        "pull are both compared with it.",
        "(b) / (a) is each side's own rate of 64 files over its rate of one file of the same "
        "bytes (target >= 0.9 on ours); (c) compares files per second (target >= 0.5x).",
        "page cache: before every transfer dirty pages are flushed, the source folder read "
        "once, and a scratch file of the incoming size written and deleted (see the push "
        "table's notes); received folders are deleted after each transfer, untimed.",
        "rates and times: median over runs; ratios: median of each run's ours/tar (a run's "
        "sides back to back, taking turns to go first); peak RSS: VmHWM, max over runs.",
        f"verdicts compare a measurement with the issue's targets; they are not tests. "
        f"Machine: {machine()}.",
    ]
