"""CURVE between sites: keys in files, an allow-list, one name per key, plain peers kept out."""

from __future__ import annotations

import logging
import os
import selectors
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from click.testing import CliRunner
from zmq.utils.monitor import recv_monitor_message

import actors
from actors import codec
from actors.codec import Kind
from actors.security import (Curve, InsecureKeyFile, load_public_key,
                             load_secret_key, new_keypair)
from tests.support.echo import Collector, Echo
from tests.support.procs import SiteProcess, wait_until

FAST: dict[str, Any] = {"heartbeat_interval": 0.5, "heartbeat_timeout": 2.0}


def ep(site: actors.Site) -> str:
    """The endpoint a started, bound site listens on."""
    assert site.endpoint is not None
    return site.endpoint


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A folder with keypairs for test, alpha, beta, gamma and mallory; allow lists apart."""
    folder = tmp_path / "keys"
    for name in ("test", "alpha", "beta", "gamma", "mallory"):
        new_keypair(name, folder)
    return folder


def allow_dir(tmp_path: Path, keys: Path, owner: str, *names: str) -> Path:
    """An allow folder for ``owner`` trusting the public keys of ``names``."""
    folder = tmp_path / f"allow-{owner}"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    return folder


def curve(tmp_path: Path, keys: Path, owner: str, *trusted: str, **kwargs: Any) -> Curve:
    return Curve.from_dirs(owner, keys, allow_dir(tmp_path, keys, owner, *trusted), **kwargs)


# -- keys on disk ------------------------------------------------------------------------


def test_new_keypair_writes_an_owner_only_secret_whatever_the_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        public_path, secret_path = new_keypair("alpha", tmp_path / "k")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    public, secret = load_secret_key(secret_path)
    assert load_public_key(public_path) == public == zmq.curve_public(secret)
    # The files are what pyzmq's own certificate loader reads.
    assert zmq.auth.load_certificate(str(secret_path)) == (public, secret)
    with pytest.raises(FileExistsError):
        new_keypair("alpha", tmp_path / "k")
    assert new_keypair("alpha", tmp_path / "k", force=True)
    assert load_public_key(public_path) != public


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secret_key_others_can_read_is_refused_clearly(keys: Path, mode: int) -> None:
    secret_path = keys / "alpha.key_secret"
    secret_path.chmod(mode)
    with pytest.raises(InsecureKeyFile, match=f"mode {mode:04o}.*chmod 600"):
        load_secret_key(secret_path)
    with pytest.raises(InsecureKeyFile):
        Curve.from_dirs("alpha", keys)


def test_a_malformed_or_mismatched_secret_key_is_refused(keys: Path) -> None:
    secret_path = keys / "alpha.key_secret"
    other = (keys / "beta.key").read_text()
    mixed = [line if "public-key" not in line else other.splitlines()[-1]
             for line in secret_path.read_text().splitlines()]
    secret_path.write_text("\n".join(mixed))
    with pytest.raises(InsecureKeyFile, match="does not belong"):
        load_secret_key(secret_path)
    secret_path.write_text('curve\n    secret-key = "short"\n')
    with pytest.raises(InsecureKeyFile, match="malformed"):
        load_secret_key(secret_path)


def test_one_key_cannot_be_registered_for_two_sites(keys: Path) -> None:
    public, secret = load_secret_key(keys / "test.key_secret")
    key = load_public_key(keys / "alpha.key")
    with pytest.raises(ValueError, match="already registered for 'alpha'"):
        Curve("test", public, secret, {"alpha": key, "beta": key})


def test_keys_cli_new_show_trust_list(tmp_path: Path) -> None:
    from zfs.cli.main import main
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "new", "alpha", "--dir", str(tmp_path / "a")])
    assert made.exit_code == 0, made.output
    public = load_public_key(tmp_path / "a" / "alpha.key").decode()
    assert public in made.output and "secret-key" not in made.output
    again = runner.invoke(main, ["keys", "new", "alpha", "--dir", str(tmp_path / "a")])
    assert again.exit_code != 0 and "exists" in again.output
    shown = runner.invoke(main, ["keys", "show", "alpha", "--dir", str(tmp_path / "a")])
    assert shown.output.strip() == public
    trusted = runner.invoke(main, ["keys", "trust", str(tmp_path / "a" / "alpha.key"),
                                   "--allow", str(tmp_path / "allow")])
    assert trusted.exit_code == 0, trusted.output
    listed = runner.invoke(main, ["keys", "list", "--allow", str(tmp_path / "allow")])
    assert listed.output.split() == ["alpha", public]
    (tmp_path / "a" / "alpha.key_secret").chmod(0o644)
    refused = runner.invoke(main, ["keys", "show", "alpha", "--dir", str(tmp_path / "a")])
    assert refused.exit_code != 0 and "chmod 600" in refused.output


# -- sites -------------------------------------------------------------------------------


class SecureSiteProcess(SiteProcess):
    """A ``python -m actors`` child whose Site gets a Curve from ``keys_dir``/``allow``."""

    CHILD = ("import functools, sys\n"
             "import actors.__main__ as m\n"
             "from actors.security import Curve\n"
             "keys, allow, *rest = sys.argv[1:]\n"
             "curve = Curve.from_dirs(m.parse_args(rest).name, keys, allow)\n"
             "m.Site = functools.partial(m.Site, curve=curve)\n"
             "sys.exit(m.main(rest))\n")

    def __init__(self, name: str, keys_dir: Path, allow: Path, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        assert self._argv[1:3] == ["-m", "actors"]
        self._argv[1:3] = ["-c", self.CHILD, str(keys_dir), str(allow)]


class Relay:
    """A TCP relay that records every byte it carries, to see what is on the wire."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("tcp://").rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self.seen = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        pairs: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            for key, _ in selector.select(0.05):
                sock: Any = key.fileobj
                if sock is self._listener:
                    inside, _addr = self._listener.accept()
                    outside = socket.create_connection(self._upstream)
                    pairs[inside], pairs[outside] = outside, inside
                    selector.register(inside, selectors.EVENT_READ)
                    selector.register(outside, selectors.EVENT_READ)
                    continue
                data = sock.recv(1 << 16) if sock in pairs else b""
                if data:
                    self.seen += data
                    pairs[sock].sendall(data)
                elif sock in pairs:
                    other = pairs.pop(sock)
                    pairs.pop(other, None)
                    for end in (sock, other):
                        selector.unregister(end)
                        end.close()
        for sock in pairs:
            sock.close()
        self._listener.close()
        selector.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def secure(tmp_path: Path, keys: Path) -> Iterator[actors.Site]:
    """A CURVE site "test" trusting alpha, beta, gamma and mallory, with a collector."""
    with actors.Site("test", bind="tcp://127.0.0.1:0", **FAST,
                     curve=curve(tmp_path, keys, "test", "alpha", "beta", "gamma",
                                 "mallory", handshake_timeout=1.0)) as site:
        site.spawn(Collector, "collector")
        site.spawn(Echo, "echo")
        yield site


