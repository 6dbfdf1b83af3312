"""The asyncio side of the receiver (NATS, the datashare table, buffer accounting) runs in
one event loop on a background thread, behind an anyio blocking portal; pynetdicom's
handlers are synchronous and run in each association's thread, so they call into the loop
through the portal."""

import asyncio
import concurrent.futures
import logging
from functools import partial
from typing import Any

from anyio.from_thread import BlockingPortal
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from edge_core import bus
from edge_core.events import _Envelope

log = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """NATS is not connected: refuse now rather than queue an event we cannot confirm."""


class Bus:
    """Publishing events from synchronous code, on one NATS connection shared by every
    association."""

    def __init__(
        self, portal: BlockingPortal, nc: Client, js: JetStreamContext, timeout: float
    ) -> None:
        self.portal, self.nc, self.js, self.timeout = portal, nc, js, timeout
        self._in_loop: set[asyncio.Task[PubAck]] = set()

    def ensure_connected(self) -> None:
        if not self.nc.is_connected:
            raise BusUnavailable("not connected to NATS")

    def publish(self, event: _Envelope) -> PubAck:
        """Publish and wait for JetStream's acknowledgement. Raises on any failure (the
        caller refuses the instance)."""
        self.ensure_connected()
        sent = self.portal.start_task_soon(partial(bus.publish, self.js, event, self.timeout))
        return sent.result(self.timeout + 1)

    def announce(self, event: _Envelope) -> None:
        """Publish without waiting (association and buffer events: informative, and an
        association must not stall on them); a failure is logged."""
        if not self.nc.is_connected:
            log.warning("NATS is down: %s event not published", event.type)
            return

        def done(future: "concurrent.futures.Future[Any] | asyncio.Future[Any]") -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning(
                    "could not publish %s: %s",
                    event.type,
                    future.exception(),
                )

        publish = partial(bus.publish, self.js, event, self.timeout)
        try:
            loop = asyncio.get_running_loop()  # the loop's own thread (the buffer watch)
        except RuntimeError:  # an association's thread: through the portal
            self.portal.start_task_soon(publish).add_done_callback(done)
            return
        task = loop.create_task(publish())
        self._in_loop.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._in_loop.discard)
        task.add_done_callback(done)
