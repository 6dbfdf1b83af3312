"""The C-STORE handler: buffer the instance, announce it, and only then answer Success.

pynetdicom spools each incoming dataset to a file as it arrives (``STORE_RECV_CHUNKED_DATASET``),
so memory stays bounded whatever the object's size. The handler uploads that file as it is —
File Meta Information and the dataset byte for byte as received, never decoded or transcoded.
"""

import asyncio
import hashlib
import io
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from anyio.from_thread import BlockingPortal
from nats.js.api import PubAck
from nats.js.kv import KeyValue
from pydicom.dataset import Dataset
from pynetdicom.events import Event

from edge_core.events import (
    InstanceRefused,
    InstanceRefusedEvent,
    InstanceStored,
    InstanceStoredEvent,
)
from edge_core.keys import buffer_key
from edge_core.objectstore import ObjectStore
from edge_core.topology import UPLOADER_CONSUMER
from edge_receiver.associations import Session, Sessions
from edge_receiver.bridge import Bus
from edge_receiver.metadata import InstanceMetadata, InvalidDataset, read_metadata
from edge_receiver.quota import BufferQuota
from edge_receiver.spool import GuardedDIMSE, SpoolState
from edge_receiver.versions import is_new_version

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # the PACS should retry later
CANNOT_UNDERSTAND = 0xC000  # the PACS should not retry as is
# The dataset's SOP Class or Instance UID differs from the request's: DCMTK's storescp answers
# this status for both, so a PACS already shows it.
DOES_NOT_MATCH = 0xA900

# Objects up to this size are read into memory once (one read, one hash, one put);
# larger ones are hashed and uploaded from the spool file in chunks.
IN_MEMORY_MAX = 8 * 1024 * 1024
# How long a re-sent copy waits in the background for the original to be acknowledged.
RESEND_CHECK_S = 600.0
_CHUNK = 1024 * 1024

RefusalReason = Literal["buffer_full", "store_error", "bus_error", "invalid_dataset", "other"]


@dataclass(frozen=True)
class StoreDeps:
    store: ObjectStore
    bus: Bus
    portal: BlockingPortal
    digests: KeyValue
    quota: BufferQuota
    sessions: Sessions


def event_id(datashare: str, sop_instance_uid: str, sha256: str) -> str:
    """The ``instance.stored`` id (and JetStream message id): the same instance re-sent with
    the same bytes is the same message, dropped by JetStream as a duplicate."""
    raw = f"{datashare}\0{sop_instance_uid}\0{sha256}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:32]


def _sha256(spool: BinaryIO, data: bytes | None) -> str:
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    spool.seek(0)
    while chunk := spool.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def handle_store(event: Event, deps: StoreDeps) -> int | Dataset:
    """EVT_C_STORE: returns the DICOM status, never raises."""
    session = deps.sessions.get(event.assoc)
    request = event.request
    sop_uid = str(getattr(request, "AffectedSOPInstanceUID", "") or "")
    dimse = event.assoc.dimse
    # What the spool guard reserved for this dataset; given back once it is stored or refused.
    spooled = (
        dimse.take_spool(str(event.dataset_path))
        if isinstance(dimse, GuardedDIMSE)
        else SpoolState()
    )
    try:
        if session is None:  # cannot happen for an association we accepted
            log.error("C-STORE on an association without a datashare")
            return OUT_OF_RESOURCES
        if spooled.discarded:  # the rest did not fit: nothing of it was spooled
            return _refuse(
                deps, session, sop_uid, OUT_OF_RESOURCES, "buffer_full", "buffer quota reached"
            )
        # One open file throughout: a long upload's spool file stays readable even if the
        # stale-spool sweeper unlinks it meanwhile.
        with event.dataset_path.open("rb") as spool:
            return _store(deps, session, request, spool)
    finally:
        deps.quota.release(spooled.reserved)


