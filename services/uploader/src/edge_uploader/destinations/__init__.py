"""Destinations behind one small interface: ``deliver(items) -> outcomes``, one outcome per item,
in order. Calls are blocking (minio, httpx, pynetdicom) and run in worker threads.

A destination raises :class:`DeliveryError` (or any network error, counted as transient) when a
whole batch failed, and returns per-item failures when the destination reported them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from edge_core.events import InstanceRef


@dataclass(frozen=True)
class Item:
    """One instance to deliver: its reference and a local copy already checked against it."""

    datashare: str
    ref: InstanceRef
    path: Path
    # The S3 ETag of these bytes (MD5, or MD5 of the parts' MD5s above the part size).
    etag: str
    # No uploader has sent any version of this SOP instance before (its first claim, first
    # delivery): a destination need not look whether it already holds it.
    first: bool = False


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    # The destination already held this instance (a redelivery after a crash).
    already_present: bool = False
    error: str = ""
    permanent: bool = False


DELIVERED = Outcome(delivered=True)
ALREADY_PRESENT = Outcome(delivered=True, already_present=True)


def failed(error: str, permanent: bool) -> Outcome:
    return Outcome(delivered=False, error=error, permanent=permanent)


class DeliveryError(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Destination(Protocol):
    # The destination's URL without credentials, as events and logs show it.
    url: str
    # How many instances of one study go in one call (one request, one association).
    max_batch: int

    def deliver(self, items: list[Item]) -> list[Outcome]: ...

    def close(self) -> None: ...


def public_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.scheme == "dicom" or "@" not in parts.netloc:  # dicom://AE@host: no secret
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
