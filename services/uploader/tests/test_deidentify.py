"""De-identification's rules on instances holding a findable value in every attribute of
PS3.15 Table E.1-1 (as dicom-anonymizer transcribes it), private attributes and nested
sequences: what the profile removes is gone, what an option keeps stays, pseudonyms are the
same for the same input, pixel data is untouched, and burned-in risks are held."""

from pathlib import Path

import pytest
from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from edge_core.datashares import Deidentification
from edge_core.sitekey import SiteKey
from edge_testing.dicom_data import (
    EDGE_TEST_ROOT,
    SECRET,
    SECRET_DATE,
    SECRET_NUMBER,
    make_identified_instance,
)
from edge_testing.part10 import write_instance
from edge_uploader.deidentify import Held, Pseudonyms, deidentify

# Every attribute Table E.1-1 lists (the repeating-group ones, overlays, are added apart).
TABLE_LISTS = "D_TAGS Z_TAGS X_TAGS U_TAGS Z_D_TAGS X_Z_TAGS X_D_TAGS X_Z_D_TAGS X_Z_U_STAR_TAGS"
TABLE_TAGS = sorted(
    (entry[0] << 16) | entry[1]
    for name in TABLE_LISTS.split()
    for entry in getattr(table, name)
    if len(entry) == 2
)
STUDY, SERIES = EDGE_TEST_ROOT + "7.1", EDGE_TEST_ROOT + "7.2"
KEY = b"k" * 32


def identified(path: Path, sop: str = EDGE_TEST_ROOT + "7.3", patient: str = "PID-77") -> Path:
    ds = make_identified_instance(
        TABLE_TAGS, study_uid=STUDY, series_uid=SERIES, sop_uid=sop, patient_id=patient
    )
    ds.save_as(path, enforce_file_format=True)
    return path


def run(source: Path, tmp_path: Path, datashare: str = "DS1", key: bytes = KEY, **config):
    target = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.dcm"
    result = deidentify(source, target, Deidentification(**config), Pseudonyms(key, datashare))
    return result, target


def leaks(ds: Dataset) -> list[str]:
    """Every element still holding one of the identified values, as 'Keyword' paths."""
    found: list[str] = []

    def visit(dataset: Dataset, elem) -> None:
        value = elem.value
        if elem.VR == "SQ":
            return
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if (
            SECRET in text
            or SECRET_DATE in text
            or EDGE_TEST_ROOT in text
            or value in (SECRET_NUMBER, str(SECRET_NUMBER))
        ):
            found.append(elem.keyword or str(elem.tag))

    ds.walk(visit)
    return found


def test_basic_profile_leaves_nothing_it_removes(tmp_path):
    source = identified(tmp_path / "in.dcm")
    original = dcmread(source)
    assert len(original) > 500  # a value in (nearly) every attribute of the table

    result, target = run(source, tmp_path)

    data = target.read_bytes()
    for needle in (SECRET, SECRET_DATE, EDGE_TEST_ROOT, "PID-77"):
        assert needle.encode() not in data, needle
    got = dcmread(target)
    assert leaks(got) == []
    # Pixel data untouched; file meta consistent; the file as a whole still valid DICOM.
    assert got.PixelData == original.PixelData
    assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert got.file_meta.MediaStorageSOPInstanceUID == got.SOPInstanceUID
    assert got.SOPClassUID == CTImageStorage
    assert (result.study_uid, result.series_uid, result.sop_instance_uid) == (
        got.StudyInstanceUID, got.SeriesInstanceUID, got.SOPInstanceUID)  # fmt: skip
    assert all(uid.startswith("2.25.") for uid in (result.study_uid, result.sop_instance_uid))
    # PS3.15 E.1.1's record of what was done.
    assert got.PatientIdentityRemoved == "YES"
    assert got.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert got.LongitudinalTemporalInformationModified == "REMOVED"
    # A pseudonymous patient; private attributes and overlays gone; a kept sequence
    # de-identified two levels down.
    assert got.PatientID.startswith("EDGE") and got.PatientName == got.PatientID
    assert not any(elem.tag.is_private for elem in got.iterall())
    assert 0x60003000 not in got and 0x60004000 not in got
    inner = got.AnatomicRegionSequence[0].ReferencedSeriesSequence[0]
    assert inner.StudyInstanceUID == got.StudyInstanceUID and inner.PatientName == got.PatientID
    # Referenced UIDs map as the instances they name will.
    assert got.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")


