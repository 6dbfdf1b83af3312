"""Wiring: settings, NATS, the buffer, the datashare table, the consumer loop; stops cleanly
on SIGTERM/SIGINT."""

import asyncio
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from edge_core.bus import close, connect_when_ready
from edge_core.datashare_table import DatashareTable
from edge_core.logs import configure_logging
from edge_core.objectstore import ObjectStore
from edge_core.tasks import cancel_and_wait
from edge_core.topology import VERSIONS_BUCKET
from edge_uploader.config import UploaderSettings
from edge_uploader.consumer import consume
from edge_uploader.deliver import Uploader
from edge_uploader.orphans import Reconciler, reconcile_forever
from edge_uploader.routing import Router
from edge_uploader.versions import Versions

log = logging.getLogger(__name__)


async def run(settings: UploaderSettings, stop: asyncio.Event) -> None:
    # Destination calls block (minio, httpx, pynetdicom) and run in threads: one per slot,
    # plus a few for the buffer.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(settings.uploader_concurrency + 4, thread_name_prefix="upload")
    )
    nc, js = await connect_when_ready(settings, "edge-uploader")
    table = DatashareTable()
    follow = asyncio.create_task(table.follow(js))
    background = [follow]
    router = Router(table, settings)
    try:
        buffer = ObjectStore.buffer(settings, timeout_s=settings.uploader_timeout_s)
        if settings.uploader_spool_dir is not None:
            settings.uploader_spool_dir.mkdir(parents=True, exist_ok=True)
        # Deliver nothing before the datashare table is known (or it looks as if every
        # datashare had been deleted); a stop request meanwhile is honoured.
        loaded, stopping = (asyncio.create_task(e.wait()) for e in (table.loaded, stop))
        await asyncio.wait({loaded, stopping}, return_when=asyncio.FIRST_COMPLETED)
        loaded.cancel()
        stopping.cancel()
        if stop.is_set():
            return
        log.info(
            "uploader started: %d in flight, default destination %s",
            settings.uploader_concurrency,
            settings.default_destination,
        )
        versions = Versions(await js.key_value(VERSIONS_BUCKET))
        uploader = Uploader(js, buffer, router, settings, versions)
        reconciler = Reconciler(
            js,
            buffer,
            settings.events_stream,
            grace_s=settings.uploader_orphan_grace_s,
            duplicate_window_s=settings.events_duplicate_window_s,
            max_age_s=settings.events_max_age_s,
            name=f"uploader-{socket.gethostname()}-{os.getpid()}",
        )
        background.append(
            asyncio.create_task(reconcile_forever(reconciler, settings.uploader_orphan_check_s))
        )
        await consume(
            js, settings.events_stream, settings.uploader_concurrency, uploader.handle, stop
        )
    finally:
        for task in background:
            await cancel_and_wait(task)
        await asyncio.to_thread(router.close)
        await close(nc)
        log.info("uploader stopped")


def main() -> None:
    os.umask(0o077)  # what it creates under var/ (spool files) is owner-only
    settings = UploaderSettings()
    configure_logging("uploader", settings.log_level, settings.log_format)
    if settings.uploader_nice:
        os.nice(settings.uploader_nice)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
