"""Creating, changing and deleting datashares. Each change writes, in one transaction, the
datashare, a history entry and an outbox entry (the event and the KV value to publish), so
that a change is published exactly when it is committed, even if NATS is down just then."""

from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_core.ae_titles import ae_title_key
from edge_core.datashares import Datashare
from edge_core.events import (
    DatashareChanged,
    DatashareCreatedEvent,
    DatashareDeleted,
    DatashareDeletedEvent,
    DatashareUpdatedEvent,
)
from edge_registry.db import DatashareRow, HistoryRow, OutboxRow, utc
from edge_registry.schemas import DatashareOut, DatashareSpec, HistoryEntry

REDACTED = "***"
# What staff define, in the order shown; the rest of a row is bookkeeping.
SPEC_FIELDS = tuple(f for f in DatashareSpec.model_fields if f != "id")


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def get(session: Session, ds_id: str, for_update: bool = False) -> DatashareRow:
    """The row; ``for_update`` locks it (PostgreSQL) so concurrent changes apply in turn."""
    query = select(DatashareRow).where(DatashareRow.id == ds_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"no datashare with id {ds_id!r}")
    return row


def list_all(session: Session, enabled: bool | None = None) -> list[DatashareRow]:
    query = select(DatashareRow)
    if enabled is not None:
        query = query.where(DatashareRow.enabled.is_(enabled))
    # Sorted here: database collations order ids differently (case, '-', '_').
    return sorted(session.scalars(query), key=lambda row: row.id)


def history(session: Session, ds_id: str) -> list[HistoryEntry]:
    rows = session.scalars(
        select(HistoryRow).where(HistoryRow.datashare_id == ds_id).order_by(HistoryRow.seq)
    ).all()
    if not rows:
        raise NotFound(f"no datashare with id {ds_id!r} has ever existed")
    return [
        HistoryEntry(
            revision=r.revision, action=r.action, actor=r.actor, time=utc(r.time), changes=r.changes
        )
        for r in rows
    ]


def create(session: Session, spec: DatashareSpec, actor: str) -> DatashareRow:
    if (same := _same_id(session, spec.id)) is not None:
        differs = "" if same == spec.id else " (datashare ids differing only in case would mix up)"
        raise Conflict(f"a datashare with id {same!r} already exists{differs}")
    fields = _spec_fields(spec)
    _check_ae_title_free(session, spec.id, fields)
    # A re-created id continues the revisions of the one deleted, so no reader takes the
    # new datashare for a stale copy of the old one.
    last = session.scalar(
        select(func.max(HistoryRow.revision)).where(HistoryRow.datashare_id == spec.id)
    )
    now = datetime.now(UTC)
    row = DatashareRow(
        id=spec.id,
        revision=(last or 0) + 1,
        created_at=now,
        created_by=actor,
        updated_at=now,
        updated_by=actor,
        **fields,
    )
    session.add(row)
    _record(session, row, "created", actor, _shown(fields), now)
    _commit(session)
    return row


def current_spec(row: DatashareRow) -> dict[str, Any]:
    """The row as a POST body would give it, to validate a PATCH applied to it."""
    return {"id": row.id, **{f: getattr(row, f) for f in SPEC_FIELDS}}


def update(session: Session, row: DatashareRow, spec: DatashareSpec, actor: str) -> DatashareRow:
    """Apply ``spec`` (the row with a PATCH applied, already validated) to the row, which
    the caller read with ``get(..., for_update=True)`` to compute ``spec``."""
    old = {f: getattr(row, f) for f in SPEC_FIELDS}
    new = _spec_fields(spec)
    changed = {f: {"old": old[f], "new": new[f]} for f in SPEC_FIELDS if old[f] != new[f]}
    if not changed:
        return row
    _check_ae_title_free(session, row.id, new)
    now = datetime.now(UTC)
    for name, value in new.items():
        setattr(row, name, value)
    row.revision += 1
    row.updated_at, row.updated_by = now, actor
    changes = {f: {k: _shown_value(f, v) for k, v in c.items()} for f, c in changed.items()}
    _record(session, row, "updated", actor, changes, now)
    _commit(session)
    return row


