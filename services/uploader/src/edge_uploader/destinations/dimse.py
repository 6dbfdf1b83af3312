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

Each C-STORE goes out through :mod:`edge_uploader.destinations.cstore` (a direct encoding,
no spinning wait for the reactor) on a socket with TCP_NODELAY: without it, the data set's
first P-DATA-TF waits on Nagle's algorithm for the peer's delayed ACK of the command's,
~40 ms per C-STORE.
"""

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.events import Event
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.transport import AssociationSocket

from edge_core.dicom_reactor import EventAE
from edge_uploader import retry
from edge_uploader.destinations import (
    ALREADY_PRESENT,
    DELIVERED,
    DeliveryError,
    Item,
    Outcome,
    cstore,
    failed,
)

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
    # Presentation context ID of each accepted (SOP class, transfer syntax).
    accepted: dict[tuple[str, str], int]
    used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Meta:
    """What a C-STORE of a file needs from its file meta information."""

    context: tuple[str, str]  # (SOP class, transfer syntax)
    sop_instance: str
    offset: int  # where the data set starts


class _StoreAE(EventAE):
    """Event-driven associations that only send C-STOREs (:class:`cstore.ScuDimse`), on
    sockets that send each PDU at once."""

    def _create_socket(self, assoc: Association, *args: Any, **kwargs: Any) -> AssociationSocket:
        sock: AssociationSocket = super()._create_socket(assoc, *args, **kwargs)
        assoc.dimse.__class__ = cstore.ScuDimse
        if sock.socket is not None:
            sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


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
        metas = [_meta(item.path) for item in items]
        needed = {m.context for m in metas if m}
        if not needed:
            return [failed("not a DICOM file with file meta information", True)] * len(items)
        link = self._take(needed)
        if link is None or not link.assoc.is_established:
            if link is not None:
                _end(link.assoc)
            link = self._open(needed)
        try:
            return [
                self._store(link, item, meta, msg_id)
                for msg_id, (item, meta) in enumerate(zip(items, metas, strict=True), 1)
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
                if needed <= link.accepted.keys():
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
        ae = _StoreAE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        with self._lock:
            others = [c for c in reversed(self._seen) if c not in needed]
        for context in [*sorted(needed), *others][:MAX_CONTEXTS]:
            ae.add_requested_context(*context)

        results: list[int] = []
        rejections: list[int] = []

        def on_acse(event: Event) -> None:
            result = getattr(getattr(event, "primitive", None), "result", None)
            if result is not None:
                results.append(result)

        def on_pdu(event: Event) -> None:
            # Seen as the PDU arrives: pynetdicom's requestor can miss a rejection that closes
            # the connection before it looks (it then reports an abort, not a rejection).
            if isinstance(event.pdu, A_ASSOCIATE_RJ) and event.pdu.result is not None:
                rejections.append(event.pdu.result)

        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_ae,
            evt_handlers=[(evt.EVT_ACSE_RECV, on_acse), (evt.EVT_PDU_RECV, on_pdu)],
        )
        if not assoc.is_established:
            if assoc.is_rejected or rejections:
                result = rejections[-1:] or results[-1:]
                raise DeliveryError(
                    f"{self.url} rejected the association (result {result})",
                    permanent=result == [_REJECTED_PERMANENT],
                )
            if results[-1:] == [0x00]:  # accepted, but none of the presentation contexts
                raise DeliveryError(f"{self.url} accepts none of {needed}", permanent=True)
            raise DeliveryError(f"no association with {self.url}")
        accepted: dict[tuple[str, str], int] = {}
        for c in assoc.accepted_contexts:
            assert c.context_id is not None  # an accepted context has one
            accepted.setdefault((str(c.abstract_syntax), str(c.transfer_syntax[0])), c.context_id)
        return _Link(assoc, accepted)

    def _store(self, link: _Link, item: Item, meta: _Meta | None, msg_id: int) -> Outcome:
        if meta is None:
            return failed("not a DICOM file with file meta information", permanent=True)
        context_id = link.accepted.get(meta.context)
        if context_id is None:
            return failed(f"{self.url} does not accept {meta.context}", permanent=True)
        if not link.assoc.is_established:
            return failed(f"association with {self.url} ended", permanent=False)
        status = cstore.send_c_store(
            link.assoc, context_id, item.path, meta.offset, msg_id, meta.context[0],
            meta.sop_instance,
        )  # fmt: skip
        if status is None:
            return failed(f"no C-STORE response from {self.url}", permanent=False)
        kind = retry.dicom_status_kind(status)
        if kind == "stored":
            return DELIVERED
        if kind == "duplicate":
            return ALREADY_PRESENT
        return failed(f"C-STORE status 0x{status:04X}", permanent=kind == "permanent")

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


def _meta(path: Path) -> _Meta | None:
    """From the file meta information; None if it is missing or incomplete."""
    try:
        meta, offset = split_dataset(path)
        context = (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
        return _Meta(context, str(meta.MediaStorageSOPInstanceUID), offset)
    except Exception:
        return None


def open_dimse(url: str, calling_ae: str, timeout_s: float) -> DimseDestination:
    parts = urlsplit(url)
    called = unquote(parts.username or "")
    if not called or not parts.hostname or not parts.port:
        raise DeliveryError(f"expected dicom://AETITLE@host:port, got {url!r}", permanent=True)
    return DimseDestination(url, called, parts.hostname, parts.port, calling_ae, timeout_s)
