"""The commands that serve until stopped: ``site`` (receives pushes) and ``share`` (serves pulls).

Both log what they receive or hand out (at INFO, shown by default for these commands)
and run until SIGINT/SIGTERM, or, for ``share``, until the share times out.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

import actors
from zfs.cli.options import _KEYS, Common, _peers, _setting, _settings
from zfs.cli.session import _site, _until_signal
from zfs.cli.trees import check_path, rid_secret

log = logging.getLogger(__name__)


# ---- serving pulls (site --share, share) ----------------------------------------------

def _log_downloaded(rid: str, to_site: str, status: str, file_name: str) -> None:
    log.info("%s: %s by %s (RID %s)", file_name, "downloaded" if status == "success"
             else f"download {status}", to_site, rid)


def _announce(s: actors.Site, files: Sequence[str], timeout: float,
              stop: threading.Event | None) -> tuple[Any, list[str]]:
    """Share ``files`` (and folders) in one transaction; print their RIDs and
    ready-to-paste pulls. RIDs are derived from the user's RID secret: the same path
    shared again, after a restart, gets the same RID.

    Returns the transaction and a list that receives the file names if it times out
    (``stop`` is then set too).
    """
    from zfs.pull.transaction import share as open_share

    expired: list[str] = []

    def on_timeout(tx_id: str, names: list[str]) -> None:
        expired.extend(names)
        log.info("share timed out; withdrawn: %s", ", ".join(names))
        if stop is not None:
            stop.set()
    tx = open_share(s, timeout=timeout, on_timeout=on_timeout, secret=rid_secret())
    rids = [((tx.add_tree if os.path.isdir(path) else tx.add_file)(
        path, on_downloaded=_log_downloaded), path) for path in files]
    click.echo(f"sharing {len(rids)} file(s) from site {s.name} at {s.endpoint}; the share "
               f"ends after {timeout:g} s without downloads, or on Ctrl-C")
    for rid, path in rids:
        click.echo(f"RID {rid}  {path}")
    click.echo("download with:")
    for rid, _path in rids:
        click.echo(f"  zfs-stream pull {rid} --from {s.name}={s.endpoint}")
    sys.stdout.flush()
    return tx, expired


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


def _log_received(got: Any) -> None:
    log.info("received %s (%d bytes) from %s on %s/%s: %s", got.name, got.size,
             got.sender_site, got.channel, got.topic, got.path)


@click.command()
@click.option("--name", required=True, help="This site's name.")
@_setting("bind", "Endpoint to listen on.")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="A site to connect to (repeat).")
@click.option("--receive", "receives", multiple=True, metavar="CHANNEL/TOPIC",
              help="Accept pushes on this channel/topic (repeat).")
@click.option("--dest", "dests", multiple=True, metavar="DIR",
              help="Folder for received files: one for all, or one per --receive [ZFS_DEST].")
@click.option("--share", "shares", multiple=True, metavar="PATH",
              help="Also share this file or folder for pull, as 'share' does (repeat).")
@_setting("share_timeout", "Seconds without downloads before shares end.")
@_KEYS
@click.pass_obj
def site(common: Common, name: str, connects: Sequence[str], receives: Sequence[str],
         dests: Sequence[str], shares: Sequence[str], **options: Any) -> None:
    """Run a site that receives pushes (and serves pulls) until SIGINT/SIGTERM.

    Prints 'READY NAME ENDPOINT' once it is up (then the RIDs of any --share).
    """
    from zfs.push.receiver import register_receiver

    settings = _settings(common, **options)
    plan = _receivers(receives, dests, settings.dest_dir)
    for path in shares:
        check_path(path)
    with _until_signal() as stop, _site(name, settings, settings.bind, _peers(connects)) as s:
        for channel, topic, dest in plan:
            os.makedirs(dest, exist_ok=True)
            register_receiver(s, channel=channel, topic=topic, dest_dir=dest,
                              on_done=_log_received)
            log.info("receiving %s/%s into %s", channel, topic, dest)
        click.echo(f"READY {s.name} {s.endpoint or '-'}")
        sys.stdout.flush()
        tx, expired = _announce(s, shares, settings.share_timeout, None) if shares else (None, [])
        while not stop.wait(0.5):
            pass
        log.info("site %s stopping", name)
        if tx is not None and not expired:
            tx.close()


# ---- share ------------------------------------------------------------------------

@click.command()
@click.argument("files", nargs=-1, required=True)
@_setting("bind", "Endpoint to listen on.")
@click.option("--name", default="owner", show_default=True, help="This site's name.")
@_setting("share_timeout", "Seconds without downloads before the share ends.")
@_KEYS
@click.pass_obj
def share(common: Common, files: Sequence[str], name: str, **options: Any) -> None:
    """Share FILES (files or folders) for pull; print one RID each and the command that
    downloads it. The same path shared again later gets the same RID."""
    settings = _settings(common, **options)
    for path in files:
        check_path(path)
    with _until_signal() as stop, _site(name, settings, settings.bind) as s:
        tx, expired = _announce(s, files, settings.share_timeout, stop)
        while not stop.wait(0.5):
            pass
        if not expired:
            tx.close()
            log.info("share ended")
