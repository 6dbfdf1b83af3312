import nats as nats_client

from edge_core import topology
from edge_core.bus import publish
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent
from edge_core.settings import EdgeSettings
from edge_core.topology import (
    DATASHARES_BUCKET,
    DIGESTS_BUCKET,
    MONITOR_CONSUMER,
    UPLOADER_CONSUMER,
    VERSIONS_BUCKET,
    VERSIONS_MAX_AGE_S,
    cluster_size,
    ensure_topology,
)
from edge_testing.servers import start_nats_cluster


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


def _replicas(info) -> int:
    return info.config.num_replicas or 1


async def test_single_server_gets_one_replica(edge_settings):
    nc = await nats_client.connect(edge_settings.nats_url)
    js = nc.jetstream()
    try:
        await ensure_topology(js, edge_settings)
        assert _replicas(await js.stream_info(edge_settings.events_stream)) == 1
        for bucket in (DATASHARES_BUCKET, VERSIONS_BUCKET, DIGESTS_BUCKET):
            assert _replicas(await js.stream_info(f"KV_{bucket}")) == 1
    finally:
        await nc.close()


async def test_cluster_gets_three_replicas_placement_and_limits(tmp_path, monkeypatch):
    cluster = start_nats_cluster(tmp_path / "cluster")
    try:
        settings = EdgeSettings(
            nats_url=cluster.url,
            events_placement_cluster="edge",
            events_max_bytes=10**9,
            events_max_msgs=10**7,
        )
        nc = await nats_client.connect(settings.nats_servers())
        js = nc.jetstream()
        assert cluster_size(nc) == 3
        await ensure_topology(js, settings)
        info = await js.stream_info(settings.events_stream)
        assert _replicas(info) == 3 and len(info.cluster.replicas) == 2  # a leader, 2 followers
        assert info.config.placement.cluster == "edge"
        assert (info.config.max_bytes, info.config.max_msgs) == (10**9, 10**7)
        for bucket in (DATASHARES_BUCKET, VERSIONS_BUCKET, DIGESTS_BUCKET):
            assert _replicas(await js.stream_info(f"KV_{bucket}")) == 3, bucket
        for consumer in (UPLOADER_CONSUMER, MONITOR_CONSUMER):
            assert (
                len((await js.consumer_info(settings.events_stream, consumer)).cluster.replicas)
                == 2
            )

        # A service that sees fewer servers (a member down as it starts): replicas stay.
        monkeypatch.setattr(topology, "cluster_size", lambda nc: 2)
        await ensure_topology(js, settings)
        assert _replicas(await js.stream_info(settings.events_stream)) == 3
        assert _replicas(await js.stream_info(f"KV_{DATASHARES_BUCKET}")) == 3
        await nc.close()
    finally:
        cluster.stop()
