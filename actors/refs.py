"""References to actors by address, the same for local and remote actors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.site import Site


def split_address(address: str) -> tuple[str, str]:
    """Split ``"site/actor"`` into its two names.

    Raises:
        ValueError: the address is not of that form.
    """
    site, sep, actor = address.partition("/") if isinstance(address, str) else ("", "", "")
    if not sep or not site or not actor or "/" in actor:
        raise ValueError(f"an address is 'site/actor', not {address!r}")
    return site, actor


class Ref:
    """Sends to the actor at an address, mirroring pykka's ``ActorRef`` calls."""

    __slots__ = ("_site", "address")

    def __init__(self, site: Site, address: str) -> None:
        split_address(address)
        self._site = site
        self.address = address

    def __repr__(self) -> str:
        return f"Ref({self.address!r})"

    def tell(self, message: Any, payload: Sequence[Any] = ()) -> None:
        """Send a message without waiting (see ``Site.tell``)."""
        self._site.tell(self.address, message, payload=payload)

    def ask(self, message: Any, *, timeout: float | None = None, block: bool = True,
            payload: Sequence[Any] = ()) -> Any:
        """Send a message and wait for the answer, or get a future (see ``Site.ask``)."""
        return self._site.ask(self.address, message, timeout=timeout, block=block,
                              payload=payload)
