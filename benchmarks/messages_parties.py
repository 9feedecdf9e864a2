"""Our side of the messages benchmark: two sites, each in its own process.

The client site runs the same three measurements as :mod:`benchmarks.rawzmq`, through
``Site.tell`` / ``Site.ask`` to an actor on the server site: a burst of small tells
(then one ask that returns the count: it queues behind the tells, so its answer
means all were handled), ask round trips, and 1 MiB payload frames with a window
of un-acked frames in flight, the server's actor acking each with a tiny tell to an
actor on the client site that frees one slot of the window.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import actors
from benchmarks.rawzmq import percentiles
from benchmarks.worker import Link

SERVER, CLIENT = "bench-server", "bench-client"
SINK = f"{SERVER}/sink"


class Sink(actors.Actor):
    """Count tells, answer pings and counts, ack payload messages."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        op = message["op"]
        if op == "tell":
            self.count += 1
        elif op == "chunk":
            self.site.tell(message["ack"], {"op": "ack"})
        elif op == "count":
            count, self.count = self.count, 0
            return count
        return None


class Window(actors.Actor):
    """Free one slot of the sender's window per ack."""

    def __init__(self, slots: threading.Semaphore) -> None:
        super().__init__()
        self.slots = slots

    def on_receive(self, message: Any) -> None:
        self.slots.release()


def server(params: dict[str, Any], link: Link) -> None:
    """Host the sink actor until the parent says quit."""
    with actors.Site(SERVER, bind="tcp://127.0.0.1:0") as site:
        site.spawn(Sink, "sink")
        link.send(endpoint=site.endpoint)
        link.wait_quit()


def client(params: dict[str, Any], link: Link) -> None:
    """Run the three measurements against the server's sink; report them."""
    with actors.Site(CLIENT, connect={SERVER: params["endpoint"]}) as site:
        site.wait_for(SERVER, timeout=30)
        slots = threading.Semaphore(params["window"])
        site.spawn(Window, "window", slots)
        _round_trips(site, 20)  # the link and both actors are warm before any clock starts
        results = {
            "tell_rate": _tell_rate(site, params["messages"]),
            **_ask_percentiles(site, params["asks"]),
            "payload_mbs": _payload_rate(site, params["payloads"], params["window"], slots),
        }
    link.send(**results)
    link.wait_quit()


def _tell_rate(site: actors.Site, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        site.tell(SINK, {"op": "tell", "i": i})
    counted = site.ask(SINK, {"op": "count"}, timeout=600)
    elapsed = time.perf_counter() - start
    if counted != count:
        raise RuntimeError(f"sink counted {counted} of {count} tells")
    return count / elapsed


def _round_trips(site: actors.Site, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        site.ask(SINK, {"op": "ping"}, timeout=30)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def _ask_percentiles(site: actors.Site, count: int) -> dict[str, float]:
    _round_trips(site, max(count // 10, 10))
    return percentiles(_round_trips(site, count))


def _payload_rate(site: actors.Site, count: int, window: int, slots: threading.Semaphore) -> float:
    chunk = os.urandom(1 << 20)  # never mutated: it is sent without copying
    message = {"op": "chunk", "ack": f"{CLIENT}/window"}
    start = time.perf_counter()
    for _ in range(count):
        if not slots.acquire(timeout=60):
            raise RuntimeError("no ack for 60 s")
        site.tell(SINK, message, payload=(chunk,))
    for _ in range(window):
        if not slots.acquire(timeout=60):
            raise RuntimeError("no ack for 60 s")
    elapsed = time.perf_counter() - start
    return count * len(chunk) / elapsed / 1e6
