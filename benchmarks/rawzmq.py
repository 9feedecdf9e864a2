"""Raw pyzmq baseline parties: DEALER -> ROUTER with nothing of ours in between.

The client runs the same measurements as :mod:`benchmarks.messages_parties`: a burst
of small messages, one frame each as our tells are (then one request that returns the
count), ping-pong round trips, a burst of 1 MiB frames (``copy=False``, counted the
same way), and 1 MiB frames with a window of un-acked frames in flight, the server
acking each frame with a tiny message.
"""

from __future__ import annotations

import os
import time
from typing import Any

import zmq

from benchmarks.worker import Link

SMALL = b'\x82\xa2op\xa4tell\xa1i\xcd\x01\x00'  # a small msgpack map, as our tells carry


def server(params: dict[str, Any], link: Link) -> None:
    """Bind a ROUTER; count, echo or ack what the client sends until it says quit.

    Small messages are received by copy (cheaper than a zero-copy frame below tens of
    KiB); after the client's ``b"m"`` the 1 MiB frames are received without copying.
    """
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    link.send(endpoint=f"tcp://127.0.0.1:{port}")
    count = 0
    bulk = False
    while True:
        frames: list[Any] = (router.recv_multipart(copy=False) if bulk
                             else router.recv_multipart())
        ident, kind = frames[0], bytes(frames[1])[:1]
        if kind == b"t" or kind == b"b":
            count += 1
        elif kind == b"d":
            router.send_multipart([ident, b"a"])
        elif kind == b"p":
            router.send_multipart([ident, b"p"])
        elif kind == b"c":
            router.send_multipart([ident, str(count).encode()])
            count = 0
        elif kind == b"m":
            bulk = True
        elif kind == b"q":
            break
    router.close()
    context.term()
    link.wait_quit()


def client(params: dict[str, Any], link: Link) -> None:
    """Connect a DEALER and run the measurements; report them to the parent."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(params["endpoint"])
    _round_trips(dealer, 20)  # the connection is up before any clock starts
    results = {
        "tell_rate": _tell_rate(dealer, params["messages"]),
        **_ask_percentiles(dealer, params["asks"]),
        "payload_mbs": _payload_rate(dealer, params["payloads"]),
        "window_mbs": _windowed_rate(dealer, params["payloads"], params["window"]),
    }
    dealer.send_multipart([b"q"])
    dealer.close()
    context.term()
    link.send(**results)
    link.wait_quit()


def _tell_rate(dealer: zmq.Socket, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        dealer.send(b"t" + SMALL)
    return count / _counted_since(dealer, start, count)


def _payload_rate(dealer: zmq.Socket, count: int) -> float:
    """A burst of 1 MiB frames, held back only by ZeroMQ's high-water marks."""
    chunk = os.urandom(1 << 20)
    dealer.send(b"m")
    start = time.perf_counter()
    for _ in range(count):
        dealer.send_multipart([b"b", chunk], copy=False)
    return count * len(chunk) / _counted_since(dealer, start, count) / 1e6


def _counted_since(dealer: zmq.Socket, start: float, count: int) -> float:
    """Seconds from ``start`` until the server has counted ``count`` messages."""
    dealer.send_multipart([b"c"])
    counted = int(dealer.recv())
    elapsed = time.perf_counter() - start
    if counted != count:
        raise RuntimeError(f"server counted {counted} of {count} messages")
    return elapsed


def _round_trips(dealer: zmq.Socket, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        dealer.send_multipart([b"p"])
        dealer.recv()
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def _ask_percentiles(dealer: zmq.Socket, count: int) -> dict[str, float]:
    _round_trips(dealer, max(count // 10, 10))
    return percentiles(_round_trips(dealer, count))


def percentiles(times_us: list[float]) -> dict[str, float]:
    """p50 and p99 of round-trip times in microseconds."""
    ordered = sorted(times_us)
    return {
        "ask_p50_us": ordered[len(ordered) // 2],
        "ask_p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def _windowed_rate(dealer: zmq.Socket, count: int, window: int) -> float:
    chunk = os.urandom(1 << 20)
    dealer.send(b"m")  # idempotent: not relying on the burst having gone first
    start = time.perf_counter()
    send_windowed(dealer, chunk, count, window)
    elapsed = time.perf_counter() - start
    return count * len(chunk) / elapsed / 1e6


def send_windowed(dealer: zmq.Socket, chunk: bytes, count: int, window: int) -> None:
    """Send ``count`` frames of ``chunk`` to :func:`server`, at most ``window`` un-acked."""
    in_flight = 0
    for _ in range(count):
        if in_flight >= window:
            dealer.recv()
            in_flight -= 1
        dealer.send_multipart([b"d", chunk], copy=False)
        in_flight += 1
    for _ in range(in_flight):
        dealer.recv()
