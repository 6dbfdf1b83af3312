"""Wiring: database (migrated at start), REST API, outbox relay to NATS; ``edge-registry``."""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from edge_core.destination_policy import DestinationPolicy
from edge_core.logs import configure_logging
from edge_core.sitekey import SiteKey, SiteKeyError
from edge_core.tasks import cancel_and_wait
from edge_registry.api import create_app
from edge_registry.config import RegistrySettings
from edge_registry.db import open_database
from edge_registry.outbox import OutboxRelay

log = logging.getLogger(__name__)


def build_app(settings: RegistrySettings) -> FastAPI:
    """The registry as one ASGI app: the relay runs for as long as the app does."""
    engine, sessions = open_database(settings.sqlalchemy_url())
    relay = OutboxRelay(engine, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(relay.run())
        try:
            yield
        finally:
            await cancel_and_wait(task)
            engine.dispose()

    return create_app(
        sessions,
        settings.api_tokens,
        on_commit=relay.notify,
        lifespan=lifespan,
        max_body_bytes=settings.api_max_body_bytes,
        destinations=DestinationPolicy.of(settings),
        site_key=SiteKey.of(settings, create=True),
    )


def main() -> None:
    os.umask(0o077)  # what it creates under var/ (database, site key) is owner-only
    settings = RegistrySettings()
    configure_logging("registry", settings.log_level, settings.log_format)
    if not settings.api_tokens:
        log.error("EDGE_API_TOKEN is not set: every API call would be refused; set a token")
        sys.exit(2)
    try:
        app = build_app(settings)
    except SiteKeyError as exc:
        log.error("%s", exc)
        sys.exit(2)
    log.info("registry on %s:%s", settings.registry_host, settings.registry_port)
    # uvicorn stops gracefully on SIGTERM/SIGINT (the lifespan stops the relay), then
    # re-raises the signal to the handler that was there before; with these no-ops that is
    # the end of it, and the process exits 0 as every Edge service does.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        app,
        host=settings.registry_host,
        port=settings.registry_port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
