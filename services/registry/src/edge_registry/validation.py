"""What staff may type: AE titles, CIDRs, destination URLs and their credentials.

Each check returns the value in the form it is stored (AE titles trimmed, networks in
canonical form) or raises ``ValueError`` with a message meant for the person who typed it.
"""

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from edge_core.destination_policy import is_ip
from edge_core.dicom_tags import parse_tag, tag_name

AE_TITLE_MAX = 16
# DICOM default repertoire (ISO-IR 6, printable ASCII); the backslash separates values.
_AE_ALLOWED = {chr(c) for c in range(0x20, 0x7F)} - {"\\"}
# S3 bucket naming rules (the subset every S3-compatible store accepts).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")

DESTINATION_FORMS = (
    "s3://bucket/prefix, dicomweb+http(s)://host[:port]/path or dicom://AETITLE@host:port"
)
# Credential names each destination scheme accepts, as the alternative complete sets.
CREDENTIAL_SETS: dict[str, list[set[str]]] = {
    "s3": [{"access_key", "secret_key"}],
    "dicomweb": [{"token"}, {"username", "password"}],
    "dicom": [],
}


def ae_title(value: str, what: str = "AE title") -> str:
    """An AE title without the leading and trailing spaces DICOM does not count."""
    bad = sorted({c for c in value if c not in _AE_ALLOWED})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"{what} {value!r} contains {shown}: only printable ASCII characters of the DICOM "
            "default repertoire are allowed, without backslash or control characters"
        )
    trimmed = value.strip(" ")
    if not trimmed:
        raise ValueError(f"{what} must not be empty or all spaces")
    if len(trimmed) > AE_TITLE_MAX:
        raise ValueError(
            f"{what} {trimmed!r} is {len(trimmed)} characters long; "
            f"at most {AE_TITLE_MAX} are allowed"
        )
    return trimmed


def network(value: str) -> str:
    """A CIDR (or a single address) in canonical form, e.g. ``10.1.0.0/16``."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        try:
            hint = f"; did you mean {ipaddress.ip_network(value.strip(), strict=False)}?"
        except ValueError:
            hint = ""
        raise ValueError(
            f"{value!r} is not a network in CIDR form such as 10.1.0.0/16 ({exc}){hint}"
        ) from None


def destination_scheme(url: str) -> str:
    """``s3``, ``dicomweb`` or ``dicom``: the kind of a destination URL already checked."""
    scheme = url.split("://", 1)[0]
    return "dicomweb" if scheme.startswith("dicomweb+") else scheme


def destination(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if "://" not in url or scheme not in ("s3", "dicomweb+http", "dicomweb+https", "dicom"):
        raise ValueError(f"destination {value!r} is not one of {DESTINATION_FORMS}")
    if parts.query or parts.fragment:
        raise ValueError(f"destination {value!r} must not have a query or fragment")
    if scheme == "s3":
        return _s3_destination(url, parts)
    if scheme == "dicom":
        return _dicom_destination(url, parts)
    return _dicomweb_destination(url, parts)


def _s3_destination(url: str, parts: SplitResult) -> str:
    if "@" in parts.netloc:
        raise ValueError(
            f"destination {url!r} must not carry credentials; use destination_credentials"
        )
    if not _BUCKET_RE.match(parts.netloc) or ".." in parts.netloc:
        raise ValueError(
            f"{parts.netloc!r} in {url!r} is not a valid S3 bucket name (3-63 lowercase "
            "letters, digits, dots or hyphens, starting and ending with a letter or digit)"
        )
    prefix = parts.path.strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise ValueError(f"S3 prefix {prefix!r} in {url!r} has an empty, '.' or '..' segment")
    return f"s3://{parts.netloc}/{prefix}" if prefix else f"s3://{parts.netloc}"


def _host_port(url: str, parts: SplitResult, port_required: bool) -> tuple[str, int | None]:
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"destination {url!r} has an invalid port") from None
    host = parts.hostname or ""
    if not host or not (_HOST_RE.match(host) or is_ip(host)):
        raise ValueError(f"destination {url!r} has no valid host name")
    if port_required and port is None:
        raise ValueError(f"destination {url!r} needs a port, as in dicom://AETITLE@host:11112")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"destination {url!r} has port {port}, outside 1-65535")
    return host, port


def _dicom_destination(url: str, parts: SplitResult) -> str:
    if parts.path not in ("", "/"):
        raise ValueError(f"destination {url!r} must be dicom://AETITLE@host:port with no path")
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at:
        raise ValueError(
            f"destination {url!r} needs the called AE title: dicom://AETITLE@host:port"
        )
    if ":" in userinfo:
        raise ValueError(f"destination {url!r} must not carry a password")
    aet = ae_title(userinfo, "destination AE title")
    host, port = _host_port(url, parts, port_required=True)
    shown = f"[{host}]" if ":" in host else host
    return f"dicom://{aet}@{shown}:{port}"


def _dicomweb_destination(url: str, parts: SplitResult) -> str:
    if "@" in parts.netloc:
        raise ValueError(
            f"destination {url!r} must not carry credentials; use destination_credentials"
        )
    _host_port(url, parts, port_required=False)
    return parts.scheme.lower() + url[len(parts.scheme) :]


_CREDENTIALS_HINT = (
    " (a change of destination keeps the credentials unless destination_credentials is given "
    "with it; {} removes them)"
)


def credentials(scheme: str | None, names: set[str]) -> None:
    """Check that the credential names fit the destination's scheme (None: site default)."""
    if not names:
        return
    if scheme is None:
        raise ValueError(
            "destination_credentials need a destination; the site default destination "
            f"uses the site's own credentials{_CREDENTIALS_HINT}"
        )
    sets = CREDENTIAL_SETS[scheme]
    if not sets:
        raise ValueError(
            f"{scheme}:// destinations take no destination_credentials{_CREDENTIALS_HINT}"
        )
    if names not in sets:
        wanted = " or ".join("{" + ", ".join(sorted(s)) + "}" for s in sets)
        raise ValueError(
            f"destination_credentials for {scheme} destinations must be exactly {wanted}; "
            f"got {{{', '.join(sorted(names))}}}{_CREDENTIALS_HINT}"
        )


def attribute(value: str) -> str:
    """A DICOM attribute for a de-identification keep/remove list, as its keyword (or
    ``(GGGG,EEEE)`` for one without a keyword, such as a private attribute)."""
    tag = parse_tag(value)
    if tag >> 16 in (0x0000, 0x0002, 0xFFFE):
        raise ValueError(
            f"{value!r} is a command, file meta or item tag, not an attribute of the data set"
        )
    return tag_name(tag)
