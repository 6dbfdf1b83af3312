"""The last digest received for each SOP Instance UID of a datashare, kept in a JetStream
key-value bucket so that every receiver process sees it: a re-send with different bytes is
recognised as a new version however the associations were spread across processes.

The digest is recorded while the object is being written, before it is known to be stored:
if that write fails, the PACS's retry (same bytes) still matches it; a retry with other
bytes is flagged as a new version, which is harmless."""

import hashlib

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from edge_core.topology import DIGESTS_BUCKET


async def open_digests(js: JetStreamContext) -> KeyValue:
    """The bucket, declared with the rest of the topology (edge_core.topology)."""
    return await js.key_value(DIGESTS_BUCKET)


def _key(datashare: str, sop_uid: str) -> str:
    # Datashare IDs are already key-safe; the UID is hashed, as peers choose it.
    digest = hashlib.sha256(sop_uid.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{datashare}.{digest[:40]}"


async def is_new_version(kv: KeyValue, datashare: str, sop_uid: str, sha256: str) -> bool:
    """Record ``sha256`` as this instance's digest; True if a different one was recorded
    before. One round trip in the common case (first time: the key is created)."""
    key = _key(datashare, sop_uid)
    try:
        await kv.create(key, sha256.encode())
        return False
    except KeyWrongLastSequenceError:
        pass
    entry = await kv.get(key)
    if entry.value and entry.value.decode() == sha256:
        return False
    await kv.put(key, sha256.encode())
    return True
