"""What a push reads from: a file by its path, or any readable binary stream.

A path is opened as a :class:`~zfs.files.ChunkSource` (size known, read by offset,
checked for changes at the end); a stream (a pipe) has no size in advance and ends
at its first short read, and it needs an explicit name.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Optional, Tuple, Union

from zfs.errors import SourceMissing
from zfs.files import ChunkSource, check_name

Source = Union[str, "os.PathLike[str]", BinaryIO]


def open_source(source: Source, name: Optional[str]
                ) -> Tuple[str, Union[ChunkSource, BinaryIO], Optional[int]]:
    """Check the name and open the source: (name, source to read, size or None)."""
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(source):
            raise SourceMissing(f"{os.fspath(source)!r} is a folder: push it with push_tree")
        name = check_name(name if name is not None else os.path.basename(os.fspath(source)))
        chunks = ChunkSource(source)
        return name, chunks, chunks.size
    if isinstance(source, io.IOBase) or hasattr(source, "readinto"):
        if name is None:
            raise ValueError("a stream source needs a name")
        return check_name(name), source, None
    raise SourceMissing(f"not a path or a readable stream: {source!r}")


def read_stream(stream: BinaryIO, length: int) -> memoryview:
    """Read up to ``length`` bytes into a fresh buffer (fewer only at the end)."""
    buf = bytearray(length)
    view = memoryview(buf)
    got = 0
    while got < length:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return view[:got]
