"""A site's settings, with the defaults a long-running site wants."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class SiteOptions:
    """Tunable limits and timers of a site (durations in seconds, sizes in bytes).

    Attributes:
        heartbeat_interval: how often an idle link is pinged.
        heartbeat_timeout: silence after which a peer is declared lost.
        max_message_size: the largest frame a peer may send (ZMQ_MAXMSGSIZE) and the
            largest total payload we send in one message.
        max_payload_frames: payload frames allowed in one message (at most 255).
        hwm: ZeroMQ high-water mark, in messages, of every socket; also the small
            messages (under 4 KiB) senders may have queued for the I/O thread (0: no
            bound, as in ZeroMQ).
        max_pending_bytes: outbound bytes the I/O thread holds for slow peers before it
            stops taking new messages, so senders wait instead of memory growing; also
            the bytes of larger messages senders may have queued for it.
        max_peer_pending_bytes: outbound bytes held for one peer past which senders to
            that peer (only) wait.
        max_unacked_bytes: bytes handed to ZeroMQ for one peer that its host has not
            acknowledged (TCP); more wait in the site's backlog (``actors.io.outflow``).
        max_site_unacked_bytes: the same for all peers together.
        stalled_peer_timeout: a peer whose host acknowledges nothing for this long while
            bytes wait for it is cut, and what was queued for it dropped.
        max_arriving_bytes: bytes of incomplete messages all connections together may
            hold; past it the connection holding most is cut (``actors.io.intake``).
        max_peers: peers the site keeps in its table; a peer that is down and that we
            do not dial makes room for a new name.
        max_peer_waiting_bytes: payload bytes from one peer delivered to actors and not
            yet handled; past it that peer's payload messages are refused (an ask
            fails with ``MailboxFull``, a tell is dropped). See ``actors.backlog``.
        max_waiting_bytes: the same for all peers together.
        backlog_warning: payload bytes from peers waiting unhandled in one actor's
            mailbox above which the site logs a warning.
        linger: how long closing sockets may take to flush (BYE, last replies).
        default_ask_timeout: the timeout of an ask that names none.
        hello_timeout: a peer that connected must say hello within this, or is dropped.
        curve: security settings (see ``actors.security``); None for plain links.
        relay: forward messages between peers that are not linked to each other, and
            announce to each peer the sites reachable through this one
            (``actors.io.relay``); False: this site neither relays nor announces.
        max_routes: sites reachable through relays that the site keeps in its table
            (and the most one peer's announcement may name).
        keep_buffers: let glibc keep freed payload buffers (up to 8 MiB each, 16 MiB per
            arena) for reuse instead of returning them to the kernel and faulting them in
            again (``actors.process.keep_chunk_buffers``): a process-wide malloc setting,
            made once a site starts; False leaves the process's allocator alone.
    """

    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 6.0
    max_message_size: int = 64 << 20
    max_payload_frames: int = 16
    hwm: int = 1000
    max_pending_bytes: int = 64 << 20
    max_peer_pending_bytes: int = 16 << 20
    max_unacked_bytes: int = 32 << 20
    max_site_unacked_bytes: int = 256 << 20
    stalled_peer_timeout: float = 15.0
    max_arriving_bytes: int = 256 << 20
    max_peers: int = 1024
    max_peer_waiting_bytes: int = 256 << 20
    max_waiting_bytes: int = 1 << 30
    backlog_warning: int = 256 << 20
    linger: float = 0.5
    default_ask_timeout: float = 30.0
    hello_timeout: float = 10.0
    curve: Any = None
    relay: bool = True
    max_routes: int = 1024
    keep_buffers: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval < self.heartbeat_timeout < math.inf:  # nan too
            raise ValueError("heartbeat_interval and heartbeat_timeout must be positive, "
                             "finite, and the interval shorter than the timeout; got "
                             f"{self.heartbeat_interval!r} and {self.heartbeat_timeout!r}")
        for name in ("backlog_warning", "max_pending_bytes", "max_peer_pending_bytes",
                     "max_unacked_bytes", "max_site_unacked_bytes", "max_arriving_bytes",
                     "max_peers", "max_peer_waiting_bytes", "max_waiting_bytes",
                     "max_message_size", "max_routes"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be positive (an int), not {value!r}")
        if not 0 < self.stalled_peer_timeout < math.inf:
            raise ValueError("stalled_peer_timeout must be positive and finite, not "
                             f"{self.stalled_peer_timeout!r}")
        if not 0 <= self.max_payload_frames <= 255:  # a message is a few frames, not thousands
            raise ValueError(f"max_payload_frames must be 0..255, not {self.max_payload_frames}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SiteOptions:
        """Build options from keyword arguments, refusing unknown names clearly."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown site options: {', '.join(unknown)}")
        return cls(**kwargs)
