"""Settling messages: dead letters and their retry, a process that stops cleanly."""

import signal

from edge_core.bus import publish
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent
from edge_core.keys import quarantine_key
from edge_core.topology import DATASHARES_BUCKET


async def test_deleted_datashare_is_dead_lettered_then_retried(
    site, destination_store, destination_puts
):
    # Deleted after the instance was taken in: the uploader's table holds the delete marker.
    # (One it has never seen is retried instead: it may be one created a moment ago.)
    await site.add_datashare("GONE")
    await (await site.js.key_value(DATASHARES_BUCKET)).delete("GONE")
    async with site.uploader():
        stored = await site.store("GONE")
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
        assert dead.data.quarantine_key == quarantine_key(stored.key)
        assert dead.data.attempts == 1  # known to be gone: no point in trying again
        failures = site.of_type("instance.failed")
        assert [(f.data.attempt, f.data.permanent) for f in failures] == [(1, True)]
        assert await site.until(lambda: site.buffered() == [quarantine_key(stored.key)], 10)

        # Staff re-create the datashare and ask for a retry.
        await site.add_datashare("GONE")
        request = InstanceRetryRequested(quarantine_key=dead.data.quarantine_key)
        await publish(site.js, InstanceRetryRequestedEvent(datashare="GONE", data=request))
        (uploaded,) = await site.wait_for("instance.uploaded", 1)
    assert uploaded.data.key == stored.key
    assert uploaded.data.sha256 == stored.sha256
    assert site.buffered() == []
    assert len(list(destination_store.list())) == 1
    assert list(destination_puts().values()) == [1]


async def test_uploader_process_delivers_and_stops_on_sigterm(site, destination_store, tmp_path):
    await site.add_datashare("DS1")
    proc = site.uploader_process(tmp_path / "uploader.log")
    try:
        await site.store_study("DS1", 2)
        await site.wait_for("instance.uploaded", 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "uploader.log").read_text()
    assert await site.until(lambda: site.buffered() == [], 10)
