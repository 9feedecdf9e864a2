"""The commands that try the system out: ``demo`` (three local sites) and ``bench``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence

import click

from zfs.cli import settings as config
from zfs.cli.options import Common


@click.command()
@click.option("--size", default="64MiB", show_default=True, help="Size of the test file.")
@click.option("--dir", "workdir", help="Where to put the demo's files (default: a temp dir).")
@click.pass_obj
def demo(common: Common, size: str, workdir: str | None) -> None:
    """Start an owner and two recipient sites, push and pull a test file, show a table."""
    from zfs.cli import demo as demo_module

    try:
        nbytes = config.parse_size(size)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    rows = demo_module.run(nbytes, workdir, quiet=common.quiet, verbose=common.verbose)
    click.echo(demo_module.table(rows))
    if not all(row.verified for row in rows):
        raise click.ClickException("a received file does not match the original")


_HARNESS = "python -m benchmarks"
_ISSUE_NOTE = re.compile(r"\s*\(issue\s+\d+\)")


def _as_bench(text: str) -> str:
    """The harness's usage text as this command's: named 'zfs-stream bench', no notes
    about the project's issues."""
    shift = len(_HARNESS) - len("zfs-stream bench")
    lines, in_usage = [], False
    for line in text.splitlines(keepends=True):
        in_usage = line.startswith("usage:") or (in_usage and line.startswith(" "))
        if in_usage and line.startswith(" " * shift):
            line = line[shift:]     # the usage's continuation lines, aligned again
        lines.append(line)
    return _ISSUE_NOTE.sub("", "".join(lines).replace(_HARNESS, "zfs-stream bench"))


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: Sequence[str]) -> None:
    """Run the benchmark harness: zfs-stream bench SCENARIO [OPTIONS] (try 'bench --help')."""
    argv = [sys.executable, "-m", "benchmarks", *args]
    if args and not {"-h", "--help"} & set(args):
        ctx.exit(subprocess.call(argv))
    # Usage, asked for or shown on a mistake: say it in this command's words.
    done = subprocess.run(argv, capture_output=True, text=True)
    sys.stdout.write(_as_bench(done.stdout))
    sys.stderr.write(_as_bench(done.stderr))
    ctx.exit(done.returncode)
