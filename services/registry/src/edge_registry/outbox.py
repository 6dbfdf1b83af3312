"""Publishes committed changes from the outbox table: for each entry, the KV entry of the
datashare (so readers have the new state) and then the ``datashare.*`` event, then removes
it. Entries stay until both reached JetStream, so a change committed while NATS is down
is published when it is back; the event id is fixed in the entry, so a retry after a lost
acknowledgement is dropped by JetStream as a duplicate."""

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlalchemy import Connection, Engine, Row, Table, delete, select, text

from edge_core import bus
from edge_core.events import parse_event
from edge_core.retrying import until_ready
from edge_core.topology import DATASHARES_BUCKET, ensure_topology
from edge_registry.config import RegistrySettings
from edge_registry.db import OutboxRow
from edge_registry.reconcile import reconcile

log = logging.getLogger(__name__)
BATCH = 100
OUTBOX = cast(Table, OutboxRow.__table__)


# Registry processes sharing one PostgreSQL database take turns: two relays publishing the
# same entries at once could leave an older KV value last. (SQLite: one process.)
RELAY_LOCK_KEY = 0x65646765_72656C79  # "edgerely"


def _try_lock(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    locked = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY})
    conn.commit()
    return bool(locked.scalar())


def _unlock_and_close(conn: Connection) -> None:
    try:
        if conn.dialect.name == "postgresql":
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_KEY})
            conn.commit()
    finally:
        conn.close()


def _pending(conn: Connection, limit: int = BATCH) -> list[Row[Any]]:
    query = select(OUTBOX).order_by(OUTBOX.c.seq).limit(limit)
    rows = list(conn.execute(query))
    conn.commit()
    return rows


def _mark_sent(conn: Connection, seq: int) -> None:
    conn.execute(delete(OUTBOX).where(OUTBOX.c.seq == seq))
    conn.commit()


async def publish_pending(
    engine: Engine,
    js: JetStreamContext,
    kv: KeyValue,
    timeout_s: float,
    reconcile_after: bool = False,
) -> int:
    """Publish every entry in commit order, then (``reconcile_after``) make the bucket match
    the database, in the same turn so that no other relay publishes meanwhile; returns how
    many entries were published (0 also when another registry process holds the turn).
    Raises on the first failure, leaving that entry and the later ones for the next attempt."""
    conn = await asyncio.to_thread(engine.connect)
    try:
        if not await asyncio.to_thread(_try_lock, conn):
            return 0
        sent = 0
        while rows := await asyncio.to_thread(_pending, conn):
            for row in rows:
                if row.kv_value is None:
                    await kv.delete(row.datashare_id)
                else:
                    await kv.put(row.datashare_id, row.kv_value.encode())
                event = parse_event(row.event)
                await bus.publish(js, event, timeout=timeout_s)
                await asyncio.to_thread(_mark_sent, conn, row.seq)
                log.info("published %s %s (event %s)", event.type, row.datashare_id, event.id)
                sent += 1
        if reconcile_after:
            await reconcile(engine, kv)
        return sent
    finally:
        await asyncio.to_thread(_unlock_and_close, conn)


async def _watch(kv: KeyValue, changed: Callable[[], None]) -> None:
    """Call ``changed`` whenever an entry of the bucket is written or deleted (by anyone:
    the relay's own writes cost one comparison that finds nothing to repair)."""
    watcher = await kv.watchall(meta_only=True)
    try:
        async for entry in watcher:
            if entry is not None:  # None: the end of the entries already there
                changed()
    finally:
        with suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]  # untyped in nats-py


class OutboxRelay:
    """The relay task of one registry process; :meth:`notify` wakes it after a commit
    (from any thread)."""

    def __init__(self, engine: Engine, settings: RegistrySettings) -> None:
        self.engine, self.settings = engine, settings
        self._wake = asyncio.Event()
        self._reconcile_now = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        nc = await self._connect()
        try:
            await self._relay(nc.jetstream(timeout=self.settings.publish_timeout_s))
        finally:
            with suppress(Exception):
                await nc.close()

    async def _connect(self) -> Client:
        # The API serves while NATS is unreachable; changes wait in the outbox.
        what, pause_s = f"NATS at {self.settings.nats_url}", self.settings.outbox_retry_s
        nc, _ = await until_ready(what, log, pause_s)(bus.connect)(self.settings, "edge-registry")
        return nc

    def _bucket_changed(self) -> None:
        self._reconcile_now = True
        self._wake.set()

    async def _relay(self, js: JetStreamContext) -> None:
        """Publish the outbox whenever woken (or every ``outbox_poll_s``), and make the bucket
        match the database after each (re)connection, whenever it changes and every
        ``reconcile_s``."""
        loop = asyncio.get_running_loop()
        kv: KeyValue | None = None
        watch: asyncio.Task[None] | None = None
        next_reconcile = 0.0
        try:
            while True:
                self._wake.clear()
                try:
                    if kv is None or watch is None or watch.done():
                        # (Again) after a failure: NATS may have lost its state.
                        if watch is not None and watch.done() and not watch.cancelled():
                            log.warning("datashares bucket watch ended (%r)", watch.exception())
                        if watch is not None:
                            watch.cancel()
                        await ensure_topology(js, self.settings)
                        kv = await js.key_value(DATASHARES_BUCKET)
                        watch = asyncio.create_task(_watch(kv, self._bucket_changed))
                        next_reconcile = 0.0
                    due = self._reconcile_now or loop.time() >= next_reconcile
                    self._reconcile_now = False
                    await publish_pending(
                        self.engine, js, kv, self.settings.publish_timeout_s, reconcile_after=due
                    )
                    if due:
                        next_reconcile = loop.time() + self.settings.reconcile_s
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("cannot publish datashare changes yet (%r); retrying", exc)
                    kv = None
                    await asyncio.sleep(self.settings.outbox_retry_s)
                    continue
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_s)
        finally:
            if watch is not None:
                watch.cancel()
