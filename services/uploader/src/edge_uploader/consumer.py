"""The pull loop on the shared durable consumer: every uploader process fetches only as many
messages as it has free slots, so any number of them share the work."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from edge_core.topology import UPLOADER_CONSUMER

log = logging.getLogger(__name__)

# How long one fetch waits for messages (and so how quickly a stop request is noticed).
FETCH_WAIT_S = 1.0
# On stop, how long deliveries under way may take to finish before they are abandoned (their
# messages are then redelivered, to this or another uploader).
DRAIN_S = 30.0


async def consume(
    js: JetStreamContext,
    stream: str,
    concurrency: int,
    handle: Callable[[list[Msg]], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    sub = await js.pull_subscribe_bind(durable=UPLOADER_CONSUMER, stream=stream)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    def done(taken: int, task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        for _ in range(taken):
            slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery batch failed", exc_info=task.exception())

    try:
        while not stop.is_set():
            await slots.acquire()
            taken = 1
            while taken < concurrency and not slots.locked():
                await slots.acquire()
                taken += 1
            msgs: list[Msg] = []
            try:
                msgs = await sub.fetch(batch=taken, timeout=FETCH_WAIT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                pass
            except Exception as exc:  # NATS away: the client reconnects by itself
                log.warning("fetch failed: %r", exc)
                await asyncio.sleep(FETCH_WAIT_S)
            for _ in range(taken - len(msgs)):
                slots.release()
            if msgs:
                task = asyncio.create_task(handle(msgs))
                tasks.add(task)
                task.add_done_callback(partial(done, len(msgs)))
    finally:
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
        await sub.unsubscribe()
