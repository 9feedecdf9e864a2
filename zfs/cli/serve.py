"""The commands that serve until stopped: ``site`` (receives pushes) and ``share`` (serves pulls).

Both log what they receive or hand out (at INFO, shown by default for these commands;
``ZFS_LOG_LEVEL`` rules it) and run until SIGINT/SIGTERM, or, for ``share``, until the
share times out. ``site`` checks its folders before it says READY, logs a line when a
file starts arriving and one when it is in place (with its rate), and answers pushers'
questions about what it receives (:mod:`zfs.cli.siteinfo`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional

import click

import actors
from zfs.cli import settings as config
from zfs.cli.options import _KEYS, Common, _peers, _setting, _settings
from zfs.cli.session import _site, _until_signal, site_name
from zfs.cli.siteinfo import NAME as SITE_INFO
from zfs.cli.siteinfo import SiteInfo
from zfs.cli.trees import check_path, rid_secret

log = logging.getLogger(__name__)


# ---- serving pulls (site --share, share) ----------------------------------------------

def _log_downloaded(rid: str, to_site: str, status: str, file_name: str) -> None:
    log.info("%s: %s by %s (RID %s)", file_name, "downloaded" if status == "success"
             else f"download {status}", to_site, rid)


def _announce(s: actors.Site, files: Sequence[str], settings: config.Settings,
              stop: threading.Event | None,
              peers: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    """Share ``files`` (and folders) in one transaction; print their RIDs and
    ready-to-paste pulls. RIDs are derived from the user's RID secret: the same path
    shared again, after a restart, gets the same RID.

    Returns the transaction and a list that receives the file names if it times out
    (``stop`` is then set too).
    """
    from zfs.pull.transaction import share as open_share

    expired: list[str] = []
    timeout = settings.share_timeout

    def on_timeout(tx_id: str, names: list[str]) -> None:
        expired.extend(names)
        log.info("the share ended: no download for %g s; withdrawn: %s", timeout,
                 ", ".join(names))
        if stop is not None:
            stop.set()
    tx = open_share(s, timeout=timeout, on_timeout=on_timeout, bwlimit=settings.bwlimit,
                    secret=rid_secret())
    rids = [((tx.add_tree if os.path.isdir(path) else tx.add_file)(
        path, on_downloaded=_log_downloaded), path) for path in files]
    cap = f", at most {config.format_size(settings.bwlimit)}/s" if settings.bwlimit else ""
    click.echo(f"sharing {len(rids)} file(s) from site {s.name} at {s.endpoint}{cap}; the "
               f"share ends after {timeout:g} s without downloads, or on Ctrl-C")
    for rid, path in rids:
        click.echo(f"RID {rid}  {path}")
    click.echo("download with:")
    # A site that does not listen is reached through the sites it links to (a relay).
    where = (f"{s.name}={s.endpoint}" if s.endpoint or not peers else
             f"{s.name} --connect {next(iter(peers))}={next(iter(peers.values()))}")
    for rid, _path in rids:
        click.echo(f"  zfs-stream pull {rid} --from {where}")
    sys.stdout.flush()
    return tx, expired


def _say_sent(s: actors.Site, files: Sequence[str]) -> None:
    """What the owner sent in all, as copies of what it shared, and what its recipients
    passed among themselves (pulls with peers)."""
    from zfs.pull.transaction import owner_stats

    stats = owner_stats(s)
    shared = sum(os.path.getsize(path) for path in files if os.path.isfile(path))
    if not stats["bytes_sent"]:
        return
    copies = f" ({stats['bytes_sent'] / shared:.2f} copies of the files)" if shared else ""
    peers = stats.get("swarm_peer_bytes", 0)
    passed = (f"; its recipients passed {config.format_size(peers)} among themselves"
              if peers else "")
    click.echo(f"sent {config.format_size(stats['bytes_sent'])}{copies}{passed}")


# ---- site -------------------------------------------------------------------------

def _receivers(receives: Sequence[str], dests: Sequence[str],
               default_dest: str) -> list[tuple[str, str, str]]:
    if dests and len(dests) not in (1, len(receives)):
        raise click.ClickException("give one --dest for all --receive, or one per --receive")
    plan = []
    for i, spec in enumerate(receives):
        channel, sep, topic = spec.partition("/")
        if not sep or not channel or not topic:
            raise click.ClickException(f"--receive wants CHANNEL/TOPIC, not {spec!r}")
        dest = dests[i] if len(dests) > 1 else (dests[0] if dests else default_dest)
        plan.append((channel, topic, os.path.abspath(dest)))
    return plan


def _dest_problem(dest: str) -> Optional[str]:
    """Why files cannot be received into ``dest`` (made if missing), or None."""
    if os.path.exists(dest) and not os.path.isdir(dest):
        return f"--dest {dest} is a file, not a folder"
    try:
        os.makedirs(dest, exist_ok=True)
        check = os.path.join(dest, f".zfs-stream-write-check.{os.getpid()}")
        with open(check, "wb"):
            pass
        os.unlink(check)
    except OSError as err:
        return f"cannot write into --dest {dest}: {err.strerror or err}"
    return None


class _Arrivals:
    """Logs a line when a pushed file starts arriving and one when it is in place.

    Fed by the receiver's callbacks (its actor's thread): the first chunk of a stream
    starts its clock, so the rate counts what came after it.
    """

    def __init__(self) -> None:
        self._started: dict[tuple[str, str], tuple[float, int]] = {}

    def chunk(self, progress: Any) -> None:
        key = (progress.peer, progress.name)
        if key in self._started and progress.bytes_done > self._started[key][1]:
            return
        self._started[key] = (time.monotonic(), progress.bytes_done)
        size = config.format_size(progress.total) if progress.total is not None else "size unknown"
        log.info("receiving %s (%s) from %s", progress.name, size, progress.peer)

    def done(self, got: Any) -> None:
        started, first = self._started.pop((got.sender_site, got.name), (time.monotonic(), 0))
        seconds = time.monotonic() - started
        rate = f" ({config.format_rate(got.size - first, seconds)})" if got.size > first else ""
        log.info("received %s (%s) from %s on %s/%s in %.2f s%s: %s", got.name,
                 config.format_size(got.size), got.sender_site, got.channel, got.topic,
                 seconds, rate, got.path)


@click.command()
@_setting("name", "This site's name (required).")
@_setting("bind", "Endpoint to listen on (host:port means tcp://host:port).")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="A site to connect to (repeat).")
@click.option("--receive", "receives", multiple=True, metavar="CHANNEL/TOPIC",
              help="Accept pushes on this channel/topic (repeat).")
@click.option("--dest", "dests", multiple=True, metavar="DIR", type=click.Path(),
              help="Folder for received files: one for all, or one per --receive [ZFS_DEST].")
@click.option("--share", "shares", multiple=True, metavar="PATH", type=click.Path(),
              help="Also share this file or folder for pull, as 'share' does (repeat).")
@_setting("share_timeout", "Seconds without downloads before shares end.")
@_setting("bwlimit", "Most bytes per second to send to those who pull --share files.")
@_KEYS
@click.pass_obj
def site(common: Common, connects: Sequence[str], receives: Sequence[str],
         dests: Sequence[str], shares: Sequence[str], **options: Any) -> None:
    """Run a site that receives pushes (and serves pulls) until SIGINT/SIGTERM.

    Prints 'READY NAME ENDPOINT' once it is up (then the RIDs of any --share).
    """
    from zfs.push.receiver import register_receiver

    settings = _settings(common, **options)
    if not settings.name:
        raise click.ClickException("a site needs a name: --name NAME (or ZFS_NAME=NAME)")
    plan = _receivers(receives, dests, settings.dest_dir)
    for dest in dict.fromkeys(dest for _, _, dest in plan):
        problem = _dest_problem(dest)
        if problem:
            raise click.ClickException(problem)
    for path in shares:
        check_path(path)
    arrivals = _Arrivals()
    peers = _peers(connects)
    with _until_signal() as stop, \
            _site(settings.name, settings, settings.bind, peers) as s:
        for channel, topic, dest in plan:
            register_receiver(s, channel=channel, topic=topic, dest_dir=dest,
                              on_done=arrivals.done, on_chunk=arrivals.chunk)
        s.spawn(SiteInfo, SITE_INFO, plan)
        click.echo(f"READY {s.name} {s.endpoint or '-'}")
        sys.stdout.flush()
        for channel, topic, dest in plan:
            log.info("receiving %s/%s into %s", channel, topic, dest)
        if settings.bwlimit and not shares:
            log.info("--bwlimit caps what this site sends to those who pull its --share "
                     "files; it shares none")
        tx, expired = _announce(s, shares, settings, None, peers) if shares else (None, [])
        while not stop.wait(0.5):
            pass
        log.info("site %s stopping", s.name)
        if tx is not None and not expired:
            tx.close()


# ---- share ------------------------------------------------------------------------

@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@_setting("bind", "Endpoint to listen on (host:port means tcp://host:port).")
@_setting("name", "This site's name (default owner).")
@_setting("share_timeout", "Seconds without downloads before the share ends.")
@_setting("bwlimit", "Most bytes per second to send, to all recipients together.")
@_KEYS
@click.pass_obj
def share(common: Common, files: Sequence[str], **options: Any) -> None:
    """Share FILES (files or folders) for pull; print one RID each and the command that
    downloads it. The same path shared again later gets the same RID."""
    settings = _settings(common, **options)
    for path in files:
        check_path(path)
    with _until_signal() as stop, _site(site_name(settings, "owner"), settings,
                                        settings.bind) as s:
        tx, expired = _announce(s, files, settings, stop)
        while not stop.wait(0.5):
            pass
        _say_sent(s, files)
        if not expired:
            tx.close()
            log.info("share ended")
