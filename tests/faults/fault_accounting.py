"""Accounting by sets, per fault: what the PACS was answered Success for, against what the
destination holds (every copy: the destination bucket is versioned, so a second write of
one key is a second version, not an overwrite), and against the monitor's counts."""

import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass, field

from minio import Minio
from pydicom import dcmread
from pydicom.dataset import Dataset


@dataclass
class Copy:
    sop_instance_uid: str
    sha256: str  # of the object's bytes: copies of one instance must be identical
    pixels_sha256: str  # of its pixel data: must be what the PACS sent


def destination_copies(client: Minio, bucket: str, prefix: str) -> dict[str, list[Copy]]:
    """Every version of every object under ``prefix``, by SOP Instance UID (read from the
    object, not its key)."""
    found: dict[str, list[Copy]] = defaultdict(list)
    for obj in client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True):
        if obj.is_delete_marker:
            continue
        resp = client.get_object(bucket, obj.object_name, version_id=obj.version_id)
        try:
            data = resp.read()
        finally:
            resp.close()
            resp.release_conn()
        ds = dcmread(io.BytesIO(data))
        uid = str(ds.SOPInstanceUID)
        found[uid].append(Copy(uid, _sha(data), _sha(ds.PixelData)))
    return dict(found)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Accounting:
    fault: str
    images: int
    success: set[str]
    refusals: dict[int | str, int]
    copies: dict[str, list[Copy]]
    sent_pixels: dict[str, str]  # SOP Instance UID -> SHA-256 of the pixel data sent
    monitor: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def delivered(self) -> set[str]:
        return set(self.copies)

    @property
    def lost(self) -> set[str]:
        """Answered Success and not at the destination: must be empty, whatever the fault."""
        return self.success - self.delivered

    @property
    def unexpected(self) -> set[str]:
        """At the destination and never sent."""
        return self.delivered - set(self.sent_pixels)

    @property
    def duplicates(self) -> dict[str, int]:
        """Instances written more than once (a delivery cut by a crash, then redone)."""
        return {uid: len(c) for uid, c in self.copies.items() if len(c) > 1}

    @property
    def differing_duplicates(self) -> set[str]:
        """Duplicates whose copies are not byte for byte the same: must be empty."""
        return {uid for uid in self.duplicates if len({c.sha256 for c in self.copies[uid]}) > 1}

    @property
    def corrupt(self) -> set[str]:
        """Copies whose pixel data is not what the PACS sent: must be empty."""
        return {
            uid
            for uid, copies in self.copies.items()
            if any(c.pixels_sha256 != self.sent_pixels.get(uid) for c in copies)
        }

    @property
    def monitor_matches(self) -> bool:
        """The monitor counts what the destination holds, once each, nothing pending."""
        return self.monitor == {
            "instances_received": len(self.success),
            "instances_uploaded": len(self.delivered),
            "instances_pending": 0,
            "instances_failed": 0,
        }

    def problems(self) -> list[str]:
        found = []
        for name in ("lost", "unexpected", "differing_duplicates", "corrupt"):
            if value := getattr(self, name):
                found.append(f"{name}: {sorted(value)[:5]} ({len(value)})")
        if len(self.success) != self.images:
            found.append(f"only {len(self.success)} of {self.images} answered Success")
        if not self.monitor_matches:
            found.append(f"monitor {self.monitor} against {len(self.delivered)} delivered")
        return found

    def row(self) -> list[str]:
        refused = ", ".join(
            f"{k:#06x}:{v}" if isinstance(k, int) else f"{k}:{v}"
            for k, v in sorted(self.refusals.items(), key=str)
        )
        return [
            self.fault,
            str(self.images),
            str(len(self.success)),
            str(len(self.delivered)),
            str(len(self.lost)),
            str(sum(self.duplicates.values()) - len(self.duplicates)),
            str(len(self.unexpected)),
            "yes" if self.monitor_matches else "NO",
            refused or "-",
            f"{self.seconds:.0f}",
        ]


HEADER = [
    "fault",
    "images",
    "success",
    "delivered",
    "lost",
    "dup",
    "unexpected",
    "monitor=dest",
    "retried (answer:count)",
    "s",
]


def table(rows: list[Accounting]) -> str:
    cells = [HEADER, *(a.row() for a in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pixels_digest(ds: Dataset) -> str:
    return _sha(ds.PixelData)


# Every fault's accounting in this run, printed as a table at the end (conftest.py).
RESULTS: list[Accounting] = []
