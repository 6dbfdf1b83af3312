"""The durable consumer ``monitor``: pulls every event and folds it into the projections."""

import asyncio
import logging
import time
from collections.abc import Sequence

import nats.errors
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from edge_core.events import Event, parse_event, utcnow
from edge_core.settings import EdgeSettings
from edge_core.topology import MONITOR_CONSUMER, MONITOR_MAX_BATCH, ensure_topology
from edge_monitor import projections

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 300.0
# How often the position moves to the consumer's ack floor: past sequences the stream no
# longer holds, so the applied sequences above the low-water mark stay few.
ADVANCE_EVERY_S = 10.0
# Under a trickle a fetch returns the one or two events already there: after a first one,
# let the batch fill for this long (or until it is full) and fetch the rest, so that one
# transaction folds tens of events instead of one or two (the status lags by this much).
GATHER_S = 0.2


def fold(sessions: sessionmaker[Session], batch: Sequence[tuple[int, bytes]]) -> int:
    """Apply ``(stream sequence, event bytes)`` pairs in one transaction; how many were new."""
    with sessions.begin() as session:
        projections.lock_position(session)
        return fold_into(session, batch)


def fold_into(session: Session, batch: Sequence[tuple[int, bytes]]) -> int:
    parsed: list[tuple[int, Event | None]] = []
    for seq, raw in batch:
        try:
            parsed.append((seq, parse_event(raw)))
        except ValidationError as exc:
            log.error("skipping unreadable event at stream sequence %d: %s", seq, exc)
            parsed.append((seq, None))
    projections.prefetch(session, [event for _, event in parsed if event is not None])
    applied = 0
    for seq, event in parsed:
        if event is None:
            projections.skip(session, seq)
        else:
            applied += projections.apply(session, event, seq)
    projections.end_batch(session)
    return applied


def fold_or_skip(sessions: sessionmaker[Session], batch: Sequence[tuple[int, bytes]]) -> None:
    """``fold``; if the batch fails while the database works, fold its events one at a time
    and skip (with an error in the log) any that fails alone, so that one event this version
    cannot fold never blocks the stream. If the database is down, raise: redelivered later."""
    try:
        fold(sessions, batch)
        return
    except Exception:
        log.exception("could not fold a batch of %d events; trying them one by one", len(batch))
    for item in batch:
        try:
            fold(sessions, [item])
        except Exception:
            with sessions.begin() as session:  # raises if the database is the problem
                session.execute(text("SELECT 1"))
                log.exception("skipping the event at stream sequence %d", item[0])
                projections.lock_position(session)
                projections.skip(session, item[0])
                projections.end_batch(session)


async def stream_identity(js: JetStreamContext, stream: str) -> str:
    info = await js.stream_info(stream)
    return f"{stream}@{info.created.isoformat() if info.created else ''}"


def adopt_stream(sessions: sessionmaker[Session], stream: str) -> None:
    with sessions.begin() as session:
        projections.lock_position(session)
        if projections.adopt_stream(session, stream):
            log.warning(
                "the event stream was created anew (%s): counting its events from the first, "
                "on top of what was counted before",
                stream,
            )
        projections.end_batch(session)


def advance(sessions: sessionmaker[Session], stream: str, floor: int) -> None:
    """Move the position to the consumer's ack floor, if it counts in the same stream."""
    with sessions.begin() as session:
        projections.lock_position(session)
        if projections.stream_of(session) == stream:
            projections.advance(session, floor)
        projections.end_batch(session)


async def ack_floor(js: JetStreamContext, stream: str) -> int:
    info = await js.consumer_info(stream, MONITOR_CONSUMER)
    return info.ack_floor.stream_seq if info.ack_floor else 0


def prune(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        projections.prune(session, utcnow())


async def consume(
    js: JetStreamContext,
    settings: EdgeSettings,
    sessions: sessionmaker[Session],
    batch_size: int = 500,
) -> None:
    """Run for ever: fetch, fold, then acknowledge (after the commit, so a crash in between
    means a redelivery, which the stored position turns into a no-op, in whatever order it
    comes back)."""
    while True:
        try:
            stream = await stream_identity(js, settings.events_stream)
            await asyncio.to_thread(adopt_stream, sessions, stream)
            sub = await js.pull_subscribe_bind(MONITOR_CONSUMER, stream=settings.events_stream)
            pruned = advanced = 0.0
            high = 0  # the highest stream sequence fetched since binding
            while True:
                if time.monotonic() - pruned > PRUNE_EVERY_S:
                    await asyncio.to_thread(prune, sessions)
                    pruned = time.monotonic()
                if time.monotonic() - advanced > ADVANCE_EVERY_S:
                    floor = await ack_floor(js, settings.events_stream)
                    await asyncio.to_thread(advance, sessions, stream, floor)
                    advanced = time.monotonic()
                limit = min(batch_size, MONITOR_MAX_BATCH)
                try:
                    msgs = await sub.fetch(limit, timeout=1.0)
                except TimeoutError:  # nothing new (nats-py raises its own or asyncio's)
                    continue
                if not msgs:  # a fetch can end with only status messages
                    continue
                if len(msgs) < limit:
                    await asyncio.sleep(GATHER_S)
                    try:
                        msgs += await sub.fetch(limit - len(msgs), timeout=0.05)
                    except TimeoutError:
                        pass
                batch = [(msg.metadata.sequence.stream, msg.data) for msg in msgs]
                if any(
                    msg.metadata.num_delivered == 1 and seq <= high
                    for msg, (seq, _) in zip(msgs, batch, strict=True)
                ):
                    # A first delivery of a sequence already seen: the stream was created anew.
                    stream = await stream_identity(js, settings.events_stream)
                    await asyncio.to_thread(adopt_stream, sessions, stream)
                high = max(high, max(seq for seq, _ in batch))
                try:
                    await asyncio.to_thread(fold_or_skip, sessions, batch)
                except Exception:
                    log.exception("could not fold %d events; they will be redelivered", len(msgs))
                    for msg in msgs:
                        await msg.nak(delay=1.0)
                    await asyncio.sleep(1.0)
                    continue
                for msg in msgs:
                    await msg.ack()
        except asyncio.CancelledError:
            raise
        except nats.errors.ConnectionClosedError:
            # We closed it (the client reconnects for ever otherwise): the monitor is stopping,
            # and nats-py may turn the cancellation into this error.
            log.debug("the NATS connection is closed: the event consumer stops")
            return
        except Exception as exc:
            log.warning("event consumer interrupted (%r); retrying", exc)
            await asyncio.sleep(1.0)
            try:  # e.g. NATS restarted without its JetStream state
                await ensure_topology(js, settings)
            except Exception as again:
                log.warning("cannot declare the topology yet: %s", again)
