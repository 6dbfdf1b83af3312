"""The projection tables (all prefixed ``monitor_``: the registry may share the database).

Counters live on the datashare and study rows, kept up to date by every event, so that the
status API reads a handful of rows whatever the number of instances."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, int: BigInteger, str: String(255)}


class Position(Base):
    """Which events are folded, written in the same transaction as their changes: every
    stream sequence up to ``seq`` (the low-water mark), and those above it listed in
    ``monitor_applied`` (events can be delivered out of order: a redelivered batch comes
    back after newer events were folded)."""

    __tablename__ = "monitor_position"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    # Which stream the sequence counts in (name and creation time): a stream created anew
    # (JetStream state lost) starts again at 1.
    stream: Mapped[str] = mapped_column(Text, default="")
    # The newest event time folded: while the monitor catches up, receivers' leases are
    # judged against it rather than the clock (see status.lease_clock).
    latest_at: Mapped[datetime | None]


class Applied(Base):
    """A stream sequence above the position's low-water mark that is already folded."""

    __tablename__ = "monitor_applied"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class Datashare(Base):
    __tablename__ = "monitor_datashares"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    ae_title: Mapped[str] = mapped_column(Text, default="")
    match: Mapped[str] = mapped_column(String(16), default="called")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The de-identification in force (JSON of the datashare's field), "" for byte for byte.
    deidentification: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime | None]
    # The stream sequence of the datashare event that set the fields above: an older one
    # folded later (redelivered) changes nothing.
    changed_seq: Mapped[int] = mapped_column(default=0)

    # Distinct SOP instances received, and how many of them are in each state (the state
    # of their newest version); bytes are those of the newest versions.
    received: Mapped[int] = mapped_column(default=0)
    received_bytes: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)
    pending_bytes: Mapped[int] = mapped_column(default=0)
    failing: Mapped[int] = mapped_column(default=0)
    failing_bytes: Mapped[int] = mapped_column(default=0)
    uploaded: Mapped[int] = mapped_column(default=0)
    uploaded_bytes: Mapped[int] = mapped_column(default=0)
    dead: Mapped[int] = mapped_column(default=0)
    dead_bytes: Mapped[int] = mapped_column(default=0)
    # Versions (buffer keys) received, and SOP instances received in more than one version.
    versions: Mapped[int] = mapped_column(default=0)
    replaced: Mapped[int] = mapped_column(default=0)
    # Versions forwarded de-identified, and versions held by de-identification (identity
    # possibly burned into the pixels; a held one later released by a retry stays counted).
    deidentified: Mapped[int] = mapped_column(default=0)
    held: Mapped[int] = mapped_column(default=0)

    failures: Mapped[int] = mapped_column(default=0)  # failed upload attempts
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_failure_at: Mapped[datetime | None]
    refused: Mapped[int] = mapped_column(default=0)  # C-STORE answered with a failure
    last_refused_reason: Mapped[str] = mapped_column(String(32), default="")
    last_refused_at: Mapped[datetime | None]
    last_buffer_full_at: Mapped[datetime | None]
    # Buffer objects that no instance.stored named (refused after the write), removed.
    orphans_removed: Mapped[int] = mapped_column(default=0)
    orphan_bytes_removed: Mapped[int] = mapped_column(default=0)
    last_orphan_removed_at: Mapped[datetime | None]

    associations_total: Mapped[int] = mapped_column(default=0)
    associations_rejected: Mapped[int] = mapped_column(default=0)
    studies: Mapped[int] = mapped_column(default=0)

    first_received_at: Mapped[datetime | None]
    last_received_at: Mapped[datetime | None]
    last_uploaded_at: Mapped[datetime | None]
    last_activity: Mapped[datetime | None]


class Instance(Base):
    """One version of a SOP instance: a buffered object. The key holds datashare, UIDs and
    digest: the same SOP Instance re-sent with the same bytes is the same row; with other
    bytes, a new version (row).

    Its state is a function of the latest stream sequence of each kind of event about it, so
    that folding its events in any order gives the same state: see ``projections._state``."""

    __tablename__ = "monitor_instances"
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    datashare: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(Text)
    sop_instance_uid: Mapped[str] = mapped_column(Text)
    size: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))  # pending, failing, uploaded, dead, superseded
    received_at: Mapped[datetime]
    state_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    destination: Mapped[str] = mapped_column(Text, default="")
    quarantine_key: Mapped[str | None] = mapped_column(String(600))
    stored_seq: Mapped[int] = mapped_column(default=0)  # 0: its instance.stored not yet seen
    retry_seq: Mapped[int] = mapped_column(default=0)
    failed_seq: Mapped[int] = mapped_column(default=0)
    dead_seq: Mapped[int] = mapped_column(default=0)
    uploaded_seq: Mapped[int] = mapped_column(default=0)
    superseded_seq: Mapped[int] = mapped_column(default=0)  # the uploader will not send it
    # Counted once in the datashare's deidentified / held, whichever event says so first.
    deidentified: Mapped[bool] = mapped_column(Boolean, default=False)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seq: Mapped[int] = mapped_column(default=0)  # of any event about it (sets state_at)

    __table_args__ = (
        Index("ix_monitor_instances_state", "datashare", "state", "received_at"),
        Index("ix_monitor_instances_quarantine", "quarantine_key"),
        Index("ix_monitor_instances_state_at", "state", "state_at"),
    )


