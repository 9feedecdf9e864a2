"""The connections ZeroMQ owns, seen from below: by file descriptor, through the kernel.

ZeroMQ tells a site each connection's descriptor (monitor events, a frame's SRCFD)
but not what it holds for it: a multipart message is assembled whole before a
socket shows its first frame, and a send queue counts messages, not bytes. The
kernel counts both directions of a TCP connection (``TCP_INFO``: bytes received,
bytes the peer acknowledged), which is what the site compares with what it read and
sent; and it can end a connection (``shutdown``) so that ZeroMQ drops it with what
it held, as if the peer had hung up. A descriptor is never closed here: ZeroMQ owns it.

Linux only, TCP only: elsewhere (ipc://, other systems) :meth:`TcpCounters.read`
answers None and the callers fall back to what they can count themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received, since 4.1.
_ACKED_AT, _RECEIVED_AT = 120, 128
_INFO_SIZE = 136
_TCP_INFO = getattr(socket, "TCP_INFO", 11)


class TcpCounters:
    """Reads a TCP connection's kernel byte counters; one per thread (it owns a buffer)."""

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(_INFO_SIZE)
        self._length = ctypes.c_uint32(_INFO_SIZE)
        self._getsockopt = None
        name = ctypes.util.find_library("c")
        if name is not None and hasattr(socket, "TCP_INFO"):
            try:
                # PyDLL keeps the GIL: a syscall this short is cheaper than handing
                # the GIL to another thread and waiting to get it back.
                getsockopt = ctypes.PyDLL(name).getsockopt
            except (OSError, AttributeError):
                return
            getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_uint32)]
            self._getsockopt = getsockopt

    def read(self, fd: int) -> tuple[int, int] | None:
        """``(bytes_received, bytes_acked)`` of the TCP connection on ``fd``, or None when
        ``fd`` is not one (closed, ipc://, not Linux, a kernel older than 4.1)."""
        getsockopt = self._getsockopt
        if getsockopt is None:
            return None
        self._length.value = _INFO_SIZE
        if getsockopt(fd, socket.IPPROTO_TCP, _TCP_INFO, self._buffer,
                      ctypes.byref(self._length)) != 0 or self._length.value < _INFO_SIZE:
            return None
        acked, received = struct.unpack_from("=QQ", self._buffer, _ACKED_AT)
        return received, acked


def peer_address(fd: int) -> object:
    """The address of the peer on ``fd`` (None if it is no connected socket)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return sock.getpeername()
    except OSError:
        return None
    finally:
        sock.detach()  # ZeroMQ owns the descriptor: never close it here


def shut_down(fd: int, address: object = None) -> bool:
    """End the connection on ``fd`` (ZeroMQ then drops it and what it held).

    With ``address``, only if ``fd`` still leads to that peer: a descriptor number
    is reused once ZeroMQ closes it. Returns whether it was shut down.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # closed meanwhile, or not a socket any more
        return False
    try:
        if address is not None and sock.getpeername() != address:
            return False
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.detach()
