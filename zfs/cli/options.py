"""Turning a command's arguments into settings: options, peers and files given on the line.

Each option that fills a setting shows its ``ZFS_*`` variable in the help; values are
checked by :mod:`zfs.cli.settings`, and a bad one ends the command with one line. The
options of the whole command (``-v``, ``-q``) are also accepted after a command's name
(:func:`with_global_options`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import click

from zfs.cli import logs
from zfs.cli import settings as config


@dataclass(slots=True)
class Common:
    """Options of the whole command, handed to every subcommand (``-v``/``-q`` after the
    command's name update it).

    Args:
        library_level: the library's log level when not verbose.
        own_level: the level of the command's own log lines when not verbose.
    """

    verbose: bool
    quiet: bool
    library_level: str = "CRITICAL"
    own_level: str = "INFO"

    def set_up_logging(self) -> None:
        """Apply the log levels these options ask for."""
        logs.setup(self.verbose, self.library_level, self.own_level)


_METAVARS = {"bind": "ENDPOINT", "channel": "NAME", "topic": "NAME", "chunk_size": "SIZE",
             "window_chunks": "N", "retries": "N", "out_dir": "DIR", "keys_dir": "DIR",
             "allow_dir": "DIR", "name": "NAME", "bwlimit": "RATE"}


#: Settings that name a folder: the shell completes paths for them (checked by the command).
_FOLDERS = frozenset({"out_dir", "keys_dir", "allow_dir"})


def _setting(setting: str, text: str) -> Callable[[Any], Any]:
    """The command-line option that fills ``setting`` (its variable shown in the help)."""
    return click.option(config.option_name(setting), setting,
                        type=click.Path() if setting in _FOLDERS else None,
                        metavar=_METAVARS.get(setting, "SECONDS"),
                        help=f"{text} [{config.env_name(setting)}]")


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func
    return apply


_KEYS = _options(_setting("keys_dir", "Folder of this site's keypair: encrypt."),
                 _setting("allow_dir", "Folder of trusted sites' public keys."))
_CONNECT_TIMEOUT = _setting("connect_timeout", "Seconds to wait for a site.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_DRY_RUN = click.option("--dry-run", "dry_run", is_flag=True,
                        help="Check, then say what would move, between whom, how many "
                             "bytes; move nothing.")


# ---- -v and -q, before or after the command's name ------------------------------------

def _late_global(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``-v``/``-q`` given after the command's name: update the whole command's options."""
    common = ctx.find_object(Common)
    if not value or common is None:
        return
    if param.name == "late_verbose":
        common.verbose = True
        common.set_up_logging()
    else:
        common.quiet = True


def _global_options() -> list[click.Option]:
    return [
        click.Option(["-v", "--verbose", "late_verbose"], is_flag=True, expose_value=False,
                     callback=_late_global, help="Debug logs, and tracebacks on errors."),
        click.Option(["-q", "--quiet", "late_quiet"], is_flag=True, expose_value=False,
                     callback=_late_global, help="No progress bars [ZFS_QUIET]."),
    ]


def with_global_options(command: click.Command) -> click.Command:
    """Let ``command`` (and each command of a group) take ``-v``/``-q`` too; return it."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_global_options(sub)
    elif not (command.context_settings.get("ignore_unknown_options")
              or any(param.name == "late_verbose" for param in command.params)):
        command.params.extend(_global_options())
    return command


# ---- settings, peers and files --------------------------------------------------------

def _settings(common: Common | None, **explicit: Any) -> config.Settings:
    if common is not None and common.quiet:
        explicit["quiet"] = True
    try:
        return config.resolve(explicit)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _peers(pairs: Sequence[str], flag: str = "--connect") -> dict[str, str]:
    try:
        return dict(config.parse_peer(pair) for pair in pairs)
    except ValueError as err:
        raise click.ClickException(f"{flag}: {err}") from None


#: Paths that mean this command's standard input.
STDIN = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


def _check_file(path: str) -> str:
    """A regular file we can read (to share), or one line that says what ``path`` is instead."""
    if path in STDIN:
        raise click.ClickException(f"cannot share standard input ({path}): a shared file must "
                                   "be one the owner can read again; push it instead")
    if os.path.isdir(path):
        raise click.ClickException(f"{path} is a directory: give files, one per argument")
    if not os.path.exists(path):
        raise click.ClickException(f"no such file: {path}")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise click.ClickException(f"{path} is not a regular file (a pipe or a device): "
                                   "only regular files can be shared")
    if not os.access(path, os.R_OK):
        raise click.ClickException(f"cannot read file: {path}")
    return path


def _source(path: str, as_name: Optional[str]) -> tuple[str, Optional[int]]:
    """What ``push`` reads: (the file's name at the targets, its size or None for a stream).

    A regular file is pushed under its own name (or ``--as``); standard input and other
    streams (pipes, devices) are read until they end and need ``--as``.
    """
    if os.path.isdir(path):
        tar = (os.path.basename(os.path.abspath(path)) or "folder") + ".tar"
        raise click.ClickException(f"{path} is a directory: push one file at a time (or a tar "
                                   f"of it: tar c {path} | zfs-stream push - --as {tar} ...)")
    if path in STDIN:
        if not as_name:
            raise click.ClickException("reading standard input: say what to call the file at "
                                       "the targets with --as NAME")
        return as_name, None
    if not os.path.exists(path):
        raise click.ClickException(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise click.ClickException(f"cannot read file: {path}")
    name = as_name or os.path.basename(path)
    if stat.S_ISREG(os.stat(path).st_mode):
        return name, os.path.getsize(path)
    return name, None
