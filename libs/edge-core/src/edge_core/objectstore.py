"""The object-store helper: the buffer (and S3 destinations) through the ``minio`` client."""

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.error import S3Error

from edge_core.settings import EdgeSettings

# Objects above this are sent as a multipart upload of parts of this size.
PART_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime | None = None  # when it was last written (the store's clock)


def make_client(
    endpoint: str,
    access_key: str,
    secret_key: str,
    *,
    secure: bool = False,
    region: str | None = "us-east-1",
    pool_size: int = 16,
    timeout_s: float = 30.0,
) -> Minio:
    http = urllib3.PoolManager(
        maxsize=pool_size,
        timeout=urllib3.Timeout(connect=5.0, read=timeout_s),
        # Retries belong to the caller (the receiver refuses, the uploader backs off).
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),
    )
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        http_client=http,
    )


class ObjectStore:
    """One bucket of an S3-compatible store."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def buffer(cls, settings: EdgeSettings, **kwargs: object) -> "ObjectStore":
        client = make_client(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            **kwargs,  # type: ignore[arg-type]
        )
        return cls(client, settings.buffer_bucket)

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:  # created by another process meanwhile
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/dicom") -> None:
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def put_stream(
        self, key: str, stream: BinaryIO, size: int, content_type: str = "application/dicom"
    ) -> None:
        """Upload from a file-like object without reading it all into memory (multipart
        above :data:`PART_SIZE`)."""
        self.client.put_object(
            self.bucket, key, stream, size, content_type=content_type, part_size=PART_SIZE
        )

    def get_bytes(self, key: str) -> bytes:
        resp = self.client.get_object(self.bucket, key)
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def open(self, key: str) -> urllib3.BaseHTTPResponse:
        """A streaming response; the caller must ``close()`` and ``release_conn()`` it."""
        return self.client.get_object(self.bucket, key)

    def sha256_of(self, key: str) -> tuple[int, str]:
        """Size and SHA-256 of a stored object, read back in chunks."""
        resp = self.client.get_object(self.bucket, key)
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in resp.stream(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        finally:
            resp.close()
            resp.release_conn()
        return size, digest.hexdigest()

    def modified_of(self, key: str) -> datetime | None:
        """When the object was last written, or None if there is no such object."""
        try:
            return self.client.stat_object(self.bucket, key).last_modified
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise

    def size_of(self, key: str) -> int | None:
        """The object's size, or None if there is no such object."""
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        return stat.size

    def exists(self, key: str) -> bool:
        return self.size_of(key) is not None

    def copy(self, src_key: str, dst_key: str) -> None:
        from minio.commonconfig import CopySource

        self.client.copy_object(self.bucket, dst_key, CopySource(self.bucket, src_key))

    def delete(self, key: str) -> None:
        """Idempotent: deleting what is already gone succeeds."""
        self.client.remove_object(self.bucket, key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
            if obj.object_name is not None and not obj.is_dir:
                yield StoredObject(obj.object_name, obj.size or 0, obj.last_modified)

    def usage(self, prefix: str = "") -> tuple[int, int]:
        """(objects, bytes) under ``prefix``: a full listing, so call it rarely."""
        count = total = 0
        for obj in self.list(prefix):
            count += 1
            total += obj.size
        return count, total