class SopInstance(Base):
    """A distinct SOP instance of a datashare: what the counters count. Its state and size are
    those of its newest version (the one whose instance.stored is latest in the stream)."""

    __tablename__ = "monitor_sop_instances"
    datashare: Mapped[str] = mapped_column(String(64), primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(Text, primary_key=True)
    study_uid: Mapped[str] = mapped_column(Text)
    newest_key: Mapped[str] = mapped_column(String(512))
    newest_seq: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(default=0)
    versions: Mapped[int] = mapped_column(default=0)


class Study(Base):
    __tablename__ = "monitor_studies"
    datashare: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(Text, primary_key=True)
    received: Mapped[int] = mapped_column(default=0)
    uploaded: Mapped[int] = mapped_column(default=0)
    failing: Mapped[int] = mapped_column(default=0)
    dead: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]

    __table_args__ = (Index("ix_monitor_studies_last_seen", "datashare", "last_seen"),)


class Association(Base):
    __tablename__ = "monitor_associations"
    association_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    datashare: Mapped[str] = mapped_column(String(64))
    calling_ae: Mapped[str] = mapped_column(Text, default="")
    called_ae: Mapped[str] = mapped_column(Text, default="")
    peer_host: Mapped[str] = mapped_column(Text, default="")
    peer_port: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # active, closed, aborted
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # An association left "active" by a receiver that died shows no new instance for long.
    last_instance_at: Mapped[datetime | None]
    instances: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    # The receiver process that accepted it (its association.opened; "" before receivers had
    # names): one left "active" whose receiver's lease expired is shown aborted.
    receiver: Mapped[str] = mapped_column(String(255), default="")
    # As counted by the receiver when it ended (instances etc. above: its events folded).
    reported_instances: Mapped[int] = mapped_column(default=0)
    reported_bytes: Mapped[int] = mapped_column(default=0)
    reported_failures: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        Index("ix_monitor_associations_state", "datashare", "state"),
        Index("ix_monitor_associations_ended", "datashare", "ended_at"),
    )


class Receiver(Base):
    """A receiver process, alive while its heartbeats come (``receiver.heartbeat``)."""

    __tablename__ = "monitor_receivers"
    receiver: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime]
    last_seen: Mapped[datetime]  # the latest heartbeat's time
    lease_s: Mapped[float] = mapped_column(Float)  # of the latest heartbeat


class Rejection(Base):
    """One rejected association (kept for the rejections window, then pruned)."""

    __tablename__ = "monitor_rejections"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    datashare: Mapped[str | None] = mapped_column(String(64))
    calling_ae: Mapped[str] = mapped_column(Text)
    called_ae: Mapped[str] = mapped_column(Text)
    peer_host: Mapped[str] = mapped_column(Text)
    reason: Mapped[int] = mapped_column(Integer)
    reason_text: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_monitor_rejections_at", "at"),)


class RejectionTotal(Base):
    """Rejections ever, by reason (for /metrics; the rows above are pruned)."""

    __tablename__ = "monitor_rejection_totals"
    reason: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason_text: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(default=0)


class Refusal(Base):
    """C-STORE requests answered with a failure status, per datashare and reason."""

    __tablename__ = "monitor_refusals"
    datashare: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime]
    last_detail: Mapped[str] = mapped_column(Text, default="")


class Rate(Base):
    """Instances and bytes per second of event time, for throughput over the last minute."""

    __tablename__ = "monitor_rates"
    datashare: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # received, uploaded
    second: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    instances: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)


class Buffer(Base):
    """The latest ``buffer.usage`` report (one row)."""

    __tablename__ = "monitor_buffer"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    used_bytes: Mapped[int] = mapped_column(default=0)
    objects: Mapped[int] = mapped_column(default=0)
    quota_bytes: Mapped[int] = mapped_column(default=0)
    refusing: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime]
