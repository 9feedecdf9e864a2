"""The actors a site hosts, by name, each with its count of payload bytes waiting.

The site owns one :class:`Registry`; an actor being spawned adds itself (so it is
known by name before its thread starts, and answers to what ``on_start`` sends find
it), the site removes what stopped. Reads come from any thread: each change is one
dict step, so none loses another's.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors.backlog import Backlog


class Registry:
    """Running actors by name, and each one's :class:`~actors.backlog.Backlog` by ref."""

    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        # By ref, not name: a name may be reused by a later actor.
        self._backlogs: dict[pykka.ActorRef[Any], Backlog] = {}

    def add(self, name: str, ref: pykka.ActorRef[Any], backlog: Backlog | None = None) -> None:
        """Know ``ref`` as ``name`` (with its backlog, for actors that count one)."""
        self._refs[name] = ref
        if backlog is not None:
            self._backlogs[ref] = backlog

    def remove(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """Forget ``name`` if it is still ``ref`` (a spawn that failed)."""
        if self._refs.get(name) is ref:
            del self._refs[name]
        self._backlogs.pop(ref, None)

    def get(self, name: str) -> pykka.ActorRef[Any] | None:
        """The running actor named ``name``, if any."""
        ref = self._refs.get(name)
        return ref if ref is not None and ref.is_alive() else None

    def backlog(self, ref: pykka.ActorRef[Any]) -> Backlog | None:
        """The backlog of ``ref``, if it counts one."""
        return self._backlogs.get(ref)

    def backlogs(self) -> dict[pykka.ActorRef[Any], Backlog]:
        """Every counted backlog, by ref (a copy)."""
        return dict(self._backlogs)

    def all(self) -> list[pykka.ActorRef[Any]]:
        """Every registered actor (running or not yet forgotten)."""
        return list(self._refs.values())

    def forget_stopped(self) -> None:
        """Drop stopped actors: a site that spawns one per transfer must not grow."""
        for name, ref in list(self._refs.items()):
            if not ref.is_alive():
                self._refs.pop(name, None)
        for ref in list(self._backlogs):
            if not ref.is_alive():
                self._backlogs.pop(ref, None)

    def clear(self) -> None:
        """Forget everything (the site stopped its actors)."""
        self._refs.clear()
        self._backlogs.clear()

    def __len__(self) -> int:
        return len(self._refs)
