"""Wiring: NATS and the datashare table in a background event loop, the buffer, the quota,
and the hardened pynetdicom server with its handlers."""

import asyncio
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from nats.aio.client import Client
from pynetdicom import _config, evt

from edge_core import bus
from edge_core.datashare_table import DatashareTable
from edge_core.events import BufferUsage, BufferUsageEvent
from edge_core.logs import configure_logging
from edge_core.objectstore import ObjectStore
from edge_core.retrying import until_ready
from edge_receiver.associations import (
    AssociationDeps,
    Sessions,
    handle_aborted,
    handle_association_end,
    handle_connection_closed,
    handle_established,
    handle_rejected,
    handle_released,
    handle_requested,
)
from edge_receiver.bridge import Bus, LoopThread
from edge_receiver.config import ReceiverSettings
from edge_receiver.quota import BufferQuota, default_quota, watch_buffer
from edge_receiver.server import EdgeServer, make_ae, start_server
from edge_receiver.spool import guard_association, release_spools
from edge_receiver.store import StoreDeps, handle_store
from edge_receiver.versions import open_digests

log = logging.getLogger(__name__)


@dataclass
class Receiver:
    server: EdgeServer
    loop: LoopThread
    nc: Client
    tasks: list["asyncio.Task[None]"]  # held: the loop keeps only weak references

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let running associations finish (up to ``grace_s``), disconnect."""
        self.server.shutdown()
        deadline = time.monotonic() + grace_s
        while self.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in self.server.active_associations:
            assoc.abort()

        async def close() -> None:
            await bus.close(self.nc)
            # Ours and the NATS client's helpers (e.g. the KV watcher's), so none is left
            # pending when the loop stops.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            self.loop.call(close(), timeout=10)
        except Exception as exc:
            log.warning("closing NATS: %s", exc)
        self.loop.stop()


def start(settings: ReceiverSettings) -> Receiver:
    """Start the receiver; returns once it is listening with the datashare table loaded."""
    name = f"receiver-{socket.gethostname()}-{os.getpid()}"
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    # pynetdicom spools incoming datasets with NamedTemporaryFile: put them on our disk,
    # not in /tmp (often a RAM-backed tmpfs).
    tempfile.tempdir = str(settings.spool_dir)
    _config.STORE_RECV_CHUNKED_DATASET = True

    store = ObjectStore.buffer(settings)
    until_ready(f"the buffer bucket {store.bucket}", log)(store.ensure_bucket)

    loop = LoopThread()
    nc, js = loop.call(bus.connect_when_ready(settings, name), timeout=None)
    bus_ = Bus(loop, nc, js, settings.receiver_publish_timeout_s)
    digests = loop.call(open_digests(js, settings.events_replicas), timeout=30)

    table = DatashareTable()

    def announce_usage(usage: BufferUsage) -> None:
        bus_.announce(BufferUsageEvent(data=usage))

    quota = BufferQuota(
        settings.buffer_quota_bytes or default_quota(settings.data_dir), announce_usage
    )

    async def background() -> list["asyncio.Task[None]"]:
        tasks = [
            asyncio.create_task(table.follow(js)),
            asyncio.create_task(
                watch_buffer(
                    quota,
                    store,
                    settings.buffer_usage_interval_s,
                    announce_usage,
                    settings.spool_dir,
                    spool_stale_s=2 * settings.receiver_network_timeout_s,
                )
            ),
        ]
        await asyncio.wait_for(table.loaded.wait(), timeout=60)
        return tasks

    tasks = loop.call(background(), timeout=90)

    sessions: Sessions = weakref.WeakKeyDictionary()
    assoc_deps = AssociationDeps(
        table,
        bus_,
        sessions,
        settings.receiver_ae_title,
        name,
        max_associations=settings.receiver_max_associations,
    )
    store_deps = StoreDeps(store, bus_, loop, digests, quota, sessions)
    handlers: list[tuple[Any, Callable[..., Any], list[Any]]] = [
        (evt.EVT_REQUESTED, guard_association, [quota, settings.receiver_max_tiny_pdvs]),
        (evt.EVT_REQUESTED, handle_requested, [assoc_deps]),
        (evt.EVT_REJECTED, handle_rejected, [assoc_deps]),
        (evt.EVT_ESTABLISHED, handle_established, [assoc_deps]),
        (evt.EVT_RELEASED, handle_released, [assoc_deps]),
        (evt.EVT_ABORTED, handle_aborted, [assoc_deps]),
        (evt.EVT_CONN_CLOSE, handle_connection_closed, [assoc_deps]),
        (evt.EVT_CONN_CLOSE, release_spools, []),
        (evt.EVT_C_STORE, handle_store, [store_deps]),
    ]
    server = start_server(
        make_ae(settings), settings, handlers, partial(handle_association_end, deps=assoc_deps)
    )
    log.info(
        "receiver listening on %s:%d (quota %d bytes, %d datashares)",
        settings.receiver_host,
        server.server_address[1],
        quota.quota_bytes,
        len(table.all()),
    )
    return Receiver(server, loop, nc, tasks)


def main() -> None:
    os.umask(0o077)  # what it creates under var/ (spooled datasets) is owner-only
    settings = ReceiverSettings()
    configure_logging("receiver", settings.log_level, settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver = start(settings)
    stop.wait()
    log.info("stopping")
    receiver.stop()
    sys.exit(0)
