"""Event schemas: one versioned envelope for every event, a typed ``data`` per event type.

The envelope's ``id`` is also the JetStream ``Nats-Msg-Id``, so publishing the same event twice
is dropped as a duplicate. Subjects put the datashare in the path (``edge.events.<ds>.<type>``)
so that consumers can filter; events with no datashare (a rejected association) use ``_``.
Pixel data never travels in an event: instance events carry the buffered object's key,
size and digest.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter

from edge_core.datashares import Datashare

SUBJECT_PREFIX = "edge.events"
NO_DATASHARE = "_"
SCHEMA_VERSION = 1


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- data of each event type -------------------------------------------------------------


class AssociationRef(BaseModel):
    association_id: str
    calling_ae: str
    called_ae: str
    peer_host: str
    peer_port: int


class AssociationOpened(AssociationRef):
    # "abstract syntax / transfer syntax" of each accepted presentation context
    contexts: list[str] = []
    receiver: str = ""


class AssociationClosed(AssociationRef):
    instances: int = 0
    bytes: int = 0
    failures: int = 0
    duration_s: float = 0.0


class AssociationAborted(AssociationClosed):
    reason: str = ""


class AssociationRejected(BaseModel):
    calling_ae: str
    called_ae: str
    peer_host: str
    peer_port: int
    result: int = 1  # 1 rejected-permanent, 2 rejected-transient
    source: int = 1  # 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation)
    reason: int  # 7 called AE title not recognised, 3 calling AE title not recognised, ...
    reason_text: str


class InstanceRef(BaseModel):
    """Which instance, and where its bytes are in the buffer."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    key: str  # object key in the buffer bucket
    size: int
    sha256: str


class InstanceStored(InstanceRef):
    association_id: str
    calling_ae: str = ""
    modality: str = ""
    transfer_syntax: str = ""
    # True when this SOP Instance UID was already received with different bytes.
    new_version: bool = False


class InstanceRefused(BaseModel):
    """The receiver answered a C-STORE with a failure status (the PACS may retry)."""

    association_id: str
    sop_instance_uid: str = ""
    status: int
    reason: Literal["buffer_full", "store_error", "bus_error", "invalid_dataset", "other"]
    detail: str = ""


class InstanceUploaded(InstanceRef):
    destination: str  # URL without credentials
    attempts: int = 1
    # The destination already held identical content (a redelivery after a crash).
    already_present: bool = False
    # What left the site was a de-identified copy (the datashare's deidentification).
    deidentified: bool = False


class InstanceSuperseded(InstanceRef):
    """The uploader will never send this version: a newer one of the same SOP Instance UID
    (a later instance.stored) was received, and the destination must end with that one. Like
    instance.uploaded, it resolves the instance.stored event of this ``key``."""

    stream_seq: int  # of this version's instance.stored event
    newer_stream_seq: int  # of the newest version's instance.stored event


class InstanceFailed(InstanceRef):
    destination: str
    attempt: int
    error: str
    permanent: bool = False
    next_attempt_at: AwareDatetime | None = None


class InstanceDeadLettered(InstanceRef):
    destination: str
    attempts: int
    error: str
    quarantine_key: str
    # Held by de-identification (identity may be burned into the pixels), never sent.
    held: bool = False


class InstanceRetryRequested(BaseModel):
    """Staff asked for a dead-lettered instance to be tried again."""

    quarantine_key: str
    requested_by: str = ""


class BufferUsage(BaseModel):
    used_bytes: int
    objects: int
    quota_bytes: int
    refusing: bool


class BufferOrphanRemoved(BaseModel):
    """An object in the buffer that no ``instance.stored`` event names (its C-STORE was refused
    after the buffer write, e.g. the event was not acknowledged) was removed after the grace
    period: nothing will ever deliver it, and the PACS was told to send it again."""

    key: str
    size: int
    last_modified: AwareDatetime  # when it was written
    reconciler: str = ""  # which uploader process removed it


class ReceiverHeartbeat(BaseModel):
    """A receiver process is alive. Its associations carry its name (``receiver`` of
    ``association.opened``); when no heartbeat comes for ``lease_s`` the process is taken as
    gone (killed, its host down) and its associations that never ended as aborted."""

    receiver: str  # unique per process: host, pid and a random part
    started_at: AwareDatetime
    lease_s: float