def _marker() -> bytes:
    return os.urandom(16) * 4096  # 64 KiB that cannot appear on the wire by chance


@pytest.mark.timeout(60)
def test_sites_in_two_processes_exchange_asks_encrypted(secure: actors.Site, tmp_path: Path,
                                                        keys: Path) -> None:
    relay = Relay(ep(secure))
    try:
        with SecureSiteProcess("beta", keys, allow_dir(tmp_path, keys, "beta", "test"),
                               connect={"test": relay.endpoint},
                               spawn={"echo": "tests.support.echo:Echo"}) as beta:
            secure.wait_for("beta", 15)
            there, back = _marker(), _marker()[:16384]  # back rides inside a ctl header
            answer = secure.ask("beta/echo", "over curve", payload=[there], timeout=10)
            assert answer == {"got": "over curve", "sender": "test", "payload": [len(there)]}
            reply = beta.call(secure, "actors.site:Site.ask", "test/echo", "and back",
                              payload=[back])
            assert reply["got"] == "and back" and reply["payload"] == [len(back)]
            assert reply["sender"].split("/")[0] == "beta"
            assert secure.is_secure
        assert len(relay.seen) > len(there) + len(back)  # both payloads crossed the relay...
        assert there[:64] not in relay.seen and back[:64] not in relay.seen  # ...encrypted
        assert b"over curve" not in relay.seen and b"and back" not in relay.seen
    finally:
        relay.close()


