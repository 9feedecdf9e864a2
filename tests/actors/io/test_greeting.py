"""Hello deadlines on real TCP connections: who is shut down, and who is kept."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from actors.io.greeting import HelloDeadlines

TIMEOUT = 10.0


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """``(accepted, client)``: the two ends of one loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
    with accepted, client:
        yield accepted, client


def _still_open(accepted: socket.socket, client: socket.socket) -> bool:
    try:
        accepted.sendall(b"x")
    except OSError:  # shut down for writing: EPIPE
        return False
    return client.recv(1) == b"x"


def test_a_connection_silent_past_its_deadline_is_shut_down(
        connection: tuple[socket.socket, socket.socket]) -> None:
    accepted, client = connection
    deadlines = HelloDeadlines(TIMEOUT)
    deadlines.accepted(accepted.fileno(), now=0.0)
    deadlines.drop_overdue(now=TIMEOUT / 2)
    assert _still_open(accepted, client)
    deadlines.drop_overdue(now=TIMEOUT + 1)
    assert client.recv(1) == b""  # the server end hung up
    assert not _still_open(accepted, client)


@pytest.mark.parametrize("hello_first", [False, True], ids=["accept-then-hello",
                                                          "hello-then-accept"])
def test_a_greeted_connection_is_kept(connection: tuple[socket.socket, socket.socket],
                                      hello_first: bool) -> None:
    """In either order: the I/O thread may read a hello from the ROUTER before the
    monitor's accept event for its connection, and that connection said hello."""
    accepted, client = connection
    deadlines = HelloDeadlines(TIMEOUT)
    steps = [lambda: deadlines.accepted(accepted.fileno(), now=0.0),
             lambda: deadlines.greeted(accepted.fileno(), now=0.0)]
    for step in reversed(steps) if hello_first else steps:
        step()
    deadlines.drop_overdue(now=TIMEOUT * 10)
    assert _still_open(accepted, client)


def test_an_early_hello_does_not_excuse_another_connection_on_the_same_number(
        connection: tuple[socket.socket, socket.socket]) -> None:
    """An early hello is matched to its accept event by number and peer address: a new
    connection that reuses the number is still held to its own deadline."""
    accepted, client = connection
    deadlines = HelloDeadlines(TIMEOUT)
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=5):
        other, _ = server.accept()
        with other:
            deadlines.greeted(other.fileno(), now=0.0)  # a hello on one connection...
            os.dup2(accepted.fileno(), other.fileno())   # ...whose number is then reused
            deadlines.accepted(other.fileno(), now=0.0)  # the accept event of the new one
            deadlines.drop_overdue(now=TIMEOUT + 1)
            assert client.recv(1) == b""  # the new connection was shut down
