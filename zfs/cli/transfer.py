"""The commands that move a file or a folder and exit: ``push`` (to sites at once) and
``pull`` (by RID); what folders need is in :mod:`zfs.cli.trees`.

Each starts its own short-lived site, waits for its peers, checks what it can before a
byte moves (a push's targets say whether they take it, a pull learns the file's size
from its owner and checks the room for it), draws progress (:mod:`zfs.cli.bars`) and
prints one result line (or JSON). ``--dry-run`` stops after those checks and says what
would move. Ctrl-C aborts a push and leaves a pull resumable.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Optional, Union

import click

import actors
from zfs.cli import settings as config
from zfs.cli.errors import Interrupted
from zfs.cli.options import (_CONNECT_TIMEOUT, _DRY_RUN, _JSON, _KEYS, STDIN, Common, _peers,
                             _setting, _settings, _source)
from zfs.cli.session import _await, _site, _until_signal, _wait_for, site_name
from zfs.cli.bars import Bars, wanted
from zfs.cli.preflight import check_room, file_info, partial_bytes
from zfs.cli.siteinfo import check_targets
from zfs.cli.trees import (NO_CLOBBER, NO_SKIP, folder_plan, pull_folder, pulled_folder,
                           push_folder, report_push)
from zfs.cli.turns import turn
from zfs.errors import StreamRefused
from zfs.protocol import wire

#: What to suggest when nothing listens where the owner of a RID should.
_SHARE_GONE = ("the share has ended or the owner is not running: a 'zfs-stream share' "
               "ends after its --timeout without downloads; ask the owner to share again")


def _report(as_json: bool, record: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(record) if as_json else text)


# ---- push -----------------------------------------------------------------------------

@click.command()
@click.argument("file", type=click.Path())
@click.option("--to", "to", required=True, metavar="SITE[,SITE...]", help="Target sites.")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="Where a target listens (repeat).")
@click.option("--as", "as_name", metavar="NAME",
              help="The file's name at the targets (needed when FILE is - for stdin).")
@_setting("channel", "Push channel.")
@_setting("topic", "Push topic.")
@_setting("chunk_size", "Bytes per chunk, e.g. 1MiB.")
@_setting("window_chunks", "Chunks in flight.")
@_setting("chunk_timeout", "Seconds a target may take to ack.")
@_setting("bwlimit", "Most bytes per second to send, all targets together, e.g. 10MB/s.")
@_CONNECT_TIMEOUT
@_setting("name", "This side's site name (default push-<random>).")
@NO_CLOBBER
@NO_SKIP
@_KEYS
@_DRY_RUN
@_JSON
@click.pass_obj
def push(common: Common, file: str, to: str, connects: Sequence[str], as_name: str | None,
         dry_run: bool, as_json: bool, no_clobber: bool, no_skip: bool,
         **options: Any) -> None:
    """Push FILE (or a folder) to every site of --to at once; all get it, or none does.

    FILE may be - (standard input, read until it ends; give --as NAME). A folder travels
    whole (relative paths, modes, times); files a target already holds are not sent
    again, and a push interrupted and run again resumes.
    """
    settings = _settings(common, **options)
    peers = _peers(connects)
    targets = _targets(to, peers)
    if os.path.isdir(file) and file not in STDIN:
        _push_tree(file, targets, peers, settings, dry_run, as_json, no_clobber, not no_skip)
        return
    if no_clobber:
        raise click.ClickException("--no-clobber applies to folders only in push")
    name, size = _source(file, as_name)
    with _until_signal() as stop, \
            _site(site_name(settings, "push-"), settings, None, peers) as s:
        _wait_for(s, peers, settings, stop, routed=_routed(targets, peers))
        answers = check_targets(s, list(targets), settings.channel, settings.topic, name, size)
        if dry_run:
            _push_plan(as_json, name, size, settings, targets, answers)
            return
        result = _send(s, file, name, size, list(targets), settings, stop)
    rate = config.format_rate(result.size, result.seconds)
    _report(as_json, {"op": "push", "name": result.name, "size": result.size,
                      "targets": list(result.targets), "seconds": result.seconds,
                      "mb_per_s": result.size / result.seconds / 1e6 if result.seconds else 0.0,
                      "digest": result.digest, "route": result.route,
                      "sender_copies": result.sender_copies, "note": result.note},
            f"pushed {result.name} to {', '.join(result.targets)} "
            f"({config.format_size(result.size)}) in {result.seconds:.2f} s ({rate})\n"
            f"this site sent {result.sender_copies:.1f}x the file ({result.route}"
            f"{': ' + result.note if result.note else ''})")


def _push_tree(folder: str, targets: dict[str, str], peers: dict[str, str],
               settings: config.Settings, dry_run: bool, as_json: bool, no_clobber: bool,
               skip: bool) -> None:
    """Push a folder: its targets checked first, as for a file."""
    if not os.access(folder, os.R_OK | os.X_OK):
        raise click.ClickException(f"cannot read folder: {folder}")
    name = os.path.basename(os.path.abspath(folder))
    with _until_signal() as stop, \
            _site(site_name(settings, "push-"), settings, None, peers) as s:
        _wait_for(s, peers, settings, stop, routed=_routed(targets, peers))
        answers = check_targets(s, list(targets), settings.channel, settings.topic, name, None)
        if dry_run:
            _push_plan(as_json, name + "/", None, settings, targets, answers)
            return
        result = push_folder(s, folder, list(targets), settings, stop, no_clobber, skip)
    report_push(as_json, result)


def _targets(to: str, peers: dict[str, str]) -> dict[str, str]:
    """The sites of ``--to``, in order, with where each listens ("through SITE" for one
    reached through the sites of ``--connect``, such as a server its clients share)."""
    targets = list(dict.fromkeys(t.strip() for t in to.split(",") if t.strip()))
    if not targets:
        raise click.ClickException("--to names no site")
    for target in targets:
        if target not in peers and not peers:
            raise click.ClickException(f"unknown site {target}: say where it listens with "
                                       f"--connect {target}=ENDPOINT (or where a site that "
                                       "reaches it does)")
    through = f"through {', '.join(peers)}"
    return {target: peers.get(target, through) for target in targets}


def _routed(sites: dict[str, str], peers: dict[str, str]) -> list[str]:
    """The sites of ``sites`` that are reached through ``peers``, not linked to."""
    return [site for site in sites if site not in peers]


def _send(s: actors.Site, file: str, name: str, size: Optional[int], targets: list[str],
          settings: config.Settings, stop: threading.Event) -> Any:
    """Push with bars; return the PushResult (Ctrl-C: Interrupted, the push aborted)."""
    from zfs.push.sender import push_file_async

    who = f"{settings.name}: " if settings.name else ""
    with _opened(file) as source, Bars(wanted(settings.quiet), f"{who}push {{name}} ->",
                                       tuple(targets), size, name=name) as bars:
        try:
            result = _await(push_file_async(
                s, targets, source, name=name, channel=settings.channel, topic=settings.topic,
                chunk_size=settings.chunk_size, window_chunks=settings.window_chunks,
                chunk_timeout=settings.chunk_timeout, on_progress=bars.update,
                secure=settings.keys_dir is not None, bwlimit=settings.bwlimit), stop)
        except StreamRefused as err:
            raise click.ClickException(
                f"{err.site} refused {name} on channel {settings.channel!r}, topic "
                f"{settings.topic!r}: {err.reason}") from None
        if result is None:
            raise Interrupted("interrupted: the push was aborted")
        for target in targets:
            bars.finish(target, result.size)
    return result


@contextlib.contextmanager
def _opened(file: str) -> Iterator[Union[str, BinaryIO]]:
    """What to push: a path, or standard input, or a stream opened here (and closed)."""
    if file in STDIN:
        yield sys.stdin.buffer
    elif os.path.isfile(file):
        yield file
    else:
        with open(file, "rb") as stream:     # a pipe or a device: read until it ends
            yield stream


def _push_plan(as_json: bool, name: str, size: Optional[int], settings: config.Settings,
               peers: dict[str, str], answers: dict[str, Optional[dict[str, Any]]]) -> None:
    """Say what a push would send, to whom, and how many bytes."""
    total = size * len(peers) if size is not None else None
    if as_json:
        click.echo(json.dumps({"op": "push", "dry_run": True, "name": name, "size": size,
                               "targets": list(peers), "channel": settings.channel,
                               "topic": settings.topic, "bytes": total}))
        return
    what = (f"{name} ({config.format_size(size)})" if size is not None
            else f"{name} (size unknown: read until it ends)")
    click.echo(f"would push {what} to {', '.join(peers)} on channel {settings.channel!r}, "
               f"topic {settings.topic!r}")
    for target, endpoint in peers.items():
        answer = answers.get(target)
        if answer is None:
            state = "reachable (it cannot say whether it receives this channel/topic)"
        else:
            free = answer.get("free")
            room = f", {config.format_size(free)} free" if isinstance(free, int) else ""
            state = f"receives it into {answer.get('dest')}{room}"
        click.echo(f"  {target} at {endpoint}: {state}")
    sent = (f"{config.format_size(total)} to send in all" if total is not None
            else "bytes to send: unknown")
    cap = f", at most {config.format_size(settings.bwlimit)}/s" if settings.bwlimit else ""
    click.echo(f"{sent}{cap}; nothing was sent (--dry-run)")


# ---- pull -------------------------------------------------------------------------------

@click.command()
@click.argument("rid")
@click.option("--from", "source", required=True, metavar="SITE[=ENDPOINT]",
              help="The owner site and where it listens (just SITE: reached through "
                   "--connect).")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="A site to link to that reaches the owner (repeat).")
@_setting("out_dir", "Folder to download into.")
@_setting("chunk_size", "Bytes per request, e.g. 1MiB.")
@_setting("window_chunks", "Requests in flight.")
@_setting("request_timeout", "Seconds before a request is sent again.")
@_setting("retries", "Times a request is sent again.")
@_setting("bwlimit", "Most bytes per second to ask the owner for, e.g. 10MB/s.")
@_setting("bind", "Listen here to serve other recipients' pulls with peers "
                  "(host:port means tcp://host:port).")
@click.option("--swarm/--no-swarm", "swarm", default=None,
              help="Pull with peers: other recipients of the RID serve this one chunks, "
                   "and it serves them (default: on when it listens, --bind or ZFS_BIND).")
@_CONNECT_TIMEOUT
@_setting("name", "This side's site name (default pull-<random>).")
@NO_CLOBBER
@NO_SKIP
@_KEYS
@_DRY_RUN
@_JSON
@click.pass_obj
def pull(common: Common, rid: str, source: str, connects: Sequence[str], dry_run: bool,
         as_json: bool, no_clobber: bool, no_skip: bool, swarm: Optional[bool],
         **options: Any) -> None:
    """Download the file (or folder) RID from its owner; run it again after an
    interruption to resume.

    With peers (--swarm, or --bind/ZFS_BIND given) the recipients of one RID serve
    each other chunks they checked against the owner's digests, so the owner sends
    about one copy however many pull it."""
    listens = options.get("bind") is not None or "ZFS_BIND" in os.environ
    settings = _settings(common, **options)
    swarm = listens if swarm is None else swarm
    owner, peers, routed = _owner(source, _peers(connects))
    out = settings.out_dir
    bind = settings.bind if swarm else None
    with _until_signal() as stop, \
            _site(site_name(settings, "pull-"), settings, bind, peers) as s:
        _wait_for(s, peers, settings, stop, flag="--connect" if routed else "--from",
                  gone=_SHARE_GONE, routed=routed)
        info = file_info(s, owner, rid, settings.request_timeout)
        if isinstance(info, wire.TreeInfo):
            if dry_run:
                folder_plan(as_json, info, owner, out)
                return
            os.makedirs(out, exist_ok=True)  # the tree checks its room before writing
            tree = pull_folder(s, owner, rid, info, settings, stop, no_clobber, not no_skip)
            _report(as_json, tree, pulled_folder(tree, owner))
            return
        have = partial_bytes(out, info.key)
        check_room(out, info, have)
        if dry_run:
            _pull_plan(as_json, info, owner, out, have, settings)
            return
        made = not os.path.isdir(out)
        os.makedirs(out, exist_ok=True)
        try:
            record = _download(s, owner, rid, info, settings, stop, no_clobber, not no_skip,
                               swarm)
        except BaseException:
            if made:
                _remove_if_empty(out)
            raise
    _report(as_json, record, _pulled(record, owner))


def _owner(source: str, peers: dict[str, str]) -> tuple[str, dict[str, str], list[str]]:
    """``--from``'s owner, the sites to link to, and the owner again if it is reached
    through them (``--from SITE`` with ``--connect``) rather than linked to."""
    if "=" in source:
        owner, endpoint = next(iter(_peers([source], "--from").items()))
        return owner, {**peers, owner: endpoint}, []
    owner = source.strip()
    if not peers:
        raise click.ClickException(f"--from {owner}: say where it listens (--from "
                                   f"{owner}=ENDPOINT), or link to a site that reaches it "
                                   "(--connect SITE=ENDPOINT)")
    return owner, peers, [] if owner in peers else [owner]


def _pulled(record: dict[str, Any], owner: str) -> str:
    """The summary of a pull: its rate counts only what this run moved."""
    size = config.format_size(record["size"])
    if record.get("already"):
        return f"{record['path']} is already here: another pull got it from {owner} ({size})"
    resumed = record["size"] - record["bytes_moved"]
    how = f"{size}; {config.format_size(resumed)} of it were here already" if resumed else size
    rate = config.format_rate(record["bytes_moved"], record["seconds"])
    text = (f"downloaded {record['path']} from {owner} ({how}) in {record['seconds']:.2f} s "
            f"({rate})")
    if record.get("route") != "swarm":
        return text
    peers = record.get("from_peers") or {}
    copies = record["from_owner"] / record["size"] if record["size"] else 0.0
    return (f"{text}; with peers: {config.format_size(record['from_owner'])} from {owner} "
            f"({copies:.2f} of the file), {config.format_size(sum(peers.values()))} from "
            f"{len(peers)} peer{'' if len(peers) == 1 else 's'}"
            f"{' (' + record['note'] + ')' if record.get('note') else ''}")


def _download(s: actors.Site, owner: str, rid: str, info: wire.FileInfo,
              settings: config.Settings, stop: threading.Event, no_clobber: bool = False,
              skip: bool = True, swarm: bool = False) -> dict[str, Any]:
    """Download in our turn at this file in this folder; return the result's record."""
    from zfs.pull.calls import download_async

    out = settings.out_dir
    with turn(out, info.key, stop, lambda: click.echo(
            f"waiting for another pull of {info.name} into {out} to end", err=True)) as mine:
        if mine.previous is not None:
            return {**mine.previous, "op": "pull", "owner": owner, "bytes_moved": 0,
                    "seconds": 0.0, "mb_per_s": 0.0, "already": True}
        who = f"{settings.name}: " if settings.name else ""
        with Bars(wanted(settings.quiet), who + "pull {name} <-") as bars:
            result = _await(download_async(
                s, owner, rid, out, window_chunks=settings.window_chunks,
                chunk_size=settings.chunk_size, request_timeout=settings.request_timeout,
                retries=settings.retries, on_progress=bars.update,
                secure=settings.keys_dir is not None, bwlimit=settings.bwlimit,
                no_clobber=no_clobber, check_existing=skip, swarm=swarm, seed=False), stop)
            if result is None:
                # Stopping the site (not an abort) keeps the partial file for a resume.
                raise Interrupted("interrupted: run the same command again to resume")
        record = {"op": "pull", "path": result.path, "size": result.size, "owner": owner,
                  "seconds": result.seconds, "bytes_moved": result.bytes_moved,
                  "mb_per_s": (result.bytes_moved / result.seconds / 1e6
                               if result.seconds > 0 else 0.0),
                  "digest": result.digest, "mtime_ns": os.stat(result.path).st_mtime_ns,
                  "route": result.route, "from_owner": result.from_owner,
                  "from_peers": dict(result.from_peers), "note": result.note}
        mine.record(record)
        return record


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass                     # not empty (a partial file kept for a resume), or gone


def _pull_plan(as_json: bool, info: wire.FileInfo, owner: str, out: str, have: int,
               settings: config.Settings) -> None:
    """Say what a pull would download, from whom, and how many bytes."""
    fetch = info.size - have
    if as_json:
        click.echo(json.dumps({"op": "pull", "dry_run": True, "name": info.name,
                               "size": info.size, "owner": owner,
                               "path": os.path.join(out, info.name), "have": have,
                               "bytes": fetch}))
        return
    click.echo(f"would download {info.name} ({config.format_size(info.size)}) from {owner} "
               f"into {os.path.join(out, info.name)}")
    if have:
        click.echo(f"  {config.format_size(have)} of it are here from an earlier pull "
                   "(kept if they match the owner's)")
    cap = f", at most {config.format_size(settings.bwlimit)}/s" if settings.bwlimit else ""
    click.echo(f"{config.format_size(fetch)} to fetch{cap}; nothing was downloaded (--dry-run)")
