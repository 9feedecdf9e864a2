"""What a peer can make a site hold, and whom it can lock out (issue 14), in other processes.

Each test attacks a ``python -m actors`` child through raw ZeroMQ sockets, reads the
child's peak resident memory (VmHWM) against the figure README's Limits section
states, and checks that honest peers are still served. Children get small limits
(``--option``) so the attacks stay small and quick; the bounds scale with them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import actors
from actors import codec
from actors.codec import Kind
from actors.security import Curve, load_secret_key, new_keypair
from tests.support.procs import SiteProcess, wait_until
from tests.support.rawpeer import greet, hello, next_of, raw_dealer
from zfs import push_file
from zfs.protocol import wire
from zfs.protocol.inbound import decode

MiB = 1 << 20
ECHO = {"echo": "tests.support.echo:Echo"}


# ---------------------------------------------------------------- helpers


class Watched:
    """A raw DEALER with a monitor that tells when its connection drops."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def dropped(self, timeout: float) -> bool:
        """Whether the connection drops within ``timeout`` seconds."""
        if not self._monitor.poll(int(timeout * 1000)):
            return False
        return bool(recv_monitor_message(self._monitor)["event"] & zmq.EVENT_DISCONNECTED)

    def close(self) -> None:
        self._monitor.close(linger=0)
        self.sock.close(linger=0)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _serves(hub: actors.Site, child: SiteProcess) -> None:
    """An honest peer still gets its ask answered."""
    hub.wait_for(child.name, 20)
    assert hub.ask(f"{child.name}/echo", "honest?", timeout=10)["got"] == "honest?"


class Keys:
    """CURVE keypairs of a child "target", a raw peer "raw" and an honest site "honest"."""

    def __init__(self, folder: Path) -> None:
        self.keys, self.allow = folder / "keys", folder / "allow"
        for name in ("target", "raw", "honest", "other"):
            new_keypair(name, self.keys)
        self.allow.mkdir()
        for name in ("raw", "honest", "other"):
            (self.allow / f"{name}.key").write_bytes((self.keys / f"{name}.key").read_bytes())

    def pair(self, name: str) -> tuple[bytes, bytes]:
        return load_secret_key(self.keys / f"{name}.key_secret")

    def raw(self, name: str = "raw") -> tuple[bytes, bytes, bytes]:
        """What a raw DEALER holding ``name``'s key needs to reach the target."""
        public, secret = self.pair(name)
        return public, secret, self.pair("target")[0]

    def args(self) -> list[str]:
        return ["--keys", str(self.keys), "--allow", str(self.allow)]

    def honest_site(self, endpoint: str) -> actors.Site:
        public, secret = self.pair("honest")
        curve = Curve("honest", public, secret, {"target": self.pair("target")[0]})
        return actors.Site("honest", connect={"target": endpoint}, curve=curve)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


# ---------------------------------------------------------------- item 1


FRAME = 8 * MiB
#: 48 frames of 8 MiB: 384 MiB in one message, held whole before this bound.
FRAMES = 48
#: README: before hello 256 KiB, after it max_message_size + 64 KiB + 16 MiB, plus what
#: libzmq's own thread takes off the socket between two of the site's checks: a few MiB
#: on a quiet machine, 36 MiB seen on a busy one (loopback moves ~3 GB/s while the I/O
#: thread waits for a core); what the child allocates besides. A quarter of the message.
BOUND_ONE_MESSAGE = 96 * MiB


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stage", ["before hello", "after hello", "after hello, CURVE"])
def test_one_message_of_many_big_frames_is_cut_long_before_it_is_held_whole(
        stage: str, hub: actors.Site, context: zmq.Context, tmp_path: Path) -> None:
    secure = stage.endswith("CURVE")
    keys = Keys(tmp_path) if secure else None
    with SiteProcess("target", spawn=ECHO, options={"max_message_size": FRAME},
                     connect={} if secure else {"test": str(hub.endpoint)},
                     extra_args=keys.args() if keys else ()) as child:
        rss_before, _ = child.memory()
        raw = Watched(raw_dealer(context, child.endpoint, curve=keys.raw() if keys else None))
        try:
            if stage != "before hello":
                greet(raw.sock, "raw", "one")
            big = bytes(FRAME)
            raw.sock.send(codec.encode(Kind.TELL, "echo", "raw", 0, "big"), zmq.SNDMORE)
            for index in range(FRAMES):
                raw.sock.send(big, zmq.SNDMORE if index < FRAMES - 1 else 0, copy=False)
            assert raw.dropped(30), "the site never cut the connection"
        finally:
            raw.close()
        _, peak = child.memory()
        assert peak - rss_before < BOUND_ONE_MESSAGE, f"{(peak - rss_before) >> 20} MiB"
        if keys is not None:
            with keys.honest_site(child.endpoint) as honest:
                honest.wait_for("target", 20)
                assert honest.ask("target/echo", "honest?", timeout=10)["got"] == "honest?"
        else:
            _serves(hub, child)


