"""What the commands need for folders: pushing one, pulling one, their bars, the RID secret.

``push DIR`` pushes the folder (:func:`push_folder`); ``share DIR`` shares it under one
RID, stable across restarts of the owner (:func:`rid_secret`); ``pull RID`` of a tree
fetches it (:func:`pull_folder`). A tree's bar shows bytes, files done of all, and the
file being moved (:class:`TreeBars`).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from typing import Any

import click

import actors
from zfs.cli import settings as config
from zfs.cli.bars import Bars, _size, label, wanted
from zfs.cli.errors import Interrupted
from zfs.cli.options import _check_file
from zfs.cli.session import _await
from zfs.cli.turns import turn
from zfs.errors import StreamRefused
from zfs.protocol import wire

_SECRET_FILE = "rid-secret"

NO_CLOBBER = click.option("--no-clobber", is_flag=True,
                          help="Refuse if the file or folder exists at the destination.")
NO_SKIP = click.option("--no-skip", is_flag=True,
                       help="Move every file, even one already there with the same size and "
                            "digest.")


def config_dir() -> str:
    """The user's folder of zfs-stream's own files (``$XDG_CONFIG_HOME/zfs-stream``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "zfs-stream")


def rid_secret() -> bytes:
    """The owner's secret that RIDs are derived from, made once (a 0600 file).

    The same file or folder shared again, by a ``share`` that was restarted, gets the
    same RID, so a recipient's interrupted ``pull`` resumes with the command it has.
    Without the file nobody can derive a RID.
    """
    folder = config_dir()
    path = os.path.join(folder, _SECRET_FILE)
    try:
        with open(path, "rb") as existing:
            secret = existing.read()
        if len(secret) >= 16:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fresh = f"{path}.{secrets.token_hex(4)}"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    try:
        os.link(fresh, path)                 # another share may have made it first
    except FileExistsError:
        pass
    finally:
        os.unlink(fresh)
    with open(path, "rb") as made:
        return made.read()


def check_path(path: str) -> str:
    """A readable file or folder to share, or one line that says what is wrong."""
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.X_OK):
            raise click.ClickException(f"cannot read folder: {path}")
        return path
    return _check_file(path)


class TreeBars(Bars):
    """:class:`~zfs.cli.bars.Bars` that also show, for a tree, the files done of all and
    the file being moved (in the bar's label, fitted to the terminal as its name is)."""

    def update(self, progress: Any) -> None:
        super().update(progress)
        files = getattr(progress, "files", 0)
        if not files or not self._enabled:
            return
        text = f"{progress.name} {progress.files_done}/{files} {progress.current}".rstrip()
        with self._lock:
            bar = self._bars.get(progress.peer)
            if bar is not None and not self._closed:
                columns = _size(self._stream).columns or 80
                bar.set_description_str(label(self._label, text, progress.peer, columns,
                                              self._mark), refresh=False)


# ---- push -------------------------------------------------------------------------------

def push_folder(s: actors.Site, folder: str, targets: list[str], settings: config.Settings,
                stop: threading.Event, no_clobber: bool, skip: bool) -> Any:
    """Push ``folder`` with bars; return the TreePushResult (Ctrl-C: Interrupted)."""
    from zfs.push.tree.calls import push_tree_async

    who = f"{settings.name}: " if settings.name else ""
    name = os.path.basename(os.path.abspath(folder))
    with TreeBars(wanted(settings.quiet), f"{who}push {{name}} ->", tuple(targets),
                  name=name) as bars:
        try:
            result = _await(push_tree_async(
                s, targets, folder, channel=settings.channel, topic=settings.topic,
                chunk_size=settings.chunk_size, window_chunks=settings.window_chunks,
                chunk_timeout=settings.chunk_timeout, on_progress=bars.update,
                secure=settings.keys_dir is not None, no_clobber=no_clobber,
                check_existing=skip, bwlimit=settings.bwlimit), stop)
        except StreamRefused as err:
            raise click.ClickException(
                f"{err.site} refused the folder {name} on channel {settings.channel!r}, "
                f"topic {settings.topic!r}: {err.reason}") from None
        if result is None:
            raise Interrupted("interrupted: the push was aborted; run it again to resume "
                              "(what the targets verified is kept)")
    return result