def _store(deps: StoreDeps, session: Session, request: Any, spool: BinaryIO) -> int | Dataset:
    started = time.perf_counter()
    sop_uid = str(request.AffectedSOPInstanceUID or "")
    size = os.fstat(spool.fileno()).st_size
    data = spool.read() if size <= IN_MEMORY_MAX else None
    try:
        meta = read_metadata(io.BytesIO(data) if data is not None else spool)
    except InvalidDataset as exc:
        return _refuse(deps, session, sop_uid, CANNOT_UNDERSTAND, "invalid_dataset", str(exc))
    mismatch = _mismatch(request, meta)
    if mismatch:
        comment, detail = mismatch
        _refuse(deps, session, sop_uid, DOES_NOT_MATCH, "invalid_dataset", detail)
        answer = Dataset()
        answer.Status = DOES_NOT_MATCH
        answer.ErrorComment = comment
        return answer

    try:
        sha256 = _sha256(spool, data)
        key = buffer_key(
            session.datashare, meta.study_uid, meta.series_uid, meta.sop_instance_uid, sha256
        )
        # Whether this SOP Instance UID came before with other bytes: asked while the upload runs.
        new_version = deps.portal.start_task_soon(
            is_new_version, deps.digests, session.datashare, meta.sop_instance_uid, sha256
        )
        if data is not None:
            deps.store.put_bytes(key, data)
        else:
            spool.seek(0)
            deps.store.put_stream(key, spool, size)
    except Exception as exc:
        return _refuse(
            deps, session, sop_uid, OUT_OF_RESOURCES, "store_error", f"buffer write failed: {exc}"
        )

    stored_at = time.perf_counter()
    try:
        deps.bus.ensure_connected()
        stored = _stored_event(
            session, meta, key, size, sha256, new_version.result(deps.bus.timeout)
        )
        ack = deps.bus.publish(stored)
    except Exception as exc:
        return _refuse(
            deps,
            session,
            sop_uid,
            OUT_OF_RESOURCES,
            "bus_error",
            f"event not acknowledged: {exc!r}",
        )

    duplicate = bool(ack.duplicate)
    if duplicate:
        _drop_if_already_delivered(deps, key, ack)
    else:
        deps.quota.add(size)
    session.instances += 1
    session.bytes += size
    log.debug(
        "stored %s (%d bytes%s): buffer %.1f ms, event %.1f ms",
        key,
        size,
        ", duplicate" if duplicate else "",
        (stored_at - started) * 1000,
        (time.perf_counter() - stored_at) * 1000,
    )
    return SUCCESS


def _mismatch(request: Any, meta: InstanceMetadata) -> tuple[str, str] | None:
    """(Error Comment, detail) when the dataset is not the instance the request names:
    filed and forwarded as is, it would be refused only later, by a C-STORE destination."""
    for name, ours, theirs in (
        ("SOP Class UID", meta.sop_class_uid, request.AffectedSOPClassUID),
        ("SOP Instance UID", meta.sop_instance_uid, request.AffectedSOPInstanceUID),
    ):
        if ours != str(theirs or ""):
            return (
                f"{name} in the data set differs from the request",  # fits LO (64)
                f"{name} {ours!r} in the data set differs from the request's {str(theirs)!r}",
            )
    return None


def _drop_if_already_delivered(deps: StoreDeps, key: str, ack: PubAck) -> None:
    """A re-send whose event JetStream dropped as a duplicate wrote the same object again.
    If the uploader had already delivered the original, that copy is one nobody would
    collect: remove it once the original is acknowledged. Checked in the background, so
    a re-send is answered without waiting, and again for a while, because the uploader
    deletes the object a moment before it acknowledges the message."""
    try:
        deps.portal.start_task_soon(_drop_once_delivered, deps, key, ack.stream, ack.seq)
    except RuntimeError:  # the receiver is stopping: the instance is safe, at worst a stray copy
        log.info("re-sent %s not checked: the receiver is stopping", key)


async def _drop_once_delivered(deps: StoreDeps, key: str, stream: str, seq: int) -> None:
    deadline = time.monotonic() + RESEND_CHECK_S
    while True:
        try:
            info = await deps.bus.js.consumer_info(stream, UPLOADER_CONSUMER)
            if info.ack_floor and info.ack_floor.stream_seq >= seq:
                await asyncio.to_thread(deps.store.delete, key)
                log.info("re-sent %s was already delivered: buffered copy removed", key)
                return
        except Exception as exc:  # the instance is safe either way; at worst a stray copy
            log.debug("could not check whether %s was delivered yet: %s", key, exc)
        if time.monotonic() > deadline:
            # Still waiting for the uploader: it will deliver (and delete) this very object.
            log.info("re-sent %s not delivered yet; left for the uploader", key)
            return
        await asyncio.sleep(1.0)


def _stored_event(
    session: Session, meta: InstanceMetadata, key: str, size: int, sha256: str, new_version: bool
) -> InstanceStoredEvent:
    return InstanceStoredEvent(
        id=event_id(session.datashare, meta.sop_instance_uid, sha256),
        datashare=session.datashare,
        data=InstanceStored(
            study_uid=meta.study_uid,
            series_uid=meta.series_uid,
            sop_instance_uid=meta.sop_instance_uid,
            sop_class_uid=meta.sop_class_uid,
            key=key,
            size=size,
            sha256=sha256,
            association_id=session.ref.association_id,
            calling_ae=session.ref.calling_ae,
            modality=meta.modality,
            transfer_syntax=meta.transfer_syntax,
            new_version=new_version,
        ),
    )


def _refuse(
    deps: StoreDeps, session: Session, sop_uid: str, status: int, reason: RefusalReason, detail: str
) -> int:
    session.failures += 1
    log.warning(
        "C-STORE of %r for datashare %s refused with 0x%04X (%s): %s",
        sop_uid,
        session.datashare,
        status,
        reason,
        detail,
    )
    deps.bus.announce(
        InstanceRefusedEvent(
            datashare=session.datashare,
            data=InstanceRefused(
                association_id=session.ref.association_id,
                sop_instance_uid=sop_uid[:128],
                status=status,
                reason=reason,
                detail=detail[:1000],
            ),
        )
    )
    return status
