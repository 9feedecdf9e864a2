"""References to actors by address, the same for local and remote actors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pykka

from actors.addresses import split_address
from actors.errors import WaitTimeout


class Sender(Protocol):
    """What a reference sends through (an ``actors.Site``)."""

    def tell(self, address: str, message: Any, payload: Sequence[Any] = ()) -> None: ...

    def ask(self, address: str, message: Any, *, timeout: float | None = None,
            block: bool = True, payload: Sequence[Any] = ()) -> Any: ...


class Ref:
    """Sends to the actor at an address, mirroring pykka's ``ActorRef`` calls.

    Its errors are the runtime's (``actors.errors``), local and remote alike.
    """

    __slots__ = ("_site", "address")

    def __init__(self, site: Sender, address: str) -> None:
        split_address(address)
        self._site = site
        self.address = address

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    def tell(self, message: Any, payload: Sequence[Any] = ()) -> None:
        """Send a message without waiting (see ``Site.tell``)."""
        self._site.tell(self.address, message, payload=payload)

    def ask(self, message: Any, *, timeout: float | None = None, block: bool = True,
            payload: Sequence[Any] = ()) -> Any:
        """Send a message and wait for the answer, or get a future (see ``Site.ask``)."""
        return self._site.ask(self.address, message, timeout=timeout, block=block,
                              payload=payload)


class LocalRef(Ref):
    """A reference to an actor of this process's site, as ``Site.spawn`` returns it.

    Messages to it skip the sockets (they need not be msgpack values); it can also say
    whether the actor runs and stop it. Two refs to the same actor compare equal.
    """

    __slots__ = ("actor_ref",)

    def __init__(self, site: Sender, address: str, actor_ref: pykka.ActorRef[Any]) -> None:
        super().__init__(site, address)
        #: The pykka ref underneath, for pykka's own calls (``proxy()``, watching).
        self.actor_ref = actor_ref

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalRef) and other.actor_ref is self.actor_ref

    def __hash__(self) -> int:
        return hash(self.actor_ref)

    def is_alive(self) -> bool:
        """Whether the actor is running."""
        return self.actor_ref.is_alive()

    def stop(self, block: bool = True, timeout: float | None = None) -> None:
        """Stop the actor once it has handled what is already in its mailbox.

        Waits for it to stop when ``block`` (at most ``timeout`` seconds); stopping an
        actor that already stopped does nothing.

        Raises:
            WaitTimeout: it did not stop within ``timeout`` (it stops later).
        """
        try:
            self.actor_ref.stop(block=block, timeout=timeout)
        except pykka.Timeout:
            raise WaitTimeout(f"{self.address} did not stop within {timeout} s") from None
