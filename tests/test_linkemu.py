"""The link emulator (tests/support/linkemu.py): delay, integrity, bounded queue, cut, stall.

The delay bounds are generous: they check that the emulator adds the delay it was
set to (not 0, not 10x), not how fast this machine is.
"""

from __future__ import annotations

import hashlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.linkemu import LinkEmulator
from tests.support.procs import wait_until


class Server:
    """A TCP server on 127.0.0.1 that echoes, or hashes everything it gets, per connection."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.reading = threading.Event()
        if mode != "lazy":
            self.reading.set()
        self.results: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()
        self._sock.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        digest, total, first_at = hashlib.sha256(), 0, None
        with conn:
            while not self._stop.is_set():
                if not self.reading.wait(0.1):
                    continue
                try:
                    data = conn.recv(1 << 20)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                first_at = first_at or time.monotonic()
                if self.mode == "echo":
                    conn.sendall(data)
                digest.update(data)
                total += len(data)
        self.results.append({"bytes": total, "sha": digest.hexdigest(), "first_at": first_at})

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)


@pytest.fixture
def echo() -> Iterator[Server]:
    server = Server("echo")
    yield server
    server.close()


def round_trip(sock: socket.socket, size: int = 16) -> float:
    started = time.monotonic()
    sock.sendall(b"x" * size)
    got = 0
    while got < size:
        got += len(sock.recv(size - got))
    return time.monotonic() - started


@pytest.mark.parametrize("delay", [0.01, 0.05])
def test_a_round_trip_takes_twice_the_set_delay(echo: Server, delay: float) -> None:
    with LinkEmulator(echo.address, delay=delay) as link:
        with socket.create_connection(("127.0.0.1", link.port), timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            round_trip(sock)  # the relay's connection to the server is up
            rtts = [round_trip(sock) for _ in range(5)]
    assert 2 * delay * 0.9 <= statistics.median(rtts) <= 2 * delay * 1.5 + 0.02, rtts


def test_one_way_delay_applies_to_the_first_byte() -> None:
    server = Server("hash")
    try:
        with LinkEmulator(server.address, delay=0.05) as link:
            with socket.create_connection(("127.0.0.1", link.port), timeout=5) as sock:
                sent_at = time.monotonic()
                sock.sendall(b"hello")
            wait_until(lambda: server.results, 5)
    finally:
        server.close()
    one_way = server.results[0]["first_at"] - sent_at
    assert 0.045 <= one_way <= 0.2, one_way


def test_bulk_bytes_arrive_whole_and_in_order() -> None:
    server = Server("hash")
    data = os.urandom(8 << 20)
    try:
        with LinkEmulator(server.address, delay=0.005, buffer_bytes=1 << 20) as link:
            with socket.create_connection(("127.0.0.1", link.port), timeout=10) as sock:
                sock.sendall(data)
            wait_until(lambda: server.results, 20)
            assert link.stats()["peak_buffered"] <= 1 << 20
    finally:
        server.close()
    assert server.results[0] == {"bytes": len(data), "sha": hashlib.sha256(data).hexdigest(),
                                 "first_at": server.results[0]["first_at"]}


def test_a_full_queue_pushes_back_instead_of_growing() -> None:
    server = Server("lazy")                      # accepts, but reads nothing until told
    limit = 1 << 20
    block = os.urandom(256 << 10)
    try:
        with LinkEmulator(server.address, delay=0.0, buffer_bytes=limit) as link:
            with socket.create_connection(("127.0.0.1", link.port), timeout=10) as sock:
                sock.setblocking(False)
                pushed, deadline, blocked_since = 0, time.monotonic() + 5, None
                while time.monotonic() < deadline and pushed < 256 << 20:
                    try:
                        pushed += sock.send(block)
                        blocked_since = None
                    except BlockingIOError:
                        blocked_since = blocked_since or time.monotonic()
                        if time.monotonic() - blocked_since > 0.5:
                            break          # held back for a while: that is the point
                        time.sleep(0.01)   # poll interval while the relay holds back
                stats = link.stats()
                assert stats["peak_buffered"] <= limit
                assert pushed < 128 << 20, "the sender was never held back"
                server.reading.set()
                sock.setblocking(True)
            wait_until(lambda: server.results, 20)
    finally:
        server.close()
    assert server.results[0]["bytes"] == pushed


def test_cut_drops_connections_and_refuses_new_ones_until_restored(echo: Server) -> None:
    with LinkEmulator(echo.address, delay=0.01) as link:
        sock = socket.create_connection(("127.0.0.1", link.port), timeout=5)
        round_trip(sock)
        link.cut()
        with sock:
            try:
                assert sock.recv(10) == b""
            except ConnectionResetError:
                pass
        try:               # the reset may come while connecting, or at the first read
            with socket.create_connection(("127.0.0.1", link.port), timeout=5) as refused:
                assert refused.recv(10) == b""
        except ConnectionResetError:
            pass
        assert link.stats()["refused"] >= 1
        link.restore()
        with socket.create_connection(("127.0.0.1", link.port), timeout=5) as again:
            assert round_trip(again) < 1.0
        assert link.stats()["accepted"] == 2


def test_stall_holds_bytes_until_restored(echo: Server) -> None:
    with LinkEmulator(echo.address, delay=0.0) as link:
        with socket.create_connection(("127.0.0.1", link.port), timeout=5) as sock:
            round_trip(sock)
            link.stall()
            sock.sendall(b"held")
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(4)
            link.restore()
            sock.settimeout(5)
            assert sock.recv(4) == b"held"


def test_stop_ends_every_thread(echo: Server) -> None:
    before = set(threading.enumerate())
    link = LinkEmulator(echo.address, delay=0.01).start()
    socks = [socket.create_connection(("127.0.0.1", link.port), timeout=5) for _ in range(3)]
    for sock in socks:
        round_trip(sock)
    ours = [t for t in threading.enumerate() if t not in before and t.name.startswith("linkemu")]
    assert len(ours) == 1 + 3 * 4               # the acceptor, 2 threads per direction
    link.stop()
    for sock in socks:
        sock.close()
    assert [t.name for t in ours if t.is_alive()] == []


def test_lifetime_bounds_the_emulator(echo: Server) -> None:
    link = LinkEmulator(echo.address, lifetime=0.3).start()
    wait_until(lambda: not link._acceptor.is_alive(), 3)  # type: ignore[union-attr]
    with pytest.raises(OSError):
        with socket.create_connection(("127.0.0.1", link.port), timeout=1) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b""          # nobody relays any more
            raise ConnectionRefusedError
    link.stop()