def delete(session: Session, ds_id: str, actor: str) -> None:
    row = get(session, ds_id, for_update=True)
    now = datetime.now(UTC)
    revision = row.revision + 1
    snapshot = _shown({f: getattr(row, f) for f in SPEC_FIELDS})
    session.delete(row)
    session.add(
        HistoryRow(
            datashare_id=ds_id,
            revision=revision,
            action="deleted",
            actor=actor,
            time=now,
            changes=snapshot,
        )
    )
    event = DatashareDeletedEvent(
        datashare=ds_id, time=now, data=DatashareDeleted(id=ds_id, actor=actor, revision=revision)
    )
    session.add(OutboxRow(datashare_id=ds_id, event=event.model_dump_json(), kv_value=None))
    _commit(session)


def to_out(row: DatashareRow) -> DatashareOut:
    return DatashareOut(
        id=row.id,
        **{f: getattr(row, f) for f in SPEC_FIELDS if f != "destination_credentials"},
        destination_credentials_set=sorted(row.destination_credentials),
        revision=row.revision,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        updated_at=utc(row.updated_at),
        updated_by=row.updated_by,
    )


def to_datashare(row: DatashareRow) -> Datashare:
    """The datashare as receivers and uploaders see it (credentials included)."""
    return Datashare.model_validate(
        {"id": row.id, "revision": row.revision, **{f: getattr(row, f) for f in SPEC_FIELDS}}
    )


def _spec_fields(spec: DatashareSpec) -> dict[str, Any]:
    fields = spec.model_dump(exclude={"id"})
    fields["ae_title"] = spec.stored_ae_title()
    fields["destination_credentials"] = {
        k: v.get_secret_value() if isinstance(v, SecretStr) else v
        for k, v in spec.destination_credentials.items()
    }
    return fields


def _same_id(session: Session, ds_id: str) -> str | None:
    return session.scalar(
        select(DatashareRow.id).where(func.lower(DatashareRow.id) == ds_id.lower()).limit(1)
    )


def _check_ae_title_free(session: Session, ds_id: str, fields: dict[str, Any]) -> None:
    """AE titles are compared as the receiver routes them (``ae_title_key``); stored ones are
    already trimmed, so the database's ``upper`` is the same key."""
    if not fields["enabled"]:
        return
    other = session.scalar(
        select(DatashareRow.id).where(
            DatashareRow.id != ds_id,
            DatashareRow.enabled.is_(True),
            DatashareRow.match == fields["match"],
            func.upper(DatashareRow.ae_title) == ae_title_key(fields["ae_title"]),
        )
    )
    if other is not None:
        raise Conflict(
            f"AE title {fields['ae_title']!r} is already used by enabled datashare {other!r} "
            f"in match mode {fields['match']!r} (AE titles are compared ignoring case): "
            "choose another ae_title or disable that datashare first"
        )


def _record(
    session: Session,
    row: DatashareRow,
    action: str,
    actor: str,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    session.add(
        HistoryRow(
            datashare_id=row.id,
            revision=row.revision,
            action=action,
            actor=actor,
            time=now,
            changes=changes,
        )
    )
    datashare = to_datashare(row)
    # Events are kept for months and read by every consumer: they carry no secrets. Only
    # the KV entry, which the uploader reads, holds the credentials.
    public = datashare.model_copy(update={"destination_credentials": {}})
    kind = DatashareCreatedEvent if action == "created" else DatashareUpdatedEvent
    event = kind(
        datashare=row.id,
        time=now,
        data=DatashareChanged(datashare=public, actor=actor, changes=changes),
    )
    session.add(
        OutboxRow(
            datashare_id=row.id,
            event=event.model_dump_json(),
            kv_value=datashare.model_dump_json(),
        )
    )


def _shown_value(field: str, value: Any) -> Any:
    if field == "destination_credentials":
        return {k: REDACTED for k in value}
    return value


def _shown(fields: dict[str, Any]) -> dict[str, Any]:
    return {f: _shown_value(f, v) for f, v in fields.items()}


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        # Only a concurrent change gets here: the checks above give the clear messages.
        session.rollback()
        raise Conflict(
            "another change to the same id or AE title was committed at the same time; "
            "look at the datashares and try again"
        ) from None
