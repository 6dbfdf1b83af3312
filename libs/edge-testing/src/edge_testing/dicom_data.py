"""DICOM test data made on the fly: valid CT and small secondary-capture instances."""

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

EDGE_TEST_ROOT = "1.2.826.0.1.3680043.10.1234."


def make_instance(
    *,
    study_uid: str,
    series_uid: str,
    number: int,
    rows: int = 512,
    columns: int = 512,
    sop_class: UID = CTImageStorage,
    modality: str = "CT",
    sop_uid: str | None = None,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid or generate_uid(prefix=EDGE_TEST_ROOT))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "EDGE^TEST"
    ds.PatientID = "EDGE-TEST-1"
    ds.StudyDate = "20260101"
    ds.InstanceNumber = number
    ds.SeriesNumber = 1
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(0, 4096, size=(rows, columns), dtype=np.uint16).tobytes()
    return ds


def write_series(
    directory: Path,
    count: int,
    *,
    rows: int = 512,
    columns: int = 512,
    sop_class: UID = CTImageStorage,
    modality: str = "CT",
    study_uid: str | None = None,
) -> list[Path]:
    """``count`` instances of one new series (512x512 16-bit CT, ~0.5 MB each by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    study = study_uid or generate_uid(prefix=EDGE_TEST_ROOT)
    series = generate_uid(prefix=EDGE_TEST_ROOT)
    paths = []
    for i in range(count):
        ds = make_instance(
            study_uid=study,
            series_uid=series,
            number=i + 1,
            rows=rows,
            columns=columns,
            sop_class=sop_class,
            modality=modality,
        )
        path = directory / f"{i + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_small_series(directory: Path, count: int) -> list[Path]:
    """``count`` small (~40 kB) secondary-capture instances."""
    return write_series(
        directory,
        count,
        rows=140,
        columns=140,
        sop_class=SecondaryCaptureImageStorage,
        modality="OT",
    )
