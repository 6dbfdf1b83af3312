"""Wiring: NATS and the datashare table in a background event loop (an anyio blocking
portal), the buffer, the quota, and the hardened pynetdicom server with its handlers; one
``ExitStack`` holds what was started, so that stopping undoes it in reverse."""

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
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
from edge_receiver.bridge import Bus
from edge_receiver.config import ReceiverSettings
from edge_receiver.heartbeat import heartbeat, receiver_name
from edge_receiver.quota import BufferQuota, default_quota, watch_buffer
from edge_receiver.server import EdgeServer, make_ae, start_server
from edge_receiver.spool import guard_association, release_spools
from edge_receiver.store import StoreDeps, handle_store
from edge_receiver.versions import open_digests

log = logging.getLogger(__name__)


@dataclass
class Receiver:
    server: EdgeServer
    nc: Client
    # What start() set up before the server (NATS, the event loop), undone in reverse.
    started: ExitStack

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
        self.started.close()


def _close_nats(portal: BlockingPortal, nc: Client) -> None:
    try:
        portal.start_task_soon(bus.close, nc).result(timeout=10)
    except Exception as exc:
        log.warning("closing NATS: %s", exc)


def _spool_on_disk(spool_dir: Path) -> None:
    """pynetdicom spools incoming datasets (chunked, so memory stays bounded) with
    NamedTemporaryFile: put them on our disk, not in /tmp (often a RAM-backed tmpfs)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(spool_dir)
    # pynetdicom's documented configuration module (it has no other way to set this).
    _config.STORE_RECV_CHUNKED_DATASET = True


def _watch_buffer(
    portal: BlockingPortal, store: ObjectStore, settings: ReceiverSettings, publisher: Bus
) -> BufferQuota:
    """The buffer quota, kept true by listing the buffer in the background."""

    def announce_usage(usage: BufferUsage) -> None:
        publisher.announce(BufferUsageEvent(data=usage))

    quota = BufferQuota(
        settings.buffer_quota_bytes or default_quota(settings.data_dir), announce_usage
    )
    watch = partial(
        watch_buffer,
        quota,
        store,
        settings.buffer_usage_interval_s,
        announce_usage,
        settings.spool_dir,
        spool_stale_s=2 * settings.receiver_network_timeout_s,
    )
    _background(portal, watch)
    return quota


def _background(portal: BlockingPortal, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` in the event loop until the receiver stops; say so if it ends early."""

    def ended(task: Future[None]) -> None:
        if not task.cancelled():
            log.error("background task %s ended: %r", run, task.exception())

    portal.start_task_soon(run).add_done_callback(ended)


def _handlers(
    quota: BufferQuota,
    settings: ReceiverSettings,
    associations: AssociationDeps,
    stores: StoreDeps,
) -> list[tuple[Any, Callable[..., Any], list[Any]]]:
    return [
        (evt.EVT_REQUESTED, guard_association, [quota, settings.receiver_max_tiny_pdvs]),
        (evt.EVT_REQUESTED, handle_requested, [associations]),
        (evt.EVT_REJECTED, handle_rejected, [associations]),
        (evt.EVT_ESTABLISHED, handle_established, [associations]),
        (evt.EVT_RELEASED, handle_released, [associations]),
        (evt.EVT_ABORTED, handle_aborted, [associations]),
        (evt.EVT_CONN_CLOSE, handle_connection_closed, [associations]),
        (evt.EVT_CONN_CLOSE, release_spools, []),
        (evt.EVT_C_STORE, handle_store, [stores]),
    ]


def start(settings: ReceiverSettings) -> Receiver:
    """Start the receiver; returns once it is listening with the datashare table loaded.
    If any step fails, what the earlier ones started is stopped again."""
    name = receiver_name()
    _spool_on_disk(settings.spool_dir)
    store = ObjectStore.buffer(settings)
    until_ready(f"the buffer bucket {store.bucket}", log)(store.ensure_bucket)()

    with ExitStack() as started:
        portal = started.enter_context(start_blocking_portal(name="edge-loop"))
        # Unwound first: background tasks (the table, the buffer watch, re-send checks)
        # are cancelled, not awaited, when the portal stops.
        started.callback(portal.call, portal.stop, True)
        nc, js = portal.call(bus.connect_when_ready, settings, name)
        started.callback(_close_nats, portal, nc)
        publisher = Bus(portal, nc, js, settings.receiver_publish_timeout_s)
        digests = portal.start_task_soon(open_digests, js).result(30)

        # Started first: its association.opened events name this receiver, and the monitor
        # keeps an association open only while the receiver's lease lasts.
        _background(portal, partial(heartbeat, js, name, settings.receiver_heartbeat_s))
        quota = _watch_buffer(portal, store, settings, publisher)
        table = DatashareTable()
        _background(portal, partial(table.follow, js))
        portal.start_task_soon(table.loaded.wait).result(60)

        sessions = Sessions(settings.receiver_max_associations)
        associations = AssociationDeps(table, publisher, sessions, settings.receiver_ae_title, name)
        stores = StoreDeps(store, publisher, portal, digests, quota, sessions)
        server = start_server(
            make_ae(settings),
            settings,
            _handlers(quota, settings, associations, stores),
            partial(handle_association_end, deps=associations),
        )
        receiver = Receiver(server, nc, started.pop_all())
    log.info(
        "receiver listening on %s:%d (quota %d bytes, %d datashares)",
        settings.receiver_host,
        receiver.port,
        quota.quota_bytes,
        len(table.all()),
    )
    return receiver


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
