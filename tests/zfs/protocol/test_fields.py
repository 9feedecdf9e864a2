"""The field checks every decoder of the wire shares: no coercion, bounds kept."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.fields import MAX_INT, count, flag, text


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("check", "good"), [
    (count, 0), (count, MAX_INT), (text, ""), (text, "name"), (flag, True), (flag, False),
])
def test_a_value_of_the_right_type_comes_back_as_it_was(check: Callable[[Any], Any],
                                                        good: Any) -> None:
    assert check(good) is good


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("check", "bad"), [
    (count, -1), (count, MAX_INT + 1), (count, True), (count, "10"), (count, 1.0),
    (text, b"name"), (text, 7), (text, None), (flag, 1), (flag, "true"), (flag, None),
])
def test_a_value_of_another_type_or_out_of_range_is_refused(check: Callable[[Any], Any],
                                                            bad: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        check(bad)


@pytest.mark.timeout(10)
def test_text_may_be_bounded() -> None:
    assert text("x" * 8, 8) == "x" * 8
    with pytest.raises(RemoteProtocolError, match="9 characters, over 8"):
        text("x" * 9, 8)