class DatashareChanged(BaseModel):
    datashare: Datashare
    actor: str = ""
    changes: dict[str, Any] = {}


class DatashareDeleted(BaseModel):
    id: str
    actor: str = ""
    revision: int = 1


# --- the envelope ----------------------------------------------------------------------


class _Envelope(BaseModel):
    type: str  # each event class narrows it to its own literal
    id: str = Field(default_factory=new_event_id)
    version: int = SCHEMA_VERSION
    time: AwareDatetime = Field(default_factory=utcnow)
    datashare: str | None = None

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.datashare or NO_DATASHARE}.{self.type}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class AssociationOpenedEvent(_Envelope):
    type: Literal["association.opened"] = "association.opened"
    data: AssociationOpened


class AssociationClosedEvent(_Envelope):
    type: Literal["association.closed"] = "association.closed"
    data: AssociationClosed


class AssociationAbortedEvent(_Envelope):
    type: Literal["association.aborted"] = "association.aborted"
    data: AssociationAborted


class AssociationRejectedEvent(_Envelope):
    type: Literal["association.rejected"] = "association.rejected"
    data: AssociationRejected


class InstanceStoredEvent(_Envelope):
    type: Literal["instance.stored"] = "instance.stored"
    data: InstanceStored


class InstanceRefusedEvent(_Envelope):
    type: Literal["instance.refused"] = "instance.refused"
    data: InstanceRefused


class InstanceUploadedEvent(_Envelope):
    type: Literal["instance.uploaded"] = "instance.uploaded"
    data: InstanceUploaded


class InstanceSupersededEvent(_Envelope):
    type: Literal["instance.superseded"] = "instance.superseded"
    data: InstanceSuperseded


class InstanceFailedEvent(_Envelope):
    type: Literal["instance.failed"] = "instance.failed"
    data: InstanceFailed


class InstanceDeadLetteredEvent(_Envelope):
    type: Literal["instance.dead_lettered"] = "instance.dead_lettered"
    data: InstanceDeadLettered


class InstanceRetryRequestedEvent(_Envelope):
    type: Literal["instance.retry_requested"] = "instance.retry_requested"
    data: InstanceRetryRequested


class BufferUsageEvent(_Envelope):
    type: Literal["buffer.usage"] = "buffer.usage"
    data: BufferUsage


class BufferOrphanRemovedEvent(_Envelope):
    type: Literal["buffer.orphan_removed"] = "buffer.orphan_removed"
    data: BufferOrphanRemoved


class ReceiverHeartbeatEvent(_Envelope):
    type: Literal["receiver.heartbeat"] = "receiver.heartbeat"
    data: ReceiverHeartbeat


class DatashareCreatedEvent(_Envelope):
    type: Literal["datashare.created"] = "datashare.created"
    data: DatashareChanged


class DatashareUpdatedEvent(_Envelope):
    type: Literal["datashare.updated"] = "datashare.updated"
    data: DatashareChanged


class DatashareDeletedEvent(_Envelope):
    type: Literal["datashare.deleted"] = "datashare.deleted"
    data: DatashareDeleted


Event = Annotated[
    AssociationOpenedEvent
    | AssociationClosedEvent
    | AssociationAbortedEvent
    | AssociationRejectedEvent
    | InstanceStoredEvent
    | InstanceRefusedEvent
    | InstanceUploadedEvent
    | InstanceSupersededEvent
    | InstanceFailedEvent
    | InstanceDeadLetteredEvent
    | InstanceRetryRequestedEvent
    | BufferUsageEvent
    | BufferOrphanRemovedEvent
    | ReceiverHeartbeatEvent
    | DatashareCreatedEvent
    | DatashareUpdatedEvent
    | DatashareDeletedEvent,
    Field(discriminator="type"),
]

_adapter: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: tuple[str, ...] = tuple(
    m.model_fields["type"].default for m in get_args(get_args(Event)[0])
)


def parse_event(raw: bytes | str) -> Event:
    """Parse one event from its JSON form; raises ``pydantic.ValidationError`` if invalid."""
    return _adapter.validate_json(raw)
