"""The last digest received for each SOP Instance UID of a datashare, kept in a JetStream
key-value bucket so that every receiver process sees it: a re-send with different bytes is
recognised as a new version however the associations were spread across processes."""

import hashlib
from datetime import timedelta

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

DIGESTS_BUCKET = "edge_receiver_digests"
# Long enough for any PACS re-send we care to recognise; bounded so the bucket stays small.
DIGESTS_MAX_AGE = timedelta(days=30)


async def open_digests(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    try:
        return await js.key_value(DIGESTS_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=DIGESTS_BUCKET,
                history=1,
                ttl=DIGESTS_MAX_AGE.total_seconds(),
                storage=StorageType.FILE,
                replicas=replicas,
            )
        )


def _key(datashare: str, sop_uid: str) -> str:
    # Datashare IDs are already key-safe; the UID is hashed, as peers choose it.
    digest = hashlib.sha256(sop_uid.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{datashare}.{digest[:40]}"


async def previous_digest(kv: KeyValue, datashare: str, sop_uid: str) -> str | None:
    try:
        entry = await kv.get(_key(datashare, sop_uid))
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


async def record_digest(kv: KeyValue, datashare: str, sop_uid: str, sha256: str) -> None:
    await kv.put(_key(datashare, sop_uid), sha256.encode())
