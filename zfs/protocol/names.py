"""The rule for file names that arrive from the network.

It lives in the pure core, so that cores can refuse a stream by its name without
touching the file system; :func:`zfs.files.check_name` raises with the same rule.
"""

from __future__ import annotations

from typing import Optional

MAX_NAME_BYTES = 255
#: The folder a receiving site keeps its files in progress in (``zfs.partials``): no
#: name from the network may take it.
PARTIAL_DIR = ".zfs-partial"
RESERVED_NAMES = frozenset({PARTIAL_DIR})
_SPECIAL = frozenset({".", ".."}) | RESERVED_NAMES
_BAD_ASCII = frozenset("/\\\0")


def name_problem(name: object) -> Optional[str]:
    """Return why ``name`` is not a plain file name, or None if it is one.

    A plain name is a non-empty str, not ``.`` or ``..``, without ``/``, ``\\`` or
    NUL, and at most 255 bytes in UTF-8: safe to join to a folder.
    """
    if type(name) is str and name.isascii() and 0 < len(name) <= MAX_NAME_BYTES \
            and name not in _SPECIAL and not _BAD_ASCII.intersection(name):
        return None                          # the common case, decided in C
    if not isinstance(name, str):
        return f"file name must be a str, not {type(name).__name__}"
    if name in ("", ".", ".."):
        return f"not a file name: {name!r}"
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved for files in progress"
    if "/" in name or "\\" in name or "\0" in name:
        return f"file name has a path part or NUL: {name!r}"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return f"file name is not valid UTF-8: {name!r}"
    if len(encoded) > MAX_NAME_BYTES:
        return f"file name longer than {MAX_NAME_BYTES} bytes"
    return None
