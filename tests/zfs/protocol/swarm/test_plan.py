"""The plan of a swarm push: stripes over complete trees, inner slots spread over targets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm.plan import children, depth, plan, shape, split


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), fanout=st.integers(1, 5))
def test_every_tree_holds_every_target_once_and_each_uploads_about_one_copy(
        n: int, fanout: int) -> None:
    targets = [f"t{i}" for i in range(n)]
    layout = plan(targets, fanout)
    assert layout.stripes == fanout and len(layout.roots) == fanout
    for tree in layout.trees:
        assert sorted(tree) == sorted(targets)
    uploads = layout.uploads()
    assert sum(uploads.values()) == fanout * (n - 1)
    inner = sum(1 for c in shape(n, fanout) if c)
    if fanout * inner <= n:          # room for every target to be inner once at most
        assert max(uploads.values()) <= fanout      # fanout children of 1/fanout each
    else:                            # a few targets are inner twice, never more
        assert max(uploads.values()) <= 2 * fanout


@settings(max_examples=200, deadline=None)
@given(count=st.integers(0, 2000), fanout=st.integers(1, 6))
def test_a_split_keeps_every_member_and_at_most_one_inner_node_is_short(
        count: int, fanout: int) -> None:
    parts = split(count, fanout)
    assert sum(parts) == count and len(parts) <= fanout
    counts = shape(count + 1, fanout)
    assert len(counts) == count + 1
    assert sum(1 for c in counts if 0 < c < fanout) <= 1     # a complete tree


def test_children_head_the_parts_of_the_rest_in_preorder() -> None:
    assert children(list("abcdefgh"), 2) == [("b", "c", "d", "e"), ("f", "g", "h")]
    assert children(["a"], 3) == []
    assert children(list("abc"), 1) == [("b", "c")]


@pytest.mark.parametrize("n,fanout,hops", [(1, 2, 1), (8, 1, 8), (8, 2, 4), (10_000, 2, 14),
                                           (10_000, 3, 10)])
def test_depth_grows_with_the_log_of_the_targets(n: int, fanout: int, hops: int) -> None:
    assert depth(n, fanout) == hops
    assert plan([f"t{i}" for i in range(n)], fanout).depth == hops


def test_fanout_one_is_a_chain_in_the_callers_order() -> None:
    layout = plan(["a", "b", "c"], 1)
    assert layout.trees == (("a", "b", "c"),)


def test_the_library_chooses_a_chain_for_a_few_targets_and_binary_trees_past_that() -> None:
    assert plan([f"t{i}" for i in range(8)]).fanout == 1
    assert plan([f"t{i}" for i in range(9)]).fanout == 2


@pytest.mark.parametrize("targets,fanout", [([], 2), (["a", "a"], 2), (["a"], -1)])
def test_a_bad_plan_is_our_callers_mistake(targets: list[str], fanout: int) -> None:
    with pytest.raises(LocalProtocolError):
        plan(targets, fanout)
