"""De-identification before an instance leaves the site: the DICOM PS3.15 Annex E Basic
Application Level Confidentiality Profile, its options, and a datashare's own keep/remove list.

The one place for the rules. Table E.1-1's basic-profile action per attribute comes from
``dicom-anonymizer`` (KitwareMedical; its copy of the table, DICOM 2026c); what that library
lacks is written here: the option columns, pseudonyms that stay the same across
associations, restarts and uploaders (HMAC with a key derived from the site key, never
random), dates shifted per patient, cleaning of free text, and the de-identification
attributes PS3.15 E.1.1 asks for.

Actions (Table E.1-1): X remove, Z empty, D dummy value, U pseudonymous UID, K keep,
C clean. Compound codes take the choice that keeps the file valid without keeping
information: ``X/Z`` empties; ``Z/D``, ``X/D``, ``X/Z/D`` put a dummy (an empty sequence for
a sequence); ``X/Z/U*`` keeps the sequence with every UID in it replaced.

Pixel data is never decoded or re-encoded: the data set is read and written again with the
same transfer syntax, its Pixel Data element's bytes (native or encapsulated fragments) as
they were. Instances at risk of identity burned into the pixels are not forwarded unless the
datashare allows them (:func:`burned_in_risk`).
"""

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from edge_core.datashares import Deidentification
from edge_core.dicom_tags import parse_tag

# --- the rules --------------------------------------------------------------------------

_TABLE_LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


def _basic_profile() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for name, code in _TABLE_LISTS.items():
        for entry in getattr(table, name):
            if len(entry) == 2:
                exact[Tag(entry[0], entry[1])] = code
            else:  # repeating groups such as overlays (60xx,3000)
                group, element, gmask, emask = entry
                masked.append((group, element, gmask, emask, code))
    # Table E.1-1 lists Content Sequence as X (C with Clean Structured Content): the whole SR
    # tree goes unless that option keeps it, cleaned.
    exact[Tag(0x0040, 0xA730)] = "X"
    return exact, masked


BASIC, BASIC_MASKED = _basic_profile()


def _tags(names: str) -> frozenset[int]:
    keywords = names.split()
    tags = [tag_for_keyword(k) for k in keywords]
    missing = [k for k, t in zip(keywords, tags, strict=True) if t is None]
    assert not missing, f"unknown keywords {missing}"
    return frozenset(t for t in tags if t is not None)


# Table E.1-1's option columns (K keep, C clean), for the attributes the basic profile acts on.
OPTION_RULES: dict[str, dict[int, str]] = {
    "retain_patient_characteristics": dict.fromkeys(
        _tags(
            "PatientAge PatientSex PatientSize PatientWeight EthnicGroup SmokingStatus "
            "PregnancyStatus PatientSexNeutered PatientSpeciesDescription "
            "PatientBreedDescription"
        ),
        "K",
    )
    | dict.fromkeys(
        _tags(
            "Allergies MedicalAlerts AdditionalPatientHistory SpecialNeeds PatientState Occupation"
        ),
        "C",
    ),
    "retain_device_identity": dict.fromkeys(
        _tags(
            "DeviceSerialNumber StationName DeviceUID DetectorID GantryID PlateID "
            "CassetteID GeneratorID SourceSerialNumber DeviceLabel DeviceDescription "
            "PerformedStationAETitle PerformedStationName ScheduledStationAETitle "
            "ScheduledStationName DeviceAlternateIdentifier XRayDetectorID "
            "XRayDetectorLabel ManufacturerDeviceClassUID"
        ),
        "K",
    ),
    "retain_institution_identity": dict.fromkeys(
        _tags(
            "InstitutionName InstitutionAddress InstitutionalDepartmentName "
            "InstitutionCodeSequence InstitutionalDepartmentTypeCodeSequence"
        ),
        "K",
    ),
    "clean_descriptors": dict.fromkeys(
        _tags(
            "StudyDescription SeriesDescription ImageComments ProtocolName "
            "AcquisitionComments DerivationDescription PerformedProcedureStepDescription "
            "RequestedProcedureDescription ScheduledProcedureStepDescription "
            "AdmittingDiagnosesDescription ReasonForStudy ContrastBolusAgent FrameComments "
            "ClinicalTrialSeriesDescription ClinicalTrialProtocolName "
            "ImagePresentationComments AcquisitionDeviceProcessingDescription VisitComments "
            "PatientComments InterpretationText"
        ),
        "C",
    ),
    "clean_structured_content": dict.fromkeys(
        _tags("ContentSequence AcquisitionContextSequence TextValue"), "C"
    ),
}

