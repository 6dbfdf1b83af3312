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


# Marks every identifying value in a fully identified test instance, so that a byte search of
# a de-identified copy finds any that survived.
SECRET = "SECRET"
SECRET_DATE = "20190523"
SECRET_NUMBER = 4242


def identified_value(tag: int, vr: str, n: int, uid_root: str) -> object:
    """A value for ``tag`` with the given VR that a byte search can find (``n`` makes it
    unique); None when the VR cannot carry one."""
    text = f"{SECRET}{n}"
    if vr == "PN":
        return f"{SECRET}^NAME{n}"
    if vr == "DA":
        return SECRET_DATE
    if vr == "TM":
        return "101112"
    if vr == "DT":
        return SECRET_DATE + "101112"
    if vr == "UI":
        return f"{uid_root}{n}"
    if vr == "AS":
        return "042Y"
    if vr in ("IS", "DS"):
        return str(SECRET_NUMBER)
    if vr in ("AE", "CS", "SH"):
        return text[:16]
    if vr == "UR":
        return f"https://{text}.example/"
    if vr in ("LO", "ST", "LT", "UT", "UC"):
        return f"{text} 1 Main Street, Springfield"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
        return SECRET_NUMBER
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return (text + "!!").encode()[:8]
    return None


def make_identified_instance(
    tags: list[int], *, study_uid: str, series_uid: str, sop_uid: str, patient_id: str
) -> Dataset:
    """A small CT instance (64x64) with a findable value in each of ``tags`` (those with a
    known VR and outside the file meta and command groups), plus private attributes, nested
    sequences and the usual identity, for de-identification tests."""
    from pydicom.datadict import dictionary_VR
    from pydicom.sequence import Sequence

    ds = make_instance(
        study_uid=study_uid, series_uid=series_uid, number=1, rows=64, columns=64, sop_uid=sop_uid
    )
    uid_root = EDGE_TEST_ROOT + "99."
    for n, tag in enumerate(sorted(tags), start=100):
        # Not the command or file meta groups; nor Data Set Trailing Padding, which DCMTK
        # drops when it sends.
        if tag >> 16 in (0x0000, 0x0002) or tag == 0xFFFCFFFC or tag in ds:
            continue
        try:
            vr = str(dictionary_VR(tag)).split(" or ")[0]
        except KeyError:
            continue
        if vr == "SQ":
            item = Dataset()
            item.PatientName = f"{SECRET}^NESTED{n}"
            item.ReferencedSOPInstanceUID = f"{uid_root}{n}"
            ds.add_new(tag, "SQ", Sequence([item]))
        elif (value := identified_value(tag, vr, n, uid_root)) is not None:
            ds.add_new(tag, vr, value)
    ds.PatientID = patient_id
    ds.PatientName = f"{SECRET}^PATIENT"
    ds.StudyDate = SECRET_DATE
    ds.StudyDescription = f"CT chest of {SECRET}^PATIENT"
    # Attributes the profile keeps, holding a sequence that hides identity two levels down.
    inner = Dataset()
    inner.PatientName = f"{SECRET}^DEEP"
    inner.StudyInstanceUID = study_uid
    outer = Dataset()
    outer.CodeValue, outer.CodingSchemeDesignator, outer.CodeMeaning = "T-D3000", "SRT", "Chest"
    outer.ReferencedSeriesSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([outer])
    block = ds.private_block(0x0009, "EDGE TEST", create=True)
    block.add_new(0x01, "LO", f"{SECRET} private")
    # An overlay (60xx,3000 is removed by the profile) and a comment on it.
    ds.add_new(0x60000010, "US", 64)
    ds.add_new(0x60000011, "US", 64)
    ds.add_new(0x60003000, "OW", (SECRET * 1000).encode()[:512])
    ds.add_new(0x60004000, "LT", f"{SECRET} overlay")
    ds.BurnedInAnnotation = "NO"
    return ds
