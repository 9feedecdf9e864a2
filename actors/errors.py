"""Errors of the actor runtime, each named for the caller's next move.

zmq and msgpack errors never leave this package: the site and the codec catch them
and raise one of these instead (``raise ... from err``), so callers never import zmq.
"""

from __future__ import annotations


class ActorsError(Exception):
    """Root of every error the runtime raises."""


class SiteClosed(ActorsError):
    """The local site was stopped (by us); nothing more can be sent through it."""


class PeerLost(ActorsError):
    """The peer site died, stopped, or became unreachable."""


class PeerRefused(ActorsError):
    """The peer refused our hello (protocol version, name already connected, key)."""


class UnknownSite(ActorsError, LookupError):
    """No site of that name is connected or configured."""


class UnknownActor(ActorsError, LookupError):
    """The site has no live actor of that name."""


class AskTimeout(ActorsError, TimeoutError):
    """No answer to an ask arrived within its timeout."""


class WaitTimeout(ActorsError, TimeoutError):
    """A peer did not connect within the time we were willing to wait."""


class MessageTooLarge(ActorsError, ValueError):
    """A message or its payload is over the site's maximum message size."""


class MailboxFull(ActorsError):
    """The receiving site holds too much of our payload not yet handled: slow down
    (send bulk with a window of acks) and try again later."""


class CodecError(ActorsError):
    """Bytes that do not decode to a valid message, or a value that cannot be encoded."""


class VersionMismatch(CodecError):
    """A peer speaks another protocol version.

    Attributes:
        version: the version the peer's header gave.
        kind, body: the header's kind number and body, undecoded further: a REFUSE
            keeps its kind in every version, so its reason can still be read.
    """

    def __init__(self, version: object, kind: object = None, body: object = None) -> None:
        super().__init__(f"peer speaks protocol version {version!r}")
        self.version = version
        self.kind = kind
        self.body = body


class ActorError(ActorsError):
    """The actor raised an exception while answering an ask.

    Attributes:
        kind: the type name of the actor's exception (``"ValueError"``).
        text: its message.
        address: the actor that raised it.
    """

    def __init__(self, kind: str, text: str, address: str = "") -> None:
        where = f" at {address}" if address else ""
        super().__init__(f"{kind}{where}: {text}")
        self.kind = kind
        self.text = text
        self.address = address


#: The runtime's own FAIL replies name one of these, so the asker raises the same class.
_BY_NAME: dict[str, type[ActorsError]] = {
    cls.__name__: cls
    for cls in (SiteClosed, PeerLost, PeerRefused, UnknownSite, UnknownActor,
                AskTimeout, MessageTooLarge, MailboxFull, CodecError)
}


def error_from_wire(kind: str, text: str, address: str) -> ActorsError:
    """Rebuild the runtime error a FAIL reply names (an unknown name: an ActorError)."""
    runtime_class = _BY_NAME.get(kind)
    if runtime_class is not None:
        return runtime_class(text)
    return ActorError(kind, text, address)
