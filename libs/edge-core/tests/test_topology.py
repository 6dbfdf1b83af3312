import nats as nats_client

from edge_core.bus import publish
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent
from edge_core.topology import (
    DATASHARES_BUCKET,
    MONITOR_CONSUMER,
    UPLOADER_CONSUMER,
    VERSIONS_BUCKET,
    VERSIONS_MAX_AGE_S,
    ensure_topology,
)


async def test_topology_is_idempotent_and_dedupes(edge_settings):
    nc = await nats_client.connect(edge_settings.nats_url)
    js = nc.jetstream()
    try:
        await ensure_topology(js, edge_settings)
        await ensure_topology(js, edge_settings)  # second start: no error, nothing doubled
        info = await js.stream_info(edge_settings.events_stream)
        assert info.config.duplicate_window == edge_settings.events_duplicate_window_s
        assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
        names = {c.name for c in await js.consumers_info(edge_settings.events_stream)}
        assert {UPLOADER_CONSUMER, MONITOR_CONSUMER} <= names
        await js.key_value(DATASHARES_BUCKET)
        versions = await (await js.key_value(VERSIONS_BUCKET)).status()
        assert versions.history == 1 and versions.ttl == VERSIONS_MAX_AGE_S  # entries expire

        event = InstanceRetryRequestedEvent(
            datashare="DS1", data=InstanceRetryRequested(quarantine_key="q")
        )
        first = await publish(js, event)
        again = await publish(js, event)
        assert not first.duplicate and again.duplicate
        assert (await js.stream_info(edge_settings.events_stream)).state.messages == 1
    finally:
        await nc.close()
