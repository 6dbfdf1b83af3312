"""Part 10 files for transfer-syntax tests: an instance with a private element, in a chosen
transfer syntax, and the dataset bytes of a Part 10 file (what travelled on the wire)."""

import struct
from pathlib import Path

from pydicom.uid import UID, CTImageStorage, generate_uid

from edge_testing.dicom_data import EDGE_TEST_ROOT, make_instance

PRIVATE_CREATOR = "EDGE TEST"
PRIVATE_TAG = 0x00291001  # LO: an element whose VR only an explicit syntax carries
PRIVATE_VALUE = "KEEP MY VR"


def write_instance(
    path: Path,
    transfer_syntax: UID,
    *,
    sop_class: UID = CTImageStorage,
    modality: str = "CT",
    rows: int = 64,
    columns: int = 64,
) -> Path:
    """One small instance with a private LO element, in ``transfer_syntax`` (compressed
    ones with pydicom's own encoders, i.e. RLE Lossless)."""
    ds = make_instance(
        study_uid=generate_uid(prefix=EDGE_TEST_ROOT),
        series_uid=generate_uid(prefix=EDGE_TEST_ROOT),
        number=1,
        rows=rows,
        columns=columns,
        sop_class=sop_class,
        modality=modality,
    )
    ds.private_block(0x0029, PRIVATE_CREATOR, create=True).add_new(0x01, "LO", PRIVATE_VALUE)
    if transfer_syntax.is_compressed:
        ds.compress(transfer_syntax)
    else:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_bytes(part10: bytes) -> bytes:
    """The dataset of a Part 10 file: what follows the File Meta Information, whose group
    length element (0002,0000), first after the preamble, says where it ends."""
    if part10[128:132] != b"DICM" or part10[132:138] != b"\x02\x00\x00\x00UL":
        raise ValueError("not a Part 10 file starting with the meta group length")
    (group_length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + group_length :]
