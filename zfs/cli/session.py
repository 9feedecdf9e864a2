"""The site a command runs for its length, and how Ctrl-C or SIGTERM ends its waits.

A command starts one site (with CURVE when a keys folder is set), waits for its peers,
and waits on its transfer; a signal sets an event that ends each wait at once, and the
site is stopped however the command ends. A peer that does not answer is explained
from what the runtime met (nothing listening there, or a site whose security differs
from ours: ZeroMQ's handshake tells); a site reached through a relay is waited for
until a route to it is announced.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import click

import actors
from zfs.cli import settings as config
from zfs.cli.errors import Interrupted

_OTHER_SITE = re.compile(r"the site at that endpoint is '([^']*)'")


def site_name(settings: config.Settings, default: str) -> str:
    """This site's name: ``--name`` / ``ZFS_NAME``, else ``default`` (``-`` at its end:
    random letters follow, as for push's and pull's short-lived sites).

    With keys the name must be given: it is the name of the keypair to load.
    """
    if settings.name:
        return settings.name
    if settings.keys_dir is not None and default.endswith("-"):
        raise click.ClickException(
            f"with --keys, say which keypair in {settings.keys_dir} is this site's: "
            "--name NAME or ZFS_NAME=NAME")
    return default + secrets.token_hex(3) if default.endswith("-") else default


def _curve(name: str, settings: config.Settings) -> dict[str, Any]:
    """The site option that switches CURVE on, when a keys folder is set."""
    if settings.keys_dir is None:
        return {}
    from actors import security

    keys = settings.keys_dir
    if not os.path.exists(os.path.join(keys, f"{name}{security.SECRET_SUFFIX}")):
        raise click.ClickException(f"no keypair for site {name} in {keys} (make one with "
                                   f"'zfs-stream keys new {name} --dir {keys}', or give --name)")
    try:
        return {"curve": security.Curve.from_dirs(name, keys, settings.allow_dir)}
    except (OSError, ValueError, actors.ActorsError) as err:
        raise click.ClickException(f"cannot load the keys of site {name}: {err}") from None


@contextlib.contextmanager
def _site(name: str, settings: config.Settings, bind: str | None = None,
          connect: dict[str, str] | None = None) -> Iterator[actors.Site]:
    """Start a site for one command and stop it however the command ends."""
    if settings.chunk_size + (64 << 10) > settings.max_message_size:
        raise click.ClickException(f"chunk size {settings.chunk_size} does not fit in the "
                                   f"largest message ({settings.max_message_size} bytes): "
                                   "raise ZFS_MAX_MESSAGE_SIZE or lower --chunk-size")
    try:
        site = actors.Site(name, bind=bind, connect=connect, **settings.site_options(),
                           **_curve(name, settings))
        site.start()
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    except actors.SiteClosed as err:
        where = f"listen on {bind}" if bind else f"start site {name}"
        raise click.ClickException(f"cannot {where}: {err.__cause__ or err}") from None
    try:
        yield site
    finally:
        site.stop()


def _wait_for(site: actors.Site, peers: dict[str, str], settings: config.Settings,
              stop: threading.Event, flag: str = "--connect",
              gone: str = "is it running?", routed: Sequence[str] = ()) -> None:
    """Wait until every peer said hello, then until every ``routed`` site is reachable
    through them (a relay announced it); Ctrl-C (``stop``) ends the wait at once.

    Args:
        flag: the option that said where the peers listen (named in hints).
        gone: what to suggest when nothing listens at a peer's endpoint.
        routed: sites reached through the peers, not linked to.
    """
    deadline = time.monotonic() + settings.connect_timeout
    for name, endpoint in peers.items():
        if not _wait_one(site, name, deadline, stop, f"{flag} {name}={endpoint}"):
            raise click.ClickException(_unreachable(site, name, endpoint, settings, gone))
    for name in routed:
        if not _wait_one(site, name, deadline, stop, f"--connect {name}=ENDPOINT"):
            raise click.ClickException(
                f"cannot reach site {name} through {', '.join(peers)}: no route to it "
                f"within {settings.connect_timeout:g} s ({gone}; is it linked to "
                f"{', '.join(peers)}?)")


def _wait_one(site: actors.Site, name: str, deadline: float, stop: threading.Event,
              where: str) -> bool:
    """Wait until ``name`` is up (linked, or routed); False once ``deadline`` passed.

    A peer that refuses us (or whose security differs from ours: the runtime tells,
    from the ZeroMQ handshake) fails at once, with what to do about it.
    """
    while True:
        try:
            site.wait_for(name, timeout=min(0.25, max(0.0, deadline - time.monotonic())))
            return True
        except actors.WaitTimeout:
            if stop.is_set():
                raise Interrupted(f"interrupted while waiting for site {name}") from None
            if time.monotonic() >= deadline:
                return False
        except actors.PeerRefused as err:
            raise click.ClickException(_refused(site.name, name, err, where)) from None


def _unreachable(site: actors.Site, name: str, endpoint: str, settings: config.Settings,
                 gone: str) -> str:
    """The error line for a peer that never said hello (what the last attempt met)."""
    state = site.state_of(name)
    if state is not None and "nothing accepts connections" in state.reason:
        return f"cannot reach site {name} at {endpoint}: nothing listens there ({gone})"
    hint = "; does it trust our key, and we its?" if settings.keys_dir else ""
    return (f"cannot reach site {name} at {endpoint} (no answer within "
            f"{settings.connect_timeout:g} s{hint})")


def _refused(me: str, name: str, err: actors.PeerRefused, where: str) -> str:
    """The error line for a peer that turned our link down, with what to do about it."""
    text = str(err)
    endpoint = where.rpartition("=")[2]
    other = _OTHER_SITE.search(text)
    if other:
        return (f"at {endpoint} listens site {other.group(1)!r}, not {name!r}: check "
                f"{where.partition('=')[0]}=ENDPOINT")
    if "requires keys" in text:
        return (f"cannot link to site {name} at {endpoint}: it requires keys (its links are "
                "encrypted with CURVE); give this command --keys DIR and --name NAME of a "
                f"keypair that {name} trusts (see 'zfs-stream keys')")
    if "runs without keys" in text:
        return (f"cannot link to site {name} at {endpoint}: it runs without keys (plain "
                f"links) and this command has keys; start {name} with --keys too, or drop "
                "--keys here")
    if "already connected" in text:
        return (f"cannot link to site {name} at {endpoint}: {text} (another command runs "
                f"as site {me!r}: give this one another --name)")
    if "key" in text or "authenticated" in text:
        return (f"cannot link to site {name} at {endpoint}: {text} (does {name} trust this "
                f"site's key: 'zfs-stream keys trust {me}.key' on its side?)")
    return f"cannot link to site {name} at {endpoint}: {text}"


@contextlib.contextmanager
def _until_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _await(future: Future[Any], stop: threading.Event) -> Any:
    """The future's result, or None if ``stop`` was set first."""
    future.add_done_callback(lambda _: stop.set())
    while not stop.wait(0.5):
        pass
    return future.result() if future.done() else None
