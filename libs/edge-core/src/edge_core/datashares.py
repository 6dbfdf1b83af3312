"""The datashare as every service sees it: published by the registry, read by receivers,
uploaders and the monitor. Validation of what staff may type lives in the registry."""

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_serializer

# A Datashare ID is used in NATS subjects and object keys: keep it to a safe alphabet.
DATASHARE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DATASHARE_ID_RE = re.compile(DATASHARE_ID_PATTERN)

MatchMode = Literal["called", "calling"]

# Options of the PS3.15 Annex E Basic Application Level Confidentiality Profile that Edge
# offers (Table E.1-1's option columns), plus ``allow_burned_in``: Edge's own, to forward
# instances at risk of identity burned into the pixels (which Edge never alters).
DeidentificationOption = Literal[
    "retain_longitudinal_modified_dates",
    "retain_patient_characteristics",
    "retain_device_identity",
    "retain_institution_identity",
    "clean_descriptors",
    "clean_structured_content",
    "allow_burned_in",
]


class Deidentification(BaseModel):
    """What a datashare does to an instance before it leaves the site. ``keep`` and
    ``remove`` name attributes (keyword such as ``PatientSex`` or tag ``(0010,0040)``) that
    override the profile; the registry checks and normalises them."""

    profile: Literal["basic"] = "basic"
    options: list[DeidentificationOption] = []
    keep: list[str] = []
    remove: list[str] = []


class Datashare(BaseModel):
    id: str = Field(pattern=DATASHARE_ID_PATTERN)
    description: str = ""
    # The AE title that selects this datashare (the id unless a substitute was given),
    # stored without leading or trailing spaces, which DICOM does not count.
    ae_title: str
    match: MatchMode = "called"
    allowed_calling_aets: list[str] = []
    allowed_networks: list[str] = []
    # None: the site-wide default destination.
    destination: str | None = None
    # Destination secrets (S3 keys, DICOMweb token or user/password): never shown in a repr or log.
    destination_credentials: dict[str, SecretStr] = {}
    enabled: bool = True
    # None: forwarded byte for byte.
    deidentification: Deidentification | None = None
    # Increases with every change (shown in the history; readers follow the bucket's order).
    revision: int = 1

    @field_serializer("destination_credentials", when_used="json")
    def _reveal_for_the_bus(self, value: dict[str, SecretStr]) -> dict[str, str]:
        # Serialised to JSON only to travel to the uploader over the internal bus.
        return {k: v.get_secret_value() for k, v in value.items()}
