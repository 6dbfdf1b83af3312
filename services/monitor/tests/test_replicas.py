"""Two monitors on one durable consumer and one database count every event once: their
folds take turns on the position row, so neither overwrites the other's counts."""

import asyncio
import contextlib

import pytest

from edge_monitor import db
from edge_monitor.consumer import consume

from .conftest import T0

N = 240


@pytest.mark.both_databases
async def test_two_monitors_agree(js, feed, settings, engine, folding):
    # `folding` is the first monitor; a second one with its own engine joins it.
    second = db.make_engine(settings.sqlalchemy_url())
    task = asyncio.create_task(consume(js, settings, db.writer(second), batch_size=10))
    try:
        await feed.datashare("DS")
        refs = [await feed.stored("DS", "a1", f"1.2.{i % 7}", f"1.2.3.{i}") for i in range(N)]
        for ref in refs:
            await feed.uploaded("DS", ref)
        await folding.reach(feed.last_seq)
        row = folding.datashare("DS", T0)
        assert (row["instances_received"], row["instances_uploaded"]) == (N, N)
        assert row["instances_pending"] == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        second.dispose()
