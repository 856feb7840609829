"""The fuzz suite's modules get pytest's assertion rewriting (their asserts explain themselves)."""

import pytest

pytest.register_assert_rewrite("tests.fuzz.targets", "tests.fuzz.bounds", "tests.fuzz.rig")
