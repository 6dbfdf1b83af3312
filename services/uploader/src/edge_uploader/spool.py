"""A local copy of the object being forwarded, checked against the digest the receiver
announced, so that every destination reads verified bytes and may read them more than once."""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from minio.error import S3Error

from edge_core.objectstore import PART_SIZE, ObjectStore
from edge_uploader.retry import is_missing


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    sha256: str
    # What an S3 store answers as the ETag of these bytes uploaded in PART_SIZE parts.
    etag: str


def s3_etag(part_md5s: list[bytes]) -> str:
    if len(part_md5s) == 1:
        return part_md5s[0].hex()
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"  # noqa: S324


class _Digests:
    """Size, SHA-256 and S3 ETag of bytes fed in chunks."""

    def __init__(self) -> None:
        self.sha, self.size = hashlib.sha256(), 0
        self.md5s: list[bytes] = []
        self.part, self.part_size = hashlib.md5(), 0  # noqa: S324 - the S3 ETag, not security

    def update(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.size += len(chunk)
        while chunk:  # MD5 per upload part, as the ETag is computed
            take = chunk[: PART_SIZE - self.part_size]
            self.part.update(take)
            self.part_size += len(take)
            chunk = chunk[len(take) :]
            if self.part_size == PART_SIZE:
                self.md5s.append(self.part.digest())
                self.part, self.part_size = hashlib.md5(), 0  # noqa: S324

    def spooled(self, path: Path) -> Spooled:
        md5s = list(self.md5s)
        if self.part_size or not md5s:
            md5s.append(self.part.digest())
        return Spooled(path, self.size, self.sha.hexdigest(), s3_etag(md5s))


def spool(store: ObjectStore, key: str, directory: Path | None) -> Spooled | None:
    """Copy ``key`` to a new local file, or None if there is no such object."""
    try:
        resp = store.open(key)
    except S3Error as exc:
        if is_missing(exc):
            return None
        raise
    fd, name = tempfile.mkstemp(suffix=".dcm", prefix="edge-uploader-", dir=directory)
    digests = _Digests()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.stream(1024 * 1024):
                out.write(chunk)
                digests.update(chunk)
    except BaseException:
        os.unlink(name)
        raise
    finally:
        resp.close()
        resp.release_conn()
    return digests.spooled(Path(name))


def describe(path: Path) -> Spooled:
    """A local file (one the uploader made, such as a de-identified copy) as if spooled."""
    digests = _Digests()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digests.update(chunk)
    return digests.spooled(path)