# ---------------------------------------------------------------- item 5


@pytest.mark.timeout(120)
def test_one_connection_speaks_for_one_site_and_the_peer_table_stays_bounded(
        hub: actors.Site, context: zmq.Context, tmp_path: Path) -> None:
    """A connection that says hello under 50,000 names is cut at the second; 300
    connections under new names leave a table of at most ``max_peers``; the log stays
    a few dozen lines."""
    log = tmp_path / "target.log"
    with SiteProcess("target", spawn=ECHO, connect={"test": str(hub.endpoint)},
                     options={"max_peers": 32}, log_path=log, log_level="INFO") as child:
        hub.wait_for("target", 20)
        rss_before, _ = child.memory()
        raw = Watched(raw_dealer(context, child.endpoint))
        try:
            greet(raw.sock, "name0", "one")
            for index in range(1, 50_000):
                try:
                    raw.sock.send(hello(f"name{index}"), zmq.NOBLOCK)
                except zmq.Again:
                    break
            assert raw.dropped(20), "a second name on one connection was not cut"
        finally:
            raw.close()
        welcomed = 0
        for index in range(300):
            sock = raw_dealer(context, child.endpoint)
            sock.send(hello(f"passer{index}"))
            welcomed += next_of(sock, Kind.WELCOME, Kind.REFUSE).kind is Kind.WELCOME
            sock.close(linger=0)
        table = child.call(hub, "tests.support.echo:peer_table")
        assert table["peers"] <= 32 and table["states"] <= 32, table
        assert welcomed > 100  # passers make room for each other once they are gone
        _serves(hub, child)
        _, peak = child.memory()
        assert peak - rss_before < 32 * MiB
    assert len(_lines(log)) < 200, f"{len(_lines(log))} log lines"


# ---------------------------------------------------------------- item 6


def _open(sid: str, sender: str) -> bytes:
    """A push's Open, as zfs's wire has it (by field name: the wire gains fields)."""
    values = {"sid": sid, "name": f"{sid}.bin", "size": MiB, "chunk_size": MiB,
              "window_chunks": 8, "channel": "bounds", "topic": "slots", "context": None}
    names = [field.name for field in dataclasses.fields(wire.Open)]
    body = wire.encode(wire.Open(**{name: values[name] for name in names}))
    return codec.encode(Kind.TELL, "zfs.receiver", sender, 0, body)


@pytest.mark.timeout(90)
def test_one_connection_holds_the_stream_slots_of_one_site_only(
        hub: actors.Site, context: zmq.Context, tmp_path: Path) -> None:
    """The per-site cap of 32 streams is a per-connection cap: saying hello under
    other names on the same connection (to hold 8 x 32 = all 256 slots) cuts it, and
    an honest push still goes through."""
    dest = tmp_path / "dest"
    dest.mkdir()
    with SiteProcess("target", spawn=ECHO, connect={"test": str(hub.endpoint)}) as child:
        hub.wait_for("target", 20)
        child.call(hub, "zfs:register_receiver", channel="bounds", topic="slots",
                   dest_dir=str(dest))
        raw = Watched(raw_dealer(context, child.endpoint))
        try:
            greet(raw.sock, "slots0", "one")
            for index in range(40):
                raw.sock.send(_open(f"s0-{index}", "slots0/pusher"))
            answers = [decode(next_of(raw.sock, Kind.TELL).body) for _ in range(40)]
            accepted = [a for a in answers if isinstance(a, wire.Accepted)]
            assert len(accepted) == 32, answers
            for name in range(1, 8):
                raw.sock.send(hello(f"slots{name}"))
                for index in range(32):
                    raw.sock.send(_open(f"s{name}-{index}", f"slots{name}/pusher"))
            assert raw.dropped(20), "a second name on one connection was not cut"
        finally:
            raw.close()
        source = tmp_path / "honest.bin"
        source.write_bytes(b"h" * (3 * MiB + 5))
        push_file(hub, "target", source, channel="bounds", topic="slots", chunk_timeout=10)
        assert (dest / "honest.bin").read_bytes() == source.read_bytes()


