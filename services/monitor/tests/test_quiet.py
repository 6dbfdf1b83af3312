"""An idle monitor, and one stopped cleanly, log no warnings: a warning is for a person."""

import asyncio
import logging

from edge_monitor import db
from edge_monitor.api import Monitor
from edge_monitor.main import follow_events
from edge_testing.servers import eventually

IDLE_S = 4.0  # several empty fetches (1 s each) and backlog polls (0.2 s)


async def test_idle_then_stopped_logs_no_warning(settings, engine, feed, caplog):
    caplog.set_level(logging.INFO)
    monitor = Monitor(settings, db.reader(engine))
    task = asyncio.create_task(follow_events(settings, monitor, db.writer(engine)))
    seq = await feed.datashare("IDLE")

    def position() -> int:
        from edge_monitor import models as m
        from edge_monitor.projections import POSITION

        with db.reader(engine)() as session:
            row = session.get(m.Position, POSITION)
            return row.seq if row else 0

    await eventually(lambda: position() >= seq, what=f"the projections at {seq}")
    # Idle: the subject of the test is a stretch of time with nothing to do.
    await asyncio.sleep(IDLE_S)
    assert monitor.backlog.updated_at is not None  # it kept polling meanwhile
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
