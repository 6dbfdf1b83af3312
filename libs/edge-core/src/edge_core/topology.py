"""The JetStream topology, declared once: the events stream, the durable consumers and the
key-value buckets. ``ensure_topology`` is idempotent; every service calls it at start-up, so
whichever starts first creates it and a changed setting is applied on the next start.

Replicas: ``EDGE_EVENTS_REPLICAS`` (0, the default, chooses): 3 when the server is a member
of a JetStream cluster of three or more, else 1. Chosen replicas never lower those of a
stream or bucket that has more (a cluster member down at a start must not shrink them); an
explicit setting is applied as given."""

import asyncio
import logging
from dataclasses import dataclass, replace

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    Placement,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from edge_core.events import SUBJECT_PREFIX
from edge_core.settings import EdgeSettings

log = logging.getLogger(__name__)
UPLOADER_CONSUMER = "uploader"
MONITOR_CONSUMER = "monitor"
# Current state of every datashare, keyed by Datashare ID (a last-value stream): receivers
# and uploaders read it at start and watch it, so they never need the registry itself.
DATASHARES_BUCKET = "edge_datashares"
# Per (datashare, SOP Instance UID): the newest version (stream sequence of its instance.stored
# event) and the one being delivered, so that no older version overwrites a newer one at a
# destination (edge_uploader.versions). Entries expire: far longer than any message stays
# unacknowledged (the uploader's retries last about a day).
VERSIONS_BUCKET = "edge_uploader_versions"
VERSIONS_MAX_AGE_S = 30 * 24 * 3600.0
# The last digest received for each SOP instance (edge_receiver.versions), seen by every
# receiver process. Long enough for any re-send we care to recognise; bounded to stay small.
DIGESTS_BUCKET = "edge_receiver_digests"
DIGESTS_MAX_AGE_S = 30 * 24 * 3600.0

# The monitor's batch: its consumer allows this many events unacknowledged. The fold counts
# each event once in any order (a batch held by a crashed monitor may come back after newer
# events were folded), so this bounds memory and transaction size, not correctness.
MONITOR_MAX_BATCH = 500

UPLOADER_SUBJECTS = [
    f"{SUBJECT_PREFIX}.*.instance.stored",
    f"{SUBJECT_PREFIX}.*.instance.retry_requested",
]


@dataclass(frozen=True)
class ConsumerTuning:
    """Knobs of the uploader's consumer; defaults suit one site."""

    # Short, so that the messages of a crashed uploader soon go to another one; a long
    # delivery keeps its messages with in-progress acks (every third of this).
    ack_wait_s: float = 15.0
    max_ack_pending: int = 1000


def cluster_size(nc: Client) -> int:
    """How many servers the connected one says its cluster has (1: not clustered). From the
    server's INFO: its cluster name and the client URLs of the members it routes to."""
    info = nc._server_info  # nats-py keeps the INFO here and offers no public accessor
    if not info.get("cluster"):
        return 1
    # Members advertise their client URLs unless told not to; then assume a full cluster.
    return len(set(info.get("connect_urls") or [])) or 3


def chosen_replicas(settings: EdgeSettings, servers: int) -> int:
    if settings.events_replicas:
        return settings.events_replicas
    return 3 if servers >= 3 else 1


def placement(settings: EdgeSettings) -> Placement | None:
    tags = [t.strip() for t in settings.events_placement_tags.split(",") if t.strip()]
    if not settings.events_placement_cluster and not tags:
        return None
    return Placement(cluster=settings.events_placement_cluster or None, tags=tags or None)


def events_stream_config(settings: EdgeSettings, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=settings.events_stream,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.events_max_age_s or None,
        max_bytes=settings.events_max_bytes or None,
        max_msgs=settings.events_max_msgs or None,
        duplicate_window=settings.events_duplicate_window_s,
        num_replicas=replicas,
        placement=placement(settings),
    )


def uploader_consumer_config(tuning: ConsumerTuning = ConsumerTuning()) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=UPLOADER_CONSUMER,
        filter_subjects=UPLOADER_SUBJECTS,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=tuning.ack_wait_s,
        max_ack_pending=tuning.max_ack_pending,
    )


def monitor_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=MONITOR_CONSUMER,
        filter_subject=f"{SUBJECT_PREFIX}.>",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=10.0,
        max_ack_pending=MONITOR_MAX_BATCH,
    )


async def _replicas(js: JetStreamContext, stream: str, chosen: int, explicit: bool) -> int:
    """``chosen``, or the stream's own replicas where they are more and were not set."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return chosen
    current = info.config.num_replicas or 1
    if explicit or current <= chosen:
        return chosen
    log.info("stream %s keeps its %d replicas (chosen: %d)", stream, current, chosen)
    return current


async def ensure_stream(js: JetStreamContext, settings: EdgeSettings, replicas: int) -> None:
    config = events_stream_config(settings, replicas)
    try:
        await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


async def ensure_topology(
    js: JetStreamContext, settings: EdgeSettings, tuning: ConsumerTuning = ConsumerTuning()
) -> None:
    chosen = chosen_replicas(settings, cluster_size(js._nc))  # the connection it was made on
    explicit = bool(settings.events_replicas)
    replicas = await _replicas(js, settings.events_stream, chosen, explicit)
    await ensure_stream(js, settings, replicas)
    # CONSUMER.CREATE without an action creates or updates: safe from every process at once.
    # Consumers take the stream's replicas.
    await js.add_consumer(settings.events_stream, uploader_consumer_config(tuning))
    await js.add_consumer(settings.events_stream, monitor_consumer_config())
    for bucket, ttl_s in [
        (DATASHARES_BUCKET, None),
        (VERSIONS_BUCKET, VERSIONS_MAX_AGE_S),
        (DIGESTS_BUCKET, DIGESTS_MAX_AGE_S),
    ]:
        replicas = await _replicas(js, f"KV_{bucket}", chosen, explicit)
        await _ensure_bucket(js, bucket, replicas, placement(settings), ttl_s)


async def _ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    replicas: int,
    where: Placement | None,
    ttl_s: float | None = None,
) -> None:
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:
        await js.create_key_value(
            KeyValueConfig(
                bucket=bucket,
                history=1,
                ttl=ttl_s,
                storage=StorageType.FILE,
                replicas=replicas,
                placement=where,
            )
        )
        await _until_readable(js, bucket)
        return
    # A bucket is a stream: scale it like one (a cluster grown from one server).
    info = await js.stream_info(f"KV_{bucket}")
    if (info.config.num_replicas or 1) != replicas:
        await js.update_stream(replace(info.config, num_replicas=replicas))


async def _until_readable(js: JetStreamContext, bucket: str, timeout_s: float = 30.0) -> None:
    """On a cluster a new bucket's stream answers only once its replicas elected a leader;
    until then another process that opens it is told it does not exist."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await js.key_value(bucket)
            return
        except BucketNotFoundError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
