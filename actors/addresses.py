"""Names and addresses: a site name, and ``"site/actor"`` split into its two names."""

from __future__ import annotations


def valid_site_name(name: object) -> bool:
    """Whether a site name is usable in addresses: no "/", not empty, not huge."""
    return isinstance(name, str) and 0 < len(name) <= 200 and "/" not in name and "\0" not in name


def split_address(address: str) -> tuple[str, str]:
    """Split ``"site/actor"`` into its two names.

    Raises:
        ValueError: the address is not of that form.
    """
    site, sep, actor = address.partition("/") if isinstance(address, str) else ("", "", "")
    if not sep or not site or not actor or "/" in actor:
        raise ValueError(f"an address is 'site/actor', not {address!r}")
    return site, actor
