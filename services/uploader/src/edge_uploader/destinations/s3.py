"""``s3://bucket/prefix``: one object per instance at
``<prefix>/<datashare>/<study>/<series>/<sop>.dcm``, verified after the write.

The key depends only on the UIDs, so a redelivery overwrites, never adds a copy; an object
already there with the same size, ETag and SHA-256 counts as delivered without a new write.
Optional query parameters choose another store: ``?endpoint=host:port&secure=true&region=..``.
"""

import threading
from urllib.parse import parse_qs, urlsplit

from minio import Minio
from minio.error import S3Error

from edge_core.keys import destination_key
from edge_core.objectstore import PART_SIZE, ObjectStore, make_client
from edge_uploader.config import UploaderSettings
from edge_uploader.destinations import (
    ALREADY_PRESENT,
    DELIVERED,
    DeliveryError,
    Item,
    Outcome,
)

# User metadata holding the instance's SHA-256, checked on redelivery and after the write.
SHA256_META = "edge-sha256"
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


class S3Destination:
    max_batch = 1  # one object per call; concurrency comes from running calls side by side

    def __init__(self, url: str, client: Minio, bucket: str, prefix: str) -> None:
        self.url = url
        self.store = ObjectStore(client, bucket)
        self.prefix = prefix
        self._bucket_checked = False
        self._lock = threading.Lock()

    def deliver(self, items: list[Item]) -> list[Outcome]:
        self._ensure_bucket()
        return [self._put(item) for item in items]

    def close(self) -> None:
        pass

    def _ensure_bucket(self) -> None:
        # Creates the bucket when it is missing and these keys may (the local default store).
        with self._lock:
            if not self._bucket_checked:
                self.store.ensure_bucket()
                self._bucket_checked = True

    def _key(self, item: Item) -> str:
        ref = item.ref
        return destination_key(
            self.prefix, item.datashare, ref.study_uid, ref.series_uid, ref.sop_instance_uid
        )

    def _put(self, item: Item) -> Outcome:
        key = self._key(item)
        if self._difference(key, item) is None:
            return ALREADY_PRESENT
        self.store.client.fput_object(
            self.store.bucket,
            key,
            str(item.path),
            content_type="application/dicom",
            metadata={SHA256_META: item.ref.sha256},
            part_size=PART_SIZE,
        )
        mismatch = self._difference(key, item)
        if mismatch is not None:
            raise DeliveryError(f"verification of s3 object {key} failed: {mismatch}")
        return DELIVERED

    def _difference(self, key: str, item: Item) -> str | None:
        """None if ``key`` holds exactly this instance, else what differs."""
        try:
            stat = self.store.client.stat_object(self.store.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return "absent"
            raise
        found = (stat.size, stat.etag, (stat.metadata or {}).get(f"x-amz-meta-{SHA256_META}"))
        wanted = (item.ref.size, item.etag, item.ref.sha256)
        return None if found == wanted else f"found (size, etag, sha256) {found}, wanted {wanted}"


def open_s3(url: str, credentials: dict[str, str], settings: UploaderSettings) -> S3Destination:
    parts = urlsplit(url)
    if not parts.hostname:
        raise DeliveryError(f"no bucket in destination {url!r}", permanent=True)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    secret = settings.destination_s3_secret_key or settings.s3_secret_key
    secure = settings.s3_secure
    if settings.destination_s3_secure is not None:
        secure = settings.destination_s3_secure
    if "secure" in query:
        secure = query["secure"].lower() in ("1", "true", "yes")
    client = make_client(
        query.get("endpoint") or settings.destination_s3_endpoint or settings.s3_endpoint,
        credentials.get("access_key")
        or settings.destination_s3_access_key
        or settings.s3_access_key,
        credentials.get("secret_key") or secret.get_secret_value(),
        secure=secure,
        region=query.get("region") or settings.s3_region,
        timeout_s=settings.uploader_timeout_s,
    )
    return S3Destination(url, client, parts.hostname, parts.path.strip("/"))
