"""``edge-monitor rebuild``: empty the projections and replay the whole stream into them.

Everything happens in one transaction, with the position locked: the status switches from
the old tables to the rebuilt ones at once, and a monitor running meanwhile waits, then
skips what the rebuild already folded."""

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from sqlalchemy.orm import Session, sessionmaker

from edge_core.bus import connect
from edge_core.events import SUBJECT_PREFIX
from edge_core.topology import ensure_topology
from edge_monitor import db, projections
from edge_monitor.config import MonitorSettings
from edge_monitor.consumer import fold_into, stream_identity

log = logging.getLogger(__name__)

Batch = Sequence[tuple[int, bytes]]


async def replay(
    js: JetStreamContext, settings: MonitorSettings, sessions: sessionmaker[Session]
) -> int:
    """Refold the stream up to its last sequence once the position is locked (so that every
    event a running monitor committed is replayed); returns that sequence."""
    stream = await stream_identity(js, settings.events_stream)
    batches: queue.Queue[Batch | None] = queue.Queue(maxsize=4)
    locked = threading.Event()
    failure: list[BaseException] = []
    end: list[int] = []

    def write() -> None:
        drained = False
        try:
            with sessions.begin() as session:
                projections.lock_position(session)
                locked.set()
                projections.reset(session)
                projections.adopt_stream(session, stream)
                while (batch := batches.get()) is not None:
                    fold_into(session, batch)
                drained = True
                # Every sequence up to the end was delivered, in order: none is missing.
                projections.advance(session, end[0] if end else 0)
                projections.end_batch(session)
        except BaseException as exc:
            failure.append(exc)
            locked.set()
            while not drained and batches.get() is not None:  # let the reader finish
                pass

    writer = threading.Thread(target=write, name="rebuild-writer")
    writer.start()
    try:
        await asyncio.to_thread(locked.wait)
        if not failure:
            end.append((await js.stream_info(settings.events_stream)).state.last_seq)
            if end[0]:
                await _read(js, settings, end[0], batches)
    finally:
        await asyncio.to_thread(batches.put, None)
        await asyncio.to_thread(writer.join)
    if failure:
        raise failure[0]
    return end[0]


async def _read(
    js: JetStreamContext,
    settings: MonitorSettings,
    last: int,
    batches: "queue.Queue[Batch | None]",
) -> None:
    sub = await js.subscribe(
        f"{SUBJECT_PREFIX}.>",
        stream=settings.events_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        batch: list[tuple[int, bytes]] = []
        seq = 0
        while seq < last:
            try:
                msg = await sub.next_msg(timeout=30)
            except nats.errors.TimeoutError:
                # Only when the events up to ``last`` were removed (age limit) meanwhile.
                log.warning("no more events after sequence %d (expected %d)", seq, last)
                break
            seq = msg.metadata.sequence.stream
            batch.append((seq, msg.data))
            if len(batch) >= settings.monitor_batch_size:
                await asyncio.to_thread(batches.put, batch)
                batch = []
        if batch:
            await asyncio.to_thread(batches.put, batch)
    finally:
        await sub.unsubscribe()


async def rebuild(settings: MonitorSettings) -> int:
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)
    nc, js = await connect(settings, "edge-monitor-rebuild")
    try:
        await ensure_topology(js, settings)
        last = await replay(js, settings, db.writer(engine))
    finally:
        await nc.close()
        engine.dispose()
    log.info("rebuilt the projections from %d events", last)
    return last


def main() -> None:
    from edge_monitor.main import main as edge_monitor

    edge_monitor(["rebuild"])


if __name__ == "__main__":
    main()
