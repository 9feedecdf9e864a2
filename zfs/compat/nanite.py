"""Nanite's file broadcast over :mod:`zfs.push`, for code ported from Nanite agents.

Where Nanite methods live on an agent, these functions take our :class:`actors.Site`::

    subscribe_to_files(site, "models", write=True, file_root="/data",
                       callback=lambda data, dest, meta: print(dest, meta))
    broadcast_file(site, "/models/w.bin", domain="models", meta={"round": 3})

A site's subscriptions live in its small ``"zfs.nanite"`` actor, which answers any
connected site asking which domains it subscribes to; a broadcast asks every connected
site (and our own) and pushes to those subscribed to the domain, in lock-step, on the
channel ``"nanite"`` with the domain as topic. Unlike Nanite, a received file is never
held in memory when written to disk, and with ``write=False`` it is refused above
``max_bytes``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple, Union

import actors
from zfs.files import check_name
from zfs.push.receiver import register_receiver
from zfs.push.sender import push_file
from zfs.results import ReceivedFile

log = logging.getLogger(__name__)

CHANNEL = "nanite"
ACTOR = "zfs.nanite"
DEFAULT_MAX_BYTES = 64 << 20
ASK_TIMEOUT = 5.0

Callback = Callable[[Optional[bytes], str, Any], Any]


@dataclass(frozen=True, slots=True)
class _Subscribe:
    domain: str


class NaniteActor(actors.Actor):
    """Knows this site's subscribed domains; answers ``{"op": "domains"}`` with them."""

    def __init__(self) -> None:
        super().__init__()
        self._domains: set = set()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Subscribe):
            self._domains.add(message.domain)
        elif isinstance(message, dict) and message.get("op") == "domains":
            return sorted(self._domains)
        return None


def _nanite_actor(site: actors.Site) -> Any:
    return site.spawn_once(NaniteActor, ACTOR)


def subscribers(site: actors.Site, domain: str, timeout: float = ASK_TIMEOUT) -> List[str]:
    """Return the sites (connected peers and our own) subscribed to ``domain``."""
    sites = list(site.peers())
    if site.actor(ACTOR) is not None:
        sites.append(site.name)
    pending: List[Tuple[str, Future]] = []
    for name in sites:
        try:
            pending.append((name, site.ask(f"{name}/{ACTOR}", {"op": "domains"},
                                           timeout=timeout, block=False)))
        except actors.ActorsError:
            continue                         # unreachable now: not a subscriber we can reach
    found = []
    for name, future in pending:
        try:
            if domain in future.result(timeout + 1.0):
                found.append(name)
        except Exception:  # noqa: BLE001 - a site without subscriptions, or gone: skip it
            continue
    return found


def subscribe_to_files(site: actors.Site, domain: str = "global", write: bool = False,
                       callback: Optional[Callback] = None, file_root: Optional[str] = None,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Receive the files broadcast to ``domain``; announce the subscription to peers.

    Args:
        write: keep the file under ``file_root`` at its destination name (then the
            callback gets ``(None, full_path, meta)``); else the callback gets the file's
            bytes as ``(data, destination_name, meta)`` and nothing stays on disk.
        file_root: where written files go (default: the system temp folder).
        max_bytes: with ``write=False``, larger files are refused.
    """
    if write:
        folder = file_root if file_root is not None else tempfile.gettempdir()
        options: Dict[str, int] = {}
    else:
        folder = tempfile.mkdtemp(prefix="zfs-nanite-")   # never clobbers a real file
        options = {"max_size": max_bytes}

    def on_done(received: ReceivedFile) -> None:
        context = received.context if isinstance(received.context, dict) else {}
        meta = context.get("meta")
        if write:
            data, dest = None, received.path
        else:
            with open(received.path, "rb") as f:
                data = f.read()
            os.unlink(received.path)
            dest = received.name
        if callback is not None:
            callback(data, dest, meta)

    log.info("subscribing to file broadcasts for %s", domain)
    register_receiver(site, CHANNEL, domain, folder, on_done, None, **options)
    _nanite_actor(site).tell(_Subscribe(domain))


def broadcast_file(site: actors.Site, filename: str, domain: str = "global",
                   destination: Optional[str] = None, meta: Any = None) -> Union[int, str]:
    """Push the file at ``filename`` to every site subscribed to ``domain``.

    Returns:
        The bytes sent (0 when nobody subscribes), or ``"file not found"``.

    Raises:
        TransferAborted: a subscriber failed (the broadcast is lock-step).
    """
    if not os.path.isfile(filename):
        return "file not found"
    name = destination or os.path.basename(filename)
    return _broadcast(site, filename, name, domain, meta)


def broadcast_data(site: actors.Site, filename: str, io: BinaryIO, domain: str = "global",
                   destination: Optional[str] = None, meta: Any = None) -> int:
    """Push what ``io`` holds, named ``destination`` or the base name of ``filename``.

    The stream is closed afterwards, as Nanite does.

    Returns:
        The bytes sent (0 when nobody subscribes).
    """
    try:
        name = destination or os.path.basename(filename)
        result = _broadcast(site, io, name, domain, meta)
    finally:
        io.close()
    return result


def _broadcast(site: actors.Site, source: Any, name: str, domain: str, meta: Any) -> int:
    check_name(name)
    targets = subscribers(site, domain)
    if not targets:
        log.info("broadcast of %s: nobody subscribes to %s", name, domain)
        return 0
    result = push_file(site, targets, source, name=name, channel=CHANNEL, topic=domain,
                       context={"meta": meta}, swarm=False)  # the original's star
    return result.size
