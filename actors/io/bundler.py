"""Small messages to one peer that wait at the same moment, sent as one BUNDLE.

The I/O thread takes what other threads queued (``actors.io.outbox``) a batch at a
time. In a burst of tells most of a batch is small messages for the same peer, and
each would cost a send here and, at the peer, a read, a decode and a trip through
its link code. A :class:`Bundler` gathers the small ones for each directly linked
peer and sends them as one BUNDLE (``actors.codec``); a message it does not take
(with payload, large, or for a peer reached through a relay) goes after what was
gathered for that peer, so each peer gets its messages in the order they were
queued. Nothing waits for company: whatever was gathered goes out before the I/O
thread polls again, and a lone message goes as itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from actors import codec
from actors.io.peers import Peers

#: A header this small or smaller may be bundled.
MAX_BUNDLED_HEADER = 2048
#: Header bytes in one bundle: it is itself a header, which a peer takes up to
#: ``codec.MAX_HEADER_SIZE``.
MAX_BUNDLE_BYTES = codec.MAX_HEADER_SIZE // 2


@dataclass(slots=True)
class _Gathered:
    """The headers gathered for one peer, and their bytes."""

    headers: list[bytes]
    size: int


class Bundler:
    """Gathers small messages per peer until :meth:`flush` (I/O thread only).

    Args:
        peers: the site's peer table, to tell a directly linked peer.
        send: ``send(peer, frames)``, the I/O thread's send (``Outbound.send``).
    """

    def __init__(self, peers: Peers, send: Callable[[str, Sequence[Any]], None]) -> None:
        self._peers = peers
        self._send = send
        self._gathered: dict[str, _Gathered] = {}

    def send(self, name: str, header: bytes, payload: Sequence[Any]) -> None:
        """Gather the message if it may be bundled; else send it, after what was
        gathered for ``name``."""
        if payload or len(header) > MAX_BUNDLED_HEADER or not self._linked(name):
            self.flush_peer(name)
            self._send(name, [header, *payload] if payload else [header])
            return
        gathered = self._gathered.get(name)
        if gathered is not None and gathered.size + len(header) > MAX_BUNDLE_BYTES:
            self.flush_peer(name)
            gathered = None
        if gathered is None:
            self._gathered[name] = _Gathered([header], len(header))
        else:
            gathered.headers.append(header)
            gathered.size += len(header)

    def flush_peer(self, name: str) -> None:
        """Send what was gathered for ``name``: one message alone, several as a bundle."""
        gathered = self._gathered.pop(name, None)
        if gathered is None:
            return
        headers = gathered.headers
        self._send(name, headers if len(headers) == 1 else [codec.encode_bundle(headers)])

    def flush(self) -> None:
        """Send everything gathered."""
        for name in list(self._gathered):
            self.flush_peer(name)

    def _linked(self, name: str) -> bool:
        """Whether ``name`` is a peer linked to us and up (only it takes a bundle as is:
        a relay carries single messages)."""
        peer = self._peers.get(name)
        return peer is not None and peer.up and peer.refused is None