# ---------------------------------------------------------------- item 7


@pytest.mark.timeout(90)
def test_payload_waiting_in_a_mailbox_is_bounded_per_peer_and_others_are_served(
        hub: actors.Site, context: zmq.Context, tmp_path: Path) -> None:
    """A peer telling a stuck actor 150 MiB has at most ``max_peer_waiting_bytes`` of it
    waiting: the rest is dropped, its asks fail with MailboxFull, another peer's
    payload still gets in, and once the actor moves the peer is served again."""
    gate = tmp_path / "gate"
    spawn = dict(ECHO, held="tests.support.echo:Held")
    with SiteProcess("target", spawn=spawn, connect={"test": str(hub.endpoint)},
                     options={"max_peer_waiting_bytes": 16 * MiB}) as child:
        hub.wait_for("target", 20)
        rss_before, _ = child.memory()
        raw = Watched(raw_dealer(context, child.endpoint))
        try:
            greet(raw.sock, "flood", "one")
            raw.sock.send(codec.encode(Kind.TELL, "held", "flood", 0, {"hold": str(gate)}))
            chunk = bytes(MiB)
            for index in range(150):
                raw.sock.send_multipart([codec.encode(Kind.TELL, "held", "flood", 0, index),
                                         chunk], copy=False)
            raw.sock.send_multipart([codec.encode(Kind.ASK, "held", "flood", 1, "one more"),
                                     chunk], copy=False)
            failure = next_of(raw.sock, Kind.FAIL, Kind.REPLY)
            assert failure.kind is Kind.FAIL and failure.body[0] == "MailboxFull", failure
            answer = hub.ask("target/echo", "mine", payload=[bytes(MiB)], timeout=10)
            assert answer["payload"] == [MiB]
            _, peak = child.memory()
            assert peak - rss_before < 48 * MiB, f"{(peak - rss_before) >> 20} MiB"
            gate.touch()
            wait_until(lambda: hub.ask("target/held", "count", timeout=10) >= 15 * MiB, 20)
            # The site counts what actors handled as no longer waiting a few times a
            # second, not at once: the peer is served again within that, not before.
            deadline, corr = time.monotonic() + 20, 2
            while (reply := _ask_raw(raw.sock, corr, chunk)).kind is not Kind.REPLY:
                assert reply.body[0] == "MailboxFull", reply
                assert time.monotonic() < deadline, "the peer was never served again"
                corr += 1
                time.sleep(0.05)  # polls the site's periodic settling, under a deadline
        finally:
            gate.touch()
            raw.close()


def _ask_raw(sock: zmq.Socket, corr: int, chunk: bytes) -> codec.Header:
    sock.send_multipart([codec.encode(Kind.ASK, "held", "flood", corr, "again"), chunk],
                        copy=False)
    return next_of(sock, Kind.FAIL, Kind.REPLY)


# ---------------------------------------------------------------- items 11 and 5 together


def _hello_flood(endpoint: str, stop: threading.Event) -> None:
    """Connections saying hello under new names, and one saying it 10,000 times."""
    context = zmq.Context()
    try:
        loud = raw_dealer(context, endpoint)
        loud.setsockopt(zmq.SNDHWM, 20_000)
        for index in range(10_000):
            loud.send(hello("loud"), zmq.NOBLOCK)
        index = 0
        while not stop.is_set():
            sock = raw_dealer(context, endpoint)
            sock.send(hello(f"flood{index}"))
            sock.poll(1000)
            sock.close(linger=0)
            index += 1
    finally:
        context.destroy(linger=0)


