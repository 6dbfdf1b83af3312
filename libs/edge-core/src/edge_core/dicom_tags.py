"""DICOM attributes as staff name them in a datashare's de-identification ``keep`` and
``remove`` lists: a keyword (``PatientSex``) or a tag (``(0010,0040)``)."""

import re

from pydicom.datadict import keyword_dict, keyword_for_tag

# Keywords compared without case: staff type ``patientsex`` as often as ``PatientSex``.
_KEYWORDS = {keyword.lower(): tag for keyword, tag in keyword_dict.items()}


def parse_tag(value: str) -> int:
    """The tag of a keyword or of ``(gggg,eeee)``, ``gggg,eeee`` or ``ggggeeee``; raises
    ``ValueError`` with a message meant for the person who typed it."""
    text = value.strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", text):
        tag = _KEYWORDS.get(text.lower())
        if tag is None:
            raise ValueError(f"{value!r} is not a DICOM attribute keyword")
        return int(tag)
    digits = re.sub(r"[()\s,]", "", text)
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", digits) or not re.fullmatch(
        r"\(?\s*[0-9A-Fa-f]{4}\s*,?\s*[0-9A-Fa-f]{4}\s*\)?", text
    ):
        raise ValueError(
            f"{value!r} is neither a DICOM keyword such as PatientSex nor a tag such as (0010,0040)"
        )
    return int(digits, 16)


def tag_name(tag: int) -> str:
    """A tag as it is stored and shown: its keyword, or ``(GGGG,EEEE)`` (private tags)."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
