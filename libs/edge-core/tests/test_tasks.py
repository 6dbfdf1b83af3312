"""cancel_and_wait ends a task even when a cancellation is lost on the way."""

import asyncio

import pytest

from edge_core.tasks import cancel_and_wait


async def test_a_task_that_loses_one_cancellation_still_ends():
    lost = 0

    async def loop_like_a_consumer() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if lost:  # the second one is honoured
                    raise
                lost += 1  # what Python 3.11's wait_for does in a race: carry on

    task = asyncio.create_task(loop_like_a_consumer())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(cancel_and_wait(task, every_s=0.1), timeout=10)
    assert task.cancelled() and lost == 1


async def test_the_tasks_own_error_is_raised():
    async def fails() -> None:
        raise RuntimeError("broken")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="broken"):
        await cancel_and_wait(task)
