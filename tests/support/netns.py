"""Hosts in Linux network namespaces, joined by veth pairs to a bridge, for fault tests.

A :class:`Network` makes one "hub" namespace holding a bridge, and one namespace per
host, whose ``eth0`` is a veth pair's end; the other end sits in the hub, on the
bridge. Every interface and address lives inside namespaces this module made: the
host's own namespace is never touched (no interface, route or address added there).
Hosts get ``10.231.<net>.<n>/24``, ``<net>`` chosen per network so two runs do not
clash. :meth:`Network.link_down` takes a host's wire down (its veth end in the hub),
as pulling a cable would; :meth:`Network.link_up` puts it back.

Sites inside a namespace run as ``ip netns exec NS python -m actors ...``
(:class:`NamespacedSite`). They reach each other over the bridge by TCP, and the
test's own site (outside every namespace) over a Unix socket (``ipc://``), which
network namespaces do not separate.

Everything is removed by :meth:`Network.close` (the context manager calls it, on
failure too); namespaces left by a run that was killed are removed by the next one
(:func:`remove_stale`). :func:`unavailable` says why namespaces cannot be made here
(not root, no ``ip``), for ``pytest.skip``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Optional

from tests.support.procs import SiteProcess

log = logging.getLogger(__name__)

PREFIX = "zfstest"          # every namespace we make is named zfstest-<pid>-<tag>-...
SUBNET = "10.231"
_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS`` and return its output.

    Raises:
        NetnsError: it exited non-zero (when ``check``).
    """
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unavailable() -> Optional[str]:
    """Why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) on this machine"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}-{os.getpid()}-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as err:
        return f"cannot create a network namespace: {err}"
    ip("netns", "del", probe, check=False)
    return None


def _our_namespaces() -> list[str]:
    names = [line.split()[0] for line in ip("netns", "list", check=False).splitlines()
             if line.strip()]
    return [name for name in names if name.startswith(PREFIX + "-")]


def remove_stale() -> list[str]:
    """Delete namespaces of ours whose creating process is gone; return their names."""
    removed = []
    for name in _our_namespaces():
        pid = name.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Host:
    """One namespace on the network: its name there, its address, its wire in the hub."""

    name: str
    netns: str
    address: str
    wire: str            # the veth end in the hub namespace, on the bridge

    def bind(self) -> str:
        """The endpoint a site in this namespace binds (an OS-chosen port)."""
        return f"tcp://{self.address}:0"


class Network:
    """A bridge in a hub namespace and hosts in namespaces of their own; see the module doc."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.prefix = f"{PREFIX}-{os.getpid()}-{tag}"
        self.net = int(tag, 16) % 200 + 20        # 10.231.20.0/24 .. 10.231.219.0/24
        self.hub = f"{self.prefix}-hub"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []

    def __enter__(self) -> Network:
        try:
            self._add_namespace(self.hub)
            ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            ip("-n", self.hub, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """Make a namespace for ``name``, wire it to the bridge, give it an address."""
        number = len(self.hosts) + 1
        netns, wire = f"{self.prefix}-h{number}", f"w{number}"
        address = f"{SUBNET}.{self.net}.{number}"
        self._add_namespace(netns)
        # Both ends are made inside the hub and one is moved straight into the host's
        # namespace: no interface ever appears in the namespace this process runs in.
        ip("-n", self.hub, "link", "add", wire, "type", "veth", "peer", "name", "eth0",
           "netns", netns)
        ip("-n", self.hub, "link", "set", wire, "master", "br0")
        ip("-n", self.hub, "link", "set", wire, "up")
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        host = Host(name, netns, address, wire)
        self.hosts[name] = host
        return host

    def link_down(self, name: str) -> None:
        """Take host ``name``'s wire down: its packets go nowhere until :meth:`link_up`."""
        ip("-n", self.hub, "link", "set", self.hosts[name].wire, "down")

    def link_up(self, name: str) -> None:
        """Put host ``name``'s wire back on the bridge."""
        ip("-n", self.hub, "link", "set", self.hosts[name].wire, "up")

    def close(self) -> None:
        """Delete every namespace made here (their veths and the bridge go with them)."""
        for name in reversed(self._made):
            try:
                ip("netns", "del", name, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                log.warning("could not delete namespace %s: %s", name, err)
        self._made.clear()
        self.hosts.clear()

    def namespaces(self) -> list[str]:
        """Names of the namespaces of this network that exist now (for checks)."""
        return [name for name in _our_namespaces() if name.startswith(self.prefix + "-")]


class NamespacedSite(SiteProcess):
    """A :class:`SiteProcess` that runs inside ``host``'s namespace, bound to its address.

    Args:
        host: where it runs.
        connect: peers, ``{name: endpoint}`` (``ipc://`` for the test's own site).
    """

    def __init__(self, host: Host, name: str, connect: Mapping[str, str] | None = None,
                 log_level: str = "WARNING") -> None:
        super().__init__(name, connect=connect, bind=host.bind(), log_level=log_level)
        self.host = host
        # `ip netns exec` execs the command in place: the child's pid is python's own,
        # so kill() still signals the site itself.
        self._argv = ["ip", "netns", "exec", host.netns, *self._argv]
