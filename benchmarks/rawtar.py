"""The baseline for folders: ``tar`` piped over raw TCP, what people reach for first.

The sender runs ``tar -c`` with its output on the connected socket; the receiver runs
``tar -x`` with its input on the accepted socket, into an empty folder (modes and times
restored, as tar does by default). Both are C programs reading and writing whole
blocks; no Python touches a byte.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Any

from benchmarks.worker import Link


def receiver(params: dict[str, Any], link: Link) -> None:
    """Accept one connection and untar what it carries into ``params["dest"]``."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        link.send(port=server.getsockname()[1])
        conn, _ = server.accept()
    with conn:
        done = subprocess.run(["tar", "-x", "-f", "-", "-C", params["dest"]], stdin=conn.fileno(),
                              capture_output=True, check=False)
    end = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"tar -x failed: {done.stderr.decode(errors='replace')[:300]}")
    size, files = _measure(params["dest"])
    link.send(done=end, bytes=size, files=files)
    shutil.rmtree(params["dest"], ignore_errors=True)
    link.wait_quit()


def sender(params: dict[str, Any], link: Link) -> None:
    """Connect; on "go", tar the folder into the connection."""
    sock = socket.create_connection(("127.0.0.1", params["port"]))
    link.send(ready=True)
    link.recv()
    start = time.monotonic()
    done = subprocess.run(["tar", "-c", "-f", "-", "-C", params["parent"], params["name"]],
                          stdout=sock.fileno(), capture_output=False, stderr=subprocess.PIPE,
                          check=False)
    sock.shutdown(socket.SHUT_WR)
    sock.close()
    end = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"tar -c failed: {done.stderr.decode(errors='replace')[:300]}")
    link.send(start=start, end=end)
    link.wait_quit()


def _measure(folder: str) -> tuple[int, int]:
    """(bytes, files) of the regular files under ``folder``."""
    import os

    size = files = 0
    for base, _dirs, names in os.walk(folder):
        for name in names:
            size += os.lstat(os.path.join(base, name)).st_size
            files += 1
    return size, files
