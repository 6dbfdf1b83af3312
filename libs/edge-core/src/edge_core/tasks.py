"""Stopping a background task for sure."""

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: "asyncio.Task[Any]", every_s: float = 1.0) -> None:
    """Cancel ``task`` and wait until it has ended; its own error, if any, is raised.

    One ``cancel()`` can be lost on Python 3.11: ``asyncio.wait_for`` (nats-py's fetches and
    requests use it) returns its inner result instead of raising when the cancellation
    races with that result arriving (CPython gh-86296, fixed in 3.12), and a loop around
    the fetch then runs on for ever. So cancel again until the task ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)
    with contextlib.suppress(asyncio.CancelledError):
        await task