@pytest.mark.parametrize(
    ("option", "kept"),
    [
        ("retain_patient_characteristics", ["PatientSex", "PatientAge", "PatientWeight"]),
        ("retain_device_identity", ["StationName", "DeviceSerialNumber", "DeviceUID"]),
        ("retain_institution_identity", ["InstitutionName", "InstitutionAddress"]),
    ],
)
def test_an_option_keeps_its_attributes_and_nothing_else(tmp_path, option, kept):
    source = identified(tmp_path / "in.dcm")
    original = dcmread(source)
    _, target = run(source, tmp_path, options=[option])
    got = dcmread(target)
    for keyword in kept:
        assert got[keyword].value == original[keyword].value, keyword
    assert set(leaks(got)) <= set(OPTION_KEEPS[option]), set(leaks(got)) - set(kept)
    assert got.DeidentificationMethodCodeSequence[1].CodeMeaning.endswith("Option")


OPTION_KEEPS = {
    "retain_patient_characteristics": [
        "PatientAge", "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup",
        "SmokingStatus", "PregnancyStatus", "PatientSexNeutered", "PatientSpeciesDescription",
        "PatientBreedDescription", "Allergies", "MedicalAlerts", "AdditionalPatientHistory",
        "SpecialNeeds", "PatientState", "Occupation",
    ],
    "retain_device_identity": [
        "DeviceSerialNumber", "StationName", "DeviceUID", "DetectorID", "GantryID", "PlateID",
        "CassetteID", "GeneratorID", "SourceSerialNumber", "DeviceLabel", "DeviceDescription",
        "PerformedStationAETitle", "PerformedStationName", "ScheduledStationAETitle",
        "ScheduledStationName", "DeviceAlternateIdentifier", "XRayDetectorID",
        "XRayDetectorLabel", "ManufacturerDeviceClassUID",
    ],
    "retain_institution_identity": [
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "CodeMeaning",  # in InstitutionCodeSequence, kept whole
    ],
}  # fmt: skip


def test_modified_dates_move_each_patient_by_the_same_days(tmp_path):
    a = identified(tmp_path / "a.dcm", EDGE_TEST_ROOT + "7.3")
    b = identified(tmp_path / "b.dcm", EDGE_TEST_ROOT + "7.4")
    other = identified(tmp_path / "c.dcm", EDGE_TEST_ROOT + "7.5", patient="PID-88")
    option = ["retain_longitudinal_modified_dates"]
    got = [dcmread(run(p, tmp_path, options=option)[1]) for p in (a, b, other)]
    dates = [g.StudyDate for g in got]
    assert dates[0] == dates[1] != SECRET_DATE and dates[2] not in (dates[0], SECRET_DATE)
    assert got[0].AcquisitionDateTime[:8] == dates[0]  # DT: its date part moved the same
    assert got[0].StudyTime == "101112"  # times kept
    assert "PatientBirthDate" not in got[0] or not got[0].PatientBirthDate
    assert got[0].LongitudinalTemporalInformationModified == "MODIFIED"
    assert set(leaks(got[0])) <= {"StudyTime", "AcquisitionTime", "ContentTime"} | {
        e.keyword for e in got[0].iterall() if e.VR == "TM"
    }


def test_clean_descriptors_and_structured_content_keep_text_without_the_identity(tmp_path):
    ds = make_identified_instance(
        TABLE_TAGS, study_uid=STUDY, series_uid=SERIES, sop_uid=EDGE_TEST_ROOT + "7.3",
        patient_id="PID-77",
    )  # fmt: skip
    item = Dataset()
    item.ValueType, item.TextValue = "TEXT", f"Nodule seen on {SECRET_DATE}; ID PID-77"
    ds.ContentSequence = Sequence([item])
    ds.save_as(tmp_path / "in.dcm", enforce_file_format=True)

    _, target = run(tmp_path / "in.dcm", tmp_path, options=["clean_descriptors"])
    got = dcmread(target)
    assert got.StudyDescription == "CT chest of ***^***"
    assert "ContentSequence" not in got  # removed without clean_structured_content

    _, target = run(tmp_path / "in.dcm", tmp_path, options=["clean_structured_content"])
    got = dcmread(target)
    assert got.ContentSequence[0].TextValue == "Nodule seen on ***; ID ***"
    assert "StudyDescription" not in got


