"""Helpers the tests share: sites in child processes, fault fixtures, small actors."""

import pytest

# The helpers assert too: let pytest show the compared values when they fail.
pytest.register_assert_rewrite("tests.support.faults", "tests.support.procs")
