"""Buffer accounting: the receiver refuses new instances (Out of Resources) while the buffer
holds more than its quota, and accepts again by itself once the uploader has drained it.

Usage is known from a periodic listing of the bucket, plus what this process stored since
(a C-STORE never lists the bucket). Several receiver processes each add their own writes
between listings; the listing reconciles them all.
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

    def add(self, size: int) -> None:
        with self._lock:
            self.objects += 1
            self.used_bytes += size
            changed = self._update()
        if changed:
            self._on_change(self.usage())

    def _update(self) -> bool:
        refusing = self.used_bytes >= self.quota_bytes
        changed, self.refusing = refusing != self.refusing, refusing
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
    """For ever: list the bucket, correct the estimate, publish ``buffer.usage``; more often
    while refusing, so that the receiver accepts again soon after the buffer drains."""
    while True:
        try:
            objects, used = await asyncio.to_thread(store.usage)
        except Exception as exc:
            log.warning("could not list the buffer: %s", exc)
        else:
            quota.reset(objects, used)
            announce(quota.usage())
        await asyncio.to_thread(sweep_spool, spool_dir, spool_stale_s)
        await asyncio.sleep(max(1.0, interval_s / 5) if quota.refusing else interval_s)
