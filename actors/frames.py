"""Sending and receiving multipart messages at the lowest cost pyzmq allows.

Used only by the thread that owns the socket. Small parts are copied (cheaper than
tracking a zero-copy buffer); large parts travel without copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq

# Plain ints: combining pyzmq's enum flags costs more than the send itself.
NOBLOCK = int(zmq.NOBLOCK)
NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
RCVMORE = int(zmq.RCVMORE)
SNDMORE = int(zmq.SNDMORE)
#: Frames under this size are copied: cheaper than tracking a zero-copy buffer.
COPY_BELOW = 65536


def recv_message(sock: zmq.Socket, copied: int, first_received: bool = False) -> list[Any]:
    """Receive one multipart message without blocking (raises zmq.Again if none).

    The first ``copied`` parts (routing id, header: small) come as bytes, which costs
    less than a Frame object; the rest (payload: large) as zero-copy Frames. With
    ``first_received``, the caller already took the first part: the rest is returned.
    """
    parts: list[Any] = []
    done = 1 if first_received else 0
    if not first_received:
        parts.append(sock.recv(NOBLOCK))
    while sock.get(RCVMORE):
        parts.append(sock.recv(copy=len(parts) + done < copied))
    return parts


def send_parts(sock: zmq.Socket, frames: Sequence[Any], flags: int) -> None:
    """Send a multipart message; large parts without copying, small ones copied.

    ``flags`` applies to the first part only: once the first part of a message is
    accepted, ZeroMQ accepts the rest of it.
    """
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        more = SNDMORE if index < last else 0
        sock.send(frame, (flags if index == 0 else 0) | more, copy=len(frame) < COPY_BELOW)


def message_size(frames: Sequence[Any]) -> int:
    """Bytes in a multipart message (frames may be bytes, memoryviews or zmq.Frames)."""
    return sum(len(f) for f in frames)
