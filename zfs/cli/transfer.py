"""The commands that move a file or a folder and exit: ``push`` (to sites at once) and
``pull`` (by RID).

Each starts its own short-lived site, waits for its peers, draws progress
(:mod:`zfs.cli.bars`) and prints one result line (or JSON); Ctrl-C aborts a push and
leaves a pull resumable.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

import click

from zfs.cli import settings as config
from zfs.cli.errors import Interrupted
from zfs.cli.options import (_CONNECT_TIMEOUT, _JSON, _KEYS, Common, _check_file, _peers,
                             _setting, _settings)
from zfs.cli.session import _await, _site, _until_signal, _wait_for
from zfs.cli.bars import Bars, wanted
from zfs.cli.trees import TreeBars, pull_summary, push_folder, push_summary, report_rate

_NO_CLOBBER = click.option("--no-clobber", is_flag=True,
                           help="Refuse if the file or folder exists at the destination.")
_NO_SKIP = click.option("--no-skip", is_flag=True,
                        help="Folders: send every file, even one already there with the "
                             "same size and digest.")


def _report(as_json: bool, record: dict[str, Any], text: str) -> None:
    seconds = record["seconds"]
    record["mb_per_s"] = record["size"] / seconds / 1e6 if seconds > 0 else 0.0
    click.echo(json.dumps(record) if as_json else
               f"{text} ({config.format_size(record['size'])}) in {seconds:.2f} s "
               f"({record['mb_per_s']:.1f} MB/s)")


@click.command()
@click.argument("file")
@click.option("--to", "to", required=True, metavar="SITE[,SITE...]", help="Target sites.")
@_NO_CLOBBER
@_NO_SKIP
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="Where a target listens (repeat).")
@_setting("channel", "Push channel.")
@_setting("topic", "Push topic.")
@_setting("chunk_size", "Bytes per chunk, e.g. 1MiB.")
@_setting("window_chunks", "Chunks in flight.")
@_setting("chunk_timeout", "Seconds a target may take to ack.")
@_CONNECT_TIMEOUT
@click.option("--name", help="This side's site name (default push-<random>).")
@_KEYS
@_JSON
@click.pass_obj
def push(common: Common, file: str, to: str, connects: Sequence[str], name: str | None,
         as_json: bool, no_clobber: bool, no_skip: bool, **options: Any) -> None:
    """Push FILE (or a folder) to every site of --to at once; all get it, or none does.

    A folder travels whole, with its relative paths, modes and times; files a target
    already holds are not sent again, and an interrupted push run again resumes.
    """
    from zfs.push.sender import push_file_async

    settings = _settings(common, **options)
    targets = list(dict.fromkeys(t.strip() for t in to.split(",") if t.strip()))
    if not targets:
        raise click.ClickException("--to names no site")
    peers = _peers(connects)
    for target in targets:
        if target not in peers:
            raise click.ClickException(f"unknown site {target}: say where it listens with "
                                       f"--connect {target}=ENDPOINT")
    folder = os.path.isdir(file)
    size = 0 if folder else os.path.getsize(_check_file(file))
    if no_clobber and not folder:
        raise click.ClickException("--no-clobber applies to folders only in push")
    wanted_peers = {t: peers[t] for t in targets}
    with _until_signal() as stop, \
            _site(name or f"push-{secrets.token_hex(3)}", settings, None, wanted_peers) as s:
        _wait_for(s, wanted_peers, settings, stop)
        who = f"{name}: " if name else ""
        if folder:
            label = f"{who}push {os.path.basename(os.path.abspath(file))} ->"
            with TreeBars(wanted(settings.quiet), label, tuple(targets)) as tree_bars:
                tree = push_folder(s, file, targets, settings, tree_bars, stop, no_clobber,
                                   not no_skip)
            if tree is None:
                raise Interrupted("interrupted: the push was aborted; run it again to resume")
            report_rate(as_json, *push_summary(tree))
            return
        with Bars(wanted(settings.quiet), f"{who}push {os.path.basename(file)} ->",
                  tuple(targets), size) as bars:
            result = _await(push_file_async(
                s, targets, file, channel=settings.channel, topic=settings.topic,
                chunk_size=settings.chunk_size, window_chunks=settings.window_chunks,
                chunk_timeout=settings.chunk_timeout, on_progress=bars.update,
                secure=settings.keys_dir is not None), stop)
            if result is None:
                raise Interrupted("interrupted: the push was aborted")
            for target in targets:
                bars.finish(target, result.size)
    _report(as_json, {"op": "push", "name": result.name, "size": result.size,
                      "targets": list(result.targets), "seconds": result.seconds,
                      "digest": result.digest},
            f"pushed {result.name} to {', '.join(result.targets)}")


@click.command()
@click.argument("rid")
@click.option("--from", "source", required=True, metavar="SITE=ENDPOINT",
              help="The owner site and where it listens.")
@_setting("out_dir", "Folder to download into.")
@_setting("chunk_size", "Bytes per request, e.g. 1MiB.")
@_setting("window_chunks", "Requests in flight.")
@_setting("request_timeout", "Seconds before a request is sent again.")
@_setting("retries", "Times a request is sent again.")
@_CONNECT_TIMEOUT
@click.option("--name", help="This side's site name (default pull-<random>).")
@_NO_CLOBBER
@_NO_SKIP
@_KEYS
@_JSON
@click.pass_obj
def pull(common: Common, rid: str, source: str, name: str | None, as_json: bool,
         no_clobber: bool, no_skip: bool, **options: Any) -> None:
    """Download the file (or folder) RID from its owner; run it again after an
    interruption to resume."""
    from zfs.pull.download import download_async

    settings = _settings(common, **options)
    owner, endpoint = next(iter(_peers([source]).items()))
    with _until_signal() as stop, \
            _site(name or f"pull-{secrets.token_hex(3)}", settings, None, {owner: endpoint}) as s:
        _wait_for(s, {owner: endpoint}, settings, stop)
        who = f"{name}: " if name else ""
        with TreeBars(wanted(settings.quiet), who + "pull {name} <-") as bars:
            started = time.monotonic()
            result = _await(download_async(
                s, owner, rid, settings.out_dir, window_chunks=settings.window_chunks,
                chunk_size=settings.chunk_size, request_timeout=settings.request_timeout,
                retries=settings.retries, on_progress=bars.update,
                secure=settings.keys_dir is not None, no_clobber=no_clobber,
                check_existing=not no_skip), stop)
            seconds = time.monotonic() - started
            if result is None:
                # Stopping the site (not an abort) keeps the partial file for a resume.
                raise Interrupted("interrupted: run the same command again to resume")
    report_rate(as_json, *pull_summary(result, owner, seconds))
