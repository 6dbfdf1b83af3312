"""The JetStream topology, declared once: the events stream, the durable consumers and the
datashare table. ``ensure_topology`` is idempotent; every service calls it at start-up, so
whichever starts first creates it and a changed setting is applied on the next start."""

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from edge_core.events import SUBJECT_PREFIX
from edge_core.settings import EdgeSettings

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


def events_stream_config(settings: EdgeSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.events_stream,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.events_max_age_s or None,
        duplicate_window=settings.events_duplicate_window_s,
        num_replicas=settings.events_replicas,
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


async def ensure_stream(js: JetStreamContext, settings: EdgeSettings) -> None:
    config = events_stream_config(settings)
    try:
        await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


async def ensure_topology(
    js: JetStreamContext, settings: EdgeSettings, tuning: ConsumerTuning = ConsumerTuning()
) -> None:
    await ensure_stream(js, settings)
    # CONSUMER.CREATE without an action creates or updates: safe from every process at once.
    await js.add_consumer(settings.events_stream, uploader_consumer_config(tuning))
    await js.add_consumer(settings.events_stream, monitor_consumer_config())
    await _ensure_bucket(js, DATASHARES_BUCKET, settings.events_replicas)
    await _ensure_bucket(js, VERSIONS_BUCKET, settings.events_replicas, VERSIONS_MAX_AGE_S)


async def _ensure_bucket(
    js: JetStreamContext, bucket: str, replicas: int, ttl_s: float | None = None
) -> None:
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:
        await js.create_key_value(
            KeyValueConfig(
                bucket=bucket, history=1, ttl=ttl_s, storage=StorageType.FILE, replicas=replicas
            )
        )
