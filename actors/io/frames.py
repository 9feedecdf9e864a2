"""Sending and receiving multipart messages at the lowest cost pyzmq allows.

Used only by the thread that owns the socket. Small parts are copied (cheaper than
tracking a zero-copy buffer); large parts travel without copying.

Every message a site handles passes through here several times, so these calls go
to pyzmq's backend socket methods: the ``zmq.Socket`` subclass only forwards them,
and each forward costs about as much as a small send itself. ``RCVMORE`` is read as
rarely as the message structure allows: pyzmq turns each option read into an enum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket

# Plain ints: combining pyzmq's enum flags costs more than the send itself.
NOBLOCK = int(zmq.NOBLOCK)
NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
SNDMORE = int(zmq.SNDMORE)
#: Frames under this size are copied: cheaper than tracking a zero-copy buffer.
COPY_BELOW = 65536

_send = _BackendSocket.send
_get = _BackendSocket.get
#: ``recv(sock, flags=0, copy=True)``: pyzmq's receive without the subclass's forward.
recv = _BackendSocket.recv
_recv = recv


def readable(sock: zmq.Socket[bytes]) -> bool:
    """Whether a message waits on ``sock``.

    Asked once after a read loop's first message: when that was the only one, as on
    a request and its reply, this costs a fraction of the ``zmq.Again`` exception the
    next read would raise. Loops that find more read on until that exception.
    """
    events: int = _get(sock, _EVENTS)  # type: ignore[assignment]  # an int option
    return bool(events & _POLLIN)


def recv_rest(sock: zmq.Socket[bytes], parts: list[Any], copied: int) -> list[Any]:
    """Append the remaining parts of a message whose first part(s) ``parts`` holds.

    Parts up to index ``copied`` (routing id, header: small) come as bytes, cheaper
    than a Frame object; the rest (payload: large) as zero-copy Frames.
    """
    while _get(sock, RCVMORE):
        parts.append(_recv(sock, 0, len(parts) < copied))
    return parts


def recv_message(sock: zmq.Socket[bytes], copied: int) -> list[Any]:
    """Receive one multipart message without blocking (raises zmq.Again if none)."""
    return recv_rest(sock, [_recv(sock, NOBLOCK)], copied)


def send_parts(sock: zmq.Socket[bytes], frames: Sequence[Any], flags: int) -> None:
    """Send a multipart message; large parts without copying, small ones copied.

    ``flags`` applies to the first part only: once the first part of a message is
    accepted, ZeroMQ accepts the rest of it.
    """
    last = len(frames) - 1
    if last == 0:  # most messages are a header alone
        frame = frames[0]
        _send(sock, frame, flags, len(frame) < COPY_BELOW)
        return
    for index, frame in enumerate(frames):
        more = SNDMORE if index < last else 0
        _send(sock, frame, (flags if index == 0 else 0) | more, len(frame) < COPY_BELOW)


def send_first(sock: zmq.Socket[bytes], frame: Any, flags: int) -> None:
    """Send one part (a routing id, say) with ``flags``; small, so copied."""
    _send(sock, frame, flags, True)


def message_size(frames: Sequence[Any]) -> int:
    """Bytes in a multipart message (frames may be bytes, memoryviews or zmq.Frames)."""
    return sum(len(f) for f in frames)
