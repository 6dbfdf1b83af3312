"""Connecting to NATS and publishing events with JetStream acknowledgement."""

import asyncio
import logging
import ssl
from contextlib import suppress
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from edge_core.events import _Envelope
from edge_core.retrying import until_ready
from edge_core.settings import EdgeSettings
from edge_core.topology import ensure_topology

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
        settings.nats_servers(),
        **credentials(settings),
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


def credentials(settings: EdgeSettings) -> dict[str, Any]:
    """The options of ``nats.connect`` that say who we are (none: anonymous) and which TLS
    certificates to trust."""
    options: dict[str, Any] = {}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_creds_file is not None:
        options["user_credentials"] = str(settings.nats_creds_file)
    if settings.nats_tls_ca_file is not None:
        options["tls"] = ssl.create_default_context(cafile=settings.nats_tls_ca_file)
    return options


async def publish(js: JetStreamContext, event: _Envelope, timeout: float = 10.0) -> PubAck:
    """Publish and wait for JetStream to store it. The event id is the message id, so a
    retry after a lost acknowledgement is dropped as a duplicate, not stored twice."""
    return await js.publish(
        event.subject, event.to_bytes(), timeout=timeout, headers={"Nats-Msg-Id": event.id}
    )


async def connect_when_ready(settings: EdgeSettings, name: str) -> tuple[Client, JetStreamContext]:
    """Connect and declare the topology, waiting (and saying so) until NATS is there: a
    service started before NATS, or while it restarts, waits instead of failing."""

    async def attempt() -> tuple[Client, JetStreamContext]:
        nc, js = await connect(settings, name)
        try:
            await ensure_topology(js, settings)
        except Exception:
            await close(nc)
            raise
        return nc, js

    return await until_ready(f"NATS at {settings.nats_url}", log)(attempt)()


async def close(nc: Client, drain_s: float = 5.0) -> None:
    """Flush what was published and disconnect, within ``drain_s`` (a stopping service must
    not wait for long; 0 when every publish already waited for its ack); if NATS is gone,
    just disconnect."""
    if nc.is_connected and drain_s > 0:
        with suppress(Exception):
            await asyncio.wait_for(nc.drain(), drain_s)
    with suppress(Exception):
        await nc.close()
