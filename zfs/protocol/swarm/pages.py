"""The recipient's copy of the owner's per-chunk digest table, fetched a page at a time.

A piece from a peer is checked against its chunk's digest before it is written, so the
fetch of a chunk from a peer waits until that chunk's page is here. :class:`Pages`
keeps the pages that arrived, the pages asked for (to ask again when one is lost), and
the fetches waiting on them (at most a window's worth: the owner hands out no more).
A page is ``page_chunks`` digests, so the table costs a recipient a few tens of bytes
per chunk, whatever the number of peers.
"""

from __future__ import annotations

from typing import Callable, Optional

from zfs.protocol.swarm.wire import Digests, Fetch


class Pages:
    """The digest pages of one download, and the fetches waiting for them."""

    def __init__(self, page_chunks: int, total: int) -> None:
        self.page_chunks, self.total = page_chunks, total
        self._digests: dict[int, tuple[str, ...]] = {}
        self._asked: dict[int, float] = {}          # page -> when we last asked for it
        self._waiting: dict[int, Fetch] = {}        # chunk -> its fetch, waiting

    def digest(self, index: int) -> Optional[str]:
        """Return chunk ``index``'s digest if its page is here."""
        page = self._digests.get(index // self.page_chunks)
        return None if page is None else page[index % self.page_chunks]

    def waiting(self, index: int) -> bool:
        """True while a fetch of chunk ``index`` waits for its page."""
        return index in self._waiting

    def wait(self, fetch: Fetch, now: float) -> Optional[int]:
        """Park ``fetch`` until its page arrives; return the page to ask for, if not asked."""
        self._waiting[fetch.index] = fetch
        page = fetch.index // self.page_chunks
        if page in self._asked:
            return None
        self._asked[page] = now
        return page

    def arrived(self, msg: Digests) -> Optional[list[Fetch]]:
        """Take a page; return the fetches it frees, [] if unasked, None if malformed."""
        page = msg.page
        if type(page) is not int or page not in self._asked:
            return []                                # not asked for, or a repeat
        count = min(self.page_chunks, self.total - page * self.page_chunks)
        if not isinstance(msg.digests, tuple) or len(msg.digests) != count \
                or not all(isinstance(d, str) for d in msg.digests):
            return None
        del self._asked[page]
        self._digests[page] = msg.digests
        freed = [i for i in self._waiting if i // self.page_chunks == page]
        return [self._waiting.pop(i) for i in freed]

    def overdue(self, now: float, timeout: float) -> list[int]:
        """Return the pages asked for ``timeout`` ago and not here: to ask again."""
        late = [page for page, asked in self._asked.items() if now - asked >= timeout]
        for page in late:
            self._asked[page] = now
        return late

    def give_back(self, match: Callable[[str], bool]) -> list[Fetch]:
        """Drop and return the waiting fetches whose peer ``match`` takes."""
        dropped = [i for i, f in self._waiting.items() if match(f.peer)]
        return [self._waiting.pop(i) for i in dropped]

    def clear(self) -> None:
        """Forget every waiting fetch (the owner will hand them out again)."""
        self._waiting.clear()
