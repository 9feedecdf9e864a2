"""Why a site does not answer: a look at what listens at its endpoint, for the error line.

When a command cannot link to a site, the runtime only knows that no hello came. One
TCP connection tells a person much more: nothing listens there (the site is not
running, or a ``share`` has ended), or a ZeroMQ site does, and its greeting names its
security mechanism (ZMTP 3, RFC 23: a 64-byte greeting, the mechanism's name at bytes
12-31), so a plain command knocking at a CURVE site can be told to bring keys, and the
other way round. The probe sends only the start of a greeting (the signature and
major version 3, which is what makes libzmq send the rest of its own), reads the
site's greeting and closes before naming a mechanism: the site sees one connection
that ended during its handshake. (Sending a whole NULL greeting would make a CURVE
site hang up on the mismatch before it sent its own.)
"""

from __future__ import annotations

import enum
import errno
import socket

_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
_GREETING_START = _SIGNATURE + b"\x03"


class Finding(enum.Enum):
    """What listens at an endpoint."""

    NOTHING = "nothing"      # the connection was refused: no process listens there
    CURVE = "curve"          # a ZeroMQ peer that requires CURVE (keys)
    PLAIN = "plain"          # a ZeroMQ peer without security
    UNKNOWN = "unknown"      # no answer, not ZeroMQ, or not a TCP endpoint


def probe(endpoint: str, timeout: float = 1.0) -> Finding:
    """Look at what listens at ``endpoint`` (``tcp://host:port``), within ``timeout`` s."""
    if not endpoint.startswith("tcp://"):
        return Finding.UNKNOWN
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", ""):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(_GREETING_START)
            greeting = _read(sock, 64)
    except ConnectionRefusedError:
        return Finding.NOTHING
    except OSError as err:
        return Finding.NOTHING if err.errno == errno.ECONNREFUSED else Finding.UNKNOWN
    except ValueError:
        return Finding.UNKNOWN
    if len(greeting) < 32 or greeting[0] != 0xFF or greeting[9] != 0x7F:
        return Finding.UNKNOWN
    mechanism = greeting[12:32].rstrip(b"\x00")
    return {b"CURVE": Finding.CURVE, b"NULL": Finding.PLAIN}.get(mechanism, Finding.UNKNOWN)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            more = sock.recv(size - len(data))
        except OSError:
            break
        if not more:
            break
        data += more
    return data
