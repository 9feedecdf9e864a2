"""The inbox framing between app/actor threads and the I/O thread, over real inproc sockets."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import zmq

from actors.errors import SiteClosed
from actors.io.frames import recv
from actors.options import SiteOptions
from actors.io.outbox import InboxBudget, Outbox, read_inbox


@pytest.fixture()
def inbox() -> Iterator[tuple[Outbox, zmq.Socket]]:
    context = zmq.Context()
    endpoint = f"inproc://test-{uuid.uuid4().hex}"
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    outbox = Outbox(context, endpoint, hwm=100, budget=InboxBudget(64 << 20))
    yield outbox, pull
    outbox.close()
    pull.close(linger=0)
    context.term()


def _read(pull: zmq.Socket) -> tuple[str, list[bytes]] | None:
    assert pull.poll(5000), "nothing reached the inbox"
    message = read_inbox(pull, recv(pull, zmq.NOBLOCK))
    if message is None:
        return None
    peer, frames = message
    return peer, [bytes(frame) for frame in frames]


def test_messages_arrive_whole_and_in_order_with_their_payload_parts(inbox) -> None:
    outbox, pull = inbox
    big = os.urandom(300_000)  # over the copy threshold: crosses without copying
    outbox.send("beta", b"h0\x00with a NUL", ())
    outbox.send("gamma-1", b"h1", (b"small", big, b""))
    outbox.wake()
    assert _read(pull) == ("beta", [b"h0\x00with a NUL"])
    assert _read(pull) == ("gamma-1", [b"h1", b"small", big, b""])
    assert _read(pull) is None  # the wake-up: run posted calls
    assert not pull.poll(0)


def test_each_thread_gets_its_own_socket_and_a_closed_outbox_refuses(inbox) -> None:
    outbox, pull = inbox
    errors: list[BaseException] = []

    def send_from_thread(n: int) -> None:
        try:
            outbox.send(f"peer{n}", b"x", (bytes([n]),))
        except BaseException as err:  # reported to the test thread
            errors.append(err)

    threads = [threading.Thread(target=send_from_thread, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not errors
    got = sorted(_read(pull) for _ in range(4))  # type: ignore[type-var]
    assert got == [(f"peer{n}", [b"x", bytes([n])]) for n in range(4)]
    outbox.close()
    with pytest.raises(SiteClosed):
        outbox.send("late", b"x", ())


def test_payload_frame_limit_fits_the_one_byte_count() -> None:
    assert SiteOptions(max_payload_frames=255).max_payload_frames == 255
    with pytest.raises(ValueError, match="max_payload_frames"):
        SiteOptions(max_payload_frames=256)
