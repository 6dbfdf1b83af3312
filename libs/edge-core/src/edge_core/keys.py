"""Object keys derived from validated identifiers: a raw peer string never becomes a path."""

import hashlib
import re

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def safe_uid(uid: str) -> str:
    """A DICOM UID as a key component: itself if it is a valid UID (digits and dots, at most
    64 characters), otherwise ``x`` + a hash of it, so that it cannot escape or collide."""
    uid = uid.strip("\0 ")
    if len(uid) <= 64 and _UID_RE.match(uid):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def buffer_key(datashare: str, study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """Where an instance waits in the buffer. The digest is part of the key, so the same
    instance re-sent with different bytes is kept as a separate version."""
    return (
        f"{datashare}/{safe_uid(study_uid)}/{safe_uid(series_uid)}/"
        f"{safe_uid(sop_uid)}.{sha256[:16]}.dcm"
    )


def quarantine_key(key: str) -> str:
    """Where a dead-lettered instance is kept, in the same bucket."""
    return f"quarantine/{key}"


def destination_key(
    prefix: str, datashare: str, study_uid: str, series_uid: str, sop_uid: str
) -> str:
    """``<prefix>/<datashare>/<study>/<series>/<sop>.dcm`` at an S3 destination."""
    path = f"{datashare}/{safe_uid(study_uid)}/{safe_uid(series_uid)}/{safe_uid(sop_uid)}.dcm"
    prefix = prefix.strip("/")
    return f"{prefix}/{path}" if prefix else path
