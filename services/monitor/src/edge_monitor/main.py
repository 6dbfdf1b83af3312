"""``edge-monitor``: serve the status API, dashboard and metrics while folding events;
``edge-monitor rebuild``: replay the event stream into fresh projections."""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from edge_core.bus import close, connect_when_ready, publish
from edge_core.logs import configure_logging
from edge_core.tasks import cancel_and_wait
from edge_monitor import db
from edge_monitor.api import Monitor, create_app
from edge_monitor.backlog import watch_backlog
from edge_monitor.config import MonitorSettings
from edge_monitor.consumer import consume
from edge_monitor.rebuild import rebuild

log = logging.getLogger(__name__)


async def follow_events(
    settings: MonitorSettings, monitor: Monitor, writer: sessionmaker[Session]
) -> None:
    """Connect to NATS (waiting for it if needed), then fold events and watch the backlog."""
    nc, js = await connect_when_ready(settings, "edge-monitor")
    monitor.publish = lambda event: publish(js, event)
    try:
        await asyncio.gather(
            consume(js, settings, writer, settings.monitor_batch_size),
            watch_backlog(
                js, settings.events_stream, monitor.backlog, settings.monitor_backlog_poll_s
            ),
        )
    finally:
        monitor.publish = None
        await close(nc, drain_s=0)  # its only publishes wait for their acks


def build_app(settings: MonitorSettings) -> FastAPI:
    """The monitor as one ASGI app: events are folded for as long as the app runs."""
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)
    monitor = Monitor(settings, db.reader(engine))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        events = asyncio.create_task(follow_events(settings, monitor, db.writer(engine)))
        try:
            yield
        finally:
            await cancel_and_wait(events)
            engine.dispose()
            log.info("monitor stopped")

    return create_app(monitor, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="edge-monitor", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "rebuild"], default="serve")
    args = parser.parse_args(argv)
    os.umask(0o077)  # what it creates under var/ (its database) is owner-only
    settings = MonitorSettings()
    configure_logging("monitor", settings.log_level, settings.log_format)
    if args.command == "rebuild":
        asyncio.run(rebuild(settings))
        return
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was in place before it: make that one a no-op so that a requested stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    app = build_app(settings)
    log.info("monitor listening on %s:%d", settings.monitor_host, settings.monitor_port)
    uvicorn.run(
        app,
        host=settings.monitor_host,
        port=settings.monitor_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
