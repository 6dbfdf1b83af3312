"""C-STORE destinations: DCMTK storescp and Orthanc as the peers."""

import io

from pydicom import dcmread
from pydicom.uid import JPEGBaseline8Bit
from pynetdicom.dsutils import split_dataset

from edge_core.topology import UPLOADER_CONSUMER, ConsumerTuning


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
