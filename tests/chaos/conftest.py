"""The chaos target, started once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.target import ChaosTarget


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosTarget]:
    with ChaosTarget() as target:
        yield target
