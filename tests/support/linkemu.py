"""A user-space link emulator: a TCP relay that delays each direction and can be cut.

This kernel has no ``netem`` qdisc, so slow links are emulated above TCP. A
:class:`LinkEmulator` listens on 127.0.0.1 (an OS-chosen port) and relays every
connection it accepts to ``target``. Each direction of each connection is a
:class:`_Pipe`: a reader thread stamps what it receives with ``now + delay`` and
queues it; a writer thread sends each piece once its time has come. So a round trip
through the relay takes ``2 * delay`` more than without it.

Memory is bounded: a pipe holds at most ``buffer_bytes``; a full pipe stops reading,
so the kernel's TCP windows push back on the sender (backpressure, as on a real link
whose bottleneck queue is full). The buffer must hold a window's worth of bytes for
the link to be usable at full speed (bandwidth x delay).

``cut()`` drops every connection at once (both ends see a reset) and refuses new ones
(accepted, then closed at once) until ``restore()``; ``stall()`` keeps connections
open but forwards nothing (as a dead cable would), until ``restore()``.

Every thread blocks with a timeout and checks whether it should end, so nothing
outlives :meth:`LinkEmulator.stop` (or ``lifetime`` seconds, whichever comes first).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from types import TracebackType
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

_POLL = 0.1                 # seconds a blocked call waits before looking at the flags
_READ_SIZE = 256 << 10      # bytes asked of recv() at a time


class _Pipe:
    """One direction of one relayed connection: ``src`` bytes to ``dst``, ``delay`` later."""

    def __init__(self, src: socket.socket, dst: socket.socket, link: LinkEmulator,
                 label: str) -> None:
        self._src, self._dst, self._link = src, dst, link
        self._queue: deque[tuple[float, bytes]] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._eof = False
        self.closed = threading.Event()
        self.on_broken: Optional[Callable[[], None]] = None
        self.forwarded = 0
        self.peak_buffered = 0
        self._threads = [threading.Thread(target=self._read, name=f"linkemu-r-{label}",
                                          daemon=True),
                         threading.Thread(target=self._write, name=f"linkemu-w-{label}",
                                          daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def buffered(self) -> int:
        return self._buffered

    def close(self) -> None:
        """Stop both threads soon; the owner of the sockets closes them."""
        self.closed.set()
        with self._cond:
            self._cond.notify_all()

    def _broken(self) -> None:
        """A socket failed: end this pipe and its twin (the connection is gone)."""
        self.close()
        if self.on_broken is not None:
            self.on_broken()

    def _read(self) -> None:
        limit = self._link.buffer_bytes
        try:
            while not self.closed.is_set():
                with self._cond:  # backpressure: do not read while the queue is full
                    if self._buffered >= limit:
                        self._cond.wait(_POLL)
                        continue
                try:
                    data = self._src.recv(max(1, min(_READ_SIZE, limit - self._buffered)))
                except socket.timeout:
                    continue
                if not data:
                    break
                with self._cond:
                    self._queue.append((time.monotonic() + self._link.delay, data))
                    self._buffered += len(data)
                    self.peak_buffered = max(self.peak_buffered, self._buffered)
                    self._cond.notify_all()
        except OSError:
            self._broken()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _next(self) -> Optional[bytes]:
        """Wait for the head of the queue to be due; None when the pipe is over."""
        with self._cond:
            while not self.closed.is_set():
                if not self._queue:
                    if self._eof:
                        return None
                    self._cond.wait(_POLL)
                    continue
                wait = self._queue[0][0] - time.monotonic()
                if self._link.stalled:
                    wait = _POLL
                if wait <= 0:
                    data = self._queue.popleft()[1]
                    self._buffered -= len(data)
                    self._cond.notify_all()
                    return data
                self._cond.wait(min(wait, _POLL))
        return None

    def _write(self) -> None:
        try:
            while True:
                data = self._next()
                if data is None:
                    break
                self._send_all(data)
                self.forwarded += len(data)
            if not self.closed.is_set():  # a clean end: pass the half-close on
                self._dst.shutdown(socket.SHUT_WR)
        except OSError:
            self._broken()
        finally:
            self.close()

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed.is_set():
            try:
                sent = self._dst.send(view)
            except socket.timeout:
                continue
            view = view[sent:]


class _Connection:
    """A relayed connection: the accepted socket, the one to the target, two pipes."""

    def __init__(self, client: socket.socket, server: socket.socket, link: LinkEmulator,
                 number: int) -> None:
        self.client, self.server = client, server
        self.up = _Pipe(client, server, link, f"{number}-up")
        self.down = _Pipe(server, client, link, f"{number}-down")
        self.up.on_broken = self.down.close
        self.down.on_broken = self.up.close

    def start(self) -> None:
        self.up.start()
        self.down.start()

    @property
    def done(self) -> bool:
        return self.up.closed.is_set() and self.down.closed.is_set()

    def halt(self) -> None:
        """Ask both pipes to end (they notice within one poll interval)."""
        self.up.close()
        self.down.close()

    def drop(self, reset: bool, sides: tuple[str, ...] = ("client", "server")) -> None:
        """Close both sockets, or those of ``sides`` (with a TCP reset when ``reset``); halt
        and join the pipes first, so that no thread still uses a descriptor number the
        kernel may hand out again."""
        self.halt()
        for sock in (getattr(self, side) for side in sides):
            try:
                if reset:  # SO_LINGER 0: close() sends RST, as a cut link's peer would see
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            except OSError:
                pass

    def join(self, timeout: float) -> None:
        self.up.join(timeout / 2)
        self.down.join(timeout / 2)


class LinkEmulator:
    """A delaying, cuttable TCP relay from 127.0.0.1:``port`` to ``target``.

    Args:
        target: (host, port) every accepted connection is relayed to.
        delay: one-way delay in seconds, added in each direction (RTT grows by 2x).
        buffer_bytes: bytes one direction of one connection may hold (the link's queue).
        listen: the address to listen on (loopback, or one inside a test namespace).
        lifetime: seconds after which the emulator stops itself, whatever happens.
    """

    def __init__(self, target: tuple[str, int], delay: float = 0.0,
                 buffer_bytes: int = 32 << 20, listen: str = "127.0.0.1",
                 lifetime: float = 3600.0) -> None:
        if delay < 0 or buffer_bytes < 1:
            raise ValueError("delay must be >= 0 and buffer_bytes >= 1")
        self.target = target
        self.delay = float(delay)
        self.buffer_bytes = int(buffer_bytes)
        self.stalled = False
        self._listen = listen
        self._lifetime = lifetime
        self._cut = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._accepted = 0
        self._half_open: list[socket.socket] = []
        self._refused = 0
        self._forwarded_before = 0     # bytes of connections already dropped
        self._peak_before = 0
        self._server: Optional[socket.socket] = None
        self._acceptor: Optional[threading.Thread] = None
        self.port = 0

    @classmethod
    def to_endpoint(cls, endpoint: str, **kwargs: Any) -> LinkEmulator:
        """An emulator in front of a ZeroMQ ``tcp://host:port`` endpoint."""
        host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
        return cls((host, int(port)), **kwargs)

    @property
    def endpoint(self) -> str:
        """The relay's ZeroMQ endpoint: connect here instead of to the target."""
        return f"tcp://{self._listen}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> LinkEmulator:
        """Listen (on an OS-chosen port) and start relaying."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self._listen, 0))
        server.listen(64)
        server.settimeout(_POLL)
        self._server, self.port = server, server.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="linkemu-accept",
                                          daemon=True)
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Drop every connection, stop listening and end every thread."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        self._drop_all(reset=False, timeout=timeout)
        with self._lock:
            half_open, self._half_open = self._half_open, []
        for sock in half_open:
            sock.close()

    def __enter__(self) -> LinkEmulator:
        return self.start() if self._server is None else self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------

    def cut(self) -> None:
        """Drop every connection (reset) and refuse new ones until :meth:`restore`."""
        self._cut = True
        self._drop_all(reset=True, timeout=2.0)

    def stall(self) -> None:
        """Keep connections open but forward nothing until :meth:`restore` (a dead wire)."""
        self.stalled = True

    def restore(self) -> None:
        """Accept and forward again after :meth:`cut` or :meth:`stall`."""
        self._cut = False
        self.stalled = False

    def drop_connections(self) -> None:
        """Reset every current connection once; new ones are accepted as usual."""
        self._drop_all(reset=True, timeout=2.0)

    def half_open_connections(self) -> None:
        """Reset every current connection on the client's side only: the target keeps
        its end open and hears nothing more (as when a NAT or a crashed router forgets a
        connection). Until :meth:`stop`, those target-side sockets stay open."""
        self._drop_all(reset=True, timeout=2.0, sides=("client",))

    # -- figures ---------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters: connections accepted and refused, live ones, bytes, peak queue."""
        with self._lock:
            live = [c for c in self._connections if not c.done]
            pipes = [p for c in self._connections for p in (c.up, c.down)]
            forwarded, peak = self._forwarded_before, self._peak_before
        return {"accepted": self._accepted, "refused": self._refused, "live": len(live),
                "forwarded": forwarded + sum(p.forwarded for p in pipes),
                "buffered": sum(p.buffered for p in pipes),
                "peak_buffered": max([peak, *(p.peak_buffered for p in pipes)])}

    def _forget(self, connections: list[_Connection]) -> None:
        """Fold the counters of connections about to be dropped (the lock is held)."""
        for pipe in (p for c in connections for p in (c.up, c.down)):
            self._forwarded_before += pipe.forwarded
            self._peak_before = max(self._peak_before, pipe.peak_buffered)

    # -- inside ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        deadline = time.monotonic() + self._lifetime
        try:
            while not self._stopping.is_set() and time.monotonic() < deadline:
                self._reap()
                try:
                    client, _ = server.accept()
                except socket.timeout:
                    continue
                self._relay(client)
        finally:  # stopped, or past its lifetime: nothing keeps relaying
            server.close()
            self._stopping.set()
            self._drop_all(reset=False, timeout=1.0)

    def _relay(self, client: socket.socket) -> None:
        if self._cut:
            self._refused += 1
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError as err:
            log.info("linkemu: cannot reach %s: %s", self.target, err)
            client.close()
            return
        for sock in (client, upstream):
            sock.settimeout(_POLL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._accepted += 1
            connection = _Connection(client, upstream, self, self._accepted)
            # Started before anyone can see it: a cut or stop that found it listed but
            # not started joined threads that never ran ("cannot join thread before it
            # is started"), which made a test that drops connections fail by chance.
            connection.start()
            self._connections.append(connection)

    def _reap(self) -> None:
        """Close the sockets of connections whose both directions ended."""
        with self._lock:
            over = [c for c in self._connections if c.done]
            self._connections = [c for c in self._connections if not c.done]
            self._forget(over)
        for connection in over:
            connection.join(0.5)
            connection.drop(reset=False)

    def _drop_all(self, reset: bool, timeout: float,
                  sides: tuple[str, ...] = ("client", "server")) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._forget(connections)
            if "server" not in sides:  # kept open until stop()
                self._half_open.extend(connection.server for connection in connections)
        for connection in connections:
            connection.halt()
        deadline = time.monotonic() + timeout
        for connection in connections:
            connection.join(max(0.0, deadline - time.monotonic()))
        for connection in connections:
            connection.drop(reset, sides)
