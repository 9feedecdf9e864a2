"""Turning a command's arguments into settings: options, peers and files given on the line.

Each option that fills a setting shows its ``ZFS_*`` variable in the help; values are
checked by :mod:`zfs.cli.settings`, and a bad one ends the command with one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from zfs.cli import settings as config


@dataclass(frozen=True, slots=True)
class Common:
    """Options of the whole command, handed to every subcommand."""

    verbose: bool
    quiet: bool


_METAVARS = {"bind": "ENDPOINT", "channel": "NAME", "topic": "NAME", "chunk_size": "SIZE",
             "window_chunks": "N", "retries": "N", "out_dir": "DIR", "keys_dir": "DIR",
             "allow_dir": "DIR"}


def _setting(setting: str, text: str) -> Callable[[Any], Any]:
    """The command-line option that fills ``setting`` (its variable shown in the help)."""
    return click.option(config.option_name(setting), setting,
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


def _settings(common: Common | None, **explicit: Any) -> config.Settings:
    if common is not None and common.quiet:
        explicit["quiet"] = True
    try:
        return config.resolve(explicit)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _peers(pairs: Sequence[str]) -> dict[str, str]:
    try:
        return dict(config.parse_peer(pair) for pair in pairs)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _check_file(path: str) -> str:
    if not os.path.isfile(path):
        raise click.ClickException(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise click.ClickException(f"cannot read file: {path}")
    return path
