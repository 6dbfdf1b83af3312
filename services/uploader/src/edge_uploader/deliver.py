"""Delivering instances and settling their JetStream messages.

After a confirmed delivery, always in this order: publish ``instance.uploaded``, delete the
buffered object, ack. A crash between any two steps is safe: the message comes back, and
either the buffered object is gone (so it was delivered or dead-lettered: ack) or it is
delivered again to the same key / SOP Instance UID, where the destination already holds it.
Events take ids derived from the message, so a repeat within JetStream's duplicate window
is dropped. Dead letters follow the same order: copy to quarantine, publish, delete, ack.

Versions (edge_uploader.versions): before a delivery, the version is claimed; one older than
the newest received is superseded (``instance.superseded``, delete, ack: never sent), one
newer than a version still being sent waits (nak). Every attempt's end releases the claim
first, before any ack or nak, so a newer version never waits on a message already settled.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from minio.commonconfig import REPLACE, CopySource
from minio.error import S3Error
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from edge_core.bus import publish
from edge_core.datashares import Deidentification
from edge_core.events import (
    InstanceDeadLettered,
    InstanceDeadLetteredEvent,
    InstanceFailed,
    InstanceFailedEvent,
    InstanceRef,
    InstanceRetryRequestedEvent,
    InstanceStoredEvent,
    InstanceSuperseded,
    InstanceSupersededEvent,
    InstanceUploaded,
    InstanceUploadedEvent,
    parse_event,
    utcnow,
)
from edge_core.keys import quarantine_key
from edge_core.objectstore import ObjectStore
from edge_core.topology import ConsumerTuning
from edge_uploader import retry
from edge_uploader.config import UploaderSettings
from edge_uploader.deidentify import Held, Pseudonyms, deidentify
from edge_uploader.destinations import DeliveryError, Destination, Item, Outcome, failed
from edge_uploader.routing import Router
from edge_uploader.spool import Spooled, describe, spool
from edge_uploader.versions import Decision, Versions

log = logging.getLogger(__name__)

# User metadata on a quarantined object: what it is, so that a retry can deliver it again.
INSTANCE_META = "edge-instance"
# In-progress acks keep a long delivery's messages from being redelivered meanwhile.
KEEPALIVE_S = ConsumerTuning().ack_wait_s / 3


class Quarantined(BaseModel):
    datashare: str
    ref: InstanceRef
    # Stream sequence of the version's instance.stored event (absent: quarantined before
    # versions were tracked; the retry then counts as the newest version).
    version: int | None = None


@dataclass
class Work:
    """One message to settle: the instance, where its bytes are, and which attempt this is."""

    msg: Msg
    datashare: str
    ref: InstanceRef
    source_key: str  # the buffer key, or the quarantine key when staff asked for a retry
    attempt: int
    seq: int
    # Which version this is: the stream sequence of its instance.stored event.
    version: int
    # Its claim was the first of any version of this SOP instance (see versions.Claim).
    first_claim: bool = False
    claim_revision: int = 0
    # The datashare's de-identification when this attempt began (None: byte for byte).
    deidentification: tuple[Deidentification, Pseudonyms] | None = None
    # Held by de-identification: dead-lettered at once, never sent.
    held: bool = False

    def event_id(self, kind: str, attempt: int = 0) -> str:
        """The same for a repeat of the same step, so JetStream drops the repeat."""
        raw = f"{kind}:{self.ref.key}:{self.seq}:{attempt}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]


@dataclass
class Uploader:
    js: JetStreamContext
    buffer: ObjectStore
    router: Router
    settings: UploaderSettings
    versions: Versions

    async def handle(self, msgs: list[Msg]) -> None:
        """Deliver and settle a batch of messages; several instances of one study to one
        destination go together (one STOW-RS request, one association)."""
        groups: dict[tuple[int, str], tuple[Destination, list[Work]]] = {}
        for msg in msgs:
            try:
                work = await self._work_for(msg)
            except Exception:  # e.g. the buffer is down: the message comes back after the ack wait
                log.exception("cannot handle the event on %s", msg.subject)
                continue
            if work is None or not await self._claim(work):
                continue
            if work.attempt > self.settings.uploader_max_attempts:
                # Delivered that often without ever settling: it crashes uploaders (or they
                # keep being killed while on it). Stop the loop.
                error = f"delivered {work.attempt} times without an outcome"
                await self._settle(work, "", failed(error, permanent=True))
                continue
            try:
                destination = self.router.destination_for(work.datashare, work.attempt)
                work.deidentification = self.router.deidentification(work.datashare)
            except DeliveryError as exc:
                await self._settle(work, "", failed(str(exc), exc.permanent))
                continue
            key = (id(destination), work.ref.study_uid)
            groups.setdefault(key, (destination, []))[1].append(work)
        await asyncio.gather(
            *(
                self._deliver(destination, works[i : i + destination.max_batch])
                for destination, works in groups.values()
                for i in range(0, len(works), destination.max_batch)
            )
        )

    async def _work_for(self, msg: Msg) -> Work | None:
        """What to deliver for this message, or None when there is nothing (left) to do."""
        try:
            event = parse_event(msg.data)
        except ValidationError as exc:
            log.error("dropping an invalid event on %s: %s", msg.subject, exc)
            await msg.term()
            return None
        meta = msg.metadata
        attempt, seq = meta.num_delivered, meta.sequence.stream
        if isinstance(event, InstanceStoredEvent) and event.datashare:
            ref = InstanceRef.model_validate(event.data.model_dump(include=_REF_FIELDS))
            return Work(msg, event.datashare, ref, ref.key, attempt, seq, seq)
        if isinstance(event, InstanceRetryRequestedEvent):
            key = event.data.quarantine_key
            try:
                stat = await asyncio.to_thread(
                    self.buffer.client.stat_object, self.buffer.bucket, key
                )
            except S3Error as exc:
                if not retry.is_missing(exc):
                    raise
                log.info("retry of %s: nothing in quarantine (already delivered?)", key)
                await msg.ack()
                return None
            raw = (stat.metadata or {}).get(f"x-amz-meta-{INSTANCE_META}")
            if not raw:
                log.error("retry of %s: not a quarantined instance", key)
                await msg.term()
                return None
            quarantined = Quarantined.model_validate_json(raw)
            version = quarantined.version or seq
            return Work(msg, quarantined.datashare, quarantined.ref, key, attempt, seq, version)
        log.warning("ignoring %s event %s", event.type, event.id)
        await msg.ack()
        return None

    async def _claim(self, work: Work) -> bool:
        """Whether to deliver this version now; if not, its message is settled here."""
        try:
            claim = await self.versions.claim(
                work.datashare, work.ref.sop_instance_uid, work.version
            )
            work.first_claim, work.claim_revision = claim.first, claim.revision
            if claim.decision is Decision.SUPERSEDED:
                await self._superseded(work, claim.newest)
            elif claim.decision is Decision.WAIT:
                # Not a failure: look again soon (the older one ends within an ack wait of
                # its sender's crash, or when its delivery ends).
                delay = min(self._backoff_s(work), ConsumerTuning().ack_wait_s)
                log.info("%s waits %.1f s for an older version to land", work.ref.key, delay)
                await work.msg.nak(delay=delay)
        except Exception:  # NATS away: the message comes back after the ack wait
            log.exception("cannot claim %s", work.ref.key)
            return False
        return claim.decision is Decision.DELIVER

    async def _release(self, work: Work) -> None:
        await self.versions.release(
            work.datashare, work.ref.sop_instance_uid, work.version, work.claim_revision
        )

    async def _resolve(
        self, work: Work, event: InstanceUploadedEvent | InstanceSupersededEvent
    ) -> None:
        """Announce how the instance was resolved, free the buffer, then acknowledge: in that
        order, so that a crash in between means a redelivery, never a lost instance."""
        await publish(self.js, event)
        await asyncio.to_thread(self.buffer.delete, work.source_key)
        await work.msg.ack()

    async def _superseded(self, work: Work, newest: int) -> None:
        data = InstanceSuperseded(
            **work.ref.model_dump(), stream_seq=work.version, newer_stream_seq=newest
        )
        event = InstanceSupersededEvent(
            id=work.event_id("superseded"), datashare=work.datashare, data=data
        )
        await self._resolve(work, event)
        log.info("%s superseded by a newer version (stream sequence %d)", work.ref.key, newest)

    def _backoff_s(self, work: Work) -> float:
        return retry.backoff_s(
            work.attempt,
            self.settings.uploader_backoff_initial_s,
            self.settings.uploader_backoff_max_s,
        )

    async def _deliver(self, destination: Destination, works: list[Work]) -> None:
        paths: list[Path] = []
        try:
            async with _keepalive([w.msg for w in works]):
                ready: list[tuple[Work, Item]] = []
                for work in works:
                    item = await self._fetch(work, destination.url, paths)
                    if item is not None:
                        ready.append((work, item))
                if not ready:
                    return
                outcomes = await _call(destination.deliver, [item for _, item in ready])
                for (work, _), outcome in zip(ready, outcomes, strict=True):
                    await self._settle(work, destination.url, outcome)
        finally:
            for path in paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def _fetch(self, work: Work, url: str, paths: list[Path]) -> Item | None:
        """The local, verified copy of the instance; None once the failure is settled."""
        try:
            spooled = await asyncio.to_thread(
                spool, self.buffer, work.source_key, self.settings.uploader_spool_dir
            )
        except Exception as exc:
            await self._settle(work, url, failed(f"reading the buffer: {exc}", permanent=False))
            return None
        if spooled is None:  # deleted after delivery (or dead-lettering): only the ack was lost
            log.info("%s is no longer buffered: already settled", work.source_key)
            await self._release(work)
            await work.msg.ack()
            return None
        paths.append(spooled.path)
        if (spooled.size, spooled.sha256) != (work.ref.size, work.ref.sha256):
            error = f"buffered object {work.source_key} does not match its size and SHA-256"
            await self._settle(work, url, failed(error, permanent=True))
            return None
        first = work.first_claim and work.attempt == 1
        if work.deidentification is not None:
            return await self._deidentified(work, url, spooled, paths, first)
        return Item(work.datashare, work.ref, spooled.path, spooled.etag, first)

    async def _deidentified(
        self, work: Work, url: str, spooled: Spooled, paths: list[Path], first: bool
    ) -> Item | None:
        """The de-identified copy to send instead (the buffer keeps the instance as received,
        so a retry, or one after a change of profile, starts again from the original); None
        once a held or unreadable instance is settled (dead-lettered)."""
        assert work.deidentification is not None
        config, pseudonyms = work.deidentification
        fd, name = tempfile.mkstemp(
            suffix=".dcm", prefix="edge-deid-", dir=self.settings.uploader_spool_dir
        )
        os.close(fd)
        target = Path(name)
        paths.append(target)
        try:
            result = await asyncio.to_thread(deidentify, spooled.path, target, config, pseudonyms)
            copy = await asyncio.to_thread(describe, target)
        except Held as exc:
            work.held = True
            await self._settle(work, url, failed(str(exc), permanent=True))
            return None
        except OSError as exc:  # local disk: worth another try
            await self._settle(work, url, failed(f"de-identifying: {exc}", permanent=False))
            return None
        except Exception as exc:  # the same input fails the same way: no use retrying
            error = f"cannot de-identify: {type(exc).__name__}: {exc}"
            await self._settle(work, url, failed(error, permanent=True))
            return None
        ref = work.ref.model_copy(
            update={
                "study_uid": result.study_uid,
                "series_uid": result.series_uid,
                "sop_instance_uid": result.sop_instance_uid,
                "size": copy.size,
                "sha256": copy.sha256,
            }
        )
        return Item(work.datashare, ref, target, copy.etag, first)

    async def _settle(self, work: Work, url: str, outcome: Outcome) -> None:
        try:
            await self._release(work)  # this attempt is over: a newer version may go
            if outcome.delivered:
                await self._uploaded(work, url, outcome.already_present)
            else:
                await self._settle_failure(work, url, outcome.error, outcome.permanent)
        except Exception:
            # The message is not acked: it comes back after the ack wait and is settled then.
            log.exception("could not settle %s", work.ref.key)

    async def _uploaded(self, work: Work, url: str, already_present: bool) -> None:
        data = InstanceUploaded(
            **work.ref.model_dump(),
            destination=url,
            attempts=work.attempt,
            already_present=already_present,
            deidentified=work.deidentification is not None,
        )
        event = InstanceUploadedEvent(
            id=work.event_id("uploaded"), datashare=work.datashare, data=data
        )
        await self._resolve(work, event)
        log.debug("delivered %s to %s", work.ref.key, url)

    async def _settle_failure(self, work: Work, url: str, error: str, permanent: bool) -> None:
        final = permanent or work.attempt >= self.settings.uploader_max_attempts
        delay = self._backoff_s(work)
        data = InstanceFailed(
            **work.ref.model_dump(),
            destination=url,
            attempt=work.attempt,
            error=error,
            permanent=final,
            next_attempt_at=None if final else utcnow() + timedelta(seconds=delay),
        )
        log.warning("attempt %d of %s failed: %s", work.attempt, work.ref.key, error)
        await publish(
            self.js,
            InstanceFailedEvent(
                id=work.event_id("failed", work.attempt), datashare=work.datashare, data=data
            ),
        )
        if final:
            await self._dead_letter(work, url, error)
        else:
            await work.msg.nak(delay=delay)

    async def _dead_letter(self, work: Work, url: str, error: str) -> None:
        qkey = quarantine_key(work.ref.key)
        if work.source_key != qkey:
            meta = Quarantined(
                datashare=work.datashare, ref=work.ref, version=work.version
            ).model_dump_json()
            try:
                await asyncio.to_thread(
                    self.buffer.client.copy_object,
                    self.buffer.bucket,
                    qkey,
                    CopySource(self.buffer.bucket, work.source_key),
                    metadata={INSTANCE_META: meta},
                    metadata_directive=REPLACE,
                )
            except S3Error as exc:
                if not retry.is_missing(exc):
                    raise
                await work.msg.ack()  # already quarantined and deleted: only the ack was lost
                return
        data = InstanceDeadLettered(
            **work.ref.model_dump(),
            destination=url,
            attempts=work.attempt,
            error=error,
            quarantine_key=qkey,
            held=work.held,
        )
        await publish(
            self.js,
            InstanceDeadLetteredEvent(
                id=work.event_id("dead_lettered"), datashare=work.datashare, data=data
            ),
        )
        if work.source_key != qkey:
            await asyncio.to_thread(self.buffer.delete, work.source_key)
        await work.msg.ack()
        log.error("dead-lettered %s to %s: %s", work.ref.key, qkey, error)


_REF_FIELDS = set(InstanceRef.model_fields)


async def _call(deliver: Callable[[list[Item]], list[Outcome]], items: list[Item]) -> list[Outcome]:
    """Run a destination's blocking call; a raised error fails the whole batch."""
    try:
        return await asyncio.to_thread(deliver, items)
    except Exception as exc:
        permanent = retry.is_permanent(exc)
        return [failed(f"{type(exc).__name__}: {exc}", permanent)] * len(items)


@contextlib.asynccontextmanager
async def _keepalive(msgs: list[Msg]) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for msg in msgs:  # the server ignores it for those already settled
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
