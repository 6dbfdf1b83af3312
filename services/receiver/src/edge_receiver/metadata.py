"""The few attributes the receiver files an instance by, read without touching pixel data."""

from dataclasses import dataclass
from typing import BinaryIO

from pydicom import dcmread

# Only these are parsed; everything else (pixel data above all) is skipped, not decoded.
_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality"]
_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class InvalidDataset(Exception):
    """The dataset cannot be parsed or lacks the UIDs an instance is filed by."""


@dataclass(frozen=True)
class InstanceMetadata:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax: str


def read_metadata(source: BinaryIO) -> InstanceMetadata:
    """Parse a DICOM file (as pynetdicom spools it: File Meta Information + the dataset as
    received). Raises :class:`InvalidDataset`."""
    try:
        source.seek(0)
        ds = dcmread(source, stop_before_pixels=True, specific_tags=_TAGS)
        values = {tag: str(ds.get(tag, "") or "").strip("\0 ") for tag in _TAGS}
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    except Exception as exc:  # pydicom raises many exception types on hostile input
        raise InvalidDataset(f"cannot parse the dataset: {exc!r}") from exc
    missing = [tag for tag in _REQUIRED if not values[tag]]
    if missing:
        raise InvalidDataset(f"missing {', '.join(missing)}")
    return InstanceMetadata(
        study_uid=values["StudyInstanceUID"],
        series_uid=values["SeriesInstanceUID"],
        sop_instance_uid=values["SOPInstanceUID"],
        sop_class_uid=values["SOPClassUID"],
        modality=values["Modality"],
        transfer_syntax=transfer_syntax,
    )
