"""The waiting policy: every failure is retried (and said), a stop request ends the wait."""

import asyncio
import logging

import pytest

from edge_core.retrying import until_ready
from edge_testing.servers import eventually

log = logging.getLogger(__name__)


def test_a_blocking_call_is_retried_until_it_works_saying_why(caplog):
    failures = [ConnectionRefusedError("refused"), TimeoutError("slow")] * 5

    def connect() -> str:
        if failures:
            raise failures.pop()
        return "connected"

    assert until_ready("the store", log, interval_s=0.001)(connect)() == "connected"
    waits = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == 10 and waits[0] == "waiting for the store: slow"


async def test_a_coroutine_is_retried_and_a_cancellation_ends_the_wait():
    attempts = 0

    async def never() -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("down")

    waiting = asyncio.create_task(until_ready("NATS", log, interval_s=0.01)(never)())
    await eventually(lambda: attempts >= 3, 10, "three attempts")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
