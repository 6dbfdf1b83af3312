"""Request and response bodies of the REST API, with every check staff input goes through."""

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge_core.datashares import (
    DATASHARE_ID_RE,
    Deidentification,
    DeidentificationOption,
    MatchMode,
)
from edge_registry import validation

DESCRIPTION_MAX = 1000
ATTRIBUTES_MAX = 200


T = TypeVar("T")
Checked = TypeVar("Checked")


def _checked(check: Callable[[T], Checked], value: T, kind: str) -> Checked:
    """Run a check from :mod:`validation`, turning its message into a clear 422 entry."""
    try:
        return check(value)
    except ValueError as exc:
        raise PydanticCustomError(kind, str(exc)) from None


class DeidentificationSpec(BaseModel):
    """The PS3.15 Annex E profile applied before forwarding, as staff give it."""

    model_config = ConfigDict(extra="forbid")

    profile: Literal["basic"] = Field(
        "basic", description="basic: the Basic Application Level Confidentiality Profile"
    )
    options: list[DeidentificationOption] = Field(
        [], description="profile options (PS3.15 Table E.1-1's columns), and allow_burned_in"
    )
    keep: list[str] = Field([], description="attributes kept whatever the profile says")
    remove: list[str] = Field([], description="attributes removed whatever the profile says")

    @field_validator("options")
    @classmethod
    def _options(cls, values: list[str]) -> list[str]:
        return sorted(set(values))

    @field_validator("keep", "remove")
    @classmethod
    def _attributes(cls, values: list[str]) -> list[str]:
        if len(values) > ATTRIBUTES_MAX:
            raise PydanticCustomError(
                "attributes", f"at most {ATTRIBUTES_MAX} attributes may be listed"
            )
        return list(dict.fromkeys(_checked(validation.attribute, v, "attribute") for v in values))

    @model_validator(mode="after")
    def _disjoint(self) -> "DeidentificationSpec":
        both = sorted(set(self.keep) & set(self.remove))
        if both:
            raise PydanticCustomError(
                "attributes", f"{', '.join(both)} cannot be both kept and removed"
            )
        return self


class DatashareSpec(BaseModel):
    """A datashare as staff define it: the body of POST, and what a PATCH must leave."""

    model_config = ConfigDict(strict=True, extra="forbid")

    id: str = Field(description="Datashare ID: letters, digits, '_' and '-', at most 64")
    description: str = Field("", max_length=DESCRIPTION_MAX)
    # Validators run in field order, so ``info.data`` holds the fields checked before.
    ae_title: str | None = Field(
        None,
        validate_default=True,
        description="Substitute AE title selecting this datashare; default: the id",
    )
    match: MatchMode = Field(
        "called", description="Match the CALLED (default) or the CALLING AE title"
    )
    allowed_calling_aets: list[str] = Field([], description="Calling AE titles allowed; empty: any")
    allowed_networks: list[str] = Field([], description="Source networks (CIDR); empty: any")
    destination: str | None = Field(
        None,
        description=f"Where to deliver: {validation.DESTINATION_FORMS}; null: the site default",
    )
    destination_credentials: dict[str, SecretStr] = Field(
        {},
        description="Write-only secrets of the destination: {access_key, secret_key} for s3, "
        "{token} or {username, password} for dicomweb",
    )
    enabled: bool = True
    deidentification: DeidentificationSpec | None = Field(
        None,
        description="null: forward byte for byte; or the PS3.15 Annex E profile applied "
        "by the uploader before forwarding",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not DATASHARE_ID_RE.match(value):
            raise PydanticCustomError(
                "datashare_id",
                f"Datashare ID {value!r} must be 1-64 letters, digits, '_' or '-', starting "
                "with a letter or digit",
            )
        return value

    @field_validator("ae_title", mode="after")
    @classmethod
    def _ae_title(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            return _checked(validation.ae_title, value, "ae_title")
        ds_id: str | None = info.data.get("id")
        if ds_id is None:
            return None  # the id is already reported as invalid
        if len(ds_id) > validation.AE_TITLE_MAX:
            raise PydanticCustomError(
                "ae_title_needed",
                f"Datashare ID {ds_id!r} is {len(ds_id)} characters, too long to be an AE "
                f"title (at most {validation.AE_TITLE_MAX}): give a substitute ae_title that "
                "the PACS will use",
            )
        return ds_id

    @field_validator("allowed_calling_aets")
    @classmethod
    def _calling_aets(cls, values: list[str]) -> list[str]:
        aets = [_checked(validation.ae_title, v, "ae_title") for v in values]
        return list(dict.fromkeys(aets))

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(_checked(validation.network, v, "cidr") for v in values))

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        return None if value is None else _checked(validation.destination, value, "destination")

    @field_validator("destination_credentials")
    @classmethod
    def _credentials(
        cls, value: dict[str, SecretStr], info: ValidationInfo
    ) -> dict[str, SecretStr]:
        if any(not v.get_secret_value() for v in value.values()):
            raise PydanticCustomError("credentials", "credential values must not be empty")
        if "destination" not in info.data:
            return value  # the destination is already reported as invalid
        dest = info.data["destination"]
        scheme = None if dest is None else validation.destination_scheme(dest)
        _checked(lambda names: validation.credentials(scheme, names), set(value), "credentials")
        return value

    def stored_ae_title(self) -> str:
        return self.ae_title or self.id


class DatashareUpdate(BaseModel):
    """PATCH body: only the fields given change; the result is checked as a whole.
    ``ae_title: null`` returns to the id, ``destination: null`` to the site default,
    ``destination_credentials: {}`` removes them."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    ae_title: str | None = None
    match: MatchMode | None = None
    allowed_calling_aets: list[str] | None = None
    allowed_networks: list[str] | None = None
    destination: str | None = None
    destination_credentials: dict[str, SecretStr] | None = None
    enabled: bool | None = None
    deidentification: DeidentificationSpec | None = None


class DatashareOut(BaseModel):
    id: str
    description: str
    ae_title: str
    match: MatchMode
    allowed_calling_aets: list[str]
    allowed_networks: list[str]
    destination: str | None
    # Names of the credentials set, never their values.
    destination_credentials_set: list[str]
    enabled: bool
    deidentification: Deidentification | None
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class HistoryEntry(BaseModel):
    revision: int
    action: Literal["created", "updated", "deleted"]
    actor: str
    time: datetime
    # created/deleted: the datashare's fields; updated: {field: {"old": ..., "new": ...}}.
    # Credential values are always shown as "***".
    changes: dict[str, Any]
