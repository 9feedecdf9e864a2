"""The route table: learned routes, withdrawals, loops, hop bounds, and forged origins."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.routes import MAX_HOPS, Announce, Reachable, Routes, Unreachable


def announcements(changes: list[Any]) -> dict[str, dict[str, int]]:
    return {c.peer: c.sites for c in changes if isinstance(c, Announce)}


def test_a_client_learns_its_fellow_clients_through_the_server() -> None:
    server = Routes("server")
    server.peer_up("c1")
    out = server.peer_up("c2")
    # the server tells each client of the other, never of itself or the client
    assert announcements(out) == {"c1": {"c2": 1}, "c2": {"c1": 1}}
    c1 = Routes("c1")
    c1.peer_up("server")
    out = c1.announced("server", {"c2": 1})
    assert Reachable("c2", "server", 2) in out and c1.via("c2") == "server"
    out = c1.announced("server", {})
    assert Unreachable("c2", "server withdrew its route") in out and c1.via("c2") is None


def test_losing_the_relay_makes_everything_behind_it_unreachable_naming_it() -> None:
    c1 = Routes("c1")
    c1.peer_up("server")
    c1.announced("server", {"c2": 1, "c3": 1})
    out = c1.peer_down("server", "connection lost")
    assert {c.site for c in out if isinstance(c, Unreachable)} == {"c2", "c3"}
    assert all("relay server lost" in c.reason for c in out if isinstance(c, Unreachable))


def test_what_is_learned_from_a_peer_is_never_announced_back_to_it() -> None:
    a = Routes("a")
    a.peer_up("b")
    a.peer_up("d")
    told = announcements(a.announced("b", {"c": 1}))
    assert told == {"d": {"b": 1, "c": 2}}    # b hears nothing new: c came from b


def test_a_direct_link_wins_over_a_route() -> None:
    a = Routes("a")
    a.peer_up("b")
    a.announced("b", {"c": 1})
    assert a.via("c") == "b"
    out = a.peer_up("c")
    assert a.via("c") is None and "c" not in a.routed()      # linked now
    assert not [c for c in out if isinstance(c, Unreachable)]


def test_hop_counts_past_the_bound_are_not_routes() -> None:
    a = Routes("a")
    a.peer_up("b")
    a.announced("b", {"far": MAX_HOPS, "near": MAX_HOPS - 1})
    assert a.via("far") is None and a.hops("near") == MAX_HOPS


def test_malformed_or_huge_announcements_are_bounded() -> None:
    a = Routes("a", max_sites=10)
    a.peer_up("b")
    assert a.announced("b", ["not", "a", "dict"]) == []
    a.announced("b", {f"s{i}": 1 + i % 2 for i in range(10_000)} | {"a": 1, 7: 1, "x": "1"})
    routed = a.routed()
    assert len(routed) <= 10 and "a" not in routed and "x" not in routed


def test_only_the_peer_on_the_route_vouches_for_an_origin() -> None:
    server = Routes("server")
    server.peer_up("c1")
    c3 = Routes("c3")
    c3.peer_up("server")
    c3.peer_up("c2")
    c3.announced("server", {"c1": 1})
    assert c3.vouches("server", "c1")
    assert not c3.vouches("c2", "c1")       # c2 does not lead to c1: a forged origin


def test_a_named_route_wins_while_its_peer_reaches_the_site() -> None:
    a = Routes("a")
    a.peer_up("b")
    a.peer_up("c")
    a.announced("b", {"x": 1})
    a.announced("c", {"x": 2})
    a.route_named("x", "c")
    assert a.via("x") == "c"                # the longer route, as the app asked
    a.announced("c", {})
    assert a.via("x") == "b"                # c reaches x no more: the learned route
    a.announced("b", {})
    assert a.via("x") is None               # a named route keeps no vanished site alive
    a.announced("c", {"x": 2})
    assert a.via("x") == "c"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12),
       st.integers(0, 5))
def test_a_network_of_tables_converges_without_loops(links: list[tuple[int, int]],
                                                     cut: int) -> None:
    """Sites exchange announcements until quiet: every route leads, hop by hop, to its
    site within MAX_HOPS; after a link is cut, the same holds again."""
    names = [f"s{i}" for i in range(6)]
    tables = {n: Routes(n) for n in names}
    edges = {tuple(sorted((names[a], names[b]))) for a, b in links if a != b}

    def settle(changes: dict[str, list[Any]]) -> None:
        for _ in range(200):
            pending = [(src, c) for src, cs in changes.items() for c in cs
                       if isinstance(c, Announce)]
            if not pending:
                return
            changes = {n: [] for n in names}
            for src, c in pending:
                changes[c.peer] += tables[c.peer].announced(src, c.sites)
        raise AssertionError("announcements never settle")

    def linked(x: str, y: str) -> bool:
        return tuple(sorted((x, y))) in edges

    def check() -> None:
        """Every route, followed hop by hop, reaches its site without a loop."""
        for n, table in tables.items():
            for site in table.routed():
                path = [n]
                while not linked(path[-1], site):
                    nxt = tables[path[-1]].via(site)
                    assert nxt is not None, f"{path[-1]} has no route to {site} ({path})"
                    assert nxt not in path, f"loop routing {site}: {path + [nxt]}"
                    path.append(nxt)
                assert len(path) <= MAX_HOPS

    start: dict[str, list[Any]] = {n: [] for n in names}
    for a, b in edges:
        start[a] += tables[a].peer_up(b)
        start[b] += tables[b].peer_up(a)
    settle(start)
    check()
    if edges:
        a, b = sorted(edges)[cut % len(edges)]
        settle({**{n: [] for n in names}, a: tables[a].peer_down(b, "cut"),
                b: tables[b].peer_down(a, "cut")})
        check()
