"""Buffer accounting: the receiver refuses new instances (Out of Resources) when they do not
fit in the buffer's quota, and accepts again by itself once the uploader has drained it.

Usage is known from a periodic listing of the bucket, plus what this process stored since
(a C-STORE never lists the bucket). Several receiver processes each add their own writes
between listings; the listing reconciles them all.

Incoming datasets reserve their bytes as they arrive (see ``spool``), so that what is in
flight on concurrent associations counts too: used + reserved never passes the quota.
"""

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_core.events import BufferUsage
from edge_core.objectstore import ObjectStore

log = logging.getLogger(__name__)


def default_quota(data_dir: Path) -> int:
    """80% of the disk space free under ``data_dir`` (where the embedded store keeps it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return int(shutil.disk_usage(data_dir).free * 0.8)


class BufferQuota:
    def __init__(self, quota_bytes: int, on_change: Callable[[BufferUsage], None]) -> None:
        self.quota_bytes = quota_bytes
        self.used_bytes = 0
        self.objects = 0
        self.refusing = False
        self.reserved_bytes = 0  # spooled by C-STOREs in progress
        # Set when the quota turned something away: the watcher re-lists the bucket every
        # second until a listing clears it, so accepting again follows a drain closely.
        self.short = False
        self._needed = 0  # the size of an incoming dataset that did not fit (0: none)
        self._on_change = on_change
        self._lock = threading.Lock()

    def usage(self) -> BufferUsage:
        return BufferUsage(
            used_bytes=self.used_bytes,
            objects=self.objects,
            quota_bytes=self.quota_bytes,
            refusing=self.refusing,
        )

    def reset(self, objects: int, used_bytes: int) -> None:
        """Replace the estimate with a listing's figures (the caller publishes the usage)."""
        with self._lock:
            self.objects, self.used_bytes = objects, used_bytes
            self._update()
            self.short = self.refusing

    def reserve(self, size: int, total: int) -> bool:
        """Room for ``size`` more bytes of an incoming dataset (``total`` with what it has
        reserved already): taken if there is. If not, the buffer counts as refusing until
        it has room for ``total``, unless that is more than the whole quota (such an object
        never fits, and says nothing about how full the buffer is)."""
        with self._lock:
            if self.used_bytes + self.reserved_bytes + size <= self.quota_bytes:
                self.reserved_bytes += size
                return True
            self.short = True
            if total <= self.quota_bytes:
                self._needed = max(self._needed, total)
            changed = self._update()
        if changed:
            self._on_change(self.usage())
        return False

    def release(self, size: int) -> None:
        with self._lock:
            self.reserved_bytes -= size

    def add(self, size: int) -> None:
        with self._lock:
            self.objects += 1
            self.used_bytes += size
            changed = self._update()
        if changed:
            self._on_change(self.usage())

    def _update(self) -> bool:
        refusing = self.used_bytes >= self.quota_bytes or (
            self._needed > 0 and self.used_bytes + self._needed > self.quota_bytes
        )
        if not refusing:
            self._needed = 0
        changed, self.refusing = refusing != self.refusing, refusing
        self.short = self.short or refusing
        if changed:
            log.warning(
                "buffer %s: %d of %d bytes used",
                "full, refusing new instances" if refusing else "below quota, accepting again",
                self.used_bytes,
                self.quota_bytes,
            )
        return changed


def sweep_spool(spool_dir: Path, older_than_s: float) -> None:
    """Delete spool files left by associations that died mid-transfer (a live transfer
    writes to its file with every PDU, so it is never this old)."""
    cutoff = time.time() - older_than_s
    for path in spool_dir.glob("*.dcm"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                log.info("removed stale spool file %s", path.name)
        except FileNotFoundError:
            pass


async def watch_buffer(
    quota: BufferQuota,
    store: ObjectStore,
    interval_s: float,
    announce: Callable[[BufferUsage], None],
    spool_dir: Path,
    spool_stale_s: float,
) -> None:
    """For ever: list the bucket, correct the estimate, publish ``buffer.usage``; every second
    while the quota is short, so that the receiver accepts again soon after the buffer drains
    (a listing of a full buffer costs the store some CPU; it is idle in that state anyway)."""
    while True:
        try:
            objects, used = await asyncio.to_thread(store.usage)
        except Exception as exc:
            log.warning("could not list the buffer: %s", exc)
        else:
            quota.reset(objects, used)
            announce(quota.usage())
        await asyncio.to_thread(sweep_spool, spool_dir, spool_stale_s)
        # In steps of a second: the quota may fall short at any moment.
        waited = 0.0
        while waited < interval_s and not quota.short:
            await asyncio.sleep(min(1.0, interval_s))
            waited += 1.0
        if quota.short:
            await asyncio.sleep(1.0)
