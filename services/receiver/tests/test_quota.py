"""The buffer quota bounds the disk: an object larger than what is left is refused without
being spooled whole, concurrent transfers cannot overshoot it together, and the receiver
accepts again soon after the buffer drains. And a dataset must be the instance its request
names, and a flood of empty PDVs ends its association."""

import logging
import struct
import threading
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom import AE, _config
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import CTImageStorage, SecondaryCaptureImageStorage
from receiver_testing import (
    put_datashares,
    pynetdicom_store,
    read_events,
    receiver_settings_for,
    wait_for_event,
)
from receiver_testing import (
    small_instance as instance,
)

from edge_core.datashares import Datashare
from edge_receiver.main import start
from edge_testing.dcmtk import echoscu as echo
from edge_testing.dicom_data import EDGE_TEST_ROOT
from edge_testing.servers import wait_until

MiB = 2**20


def write_sparse_instance(path: Path, pixel_bytes: int) -> Dataset:
    """A multi-frame instance whose Pixel Data is a hole: large to send, nothing to write."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(EDGE_TEST_ROOT)
    ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid(EDGE_TEST_ROOT)
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 1024, 1024, pixel_bytes // (2 * MiB)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.save_as(path, enforce_file_format=True)
    with path.open("r+b") as f:
        f.seek(0, 2)
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
        f.truncate(f.tell() + pixel_bytes)
    return ds


class PeakSize:
    """Samples the total size of the files in a directory until stopped; the largest seen."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.peak = directory, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for path in self.directory.glob("*"):
                try:
                    total += path.stat().st_blocks * 512  # what is on disk, holes excluded
                except FileNotFoundError:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.002)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def test_object_larger_than_the_quota_is_refused_without_being_spooled(
    edge_settings, s3, tmp_path, monkeypatch
):
    quota = 4 * MiB
    settings = receiver_settings_for(edge_settings, tmp_path / "receiver", buffer_quota_bytes=quota)
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        source = tmp_path / "big.dcm"
        write_sparse_instance(source, 64 * MiB)
        monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
        ae = AE(ae_title="HOSPITALPACS")
        ae.add_requested_context(
            MultiFrameGrayscaleWordSecondaryCaptureImageStorage, ExplicitVRLittleEndian
        )
        assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
        peak = PeakSize(settings.spool_dir)
        try:
            status = assoc.send_c_store(source).Status
        finally:
            spool_peak = peak.stop()
        assoc.release()

        assert status == 0xA700
        # What was spooled stayed within the quota (plus the File Meta Information).
        assert spool_peak <= quota + 64 * 1024, spool_peak
        (refused,) = wait_for_event(settings, "instance.refused")
        assert refused.data.reason == "buffer_full"
        assert not list(s3.store(settings.buffer_bucket).list())
        # Nothing stays reserved: a small instance fits.
        assert pynetdicom_store(receiver.port, "DS1", [instance()]) == [0x0000]
        wait_until(
            lambda: not any(p.stat().st_size for p in settings.spool_dir.glob("*")),
            what="no spooled bytes left",
        )
    finally:
        receiver.stop(grace_s=2)


def test_concurrent_senders_cannot_overshoot_the_quota_together(edge_settings, s3, tmp_path):
    quota = 4 * MiB
    settings = receiver_settings_for(edge_settings, tmp_path / "receiver", buffer_quota_bytes=quota)
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        # 1.5 MiB each: two fit, three do not.
        datasets = [instance(rows=1024, columns=768, number=i) for i in range(4)]
        statuses: list[int] = []
        start_together = threading.Barrier(len(datasets))

        def send(ds: Dataset) -> None:
            ae = AE(ae_title="HOSPITALPACS")
            ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
            assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
            start_together.wait()
            statuses.append(int(assoc.send_c_store(ds).Status))
            assoc.release()

        senders = [threading.Thread(target=send, args=(ds,)) for ds in datasets]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()

        # Which ones win depends on how their PDUs interleave (all four may even run out
        # half-way); never more than fit.
        assert len(statuses) == 4 and set(statuses) <= {0, 0xA700}, [hex(s) for s in statuses]
        assert statuses.count(0) <= 2
        stored_bytes = sum(o.size for o in s3.store(settings.buffer_bucket).list())
        assert stored_bytes <= quota
        # Nothing stays reserved by the refused transfers: what is left takes one more.
        small = instance(rows=512, columns=512)
        assert pynetdicom_store(receiver.port, "DS1", [small]) == [0x0000]
    finally:
        receiver.stop(grace_s=2)


