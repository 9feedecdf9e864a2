"""The commands that try the system out: ``demo`` (three local sites) and ``bench``."""

from __future__ import annotations

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


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: Sequence[str]) -> None:
    """Run the benchmark harness: python -m benchmarks ARGS (try 'bench --help')."""
    ctx.exit(subprocess.call([sys.executable, "-m", "benchmarks", *args]))
