"""Makes the ``edge_datashares`` bucket match the database, entry for entry: for when
JetStream lost it, the registry was pointed at a new NATS, or a client holding NATS
credentials rewrote an entry (another destination, a higher revision). Without this,
receivers would know no datashare until each one was changed again, or would follow the
rewritten one. The relay runs it at start, whenever the bucket changes (it watches it) and
every ``reconcile_s``, always with the relay's turn and after publishing the outbox (see
``edge_registry.outbox``), so that any difference left is a loss or a tampering, never a
change still to be published."""

import asyncio
import logging

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edge_core.datashares import Datashare
from edge_registry.datashares import to_datashare
from edge_registry.db import DatashareRow

log = logging.getLogger(__name__)


def _datashares(engine: Engine) -> dict[str, bytes]:
    """Each datashare's entry as the outbox publishes it."""
    with Session(engine) as session:
        return {
            row.id: to_datashare(row).model_dump_json().encode()
            for row in session.scalars(select(DatashareRow))
        }


async def reconcile(engine: Engine, kv: KeyValue) -> list[str]:
    """Rewrite every entry that is missing or differs in any byte from the database, delete
    those the database does not have; returns the ids repaired (and logs them)."""
    try:
        keys = set(await kv.keys())
    except NoKeysError:
        keys = set()
    wanted = await asyncio.to_thread(_datashares, engine)
    repaired = []
    for ds_id, value in wanted.items():
        try:
            entry = await kv.get(ds_id)
            last = entry.revision
        except KeyNotFoundError as exc:
            # Missing, or a delete marker (``get`` reports it as not found, with the entry).
            entry, last = None, exc.entry.revision if exc.entry is not None else 0
        if entry is not None and entry.value == value:
            continue
        try:
            await kv.update(ds_id, value, last=last)
        except KeyWrongLastSequenceError:
            continue  # written meanwhile: the next pass (woken by that write) compares again
        repaired.append(ds_id)
        log.warning(
            "datashares bucket: entry %s %s; rewritten from the database (revision %d)",
            ds_id,
            "was missing" if entry is None else f"differed ({_difference(entry.value, value)})",
            Datashare.model_validate_json(value).revision,
        )
    for ds_id in sorted(keys - wanted.keys()):
        try:
            entry = await kv.get(ds_id)
            await kv.delete(ds_id, last=entry.revision)
        except (KeyNotFoundError, KeyWrongLastSequenceError):
            continue
        repaired.append(ds_id)
        log.warning("datashares bucket: entry %s is not in the database; deleted", ds_id)
    return repaired


def _difference(found: bytes | None, wanted: bytes) -> str:
    """Which fields differ (names only: values may hold credentials)."""
    try:
        have = Datashare.model_validate_json(found or b"").model_dump(mode="json")
    except ValueError:
        return "not a datashare"
    want = Datashare.model_validate_json(wanted).model_dump(mode="json")
    fields = sorted(k for k in want.keys() | have.keys() if have.get(k) != want.get(k))
    return "fields " + ", ".join(fields) if fields else "same fields, other bytes"