@pytest.mark.timeout(120)
def test_a_peer_that_does_not_read_is_cut_and_the_site_serves_everyone_through_it(
        hub: actors.Site, context: zmq.Context, tmp_path: Path) -> None:
    """A peer asks for 1,200 MiB and never reads, while other connections flood the
    site with hellos: what the site queues toward it stays within its bounds, it is
    cut once it has acknowledged nothing for ``stalled_peer_timeout``, and an honest
    ask and push work during and after."""
    options = {"stalled_peer_timeout": 2.0, "max_unacked_bytes": 8 * MiB,
               "max_peer_pending_bytes": 4 * MiB, "max_pending_bytes": 16 * MiB}
    spawn = dict(ECHO, blaster="tests.support.echo:Blaster")
    dest = tmp_path / "dest"
    dest.mkdir()
    with SiteProcess("target", spawn=spawn, connect={"test": str(hub.endpoint)},
                     options=options) as child:
        hub.wait_for("target", 20)
        child.call(hub, "zfs:register_receiver", channel="bounds", topic="slow",
                   dest_dir=str(dest))
        rss_before, _ = child.memory()
        slow_sock = raw_dealer(context, child.endpoint)
        slow_sock.setsockopt(zmq.RCVHWM, 1)
        slow = Watched(slow_sock)
        stop = threading.Event()
        flood = threading.Thread(target=_hello_flood, args=(child.endpoint, stop), daemon=True)
        try:
            greet(slow.sock, "slow", "one")
            slow.sock.send(codec.encode(Kind.TELL, "blaster", "slow", 0,
                                        {"blast": 1200, "size": MiB, "to": "slow/sink"}))
            flood.start()
            assert hub.ask("target/echo", "during", timeout=10)["got"] == "during"
            # It keeps its link up (it pings, as a site does) but reads nothing.
            deadline = time.monotonic() + 20
            while (state := child.call(hub, "tests.support.echo:peer_state", "slow"))[0] in (
                    "up", "congested"):
                assert time.monotonic() < deadline, "the peer that does not read was not cut"
                slow.sock.send(codec.encode(Kind.PING, sender="slow"))
                time.sleep(0.3)  # a ping every 0.3 s, as a site pings an idle link
            assert state[1].startswith("cut: not reading"), state
            assert hub.ask("target/echo", "cut", timeout=10)["got"] == "cut"
        finally:
            stop.set()
            flood.join(10)
            slow.close()
        _, peak = child.memory()
        # 8 MiB unacknowledged, 16 MiB of backlogs before every sender waits, 16 MiB
        # handed to the busy I/O thread and not yet read by it, and what malloc keeps of the 1,200 buffers freed (tune_malloc: up to 16 MiB an arena);
        # it was 1,200 MiB before the bound.
        assert peak - rss_before < 128 * MiB, f"{(peak - rss_before) >> 20} MiB"
        assert hub.ask("target/echo", "after", timeout=10)["got"] == "after"
        source = tmp_path / "after.bin"
        source.write_bytes(b"a" * (2 * MiB + 1))
        push_file(hub, "target", source, channel="bounds", topic="slow", chunk_timeout=10)
        assert (dest / "after.bin").read_bytes() == source.read_bytes()


# ---------------------------------------------------------------- item 12


@pytest.mark.timeout(90)
def test_hellos_again_on_a_curve_link_are_answered_and_another_name_is_cut(
        keys: Keys, context: zmq.Context, tmp_path: Path) -> None:
    """A trusted key says hello 10,000 times on its welcomed connection: each is
    welcomed, with no traceback and a bounded log; a hello under another trusted name
    on that connection cuts it; honest sites are served throughout."""
    log = tmp_path / "target.log"
    with SiteProcess("target", spawn=ECHO, extra_args=keys.args(), log_path=log,
                     log_level="INFO") as child:
        raw = Watched(raw_dealer(context, child.endpoint, curve=keys.raw()))
        try:
            greet(raw.sock, "raw", "one")
            for _ in range(10_000):
                raw.sock.send(hello("raw", "one"))
            welcomes = 0
            while welcomes < 10_000:
                welcomes += next_of(raw.sock, Kind.WELCOME).kind is Kind.WELCOME
            with keys.honest_site(child.endpoint) as honest:
                honest.wait_for("target", 20)
                assert honest.ask("target/echo", "honest?", timeout=10)["got"] == "honest?"
                raw.sock.send(hello("other", "one"))
                assert raw.dropped(20), "a hello under another name was not cut"
                assert honest.ask("target/echo", "still?", timeout=10)["got"] == "still?"
        finally:
            raw.close()
    lines = _lines(log)
    assert not [line for line in lines if "Traceback" in line], lines[:20]
    assert len(lines) < 100, f"{len(lines)} log lines"
