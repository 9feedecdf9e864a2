"""How a command fails: one line a person can act on, and the exit code of an interruption.

Errors a person can act on (an unknown site, a refused or unreachable one, a bad RID,
a missing file, a full disk, a wrong key) end the command with one line on stderr and a
non-zero exit; the command group (:mod:`zfs.cli.group`) turns any other error into one
such line with :func:`describe`.
"""

from __future__ import annotations

import click

import actors
from zfs.errors import TransactionExpired, UnknownReference, ZfsError


class Interrupted(click.ClickException):
    """Ctrl-C or SIGTERM ended a transfer; exits with the shell's code for that."""

    exit_code = 130


def describe(err: BaseException) -> str:
    """Say in one line what went wrong and, where it helps, what to do."""
    if isinstance(err, UnknownReference):
        text = f"bad RID: {err} (check the RID printed by 'zfs-stream share')"
    elif isinstance(err, TransactionExpired):
        text = f"the share ended: {err} (ask the owner to share the file again)"
    elif isinstance(err, actors.PeerRefused):
        text = str(err)
        if "the site at that endpoint is" in text:
            text += " (another site listens there: check the endpoint)"
        elif "key" in text:
            text += " (do both sites trust each other's keys?)"
    elif isinstance(err, actors.UnknownSite):
        text = f"unknown site: {err}"
    elif isinstance(err, (ZfsError, actors.ActorsError)):
        text = str(err) or type(err).__name__
    elif isinstance(err, OSError):
        text = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    else:
        text = f"{type(err).__name__}: {err} (run with -v for details)"
    if "No space left on device" in text:
        text = f"disk full: {text}"
    return " ".join(text.split())
