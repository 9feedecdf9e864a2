"""Small actors that tests spawn in other processes, and a sender to run in one."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import pykka

import actors


class Echo(actors.Actor):
    """Answers an ask with what it got, who sent it, and its payload's sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "raise":
            raise ValueError("asked to raise")
        if message == "raise a runtime error":  # as an actor whose own ask failed would
            raise actors.UnknownSite("no site named 'elsewhere'")
        return {"got": message, "sender": self.sender,
                "payload": [len(frame) for frame in self.payload]}


class Collector(actors.Actor):
    """Records what it is told; ``ask("dump")`` returns the records in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "dump":
            return self.records
        digests = [hashlib.sha256(frame).hexdigest() for frame in self.payload]
        self.records.append({"body": message, "sender": self.sender, "digests": digests})
        return None


class Silent(actors.Actor):
    """Never answers an ask "hang" in time: it waits until its process dies or it is stopped."""

    def on_receive(self, message: Any) -> Any:
        if message == "hang":
            threading.Event().wait(120)
        return "late"


class Hanger(actors.Actor):
    """Answers only once the test sets ``release``: for tests whose sites live in the
    test process, where a Silent would hold its thread (and the process, at exit) for
    two minutes."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.release.wait(60)
        return "released"


class PeerWatcher(actors.Actor):
    """Records the peer events its site tells it; ``ask("events")`` returns them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if message == "events":
            return self.events
        if isinstance(message, (actors.PeerUp, actors.PeerDown)):
            self.events.append([type(message).__name__, message.name])
        return None


def tell_payloads(site: actors.Site, address: str, count: int, size: int) -> int:
    """Run in a child site: tell ``address`` ``count`` messages of one ``size``-byte
    payload frame each (numbered 0..count-1); returns how many were handed over."""
    chunk = b"\x5a" * size
    for index in range(count):
        site.tell(address, index, payload=[chunk])
    return count


class PlainEcho(pykka.ThreadingActor):
    """An ordinary pykka actor, no ``actors.Actor``: keeps what it is told, answers asks."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise KeyError("asked to fail")
        if message == "told":
            return self.told
        self.told.append(message)
        return {"echo": message}


class FailsToStart(actors.Actor):
    """An actor whose ``__init__`` raises after the base class registered it."""

    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("cannot start: no config")


def spawn_after_a_failed_start(site: actors.Site, name: str) -> dict[str, Any]:
    """Run in a child site: spawn a failing actor under ``name``, then an Echo under it.

    Returns what the failed spawn raised, whether the name was free after it, and the
    names of the actors the site then knows (running or not).
    """
    try:
        site.spawn(FailsToStart, name)
    except RuntimeError as err:
        raised = f"{type(err).__name__}: {err}"
    else:
        raised = ""
    free = site.actor(name) is None
    known = len(site._registry)
    site.spawn(Echo, name)
    return {"raised": raised, "free": free, "known_after_failure": known,
            "answer": site.ask(f"{site.name}/{name}", "hi", timeout=10)["got"]}


class Held(actors.Actor):
    """Waits, at ``{"hold": path}``, until that file exists; then counts the payload
    bytes of every message; ``ask("count")`` returns the count."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict) and "hold" in message:
            _wait_for_path(message["hold"], 60.0)
            return None
        if message == "count":
            return self.bytes
        self.bytes += sum(len(frame) for frame in self.payload)
        return self.bytes


class Blaster(actors.Actor):
    """At ``{"blast": count, "size": size, "to": address}``, tells ``address`` ``count``
    messages of one ``size``-byte payload frame, each its own buffer (as chunks read
    from a file are); returns how many went, and why it stopped if it did."""

    def on_receive(self, message: Any) -> Any:
        for index in range(message["blast"]):
            chunk = bytes([index % 251]) * message["size"]
            try:
                self.site.tell(message["to"], index, payload=[chunk])
            except actors.ActorsError as err:
                return {"sent": index, "error": f"{type(err).__name__}: {err}"}
        return {"sent": message["blast"], "error": ""}


def _wait_for_path(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)  # polls a file another process creates, under a deadline


def peer_table(site: actors.Site) -> dict[str, int]:
    """Run in a child site: how many peers its I/O thread and its peer states know."""
    io = site._io
    assert io is not None
    return {"peers": len(io._peers), "states": len(site._peer_states._states)}


def peer_state(site: actors.Site, name: str) -> list[str]:
    """Run in a child site: its state of the peer ``name`` and why ([] if unknown)."""
    return list(site._peer_states._states.get(name, ()))


def round_trip(site: actors.Site, peer: str, timeout: float = 40.0) -> bool:
    """Run in a child site: ask ``peer``'s control actor a question until one is answered
    (within ``timeout``): a round trip on the link as it is now, after a fault."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            site.wait_for(peer, max(0.1, left))
            site.ask(f"{peer}/ctl", {"events": "none"}, timeout=min(5.0, max(0.1, left)))
            return True
        except actors.ActorsError:
            if time.monotonic() >= deadline:
                raise
