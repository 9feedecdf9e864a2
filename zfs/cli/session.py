"""The site a command runs for its length, and how Ctrl-C or SIGTERM ends its waits.

A command starts one site (with CURVE when a keys folder is set), waits for its peers,
and waits on its transfer; a signal sets an event that ends each wait at once, and the
site is stopped however the command ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import click

import actors
from zfs.cli import settings as config
from zfs.cli.errors import Interrupted


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
              stop: threading.Event) -> None:
    """Wait until every peer said hello; Ctrl-C (``stop``) ends the wait at once."""
    hint = "; does it trust our key, and we its?" if settings.keys_dir else ""
    deadline = time.monotonic() + settings.connect_timeout
    for name, endpoint in peers.items():
        while True:
            try:
                site.wait_for(name, timeout=min(0.25, max(0.0, deadline - time.monotonic())))
                break
            except actors.WaitTimeout:
                if stop.is_set():
                    raise Interrupted(f"interrupted while waiting for site {name}") from None
                if time.monotonic() >= deadline:
                    raise click.ClickException(
                        f"cannot reach site {name} at {endpoint} (no answer within "
                        f"{settings.connect_timeout:g} s{hint})") from None
            except actors.PeerRefused as err:
                hint = "" if "key" in str(err) else " (wrong key, or its name is taken?)"
                raise click.ClickException(f"cannot link to site {name} at {endpoint}: "
                                           f"{err}{hint}") from None


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
