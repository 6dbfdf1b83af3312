"""Fixtures for tests that cross services."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_testing.stack import Stack, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The whole stack, started the way `make run` does."""
    s = start_stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()
        print(s.log()[-20000:])
