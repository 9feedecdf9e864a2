"""The command group ``main``: the options of the whole command, logging, one-line errors.

Its subcommands live in their own modules and are attached in :mod:`zfs.cli`; ``keys``
is loaded only when used (from :mod:`zfs.cli.keys`, if installed).
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import click

from actors.process import tune_malloc

from zfs.cli.errors import describe
from zfs.cli.options import Common, _settings, with_global_options


#: Long-running commands, whose library warnings are worth reading as they come.
_SERVING = frozenset({"site", "share"})


class _Group(click.Group):
    """The command group: one-line errors, and ``keys`` loaded only when used."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if isinstance(ctx.obj, Common) and ctx.obj.verbose:
                traceback.print_exc()
            raise click.ClickException(describe(err)) from err

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "keys"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _keys_command() if cmd_name == "keys" else super().get_command(ctx, cmd_name)


def _keys_command() -> click.Command:
    """The security issue's ``keys`` group if it is installed, else a clear refusal."""
    try:
        from zfs.cli.keys import keys
    except ImportError as err:
        reason = str(err)

        @click.command(name="keys", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def unavailable(args: Sequence[str]) -> None:
            """Manage site keys (not available in this installation)."""
            raise click.ClickException(f"keys: not available ({reason})")
        return unavailable
    return with_global_options(keys)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, default=None, help="No progress bars [ZFS_QUIET].")
@click.version_option(package_name="zfs-stream", prog_name="zfs-stream",
                      message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool | None) -> None:
    """Move large files between sites over ZeroMQ.

    Settings come from options, then ZFS_* variables (see the README's Configuration).
    -v and -q work before or after the command's name.
    """
    tune_malloc()  # this process exists to run a site (see actors.process)
    base = _settings(None)
    serving = ctx.invoked_subcommand in _SERVING
    # ZFS_LOG_LEVEL, when set, rules both the library and the command's own lines.
    ctx.obj = Common(verbose=verbose, quiet=base.quiet if quiet is None else quiet,
                     library_level=base.log_level or ("WARNING" if serving else "CRITICAL"),
                     own_level=base.log_level or ("INFO" if serving else "WARNING"))
    ctx.obj.set_up_logging()
