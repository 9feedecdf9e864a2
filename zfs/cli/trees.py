"""What the commands need for folders: pushing one, the bars of a tree, the RID secret.

``push DIR`` pushes the folder (:func:`push_folder`); ``share DIR`` shares it under one
RID, stable across restarts of the owner (:func:`rid_secret`); ``pull RID`` fetches a
tree as it fetches a file, and :func:`pull_summary` words its result. A tree's bar shows
bytes, files done of all, and the file being moved.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from typing import Any, Optional, TextIO

import click
from tqdm import tqdm

from zfs.cli import settings as config

_SECRET_FILE = "rid-secret"


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


class TreeBars:
    """One bar per peer, fed by :meth:`update`: bytes, and for a tree its files and the
    file being moved. Nothing is drawn unless ``enabled`` (see ``bars.wanted``)."""

    def __init__(self, enabled: bool, label: str, peers: tuple[str, ...] = (),
                 total: Optional[int] = None, stream: Optional[TextIO] = None) -> None:
        self._enabled, self._label = enabled, label
        self._stream = sys.stderr if stream is None else stream
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()
        for peer in peers:
            self._bar(peer, total, "")

    def _bar(self, peer: str, total: Optional[int], name: str) -> Any:
        bar = self._bars.get(peer)
        if bar is None and self._enabled:
            bar = tqdm(total=total, desc=f"{self._label.replace('{name}', name)} {peer}",
                       unit="B", unit_scale=True, unit_divisor=1024, position=len(self._bars),
                       leave=True, file=self._stream, miniters=1, dynamic_ncols=True)
            self._bars[peer] = bar
        return bar

    def update(self, progress: Any) -> None:
        """Move ``progress.peer``'s bar (any thread)."""
        if not self._enabled:
            return
        with self._lock:
            bar = self._bar(progress.peer, progress.total, progress.name)
            if bar.total != progress.total:
                bar.total = progress.total
            if getattr(progress, "files", 0):
                bar.set_postfix_str(f"{progress.files_done}/{progress.files} files "
                                    f"{progress.current}"[:60], refresh=False)
            bar.update(max(0, progress.bytes_done - bar.n))

    def close(self) -> None:
        """Leave the bars as they are and release the terminal."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def __enter__(self) -> TreeBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def push_folder(site: Any, folder: str, targets: list[str], settings: config.Settings,
                bars: TreeBars, stop: threading.Event, no_clobber: bool,
                skip: bool) -> Any:
    """Push ``folder`` to ``targets`` from ``site``; the result, or None if interrupted."""
    from zfs.cli.session import _await
    from zfs.push.tree.sender import push_tree_async

    return _await(push_tree_async(
        site, targets, folder, channel=settings.channel, topic=settings.topic,
        chunk_size=settings.chunk_size, window_chunks=settings.window_chunks,
        chunk_timeout=settings.chunk_timeout, on_progress=bars.update,
        secure=settings.keys_dir is not None, no_clobber=no_clobber,
        check_existing=skip), stop)


def push_summary(result: Any) -> tuple[dict[str, Any], str]:
    """The JSON record and the line that report a pushed tree."""
    record = {"op": "push", "name": result.name, "size": result.size,
              "targets": list(result.targets), "seconds": result.seconds,
              "files": result.files, "files_sent": len(result.sent),
              "files_skipped": len(result.skipped), "bytes_moved": result.bytes_moved,
              "ignored": list(result.ignored)}
    return record, (f"pushed folder {result.name} to {', '.join(result.targets)}: "
                    f"{result.files} files, {len(result.sent)} sent, {len(result.skipped)} "
                    f"already there, {config.format_size(result.bytes_moved)} moved")


def pull_summary(result: Any, owner: str, seconds: float) -> tuple[dict[str, Any], str]:
    """The JSON record and the line that report a downloaded file or tree."""
    record = {"op": "pull", "path": result.path, "size": result.size, "owner": owner,
              "seconds": seconds, "bytes_moved": result.bytes_moved}
    files = getattr(result, "files", None)
    if files is None:
        return record, f"downloaded {result.path} from {owner}"
    record.update(files=files, files_fetched=len(result.fetched),
                  files_skipped=len(result.skipped))
    return record, (f"downloaded folder {result.path} from {owner}: {files} files, "
                    f"{len(result.fetched)} fetched, {len(result.skipped)} already there, "
                    f"{config.format_size(result.bytes_moved)} moved")


def report_rate(as_json: bool, record: dict[str, Any], text: str) -> None:
    """Print the result: one JSON line, or the line with size, time and the true rate
    (bytes moved in this run, not the tree's size)."""
    import json

    seconds = record["seconds"]
    moved = record.get("bytes_moved", record["size"])
    record["mb_per_s"] = moved / seconds / 1e6 if seconds > 0 else 0.0
    click.echo(json.dumps(record) if as_json else
               f"{text} ({config.format_size(record['size'])}) in {seconds:.2f} s "
               f"({record['mb_per_s']:.1f} MB/s)")


def check_path(path: str) -> str:
    """A readable file or folder to share, or a one-line error."""
    if not os.path.exists(path):
        raise click.ClickException(f"no such file or folder: {path}")
    if not os.access(path, os.R_OK):
        raise click.ClickException(f"cannot read: {path}")
    return path
