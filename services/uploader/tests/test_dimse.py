"""C-STORE destinations: DCMTK storescp and Orthanc as the peers."""

import io
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import JPEGBaseline8Bit
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.dsutils import split_dataset
from pynetdicom.events import Event

from edge_core.topology import UPLOADER_CONSUMER, ConsumerTuning
from edge_testing.dicom_data import write_small_series
from edge_uploader.destinations import ALREADY_PRESENT, DELIVERED, Item, failed
from edge_uploader.destinations.dimse import open_dimse


def data_set_bytes(path) -> bytes:
    """The data set after the file meta information, as it travels in a C-STORE."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


async def test_storescp_receives_a_study_byte_for_byte(site, storescp, storescp_copies, tmp_path):
    await site.add_datashare("PACS", storescp.url)
    study, series = site.new_uid(), site.new_uid()
    sent = [site.dicom_bytes(study, series, n) for n in (1, 2, 3)]
    async with site.uploader():
        stored = [await site.store("PACS", data) for data in sent]
        uploaded = await site.wait_for("instance.uploaded", 3)
    assert {e.data.key for e in uploaded} == {s.key for s in stored}
    # Each sent once: storescp (+uf) keeps every copy it receives.
    assert storescp_copies(storescp) == {s.sop_instance_uid: 1 for s in stored}
    received = {dcmread(p).SOPInstanceUID: p for p in storescp.files()}
    for s, data in zip(stored, sent, strict=True):
        (original := tmp_path / "sent.dcm").write_bytes(data)
        assert data_set_bytes(received[s.sop_instance_uid]) == data_set_bytes(original)
    assert site.buffered() == []


async def test_a_transfer_syntax_the_peer_refuses_is_dead_lettered(site, storescp):
    await site.add_datashare("PACS", storescp.url)
    ds = dcmread(io.BytesIO(site.dicom_bytes(site.new_uid(), site.new_uid())))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit  # storescp accepts uncompressed only
    del ds.PixelData  # (no need for real JPEG data: the peer refuses the context)
    out = io.BytesIO()
    ds.save_as(out)
    async with site.uploader():
        stored = await site.store("PACS", out.getvalue())
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
    assert dead.data.key == stored.key and dead.data.attempts == 1
    assert storescp.files() == []


async def test_orthanc_c_store_keeps_one_copy_of_a_redelivered_instance(site, counting_orthanc):
    orthanc = counting_orthanc
    url = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    await site.add_datashare("PACS", url)
    data = site.dicom_bytes(site.new_uid(), site.new_uid())
    async with site.uploader():
        first = await site.store("PACS", data)
        await site.wait_for("instance.uploaded", 1)
        await site.store("PACS", data)  # announced again: same key, same SOP Instance UID
        await site.wait_for("instance.uploaded", 2)
    assert len(orthanc.instance_files(first.sop_instance_uid)) == 1
    await orthanc.settle()
    # One C-STORE per announcement, no more (Orthanc would hide a repeat in its one copy).
    assert orthanc.received()[first.sop_instance_uid] == 2
    assert site.of_type("instance.failed") == []


async def test_a_called_ae_title_the_peer_rejects_is_permanent(site, orthanc):
    await site.add_datashare("PACS", f"dicom://NOT-ORTHANC@127.0.0.1:{orthanc.dicom_port}")
    async with site.uploader():
        await site.store("PACS")
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
    assert dead.data.attempts == 1
    assert "rejected" in dead.data.error


async def test_a_delivery_longer_than_the_ack_wait_is_not_redelivered(
    site, start_storescp, storescp_copies
):
    ack_wait = ConsumerTuning().ack_wait_s
    # storescp sleeps this three times for a small instance: the C-STORE takes 1.2 ack waits.
    slow = start_storescp("+uf", "--sleep-during", str(int(ack_wait * 0.4)))
    await site.add_datashare("PACS", slow.url)
    async with site.uploader(uploader_timeout_s=ack_wait * 4):
        await site.store("PACS")
        (uploaded,) = await site.wait_for("instance.uploaded", 1)
        (stored,) = site.of_type("instance.stored")
        info = await site.js.consumer_info(site.settings.events_stream, UPLOADER_CONSUMER)
    assert (uploaded.time - stored.time).total_seconds() > ack_wait  # the set-up worked
    assert uploaded.data.attempts == 1
    assert info.delivered.consumer_seq == 1  # delivered once: in-progress acks held it
    assert storescp_copies(slow) == {uploaded.data.sop_instance_uid: 1}


# --- The destination itself, against a pynetdicom storage SCP answering chosen statuses ----


@dataclass
class StatusSCP:
    port: int
    statuses: list[int]  # answered in order, then Success
    received: list[tuple[int, str, bytes]]  # (message ID, SOP Instance UID, data set)
    delay_s: float = 0.0


@pytest.fixture
def status_scp() -> Iterator[StatusSCP]:
    scp = StatusSCP(0, [], [])

    def on_store(event: Event) -> int:
        req = event.request
        scp.received.append((req.MessageID, req.AffectedSOPInstanceUID, req.DataSet.getvalue()))
        time.sleep(scp.delay_s)
        return scp.statuses.pop(0) if scp.statuses else 0x0000

    ae = AE(ae_title="DEST")
    ae.supported_contexts = StoragePresentationContexts
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    scp.port = server.server_address[1]
    try:
        yield scp
    finally:
        server.shutdown()


def items(paths: list[Path]) -> list[Item]:
    return [Item("DS", None, p, "") for p in paths]  # type: ignore[arg-type]


def test_statuses_data_sets_and_message_ids_as_the_peer_answered(status_scp, tmp_path):
    files = write_small_series(tmp_path, 6)
    status_scp.statuses = [0x0000, 0xB000, 0x0111, 0xA700, 0xC000, 0x0122]
    dest = open_dimse(f"dicom://DEST@127.0.0.1:{status_scp.port}", "EDGE", 10)
    try:
        outcomes = dest.deliver(items(files))
    finally:
        dest.close()
    assert outcomes == [
        DELIVERED,
        DELIVERED,
        ALREADY_PRESENT,
        failed("C-STORE status 0xA700", permanent=False),
        failed("C-STORE status 0xC000", permanent=True),
        failed("C-STORE status 0x0122", permanent=True),
    ]
    expected = [(n, dcmread(p).SOPInstanceUID, data_set_bytes(p)) for n, p in enumerate(files, 1)]
    assert status_scp.received == expected


def test_a_kept_association_sends_without_nagle_delays(status_scp, tmp_path):
    dest = open_dimse(f"dicom://DEST@127.0.0.1:{status_scp.port}", "EDGE", 10)
    try:
        assert dest.deliver(items(write_small_series(tmp_path, 1))) == [DELIVERED]
        (link,) = dest._idle
        sock = link.assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        dest.close()


def test_no_answer_in_time_fails_transiently_and_the_next_batch_gets_a_new_association(
    status_scp, tmp_path
):
    first, second = write_small_series(tmp_path, 2)
    status_scp.delay_s = 3.0
    dest = open_dimse(f"dicom://DEST@127.0.0.1:{status_scp.port}", "EDGE", 1.0)
    try:
        (late,) = dest.deliver(items([first]))
        assert not late.delivered and not late.permanent
        assert dest._idle == []  # aborted, not kept
        status_scp.delay_s = 0.0
        assert dest.deliver(items([second])) == [DELIVERED]
    finally:
        dest.close()
