"""A 1 GiB multi-frame instance is streamed through a receiver process whose memory stays
bounded (spooled to disk as it arrives, uploaded in parts)."""

import struct
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MultiFrameGrayscaleWordSecondaryCaptureImageStorage
from pynetdicom import AE, _config
from receiver_testing import put_datashares, receiver_settings_for, wait_for_event
from test_main import start_receiver_process

from edge_core.datashares import Datashare
from edge_testing.dicom_data import EDGE_TEST_ROOT
from edge_testing.servers import wait_until

ROWS = COLUMNS = 1024
FRAMES = 512  # 2 MiB a frame: 1 GiB of pixel data
PIXEL_BYTES = ROWS * COLUMNS * 2 * FRAMES


def write_sparse_multiframe(path: Path) -> Dataset:
    """The header through pydicom, then the Pixel Data element's header, then a hole: the
    file is 1 GiB long without writing (or holding) 1 GiB."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{EDGE_TEST_ROOT}77.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{EDGE_TEST_ROOT}77.2", f"{EDGE_TEST_ROOT}77.3"
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.save_as(path, enforce_file_format=True)
    with path.open("r+b") as f:
        f.seek(0, 2)
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXEL_BYTES))
        f.truncate(f.tell() + PIXEL_BYTES)
    return ds


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_one_gib_instance_with_bounded_memory(edge_settings, s3, tmp_path, monkeypatch):
    settings = receiver_settings_for(edge_settings, tmp_path / "data")
    put_datashares(settings, Datashare(id="BIG1", ae_title="BIG1"))
    source = tmp_path / "big.dcm"
    ds = write_sparse_multiframe(source)
    proc = start_receiver_process(settings, tmp_path / "receiver.log")
    try:
        # The sender streams the file too (pynetdicom reads it in PDU-sized chunks).
        monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
        ae = AE(ae_title="HOSPITALPACS")
        ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
        ae.dimse_timeout = ae.network_timeout = 600
        assoc = wait_until(
            lambda: (
                (
                    a := ae.associate("127.0.0.1", settings.receiver_port, ae_title="BIG1")
                ).is_established
                and a
            ),
            what="association",
        )
        status = assoc.send_c_store(source)
        assoc.release()
        assert status.Status == 0x0000, (tmp_path / "receiver.log").read_text()

        (stored,) = wait_for_event(settings, "instance.stored")
        peak = peak_rss_bytes(proc.pid)
        print(f"receiver peak RSS for a {stored.data.size} byte instance: {peak / 2**20:.0f} MiB")
        assert stored.data.size > PIXEL_BYTES
        buffer = s3.store(settings.buffer_bucket)
        assert buffer.size_of(stored.data.key) == stored.data.size
        assert peak < 400 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
        buffer.delete(stored.data.key)
        assert not list((settings.data_dir / "spool").iterdir()), "spool file left behind"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