def test_the_relay_would_see_a_plain_link(site: actors.Site) -> None:
    """The control for the test above: without CURVE the payload is visible on the wire."""
    site.spawn(Echo, "echo")
    relay = Relay(ep(site))
    try:
        with actors.Site("alpha", connect={"test": relay.endpoint}, **FAST) as alpha:
            marker = _marker()
            alpha.ask("test/echo", "plain", payload=[marker], timeout=10)
            assert not alpha.is_secure
        assert marker[:64] in relay.seen
    finally:
        relay.close()


def _monitored_dealer(context: zmq.Context, endpoint: str,
                      keypair: tuple[bytes, bytes] | None,
                      server_key: bytes | None) -> tuple[zmq.Socket, zmq.Socket]:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keypair is not None and server_key is not None:
        sock.curve_publickey, sock.curve_secretkey = keypair
        sock.curve_serverkey = server_key
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    return sock, monitor


def _wait_event(monitor: zmq.Socket, wanted: int, timeout: float = 10.0) -> Any:
    monitor.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    while True:
        event = recv_monitor_message(monitor)  # raises zmq.Again after the timeout
        if event["event"] & wanted:
            return event


def test_an_unknown_key_is_refused_logged_and_nothing_it_sends_is_processed(
        secure: actors.Site, tmp_path: Path, keys: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="actors.security")
    context = zmq.Context()
    try:
        stranger, monitor = _monitored_dealer(context, ep(secure), zmq.curve_keypair(),
                                              load_public_key(keys / "test.key"))
        stranger.send(codec.encode(Kind.HELLO, body=["alpha", "1"]))
        stranger.send(codec.encode(Kind.TELL, "collector", "alpha", 0, "from a stranger"))
        _wait_event(monitor, zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        with actors.Site("alpha", connect={"test": ep(secure)}, **FAST,
                         curve=curve(tmp_path, keys, "alpha", "test")) as alpha:
            alpha.tell("test/collector", "from alpha")
            records = wait_until(lambda: secure.ask("test/collector", "dump", timeout=5), 10)
        assert [r["body"] for r in records] == ["from alpha"]
        assert "unknown key" in caplog.text
        monitor.close(linger=0)
    finally:
        context.destroy(linger=0)


def test_a_trusted_key_claiming_another_sites_name_is_refused(secure: actors.Site,
                                                              tmp_path: Path,
                                                              keys: Path) -> None:
    mallory_key = load_secret_key(keys / "mallory.key_secret")
    trusts_test = {"test": load_public_key(keys / "test.key")}
    pose = Curve("alpha", *mallory_key, trusts_test)
    with actors.Site("alpha", connect={"test": ep(secure)}, **FAST, curve=pose) as fake:
        with pytest.raises(actors.PeerRefused, match="belongs to site 'mallory'"):
            fake.wait_for("test", 10)
        with pytest.raises(actors.PeerRefused):
            fake.tell("test/collector", "as alpha")
    with actors.Site("mallory", connect={"test": ep(secure)}, **FAST,
                     curve=Curve("mallory", *mallory_key, trusts_test)) as honest:
        honest.wait_for("test", 10)
        honest.tell("test/collector", "as mallory")
        records = wait_until(lambda: secure.ask("test/collector", "dump", timeout=5), 10)
    assert [(r["body"], r["sender"]) for r in records] == [("as mallory", "mallory")]
    assert "alpha" not in secure.peers()


def test_a_dealer_only_talks_to_the_key_it_expects(secure: actors.Site, tmp_path: Path,
                                                   keys: Path) -> None:
    """gamma is trusted, but listening where we expect beta: the handshake fails."""
    with actors.Site("gamma", bind="tcp://127.0.0.1:0", **FAST,
                     curve=curve(tmp_path, keys, "gamma", "test")) as gamma:
        gamma.spawn(Collector, "collector")
        secure.connect("beta", ep(gamma))
        with pytest.raises(actors.WaitTimeout):
            secure.wait_for("beta", 1.5)
        assert gamma.peers() == []


def test_a_site_without_the_peers_key_refuses_to_connect(secure: actors.Site,
                                                         tmp_path: Path, keys: Path) -> None:
    with pytest.raises(actors.UnknownSite, match="no public key for 'delta'"):
        secure.connect("delta", "tcp://127.0.0.1:9")
    site = actors.Site("alpha", connect={"delta": "tcp://127.0.0.1:9"},
                       curve=curve(tmp_path, keys, "alpha", "test"))
    with pytest.raises(actors.SiteClosed, match="no public key"):
        site.start()


def test_a_plain_site_gets_nowhere_while_the_curve_site_serves_others(
        secure: actors.Site, tmp_path: Path, keys: Path) -> None:
    context = zmq.Context()
    try:
        plain, monitor = _monitored_dealer(context, ep(secure), None, None)
        plain.send(codec.encode(Kind.HELLO, body=["alpha", "1"]))
        plain.send(codec.encode(Kind.TELL, "collector", "alpha", 0, "in the clear"))
        _wait_event(monitor, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_DISCONNECTED)
        monitor.close(linger=0)
    finally:
        context.destroy(linger=0)
    with actors.Site("beta", connect={"test": ep(secure)}, **FAST) as plain_site:
        with actors.Site("alpha", connect={"test": ep(secure)}, **FAST,
                         curve=curve(tmp_path, keys, "alpha", "test")) as alpha:
            assert alpha.ask("test/echo", "served", timeout=10)["got"] == "served"
            alpha.tell("test/collector", "from alpha")
            with pytest.raises(actors.PeerRefused, match="requires keys"):
                plain_site.wait_for("test", 5.0)
            records = wait_until(lambda: secure.ask("test/collector", "dump", timeout=5), 10)
            assert "beta" not in secure.peers()
    assert [r["body"] for r in records] == ["from alpha"]


def test_a_connection_that_never_finishes_the_handshake_is_dropped(
        secure: actors.Site) -> None:
    host, port = ep(secure).removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as silent:
        received = b""
        while chunk := silent.recv(4096):  # the server's greeting, then EOF
            received += chunk
    assert received  # it did speak first, and then hung up on us within handshake_timeout


def test_a_curve_serves_one_running_site_and_a_router_needs_zap(keys: Path) -> None:
    one = Curve.from_dirs("test", keys)
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    try:
        with pytest.raises(RuntimeError, match="must run before"):
            one.configure(router, server=True)
        one.start(context)
        with pytest.raises(RuntimeError, match="already serves"):
            one.start(context)
        one.configure(router, server=True)
        assert router.getsockopt(zmq.MECHANISM) == zmq.CURVE
    finally:
        one.stop()
        router.close(linger=0)
        context.term()


def test_a_site_whose_key_is_not_trusted_is_told_so(secure: actors.Site, tmp_path: Path,
                                                    keys: Path) -> None:
    new_keypair("zed", keys)
    outsider = Curve("zed", *load_secret_key(keys / "zed.key_secret"),
                     {"test": load_public_key(keys / "test.key")})
    with actors.Site("zed", connect={"test": ep(secure)}, **FAST, curve=outsider) as zed:
        with pytest.raises(actors.PeerRefused, match="does not trust"):
            zed.wait_for("test", 10)
    assert "zed" not in secure.peers()
