"""Makes the ``edge_datashares`` bucket match the database, for when JetStream lost it or
the registry was pointed at a new NATS: without this, receivers would know no datashare
until each one was changed again. Safe beside relays of other registry processes: every
write is conditional on the entry not having changed since it was read (KV revisions)."""

import asyncio
import logging

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edge_core.datashares import Datashare
from edge_registry.datashares import to_datashare
from edge_registry.db import DatashareRow

log = logging.getLogger(__name__)


def _datashares(engine: Engine) -> dict[str, Datashare]:
    with Session(engine) as session:
        return {row.id: to_datashare(row) for row in session.scalars(select(DatashareRow))}


async def reconcile(engine: Engine, kv: KeyValue) -> int:
    """Write what the bucket lacks or holds older, delete what the database no longer
    has; returns how many entries were repaired."""
    try:
        keys = set(await kv.keys())
    except NoKeysError:
        keys = set()
    # Read after the keys: a key listed but absent here was really deleted.
    wanted = await asyncio.to_thread(_datashares, engine)
    repaired = 0
    for ds_id, datashare in wanted.items():
        try:
            entry = await kv.get(ds_id)
        except KeyNotFoundError as exc:
            if exc.entry is not None:  # a delete marker (``get`` reports it as not found)
                continue  # deleted and re-created: its outbox entry is still to be published
            entry = None
        try:
            if entry is None:
                await kv.create(ds_id, datashare.model_dump_json().encode())
            elif _revision(entry.value) < datashare.revision:
                await kv.update(ds_id, datashare.model_dump_json().encode(), last=entry.revision)
            else:
                continue
        except KeyWrongLastSequenceError:
            continue  # written meanwhile, by a relay with a newer value
        repaired += 1
    for ds_id in keys - wanted.keys():
        try:
            entry = await kv.get(ds_id)
            await kv.delete(ds_id, last=entry.revision)
        except (KeyNotFoundError, KeyWrongLastSequenceError):
            continue
        repaired += 1
    if repaired:
        log.warning("repaired %d entries of the datashares bucket from the database", repaired)
    return repaired


def _revision(value: bytes | None) -> int:
    try:
        return Datashare.model_validate_json(value or b"").revision
    except ValidationError:
        return 0
