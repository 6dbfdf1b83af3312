"""Orphans in the buffer: objects that no ``instance.stored`` event names.

The receiver writes an object, then publishes its event; when that publish fails (NATS away,
a timeout) it refuses the C-STORE, so the PACS sends the instance again, but the object stays:
no uploader will ever take it, and it counts against the buffer's quota for ever. The buffer
is the truth: each pass lists it, and an object older than the grace period whose key no
``instance.stored`` event names is removed and reported (``buffer.orphan_removed``). An object
that has an event is never removed, however old: the uploader owns it.

Has this object an event? The event was published after the object was written or, for a
re-send whose event JetStream dropped as a duplicate, at most the stream's duplicate window
before. So the ``instance.stored`` events from a little before the oldest candidate's write
time to the end of the stream answer it for every candidate, in one read; keys found to have
one are remembered, so that later passes read only the events around newer candidates.

Races:
- an object being written: not listed before it is complete, and its event follows within
  the receiver's publish timeout, far inside the grace period;
- an event published but not yet consumed: the stream is read, not a consumer's progress;
- an object delivered and being deleted: it has an event, so it is left alone;
- an orphan written again meanwhile (the PACS's retry, same bytes, so the same key): each one
  is looked at again just before it is deleted and kept if it was written since it was listed
  (a rewrite within the few milliseconds between that look and the delete is not covered: the
  S3 API offers no conditional delete here);
- two uploaders at once: a second delete is harmless, and the event's id derives from the key
  and the write time, so JetStream keeps one report.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from edge_core.bus import publish
from edge_core.datashares import DATASHARE_ID_RE
from edge_core.events import (
    SUBJECT_PREFIX,
    BufferOrphanRemoved,
    BufferOrphanRemovedEvent,
    utcnow,
)
from edge_core.objectstore import ObjectStore, StoredObject

log = logging.getLogger(__name__)

# What the receiver writes (edge_core.keys.buffer_key); nothing else in the bucket is touched
# (quarantined instances live under quarantine/ and have no instance.stored of that key).
_BUFFER_KEY_RE = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+\.[0-9a-f]{16}\.dcm$")
# Between the S3 store's clock (write times) and NATS's (event times).
CLOCK_SLACK_S = 300.0
_BATCH = 1000


@dataclass
class Reconciler:
    js: JetStreamContext
    buffer: ObjectStore
    stream: str
    grace_s: float
    # The stream's duplicate window and retention (0: kept for ever).
    duplicate_window_s: float
    max_age_s: float
    name: str = ""
    announced: set[str] = field(default_factory=set)  # keys known to have an event

    async def sweep(self, now: datetime | None = None) -> list[BufferOrphanRemoved]:
        """One pass: what was removed."""
        now = now or utcnow()
        listed = await asyncio.to_thread(lambda: list(self.buffer.list()))
        self.announced &= {o.key for o in listed}
        cutoff = now - timedelta(seconds=self.grace_s)
        candidates = [
            o
            for o in listed
            if _BUFFER_KEY_RE.match(o.key)
            and o.key not in self.announced
            and o.modified is not None
            and o.modified < cutoff
        ]
        if not candidates:
            return []
        before = timedelta(seconds=self.duplicate_window_s + CLOCK_SLACK_S)
        named = await stored_keys(
            self.js, self.stream, min(o.modified for o in candidates if o.modified) - before
        )
        removed = []
        for obj in candidates:
            if obj.key in named:
                self.announced.add(obj.key)
            elif self._event_may_have_expired(obj, now, before):
                log.warning("%s has no event, but is older than the stream: left", obj.key)
                self.announced.add(obj.key)
            elif (orphan := await self._remove(obj)) is not None:
                removed.append(orphan)
        return removed

    def _event_may_have_expired(self, obj: StoredObject, now: datetime, slack: timedelta) -> bool:
        assert obj.modified is not None
        return (
            bool(self.max_age_s) and obj.modified < now - timedelta(seconds=self.max_age_s) + slack
        )

    async def _remove(self, obj: StoredObject) -> BufferOrphanRemoved | None:
        if await asyncio.to_thread(self.buffer.modified_of, obj.key) != obj.modified:
            return None  # written again (or removed) since it was listed: look next time
        await asyncio.to_thread(self.buffer.delete, obj.key)
        assert obj.modified is not None
        data = BufferOrphanRemoved(
            key=obj.key, size=obj.size, last_modified=obj.modified, reconciler=self.name
        )
        datashare = obj.key.split("/", 1)[0]
        raw = f"orphan:{obj.key}:{obj.modified.isoformat()}".encode()
        event = BufferOrphanRemovedEvent(
            id=hashlib.sha256(raw).hexdigest()[:32],
            datashare=datashare if DATASHARE_ID_RE.match(datashare) else None,
            data=data,
        )
        log.warning(
            "removed %s (%d bytes, written %s): no instance.stored event names it",
            obj.key,
            obj.size,
            obj.modified,
        )
        try:
            await publish(self.js, event)
        except Exception as exc:
            log.warning("could not report the removal of %s: %s", obj.key, exc)
        return data


async def stored_keys(js: JetStreamContext, stream: str, since: datetime) -> set[str]:
    """The buffer keys named by ``instance.stored`` events from ``since`` to the end of the
    stream (a short-lived consumer that reads them once)."""
    sub = await js.pull_subscribe(
        f"{SUBJECT_PREFIX}.*.instance.stored",
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    keys: set[str] = set()
    try:
        while True:
            try:
                msgs = await sub.fetch(_BATCH, timeout=1.0)
            except NatsTimeout:
                return keys  # nothing (more) in the range
            for msg in msgs:
                try:
                    keys.add(json.loads(msg.data)["data"]["key"])
                except (ValueError, KeyError, TypeError):
                    log.debug("unreadable instance.stored event at %s", msg.metadata.sequence)
            if msgs[-1].metadata.num_pending == 0:
                return keys
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, (await sub.consumer_info()).name)
        await sub.unsubscribe()


async def reconcile_forever(reconciler: Reconciler, interval_s: float) -> None:
    """At start-up, then every ``interval_s``."""
    while True:
        try:
            removed = await reconciler.sweep()
            if removed:
                log.warning("removed %d orphan(s) from the buffer", len(removed))
        except Exception as exc:  # the buffer or NATS away: try again next time
            log.warning("could not reconcile the buffer: %s", exc)
        await asyncio.sleep(interval_s)
