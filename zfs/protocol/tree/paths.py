"""The rules for relative paths and link targets that arrive from the network.

A tree's entries are named by relative paths: plain names (:func:`name_problem`) joined
by ``/``, never absolute, never ``..``. A symbolic link travels as its target text, and
only a target that cannot lead out of the tree is accepted: relative, any ``..`` only
at its start and no more of them than the link has folders above it inside the tree.
Why that is enough: every folder of a tree a receiver builds is a real folder it made,
so climbing the leading ``..`` stays inside; the rest only descends, and a link met on
the way down obeys the same rule, so by induction no resolution leaves the tree.
"""

from __future__ import annotations

from typing import Optional

from zfs.protocol.names import name_problem

#: The longest relative path accepted, in UTF-8 bytes (Linux's PATH_MAX less the room
#: the destination folder needs).
MAX_PATH_BYTES = 3072
#: The deepest path accepted, in folders.
MAX_DEPTH = 128


def path_problem(path: object) -> Optional[str]:
    """Return why ``path`` is not a safe relative path inside a tree, or None if it is one."""
    if not isinstance(path, str) or not path:
        return f"not a relative path: {path!r}"[:200]
    if not path.isascii():
        try:
            encoded = len(path.encode("utf-8"))
        except UnicodeEncodeError:
            return f"path is not valid UTF-8: {path!r}"[:200]
    else:
        encoded = len(path)
    if encoded > MAX_PATH_BYTES:
        return f"path longer than {MAX_PATH_BYTES} bytes"
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        return f"path deeper than {MAX_DEPTH} folders"
    for part in parts:
        problem = name_problem(part)
        if problem is not None:
            return f"{problem} (in {path!r})"[:300]
    return None


def parent_of(path: str) -> str:
    """The folder of ``path`` in the tree ("" for the root)."""
    return path.rpartition("/")[0]


def link_problem(path: str, target: object) -> Optional[str]:
    """Return why the link at ``path`` may not point at ``target``, or None if it may.

    ``path`` is the link's own (already checked) relative path.
    """
    if not isinstance(target, str) or not target:
        return f"link {path!r} has no target"
    if "\0" in target or "\\" in target:
        return f"link {path!r} has a target with NUL or backslash"
    if target.startswith("/"):
        return f"link {path!r} points outside the tree (absolute target {target!r})"[:300]
    try:
        if len(target.encode("utf-8")) > MAX_PATH_BYTES:
            return f"link {path!r} has a target longer than {MAX_PATH_BYTES} bytes"
    except UnicodeEncodeError:
        return f"link {path!r} has a target that is not valid UTF-8"
    parts = target.split("/")
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    if climbs > path.count("/"):
        return f"link {path!r} points outside the tree ({target!r})"[:300]
    rest = parts[climbs:]
    if not rest:
        return None                          # a folder above the link, inside the tree
    for part in rest:
        if part == "..":
            return f"link {path!r} climbs after descending ({target!r})"[:300]
        problem = name_problem(part)
        if problem is not None:
            return f"link {path!r}: {problem}"[:300]
    return None
