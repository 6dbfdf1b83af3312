"""How long the fuzz tests run: a few examples in `make test`, many in `make faults`
(``EDGE_FUZZ_EXAMPLES``). No example database: each run starts afresh, and a failure is
reported with the example that caused it."""

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "40"))


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
