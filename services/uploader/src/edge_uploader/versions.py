"""Which version of a SOP Instance may be delivered, so that the destination ends with the newest
one received, whatever the sizes, the order of deliveries, crashes and the number of uploaders.

A version is one ``instance.stored`` event; the newest is the one with the highest stream
sequence. Per (datashare, SOP Instance UID) a record in the ``edge_uploader_versions`` bucket
holds ``newest`` (the highest sequence claimed so far) and ``active`` (the one version allowed
to be at the destination right now, or none). Every change is a compare-and-set on the entry's
revision, so all uploaders agree.

- A version older than ``newest`` is *superseded*: never sent (an older one must not overwrite
  a newer one).
- A newer version becomes ``newest`` at once, but *waits* while an older one is ``active``
  (its write may still land), then goes: the newest write is always the last one.
- Whatever ends an attempt (delivered, failed, dead-lettered) releases ``active`` before the
  message is acked or nak'ed. An uploader killed mid-delivery never releases: its message comes
  back after the ack wait, and that redelivery, seeing a newer version, releases it.
"""

import enum
import hashlib
import json
from dataclasses import dataclass, field

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


class Decision(enum.Enum):
    DELIVER = "deliver"
    WAIT = "wait"  # an older version may still be landing at the destination
    SUPERSEDED = "superseded"  # a newer version was received: never send this one


@dataclass(frozen=True)
class Claim:
    decision: Decision
    newest: int  # the newest version's stream sequence
    # This claim created the record: no version of this SOP instance was claimed before (within
    # the records' lifetime), so no uploader can have written it to a destination yet.
    first: bool = field(default=False, compare=False)
    # The record's revision as this claim left it (DELIVER): unchanged at release time, the
    # record is still (newest=seq, active=seq), so release needs no read.
    revision: int = field(default=0, compare=False)


@dataclass(frozen=True)
class _Record:
    newest: int
    active: int | None
    revision: int  # of the KV entry, for the compare-and-set; 0: no entry


def version_key(datashare: str, sop_uid: str) -> str:
    # Peers choose UIDs and KV keys have a small alphabet: hash them.
    raw = f"{datashare}\0{sop_uid}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:40]


class Versions:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def claim(self, datashare: str, sop_uid: str, seq: int) -> Claim:
        key = version_key(datashare, sop_uid)
        # The common case, a SOP instance's first version, takes one round trip: create.
        rec: _Record | None = None
        while True:
            try:
                if rec is None:
                    revision = await self.kv.create(key, _encode(seq, seq))
                    return Claim(Decision.DELIVER, seq, first=True, revision=revision)
                if rec.newest > seq:
                    if rec.active == seq:  # ours, from an attempt that never ended (a crash)
                        await self.kv.update(key, _encode(rec.newest, None), rec.revision)
                    return Claim(Decision.SUPERSEDED, rec.newest)
                if rec.active is None or rec.active == seq:
                    revision = rec.revision
                    if (rec.newest, rec.active) != (seq, seq):
                        revision = await self.kv.update(key, _encode(seq, seq), rec.revision)
                    return Claim(Decision.DELIVER, seq, revision=revision)
                if rec.newest < seq:  # newest from now on; the active one finishes first
                    await self.kv.update(key, _encode(seq, rec.active), rec.revision)
                return Claim(Decision.WAIT, seq)
            except KeyWrongLastSequenceError:
                pass  # there is a record, or another uploader changed it meanwhile
            rec = await self._get(key)  # decide again on what is there now

    async def release(self, datashare: str, sop_uid: str, seq: int, revision: int = 0) -> None:
        """This version is no longer being sent: a newer one may go. ``revision``: the
        claim's, saving a read when nobody changed the record since."""
        key = version_key(datashare, sop_uid)
        if revision:
            try:
                await self.kv.update(key, _encode(seq, None), revision)
                return
            except KeyWrongLastSequenceError:
                pass  # changed since the claim (a newer version waits): read and decide
        while True:
            rec = await self._get(key)
            if rec is None or rec.active != seq:
                return
            try:
                await self.kv.update(key, _encode(rec.newest, None), rec.revision)
                return
            except KeyWrongLastSequenceError:
                continue

    async def _get(self, key: str) -> _Record | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # never claimed, deleted, or expired
            return None
        value = json.loads(entry.value or b"{}")
        return _Record(int(value["newest"]), value.get("active"), entry.revision or 0)


def _encode(newest: int, active: int | None) -> bytes:
    return json.dumps({"newest": newest, "active": active}).encode()
