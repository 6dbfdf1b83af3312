"""``dicom://AETITLE@host:port``: C-STORE, one association for a batch of instances of one
study, proposing each instance's stored SOP class and transfer syntax (no conversion: the
data set goes out byte for byte as the PACS sent it). Statuses per PS3.4 B.2.3: success and
warnings are delivered, 0xA7xx is retried, 0xA9xx / 0xCxxx and the rest are permanent.
The SOP Instance UID is the identity at a C-STORE peer, so a redelivery stores no second copy.
"""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

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


class DimseDestination:
    max_batch = MAX_BATCH

    def __init__(
        self, url: str, called_ae: str, host: str, port: int, calling_ae: str, timeout_s: float
    ) -> None:
        self.url = url
        self.called_ae, self.host, self.port = called_ae, host, port
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s

    def deliver(self, items: list[Item]) -> list[Outcome]:
        contexts: list[tuple[str, str] | None] = [_context(item.path) for item in items]
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        for context in dict.fromkeys(c for c in contexts if c):
            ae.add_requested_context(*context)
        if not ae.requested_contexts:
            return [failed("not a DICOM file with file meta information", True)] * len(items)

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
                raise DeliveryError(f"{self.url} accepts none of {set(contexts)}", permanent=True)
            raise DeliveryError(f"no association with {self.url}")
        accepted = {
            (str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts
        }
        try:
            return [
                self._store(assoc, item, context, accepted, msg_id)
                for msg_id, (item, context) in enumerate(zip(items, contexts, strict=True), 1)
            ]
        finally:
            if assoc.is_established:
                assoc.release()

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
