"""The datashare as every service sees it: published by the registry, read by receivers,
uploaders and the monitor. Validation of what staff may type lives in the registry."""

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_serializer

# A Datashare ID is used in NATS subjects and object keys: keep it to a safe alphabet.
DATASHARE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DATASHARE_ID_RE = re.compile(DATASHARE_ID_PATTERN)

MatchMode = Literal["called", "calling"]


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
    # Increases with every change (shown in the history; readers follow the bucket's order).
    revision: int = 1

    @field_serializer("destination_credentials", when_used="json")
    def _reveal_for_the_bus(self, value: dict[str, SecretStr]) -> dict[str, str]:
        # Serialised to JSON only to travel to the uploader over the internal bus.
        return {k: v.get_secret_value() for k, v in value.items()}