# PS3.16 CID 7050 (De-identification Method), as PS3.15 E.1.1 asks to record them.
METHOD_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_modified_dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

_PATIENT_ID = Tag(0x0010, 0x0020)
_PATIENT_NAME = Tag(0x0010, 0x0010)
_BIRTH = _tags("PatientBirthDate PatientBirthTime PatientBirthDateInAlternativeCalendar")
_FILE_META_REMOVED = _tags(
    "SourceApplicationEntityTitle SendingApplicationEntityTitle "
    "ReceivingApplicationEntityTitle PrivateInformationCreatorUID PrivateInformation"
)

# Known for identity burned into the pixels (PS3.15 E.1.1 notes; secondary capture, screen
# captures, ultrasound, scanned documents, photographs).
RISKY_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic",
}
RISKY_MODALITIES = {"US", "OT", "SC", "XC", "DOC", "SM"}


# --- the pseudonyms ---------------------------------------------------------------------


class Pseudonyms:
    """Pseudonymous identifiers of one datashare: HMAC-SHA256 of the original under the
    site's pseudonym key, so every uploader, at any time, gives the same one, and no one
    without the key can go back (nothing is stored, so there is no mapping to leak)."""

    def __init__(self, key: bytes, datashare: str) -> None:
        self._key = key
        self._datashare = datashare

    def _digest(self, kind: str, value: str) -> bytes:
        raw = f"{self._datashare}\0{kind}\0{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self._key, raw, hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """A UID under 2.25 (PS3.5 B.2: derived from a UUID), at most 44 characters."""
        digest = self._digest("uid", value.strip("\0 "))
        return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"

    def patient_id(self, value: str) -> str:
        return "EDGE" + self._digest("patient", value.strip()).hex()[:20].upper()

    def date_shift(self, patient_id: str) -> timedelta:
        """How far back this patient's dates move: 1 to 10 years, whole days, the same for
        all of the patient's instances, so intervals between them are kept."""
        digest = self._digest("dates", patient_id.strip())
        return timedelta(days=365 + int.from_bytes(digest[:4], "big") % (9 * 365))


# --- applying them ----------------------------------------------------------------------


class Held(Exception):
    """The instance is not forwarded (identity may be burned into its pixels)."""


@dataclass(frozen=True)
class Deidentified:
    study_uid: str
    series_uid: str
    sop_instance_uid: str


