"""Our side of the messages benchmark: two sites, each in its own process.

The client site runs the same measurements as :mod:`benchmarks.rawzmq`, through
``Site.tell`` / ``Site.ask`` to an actor on the server site: a burst of small tells
(then one ask that returns the count: it queues behind the tells, so its answer
means all were handled), ask round trips, a burst of tells carrying a 1 MiB payload
frame each (counted the same way), and 1 MiB payload frames with a window of un-acked
frames in flight: a pump actor on the client sends, the server's actor acks each with
a tiny tell back to the pump, which sends the next.
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
    """Count tells and payloads, answer pings and counts, ack windowed chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        op = message["op"]
        if op == "tell" or op == "payload":
            self.count += 1
        elif op == "chunk":
            self.site.tell(message["ack"], {"op": "ack"})
        elif op == "count":
            count, self.count = self.count, 0
            return count
        return None


def server(params: dict[str, Any], link: Link) -> None:
    """Host the sink actor until the parent says quit."""
    with actors.Site(SERVER, bind="tcp://127.0.0.1:0") as site:
        site.spawn(Sink, "sink")
        link.send(endpoint=site.endpoint)
        link.wait_quit()


def client(params: dict[str, Any], link: Link) -> None:
    """Run the measurements against the server's sink; report them."""
    with actors.Site(CLIENT, connect={SERVER: params["endpoint"]}) as site:
        site.wait_for(SERVER, timeout=30)
        _round_trips(site, 20)  # the link and both actors are warm before any clock starts
        results = {
            "tell_rate": _tell_rate(site, params["messages"]),
            **_ask_percentiles(site, params["asks"]),
            "payload_mbs": _payload_rate(site, params["payloads"]),
            "window_mbs": _windowed_rate(site, params["payloads"], params["window"]),
        }
    link.send(**results)
    link.wait_quit()


def _tell_rate(site: actors.Site, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        site.tell(SINK, {"op": "tell", "i": i})
    return count / _counted_since(site, start, count)


def _payload_rate(site: actors.Site, count: int) -> float:
    """A burst of tells with a 1 MiB frame each, as the raw side's burst of frames.

    The sender is held back only by the runtime's own flow control: ZeroMQ's
    high-water marks and the site's pending-bytes limit.
    """
    chunk = os.urandom(1 << 20)  # never mutated: it is sent without copying
    start = time.perf_counter()
    for _ in range(count):
        site.tell(SINK, {"op": "payload"}, payload=(chunk,))
    return count * len(chunk) / _counted_since(site, start, count) / 1e6


def _counted_since(site: actors.Site, start: float, count: int) -> float:
    """Seconds from ``start`` until the sink has handled ``count`` messages."""
    counted = site.ask(SINK, {"op": "count"}, timeout=600)
    elapsed = time.perf_counter() - start
    if counted != count:
        raise RuntimeError(f"sink counted {counted} of {count} messages")
    return elapsed


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


class Pump(actors.Actor):
    """Keep ``window`` payload tells in flight to the sink, sending the next on each ack.

    This is how an actor streams bulk data on the runtime (zfs push's SenderActor
    does the same): the acks come back to the actor that sends, as in the raw
    baseline's single loop that sends and receives.
    """

    def __init__(self, count: int, window: int, done: threading.Event) -> None:
        super().__init__()
        self.chunk = os.urandom(1 << 20)  # never mutated: it is sent without copying
        self.count, self.window, self.done = count, window, done
        self.sent = self.acked = 0

    def _send(self) -> None:
        self.sent += 1
        self.site.tell(SINK, {"op": "chunk", "ack": self.address}, payload=(self.chunk,))

    def on_receive(self, message: Any) -> None:
        if message == "go":
            for _ in range(min(self.window, self.count)):
                self._send()
            return
        self.acked += 1
        if self.sent < self.count:
            self._send()
        elif self.acked == self.count:
            self.done.set()


def _windowed_rate(site: actors.Site, count: int, window: int) -> float:
    done = threading.Event()
    pump = site.spawn(Pump, "pump", count, window, done)
    start = time.perf_counter()
    pump.tell("go")
    if not done.wait(600):
        raise RuntimeError("payloads not all acked within 600 s")
    elapsed = time.perf_counter() - start
    pump.stop()
    return count * (1 << 20) / elapsed / 1e6
