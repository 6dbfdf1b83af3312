"""``s3://bucket/prefix``: one object per instance at
``<prefix>/<datashare>/<study>/<series>/<sop>.dcm``, verified after the write.

The key depends only on the UIDs, so a redelivery overwrites, never adds a copy; an object
already there with the same size, ETag and SHA-256 counts as delivered without a new write.
Verified by the write's answer: the store's ETag (its MD5 of the bytes it stored, in parts
above the part size) must equal that of the local copy, itself checked against the SHA-256
the receiver announced, so size and content are both confirmed without reading the object
back. A write-only destination (HEAD refused with 403) works: the check before the write is
then skipped. It is skipped too on the first delivery of a SOP instance no uploader claimed
before (``Item.first``): one S3 request fewer per instance in a steady transfer.
"""

import threading
from urllib.parse import urlsplit

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
from edge_uploader.retry import is_missing

# User metadata holding the instance's SHA-256, checked on redelivery and after the write.
SHA256_META = "edge-sha256"


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
        """Create the bucket if it is missing and these keys may (the local default store);
        a store that does not let us look (403) is left to answer the writes."""
        with self._lock:
            if not self._bucket_checked:
                try:
                    self.store.ensure_bucket()
                except S3Error as exc:
                    if exc.response is None or exc.response.status != 403:
                        raise
                self._bucket_checked = True

    def _key(self, item: Item) -> str:
        ref = item.ref
        return destination_key(
            self.prefix, item.datashare, ref.study_uid, ref.series_uid, ref.sop_instance_uid
        )

    def _put(self, item: Item) -> Outcome:
        key = self._key(item)
        # First delivery of a SOP instance never sent before: nothing of ours to find there
        # (a redelivery or a re-send looks first, so identical bytes are not written twice).
        if not item.first and self._holds(key, item):
            return ALREADY_PRESENT
        result = self.store.client.fput_object(
            self.store.bucket,
            key,
            str(item.path),
            content_type="application/dicom",
            metadata={SHA256_META: item.ref.sha256},
            part_size=PART_SIZE,
        )
        if result.etag != item.etag:
            raise DeliveryError(f"s3 object {key}: ETag {result.etag}, expected {item.etag}")
        return DELIVERED

    def _holds(self, key: str, item: Item) -> bool:
        """Whether ``key`` already holds exactly this instance (size, ETag and SHA-256)."""
        try:
            stat = self.store.client.stat_object(self.store.bucket, key)
        except S3Error as exc:
            if is_missing(exc) or (exc.response is not None and exc.response.status == 403):
                return False  # absent, or not visible to write-only keys
            raise
        found = (stat.size, stat.etag, (stat.metadata or {}).get(f"x-amz-meta-{SHA256_META}"))
        return found == (item.ref.size, item.etag, item.ref.sha256)


def open_s3(url: str, credentials: dict[str, str], settings: UploaderSettings) -> S3Destination:
    """The bucket and prefix from the URL; endpoint and keys from the settings, keys
    overridden by the datashare's credentials."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise DeliveryError(f"no bucket in destination {url!r}", permanent=True)
    secret = settings.destination_s3_secret_key or settings.s3_secret_key
    secure = settings.destination_s3_secure
    client = make_client(
        settings.destination_s3_endpoint or settings.s3_endpoint,
        credentials.get("access_key")
        or settings.destination_s3_access_key
        or settings.s3_access_key,
        credentials.get("secret_key") or secret.get_secret_value(),
        secure=settings.s3_secure if secure is None else secure,
        region=settings.s3_region,
        timeout_s=settings.uploader_timeout_s,
    )
    return S3Destination(url, client, parts.hostname, parts.path.strip("/"))
