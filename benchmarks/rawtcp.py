"""Raw TCP baseline parties: the fastest plain way to move a file on this machine.

The sender ``socket.sendfile``s the file to each receiver, one thread per receiver
(``sendfile`` runs without the GIL, so the threads really overlap); each receiver
fills one reused 1 MiB buffer (``recv_into`` with ``MSG_WAITALL``) and writes it to
its file, so every write is a whole, page-aligned 1 MiB, as zfs writes its chunks.
Writing whatever each ``recv_into`` returned instead (unaligned sizes) cost this
kernel's page cache 3-10x the CPU per byte and held raw TCP near 1 GB/s.
"""

from __future__ import annotations

import mmap
import os
import socket
import threading
import time
from typing import Any

from benchmarks.worker import Link

_BUFFER = 1 << 20


def receiver(params: dict[str, Any], link: Link) -> None:
    """Accept one connection, write everything it carries to ``params["dest"]``."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        link.send(port=server.getsockname()[1])
        conn, _ = server.accept()
    buffer = mmap.mmap(-1, _BUFFER)   # page-aligned: see common_notes in benchmarks.transfer
    view = memoryview(buffer)
    total = 0
    with conn, open(params["dest"], "wb", buffering=0) as out:
        while got := _fill(conn, view):
            out.write(view[:got])
            total += got
    done = time.monotonic()
    os.unlink(params["dest"])
    link.send(done=done, bytes=total)
    link.wait_quit()


def _fill(conn: socket.socket, view: memoryview) -> int:
    """Receive until ``view`` is full or the sender closed; return the bytes received."""
    got = 0
    while got < len(view):
        more = conn.recv_into(view[got:], 0, socket.MSG_WAITALL)
        if not more:
            break
        got += more
    return got


def sender(params: dict[str, Any], link: Link) -> None:
    """Connect to every receiver, then on "go" sendfile the file to each, one thread each."""
    socks = [socket.create_connection(("127.0.0.1", port)) for port in params["ports"]]
    link.send(ready=True)
    link.recv()
    start = time.monotonic()
    threads = [threading.Thread(target=_send_to, args=(sock, params["path"])) for sock in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.monotonic()
    link.send(start=start, end=end)
    for sock in socks:
        sock.close()
    link.wait_quit()


def _send_to(sock: socket.socket, path: str) -> None:
    with open(path, "rb") as source:
        sock.sendfile(source)
    sock.shutdown(socket.SHUT_WR)