def burned_in_risk(ds: Dataset) -> str | None:
    """Why this instance may carry identity in its pixels, or None."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES"
    if str(ds.get("RecognizableVisualFeatures", "")).upper() == "YES":
        return "RecognizableVisualFeatures is YES"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in RISKY_SOP_CLASSES:
        return (
            f"SOP class {RISKY_SOP_CLASSES[sop_class]} ({sop_class}) often has burned-in identity"
        )
    modality = str(ds.get("Modality", "")).upper()
    if modality in RISKY_MODALITIES:
        return f"modality {modality} often has burned-in identity"
    return None


@dataclass
class _Rules:
    config: Deidentification
    pseudonyms: Pseudonyms
    patient: str = ""  # the pseudonymous patient ID
    overrides: dict[int, str] = field(default_factory=dict)
    shift: timedelta | None = None
    identifiers: re.Pattern[str] | None = None

    def action(self, tag: BaseTag) -> str:
        if tag in self.overrides:
            return self.overrides[tag]
        if tag.is_private:
            return "X"  # private attributes, and their creators
        if tag.element == 0 and tag.group > 0x0002:
            return "X"  # group lengths: no longer true once values change
        if tag in BASIC:
            return BASIC[tag]
        for group, element, gmask, emask, code in BASIC_MASKED:
            if tag.group & gmask == group & gmask and tag.element & emask == element & emask:
                return code
        return "K"


def deidentify(
    source: Path, target: Path, config: Deidentification, pseudonyms: Pseudonyms
) -> Deidentified:
    """Write ``source`` de-identified to ``target``; raises :class:`Held` for an instance
    at risk of burned-in identity (unless allowed), ``ValueError`` for one not readable."""
    try:
        ds = dcmread(source)
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        raise ValueError(f"not a readable DICOM file: {exc}") from None
    if "allow_burned_in" not in config.options and (reason := burned_in_risk(ds)):
        raise Held(f"held, not de-identified: {reason} (the datashare does not allow_burned_in)")
    rules = _rules_for(ds, config, pseudonyms)
    _apply(ds, rules)
    _record_method(ds, config)
    meta = ds.file_meta
    for tag in _FILE_META_REMOVED:
        if tag in meta:
            del meta[tag]
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\0" * 128
    ds.save_as(target, enforce_file_format=True)
    return Deidentified(
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("SeriesInstanceUID", "")),
        str(ds.SOPInstanceUID),
    )


def _rules_for(ds: Dataset, config: Deidentification, pseudonyms: Pseudonyms) -> _Rules:
    overrides: dict[int, str] = {}
    for option in config.options:
        overrides.update(OPTION_RULES.get(option, {}))
    for name in config.remove:
        overrides[parse_tag(name)] = "X"
    for name in config.keep:
        tag = parse_tag(name)
        overrides[tag] = "K"
        if tag >> 16 & 1 and tag & 0xFFFF >= 0x1000:  # a private attribute: keep its creator
            overrides[(tag & 0xFFFF0000) | (tag & 0xFF00) >> 8] = "K"
    patient = str(ds.get("PatientID", "") or "")
    shift = None
    if "retain_longitudinal_modified_dates" in config.options:
        shift = pseudonyms.date_shift(patient)
    rules = _Rules(config, pseudonyms, pseudonyms.patient_id(patient), overrides, shift)
    if {"clean_descriptors", "clean_structured_content", "retain_patient_characteristics"} & set(
        config.options
    ):
        rules.identifiers = _identifiers(ds, rules)
    return rules


def _identifiers(ds: Dataset, rules: _Rules) -> re.Pattern[str] | None:
    """The identifying values this instance itself holds (names, IDs, dates, addresses:
    what the profile removes), to cut out of free text it keeps."""
    found: set[str] = set()

    def collect(dataset: Dataset, elem: DataElement) -> None:
        if elem.VR in ("SQ", "UI") or rules.action(elem.tag) in ("K", "C"):
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        for value in values:
            text = str(value or "").strip()
            if elem.VR == "PN":
                found.update(p for p in re.split(r"[\^=\s,]+", text) if len(p) >= 2)
            elif elem.VR in ("DA", "DT") and len(text) >= 8:
                y, mo, d = text[:4], text[4:6], text[6:8]
                found.update({text[:8], f"{y}-{mo}-{d}", f"{d}.{mo}.{y}", f"{mo}/{d}/{y}"})
            elif elem.VR in ("LO", "SH", "ST", "LT", "CS", "UC") and len(text) >= 2:
                found.add(text)

    ds.walk(collect)
    if not found:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(found, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _apply(ds: Dataset, rules: _Rules) -> None:
    for elem in list(ds):
        tag = elem.tag
        code = rules.action(tag)
        if elem.VR == "SQ":
            _sequence(ds, elem, code, rules)
            continue
        if code in ("X", "Z", "X/Z", "D", "Z/D", "X/D", "X/Z/D") and _dated(elem, tag, rules):
            continue  # shifted (Retain Longitudinal Temporal Information Modified Dates)
        if code == "K":
            continue
        if tag in (_PATIENT_ID, _PATIENT_NAME) and code != "X":
            # The pseudonymous patient ID, as the name too: recognisable, not a name.
            elem.value = rules.patient
        elif code == "C":
            _clean(elem, rules)
        elif code == "X":
            del ds[tag]
        elif code in ("Z", "X/Z"):
            elem.value = None
        elif code == "U" or (elem.VR == "UI" and code != "K"):
            _replace_uids(elem, rules.pseudonyms)
        else:  # D and the compound codes that allow it
            elem.value = _dummy(elem)


def _sequence(ds: Dataset, elem: DataElement, code: str, rules: _Rules) -> None:
    if code == "X":
        del ds[elem.tag]
    elif code in ("K", "C", "X/Z/U*", "U"):
        for item in elem.value:
            _apply(item, rules)
    else:  # Z, D and the other compound codes: emptied, nothing of its items is kept
        elem.value = Sequence()


def _dated(elem: DataElement, tag: BaseTag, rules: _Rules) -> bool:
    """Shift a date (keep a time) instead of removing it, when the option asks; True if so."""
    if rules.shift is None or tag in _BIRTH or elem.VR not in ("DA", "DT", "TM"):
        return False
    if elem.VR != "TM" and elem.value:
        values = elem.value if elem.VM > 1 else [elem.value]
        shifted = [_shift(str(v), rules.shift) for v in values]
        elem.value = shifted if len(shifted) > 1 else shifted[0]
    return True


def _shift(value: str, by: timedelta) -> str:
    text = value.strip()
    try:
        day = datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return ""  # not a date we can move: not kept
    moved = max(day - by, date(1, 1, 1))
    return moved.strftime("%Y%m%d").rjust(8, "0") + text[8:]


def _clean(elem: DataElement, rules: _Rules) -> None:
    if rules.identifiers is None or elem.value is None:
        return
    pattern = rules.identifiers
    values = elem.value if elem.VM > 1 else [elem.value]
    cleaned = [pattern.sub("***", str(v)) for v in values]
    elem.value = cleaned if len(cleaned) > 1 else cleaned[0]


def _replace_uids(elem: DataElement, pseudonyms: Pseudonyms) -> None:
    if elem.VR != "UI":
        elem.value = None  # not readable as a UID: nothing of it is kept
        return
    if not elem.value:
        return
    values = elem.value if elem.VM > 1 else [elem.value]
    replaced = [pseudonyms.uid(str(v)) for v in values]
    elem.value = replaced if len(replaced) > 1 else replaced[0]


_DUMMY: dict[str, Callable[[], Any]] = {
    "PN": lambda: "ANONYMOUS",
    "DA": lambda: "19000101",
    "TM": lambda: "000000",
    "DT": lambda: "19000101000000",
    "AS": lambda: "000Y",
    "IS": lambda: "0",
    "DS": lambda: "0",
    "AE": lambda: "ANONYMIZED",
    "CS": lambda: "ANONYMIZED",
    "SH": lambda: "ANONYMIZED",
    "LO": lambda: "ANONYMIZED",
    "ST": lambda: "ANONYMIZED",
    "LT": lambda: "ANONYMIZED",
    "UT": lambda: "ANONYMIZED",
    "UC": lambda: "ANONYMIZED",
}


def _dummy(elem: DataElement) -> Any:
    if elem.VR in _DUMMY:
        return _DUMMY[elem.VR]()
    if elem.VR in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
        return 0
    return None  # binary and anything else: empty


def _record_method(ds: Dataset, config: Deidentification) -> None:
    """PS3.15 E.1.1: say that and how the instance was de-identified."""
    methods = ["basic", *sorted(o for o in config.options if o in METHOD_CODES)]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [METHOD_CODES[m][1][:64] for m in methods]
    items = []
    for method in methods:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = METHOD_CODES[method]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    shifted = "retain_longitudinal_modified_dates" in config.options
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"
