"""``dicom://AETITLE@host:port``: C-STORE, proposing each instance's stored SOP class and
transfer syntax (no conversion: the data set goes out byte for byte as the PACS sent it).
Statuses per PS3.4 B.2.3: success and warnings are delivered, 0xA7xx is retried, 0xA9xx /
0xCxxx and the rest are permanent. The SOP Instance UID is the identity at a C-STORE peer,
so a redelivery stores no second copy.

Associations are kept open between batches (negotiating one costs the peer and us more
than a small C-STORE) and reused for a batch whose presentation contexts they accepted;
one idle for ``IDLE_S`` is released. A kept association the peer has meanwhile closed is
replaced by a fresh one (should the peer close it in the instant before a batch goes out,
that batch fails as transient and is retried).
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydicom.filereader import read_file_meta_info
from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from edge_core.dicom_reactor import EventAE
from edge_uploader import retry
from edge_uploader.destinations import (
    ALREADY_PRESENT,
    DELIVERED,
    DeliveryError,
    Item,
    Outcome,
    failed,
)

# Send a file's data set as stored, without decoding and re-encoding it.
_config.STORE_SEND_CHUNKED_DATASET = True

MAX_BATCH = 64
_REJECTED_PERMANENT = 0x01
# An association unused this long is released (the peer may time it out, and pynetdicom's
# threads poll while it is open).
IDLE_S = 2.0
# Kept associations per destination (one per batch delivered at the same time).
MAX_IDLE = 8
# Contexts proposed on a new association: the batch's plus those seen recently, so that it
# serves later batches too (PS3.8 allows 128 presentation contexts).
MAX_CONTEXTS = 64


@dataclass
class _Link:
    assoc: Association
    accepted: set[tuple[str, str]]
    used: float = field(default_factory=time.monotonic)


class DimseDestination:
    max_batch = MAX_BATCH

    def __init__(
        self, url: str, called_ae: str, host: str, port: int, calling_ae: str, timeout_s: float
    ) -> None:
        self.url = url
        self.called_ae, self.host, self.port = called_ae, host, port
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s
        self._idle: list[_Link] = []
        self._seen: dict[tuple[str, str], None] = {}  # recently needed contexts, oldest first
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def deliver(self, items: list[Item]) -> list[Outcome]:
        contexts: list[tuple[str, str] | None] = [_context(item.path) for item in items]
        needed = {c for c in contexts if c}
        if not needed:
            return [failed("not a DICOM file with file meta information", True)] * len(items)
        link = self._take(needed)
        if link is None or not link.assoc.is_established:
            if link is not None:
                _end(link.assoc)
            link = self._open(needed)
        try:
            return [
                self._store(link.assoc, item, context, link.accepted, msg_id)
                for msg_id, (item, context) in enumerate(zip(items, contexts, strict=True), 1)
            ]
        finally:
            self._give(link)

    def _take(self, needed: set[tuple[str, str]]) -> _Link | None:
        """A kept association that accepted every context needed, if there is one."""
        with self._lock:
            for context in needed:
                self._seen.pop(context, None)
                self._seen[context] = None
            while len(self._seen) > MAX_CONTEXTS:
                del self._seen[next(iter(self._seen))]
            for i, link in enumerate(self._idle):
                if needed <= link.accepted:
                    return self._idle.pop(i)
        return None

    def _give(self, link: _Link) -> None:
        """Keep an association that is still up for the next batch."""
        if not link.assoc.is_established:
            _end(link.assoc)
            return
        link.used = time.monotonic()
        with self._lock:
            self._idle.append(link)
            extra = self._idle[:-MAX_IDLE] if len(self._idle) > MAX_IDLE else []
            del self._idle[: len(extra)]
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="dimse-idle", daemon=True)
                self._reaper.start()
        for old in extra:
            _end(old.assoc)

    def _reap(self) -> None:
        """Release associations idle for ``IDLE_S``; ends when none is kept."""
        while True:
            time.sleep(IDLE_S / 4)
            now = time.monotonic()
            with self._lock:
                stale = [link for link in self._idle if now - link.used >= IDLE_S]
                self._idle = [link for link in self._idle if now - link.used < IDLE_S]
                done = not self._idle
                if done:
                    self._reaper = None
            for link in stale:
                _end(link.assoc)
            if done:
                return

    def _open(self, needed: set[tuple[str, str]]) -> _Link:
        ae = EventAE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        with self._lock:
            others = [c for c in reversed(self._seen) if c not in needed]
        for context in [*sorted(needed), *others][:MAX_CONTEXTS]:
            ae.add_requested_context(*context)

        results: list[int] = []

        def on_acse(event: Event) -> None:
            result = getattr(getattr(event, "primitive", None), "result", None)
            if result is not None:
                results.append(result)

        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_ae,
            evt_handlers=[(evt.EVT_ACSE_RECV, on_acse)],
        )
        if not assoc.is_established:
            if assoc.is_rejected:
                raise DeliveryError(
                    f"{self.url} rejected the association (result {results[-1:]})",
                    permanent=results[-1:] == [_REJECTED_PERMANENT],
                )
            if results[-1:] == [0x00]:  # accepted, but none of the presentation contexts
                raise DeliveryError(f"{self.url} accepts none of {needed}", permanent=True)
            raise DeliveryError(f"no association with {self.url}")
        accepted = {
            (str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts
        }
        return _Link(assoc, accepted)

    def _store(
        self,
        assoc: Association,
        item: Item,
        context: tuple[str, str] | None,
        accepted: set[tuple[str, str]],
        msg_id: int,
    ) -> Outcome:
        if context is None:
            return failed("not a DICOM file with file meta information", permanent=True)
        if context not in accepted:
            return failed(f"{self.url} does not accept {context}", permanent=True)
        if not assoc.is_established:
            return failed(f"association with {self.url} ended", permanent=False)
        status = assoc.send_c_store(item.path, msg_id=msg_id)
        if "Status" not in status:
            return failed(f"no C-STORE response from {self.url}", permanent=False)
        kind = retry.dicom_status_kind(status.Status)
        if kind == "stored":
            return DELIVERED
        if kind == "duplicate":
            return ALREADY_PRESENT
        return failed(f"C-STORE status 0x{status.Status:04X}", permanent=kind == "permanent")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for link in idle:
            _end(link.assoc)


def _end(assoc: Association) -> None:
    try:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()
    except Exception:  # noqa: S110 - ending a dead association: nothing left to do
        pass


def _context(path: Path) -> tuple[str, str] | None:
    """(SOP class, transfer syntax) from the file meta information, None if there is none."""
    try:
        meta = read_file_meta_info(path)
        return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    except Exception:
        return None


def open_dimse(url: str, calling_ae: str, timeout_s: float) -> DimseDestination:
    parts = urlsplit(url)
    called = unquote(parts.username or "")
    if not called or not parts.hostname or not parts.port:
        raise DeliveryError(f"expected dicom://AETITLE@host:port, got {url!r}", permanent=True)
    return DimseDestination(url, called, parts.hostname, parts.port, calling_ae, timeout_s)
