"""How long the fuzz tests run: a few examples in `make test`, many in `make faults`
(``EDGE_FUZZ_EXAMPLES``). No example database: each run starts afresh, and a failure is
reported with the example that caused it. Every example tried is counted (:func:`counted`)
and the total printed at the end of the run (``plugin.py``)."""

import functools
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "25"))
# Per fuzz test: examples tried, and seconds spent in them.
TRIED: Counter[str] = Counter()
SECONDS: dict[str, float] = {}


def fuzz_settings(share: float = 1.0) -> settings:
    """Hypothesis settings for a fuzz test: ``share`` of ``EDGE_FUZZ_EXAMPLES`` examples
    (slow properties, such as one over a socket, take fewer), no deadline (a shared
    machine is slow at times), and fixtures shared between examples on purpose."""
    return settings(
        max_examples=max(1, int(FUZZ_EXAMPLES * share)),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def counted(test: Callable[..., Any]) -> Callable[..., Any]:
    """Counts each example ``test`` is run with (put it under ``@given``)."""

    name = f"{test.__module__}.{test.__qualname__}"

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return test(*args, **kwargs)
        finally:
            TRIED[name] += 1
            SECONDS[name] = SECONDS.get(name, 0.0) + time.monotonic() - started

    return run


def summary() -> str | None:
    if not TRIED:
        return None
    return (
        f"{sum(TRIED.values())} hostile inputs in {sum(SECONDS.values()):.0f} s "
        f"({len(TRIED)} properties; EDGE_FUZZ_EXAMPLES={FUZZ_EXAMPLES})"
    )