def report_push(as_json: bool, result: Any) -> None:
    """Print a pushed tree's result: what moved, what was there, the true rate."""
    record = {"op": "push", "name": result.name, "size": result.size,
              "targets": list(result.targets), "seconds": result.seconds,
              "files": result.files, "files_sent": len(result.sent),
              "files_skipped": len(result.skipped), "bytes_moved": result.bytes_moved,
              "mb_per_s": (result.bytes_moved / result.seconds / 1e6
                           if result.seconds else 0.0),
              "ignored": list(result.ignored)}
    if as_json:
        click.echo(json.dumps(record))
        return
    rate = config.format_rate(result.bytes_moved, result.seconds)
    click.echo(f"pushed folder {result.name} to {', '.join(result.targets)}: {result.files} "
               f"files, {len(result.sent)} sent, {len(result.skipped)} already there; "
               f"{config.format_size(result.bytes_moved)} moved of "
               f"{config.format_size(result.size)} in {result.seconds:.2f} s ({rate})")
    if result.ignored:
        click.echo(f"not sent (not files, folders or links): {', '.join(result.ignored)}",
                   err=True)


# ---- pull -------------------------------------------------------------------------------

def pull_folder(s: actors.Site, owner: str, rid: str, info: wire.TreeInfo,
                settings: config.Settings, stop: threading.Event, no_clobber: bool,
                skip: bool) -> dict[str, Any]:
    """Download the tree in our turn at it in this folder; return the result's record."""
    from zfs.pull.calls import download_async

    out = settings.out_dir
    with turn(out, f"tree-{info.key}", stop, lambda: click.echo(
            f"waiting for another pull of {info.name} into {out} to end", err=True)) as mine:
        if mine.previous is not None:
            return {**mine.previous, "op": "pull", "owner": owner, "bytes_moved": 0,
                    "seconds": 0.0, "mb_per_s": 0.0, "already": True}
        who = f"{settings.name}: " if settings.name else ""
        with TreeBars(wanted(settings.quiet), who + "pull {name} <-", name=info.name) as bars:
            result = _await(download_async(
                s, owner, rid, out, window_chunks=settings.window_chunks,
                chunk_size=settings.chunk_size, request_timeout=settings.request_timeout,
                retries=settings.retries, on_progress=bars.update,
                secure=settings.keys_dir is not None, bwlimit=settings.bwlimit,
                no_clobber=no_clobber, check_existing=skip), stop)
            if result is None:
                raise Interrupted("interrupted: run the same command again to resume "
                                  "(what was received and checked is kept)")
        record = {"op": "pull", "path": result.path, "size": result.size, "owner": owner,
                  "seconds": result.seconds, "bytes_moved": result.bytes_moved,
                  "mb_per_s": (result.bytes_moved / result.seconds / 1e6
                               if result.seconds > 0 else 0.0),
                  "digest": result.digest, "mtime_ns": os.stat(result.path).st_mtime_ns,
                  "files": result.files, "files_fetched": len(result.fetched),
                  "files_skipped": len(result.skipped)}
        mine.record(record)
        return record


def pulled_folder(record: dict[str, Any], owner: str) -> str:
    """The summary of a tree's pull: its rate counts only what this run moved."""
    size = config.format_size(record["size"])
    if record.get("already"):
        return f"{record['path']} is already here: another pull got it from {owner} ({size})"
    rate = config.format_rate(record["bytes_moved"], record["seconds"])
    return (f"downloaded folder {record['path']} from {owner}: {record['files']} files, "
            f"{record['files_fetched']} fetched, {record['files_skipped']} already there; "
            f"{config.format_size(record['bytes_moved'])} moved of {size} in "
            f"{record['seconds']:.2f} s ({rate})")


def folder_plan(as_json: bool, info: wire.TreeInfo, owner: str, out: str) -> None:
    """Say what a pull of a tree would download (``--dry-run``)."""
    path = os.path.join(out, info.name)
    if as_json:
        click.echo(json.dumps({"op": "pull", "dry_run": True, "name": info.name,
                               "size": info.size, "files": info.files, "owner": owner,
                               "path": path}))
        return
    click.echo(f"would download the folder {info.name} ({info.files} files, "
               f"{config.format_size(info.size)}) from {owner} into {path}; files already "
               "there with the owner's digest would be kept; nothing was downloaded (--dry-run)")
