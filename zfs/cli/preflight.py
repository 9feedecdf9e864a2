"""What ``pull`` learns before a byte moves: the file's name and size from its owner, the
bytes an earlier run left here, and whether the folder's disk has the room.

The owner answers a pull's questions only to an actor (it replies to the asking
actor's address), so the question goes through :class:`_Inquirer`, a small actor of the
command's site that sends the ask without waiting and hands its future back.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import click

import actors
from zfs.cli import settings as config
from zfs.files import check_name
from zfs.partials import PARTIAL_DIR
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.inbound import decode
from zfs.pull.book import OWNER
from zfs.shell import failure_error

_INQUIRER = "zfs-stream.inquirer"


@dataclass(frozen=True, slots=True)
class _Ask:
    address: str
    body: Any
    timeout: float


class _Inquirer(actors.Actor):
    """Sends an ask as an actor (so that it can be answered) and returns its future."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Ask):
            return self.site.ask(message.address, message.body, timeout=message.timeout,
                                 block=False)
        return None


def file_info(site: actors.Site, owner: str, rid: str,
              timeout: float) -> wire.FileInfo | wire.TreeInfo:
    """Ask ``owner`` what ``rid`` is: the file's (or tree's) name, size and resume key.

    Raises:
        UnknownReference, TransactionExpired, FileChanged: the owner's refusal.
        AskTimeout, PeerLost: no answer.
    """
    inquirer = site.spawn_once(_Inquirer, _INQUIRER)
    asked: Future[Any] = inquirer.ask(_Ask(f"{owner}/{OWNER}",
                                           wire.encode(wire.InfoRequest(rid)), timeout),
                                      timeout=timeout)
    try:
        answer = decode(asked.result(timeout + 1.0))
    except actors.UnknownActor:
        raise failure_error(Failure.UNKNOWN, "it shares nothing", owner) from None
    except RemoteProtocolError as err:
        raise click.ClickException(f"{owner} does not answer as a zfs owner: {err}") from None
    if isinstance(answer, wire.Refusal):
        raise failure_error(answer.failure, answer.failure.value, owner)
    if not isinstance(answer, (wire.FileInfo, wire.TreeInfo)):
        raise click.ClickException(f"{owner} answered {type(answer).__name__} about a RID")
    # From the network: checked as the download checks them before they name a file.
    if type(answer.size) is not int or answer.size < 0:
        raise click.ClickException(f"{owner} gave a bad size for the RID: {answer.size!r}")
    check_name(answer.name)
    check_name(answer.key)
    return answer


def partial_bytes(out: str, key: str) -> int:
    """Bytes an earlier, interrupted pull of this file left in ``out`` (0 if none)."""
    try:
        return os.lstat(os.path.join(out, PARTIAL_DIR, f"pull-{key}")).st_size
    except OSError:
        return 0


def check_room(out: str, info: wire.FileInfo, have: int) -> None:
    """Fail before a byte moves if ``out`` cannot be made or its disk cannot hold the file."""
    where = os.path.abspath(out)
    while not os.path.exists(where):
        where = os.path.dirname(where)
    if not os.path.isdir(where):
        raise click.ClickException(f"--out {out}: {where} is a file, not a folder")
    free, need = shutil.disk_usage(where).free, max(0, info.size - have)
    if need > free:
        raise click.ClickException(
            f"disk full: {info.name} needs {config.format_size(need)} in {out}, "
            f"{config.format_size(free)} free")
