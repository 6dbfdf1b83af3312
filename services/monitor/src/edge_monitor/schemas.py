"""The monitor API's responses, as ``/api/docs`` documents them. ``status.py`` builds the
documents; these models check and describe them (an unknown field is an error, so a field
added there must be described here)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_core.datashares import Deidentification


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    verdict: Literal["refusing", "failing", "stalled", "receiving", "idle"] = Field(
        description="worst first: refusing, failing, stalled, receiving, idle"
    )
    reason: str = Field(description="the verdict in plain words")


class Rate(_Out):
    """Per second over ``window_s``, or since the first instance in it if that is later."""

    window_s: float
    received_instances_per_s: float
    received_mb_per_s: float
    uploaded_instances_per_s: float
    uploaded_mb_per_s: float


class Association(_Out):
    association_id: str
    calling_ae: str
    called_ae: str
    peer: str = Field(description="host:port")
    peer_host: str
    state: Literal["active", "closed", "aborted"]
    started_at: datetime | None
    ended_at: datetime | None
    last_instance_at: datetime | None
    instances: int
    bytes: int
    failures: int
    reason: str
    receiver: str = Field(description="the receiver process that accepted it")


class Associations(_Out):
    active: list[Association]
    recent: list[Association] = Field(
        description="the latest completed or aborted ones (those of a receiver gone: aborted)"
    )


class Study(_Out):
    study_uid: str
    instances_received: int
    instances_uploaded: int
    instances_failed: int
    first_seen: datetime
    last_seen: datetime
    quiet: bool = Field(description="no new instance for studies_quiet_after_s")


class DatashareStatus(_Out):
    id: str
    description: str
    ae_title: str
    match: str
    enabled: bool
    deidentification: Deidentification | None = Field(
        description="the de-identification in force (null: forwarded byte for byte)"
    )
    instances_deidentified: int = Field(description="versions forwarded de-identified")
    instances_held: int = Field(description="versions held (identity possibly burned in)")
    instances_received: int = Field(description="distinct SOP instances")
    instances_uploaded: int
    instances_replaced: int = Field(description="SOP instances received in more than one version")
    versions_received: int
    instances_failed: int = Field(description="failed and not delivered: retrying or dead-lettered")
    instances_retrying: int
    instances_dead_lettered: int
    instances_pending: int = Field(description="received, not yet uploaded nor dead-lettered")
    instances_refused: int = Field(description="C-STOREs answered with a failure status")
    refusals: dict[str, int] = Field(description="refused C-STOREs by reason")
    upload_failures: int = Field(description="failed upload attempts")
    bytes_received: int
    bytes_uploaded: int
    bytes_pending: int
    bytes_dead_lettered: int
    rate: Rate
    associations_active: int
    associations_total: int
    associations_rejected: int
    associations: Associations
    studies_total: int
    studies_quiet_after_s: float
    studies: list[Study] = Field(description="the latest first, up to EDGE_MONITOR_STUDIES_LISTED")
    first_received_at: datetime | None
    last_received_at: datetime | None
    last_uploaded_at: datetime | None
    last_activity: datetime | None
    last_error: str
    last_failure_at: datetime | None
    orphans_removed: int = Field(
        description="objects refused after the buffer write, that no event named: removed"
    )
    orphan_bytes_removed: int
    last_orphan_removed_at: datetime | None
    health: Health


class Suggestion(_Out):
    """The datashare whose AE title a rejected caller most likely meant."""

    datashare: str
    ae_title: str
    match: str
    text: str


class Rejection(_Out):
    """Rejected associations grouped by who called whom from where."""

    calling_ae: str
    called_ae: str
    peer_host: str
    reason: int = Field(description="the A-ASSOCIATE-RJ reason code")
    reason_text: str
    datashare: str | None = Field(description="the datashare that refused the caller, if any")
    count: int
    first_seen: datetime
    last_seen: datetime
    explanation: str
    suggestion: Suggestion | None


class Buffer(_Out):
    reported: bool = Field(description="false until the receiver's first buffer.usage")
    used_bytes: int | None
    quota_bytes: int | None
    objects: int | None
    used_fraction: float | None
    refusing: bool
    reported_at: datetime | None


class ReceiverStatus(_Out):
    """A receiver process, alive while its heartbeats come."""

    receiver: str
    started_at: datetime
    last_seen: datetime = Field(description="its latest heartbeat")
    alive: bool


class ConsumerLag(_Out):
    """A JetStream consumer's backlog (null until first read)."""

    backlog: int | None = Field(description="pending + ack_pending")
    pending: int | None = Field(description="in the stream, not yet delivered")
    ack_pending: int | None = Field(description="delivered, not yet acknowledged")
    redelivered: int | None = None


class MonitorLag(ConsumerLag):
    position: int = Field(description="the last stream sequence folded into the projections")


class Status(_Out):
    generated_at: datetime
    datashares: list[DatashareStatus]
    rejections: list[Rejection]
    buffer: Buffer
    receivers: list[ReceiverStatus] = Field(description="those alive, and those gone lately")
    dead_letters: int
    uploader: ConsumerLag
    monitor: MonitorLag
    problems: list[str] = Field(description="what needs a person's attention, in plain words")


class DeadLetter(_Out):
    datashare: str
    key: str
    quarantine_key: str | None
    study_uid: str
    sop_instance_uid: str
    size: int
    attempts: int
    error: str
    destination: str
    dead_lettered_at: datetime


class RetryRequest(BaseModel):
    """Which dead letters to retry: the listed quarantine keys, or all of a datashare's."""

    quarantine_keys: list[str] = []
    datashare: str | None = None


class RetryRequested(_Out):
    requested: list[str] = Field(description="the quarantine keys a retry was requested for")


class Healthy(_Out):
    status: Literal["ok"]
