"""Connecting to NATS and publishing events with JetStream acknowledgement."""

import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from edge_core.events import _Envelope
from edge_core.settings import EdgeSettings

log = logging.getLogger(__name__)


async def connect(settings: EdgeSettings, name: str) -> tuple[Client, JetStreamContext]:
    """Connect, retrying for ever in the background if NATS goes away later."""

    client: list[Client] = []

    async def on_disconnect() -> None:
        if client and (client[0].is_closed or client[0].is_draining):
            return  # our own shutdown
        log.warning("disconnected from NATS at %s", settings.nats_url)

    async def on_reconnect() -> None:
        log.info("reconnected to NATS")

    async def on_error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    nc = await nats.connect(
        settings.nats_url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
    client.append(nc)
    return nc, nc.jetstream(timeout=10)


async def publish(js: JetStreamContext, event: _Envelope, timeout: float = 10.0) -> PubAck:
    """Publish and wait for JetStream to store it. The event id is the message id, so a
    retry after a lost acknowledgement is dropped as a duplicate, not stored twice."""
    return await js.publish(
        event.subject, event.to_bytes(), timeout=timeout, headers={"Nats-Msg-Id": event.id}
    )