def test_accepts_again_within_seconds_after_the_buffer_drains(edge_settings, s3, tmp_path):
    settings = receiver_settings_for(
        edge_settings,
        tmp_path / "receiver",
        buffer_quota_bytes=60_000,
        buffer_usage_interval_s=60,  # the periodic listing plays no part
    )
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        statuses = pynetdicom_store(receiver.port, "DS1", [instance(number=i) for i in range(12)])
        assert statuses[0] == 0x0000 and statuses[-1] == 0xA700, [hex(s) for s in statuses]
        buffer = s3.store(settings.buffer_bucket)
        for obj in list(buffer.list()):  # what the uploader does once delivered
            buffer.delete(obj.key)

        wait_until(
            lambda: pynetdicom_store(receiver.port, "DS1", [instance(number=99)]) == [0x0000],
            # Re-listed every second while short (seconds here); the periodic listing (60 s)
            # would be far later. The margin is for a loaded machine, not the design.
            timeout_s=10,
            interval_s=0.2,
            what="Success soon after the drain",
        )
    finally:
        receiver.stop(grace_s=2)


def mismatched(tmp_path: Path, *, sop_class: bool) -> Path:
    """A file whose File Meta Information (what pynetdicom's sender puts in the request)
    names another SOP Class or Instance than its dataset does."""
    ds = instance()
    path = tmp_path / f"mismatched-{sop_class}.dcm"
    ds.save_as(path, enforce_file_format=True)
    # pydicom keeps the two consistent: change the dataset's copy in the bytes, same length.
    old = (ds.SOPClassUID if sop_class else ds.SOPInstanceUID).encode()
    new = CTImageStorage.encode() if sop_class else old[:-1] + (b"1" if old[-1:] != b"1" else b"2")
    assert len(new) == len(old)
    part10 = path.read_bytes()
    (group_length,) = struct.unpack("<I", part10[140:144])
    meta_end = 144 + group_length
    path.write_bytes(part10[:meta_end] + part10[meta_end:].replace(old, new, 1))
    return path


def test_dataset_not_matching_the_request_is_refused(
    receiver, receiver_settings, tmp_path, monkeypatch
):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    # Sending from the file puts its File Meta Information's UIDs in the request.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
    answers = [
        assoc.send_c_store(mismatched(tmp_path, sop_class=True)),
        assoc.send_c_store(mismatched(tmp_path, sop_class=False)),
    ]
    assoc.release()

    assert [a.Status for a in answers] == [0xA900, 0xA900]
    assert "SOP Class UID" in answers[0].ErrorComment
    assert "SOP Instance UID" in answers[1].ErrorComment
    refused = wait_for_event(receiver_settings, "instance.refused", 2)
    assert [(e.data.status, e.data.reason) for e in refused] == [(0xA900, "invalid_dataset")] * 2
    assert "SOP Class UID" in refused[0].data.detail
    assert "SOP Instance UID" in refused[1].data.detail
    assert not read_events(receiver_settings, "instance.stored")


def test_flood_of_empty_pdvs_aborts_the_association(receiver, receiver_settings, caplog):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    limit = receiver_settings.receiver_max_tiny_pdvs
    per_pdu = 1000
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
    context_id = assoc.accepted_contexts[0].context_id
    caplog.set_level(logging.WARNING, logger="edge_receiver.spool")

    # Up to 5.5 MB of empty dataset fragments (a control header, no data), 1000 a PDU.
    for _ in range(1000):
        if assoc.is_aborted:
            break
        empties = P_DATA()
        empties.presentation_data_value_list = [[context_id, b"\x00"]] * per_pdu
        assoc.dul.send_pdu(empties)
    wait_until(lambda: assoc.is_aborted, what="the receiver to abort the association")

    # Counted on the receiver's side: it stopped within one PDU of the limit.
    (record,) = [r for r in caplog.records if "PDVs of under" in r.getMessage()]
    assert record.args[1] <= limit + per_pdu  # type: ignore[index]
    wait_for_event(receiver_settings, "association.aborted")
    assert echo(receiver.port, "DS1")