def test_keep_and_remove_lists_override_the_profile(tmp_path):
    source = identified(tmp_path / "in.dcm")
    ds = dcmread(source)
    ds.Manufacturer = "ACME"
    ds.save_as(source, enforce_file_format=True)
    _, target = run(source, tmp_path, keep=["(0009,1001)", "StudyDate"], remove=["Manufacturer"])
    got = dcmread(target)
    assert got[0x00091001].value == f"{SECRET} private"
    assert got[0x00090010].value == "EDGE TEST"  # its private creator, kept with it
    assert got.StudyDate == SECRET_DATE
    assert "Manufacturer" not in got
    assert set(leaks(got)) == {"StudyDate", str(got[0x00091001].tag)}


def test_pseudonyms_are_the_same_for_the_same_site_key_and_datashare(tmp_path):
    a = identified(tmp_path / "a.dcm", EDGE_TEST_ROOT + "7.3")
    b = identified(tmp_path / "b.dcm", EDGE_TEST_ROOT + "7.4")
    # Two uploaders of the site read the same key file: the same pseudonym key.
    path = tmp_path / "var" / "site.key"
    key = SiteKey.load_or_create(path).pseudonym_key()
    assert SiteKey.load(path).pseudonym_key() == key != SiteKey.generate().pseudonym_key()

    first, first_file = run(a, tmp_path, key=key)
    again, again_file = run(a, tmp_path, key=key)
    second, _ = run(b, tmp_path, key=key)
    assert first == again and first_file.read_bytes() == again_file.read_bytes()
    assert (second.study_uid, second.series_uid) == (first.study_uid, first.series_uid)
    assert second.sop_instance_uid != first.sop_instance_uid
    assert dcmread(first_file).PatientID == dcmread(run(b, tmp_path, key=key)[1]).PatientID

    elsewhere, _ = run(a, tmp_path, datashare="DS2", key=key)
    other_key, _ = run(a, tmp_path, key=SiteKey.generate().pseudonym_key())
    assert len({first.study_uid, elsewhere.study_uid, other_key.study_uid}) == 3


@pytest.mark.parametrize(
    "syntax",
    [RLELossless, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian],
)
def test_pixel_data_and_transfer_syntax_are_kept(tmp_path, syntax):
    source = write_instance(tmp_path / "in.dcm", syntax)
    original = dcmread(source)
    _, target = run(source, tmp_path)
    got = dcmread(target)
    assert got.file_meta.TransferSyntaxUID == syntax
    assert got.PixelData == original.PixelData  # RLE: the encapsulated fragments as sent
    if syntax.is_compressed:
        assert original.PixelData in target.read_bytes()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation is YES"),
        ({"SOPClassUID": SecondaryCaptureImageStorage}, "Secondary Capture"),
        ({"SOPClassUID": UltrasoundImageStorage, "Modality": "US"}, "Ultrasound"),
        ({"Modality": "OT"}, "modality OT"),
    ],
)
def test_burned_in_risks_are_held_unless_allowed(tmp_path, change, reason):
    source = identified(tmp_path / "in.dcm")
    ds = dcmread(source)
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    ds.save_as(source, enforce_file_format=True)
    with pytest.raises(Held, match=reason):
        run(source, tmp_path)
    _, target = run(source, tmp_path, options=["allow_burned_in"])
    assert leaks(dcmread(target)) == []


def test_not_dicom_is_an_error_not_a_crash(tmp_path):
    source = tmp_path / "in.dcm"
    source.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(ValueError, match="not a readable DICOM file"):
        run(source, tmp_path)
