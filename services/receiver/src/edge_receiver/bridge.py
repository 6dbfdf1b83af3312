"""The asyncio side of the receiver (NATS, the datashare table, buffer accounting) runs in
one event loop on a background thread; pynetdicom's handlers are synchronous and run in
each association's thread, so they call into the loop through this bridge."""

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from edge_core import bus
from edge_core.events import _Envelope

log = logging.getLogger(__name__)

T = TypeVar("T")


class BusUnavailable(Exception):
    """NATS is not connected: refuse now rather than queue an event we cannot confirm."""


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="edge-loop", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class Bus:
    """Publishing events from synchronous code, on one NATS connection shared by every
    association."""

    def __init__(self, loop: LoopThread, nc: Client, js: JetStreamContext, timeout: float) -> None:
        self.loop, self.nc, self.js, self.timeout = loop, nc, js, timeout

    def ensure_connected(self) -> None:
        if not self.nc.is_connected:
            raise BusUnavailable("not connected to NATS")

    def publish(self, event: _Envelope) -> PubAck:
        """Publish and wait for JetStream's acknowledgement. Raises on any failure (the
        caller refuses the instance)."""
        self.ensure_connected()
        return self.loop.call(bus.publish(self.js, event, timeout=self.timeout), self.timeout + 1)

    def announce(self, event: _Envelope) -> None:
        """Publish without waiting (association and buffer events: informative, and an
        association must not stall on them); a failure is logged."""
        if not self.nc.is_connected:
            log.warning("NATS is down: %s event not published", event.type)
            return

        def done(future: concurrent.futures.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning(
                    "could not publish %s: %s",
                    event.type,
                    future.exception(),
                )

        self.loop.submit(bus.publish(self.js, event, timeout=self.timeout)).add_done_callback(done)
