"""Which failures are worth retrying, and when to try again."""

import random

from minio.error import S3Error

from edge_uploader.destinations import DeliveryError

# DICOM statuses (PS3.4 B.2.3, PS3.7 C): warnings mean the instance was stored.
_WARNINGS = {0xB000, 0xB006, 0xB007}
DUPLICATE_SOP_INSTANCE = 0x0111
# Resource limitation (PS3.7 C.5.x): like Out of Resources, worth another try.
_TRANSIENT = {0x0213}


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: between half and all of ``initial * 2^(attempt-1)``,
    capped, so that instances that failed together do not all come back together."""
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, 32))
    return ceiling * random.uniform(0.5, 1.0)


def http_status_is_permanent(status: int) -> bool:
    """4xx other than 408 (timeout) and 429 (too many requests) will not get better by itself."""
    return 400 <= status < 500 and status not in (408, 429)


def dicom_status_kind(status: int) -> str:
    """``stored``, ``duplicate`` (already stored), ``transient`` or ``permanent``."""
    if status == 0x0000 or status in _WARNINGS:
        return "stored"
    if status == DUPLICATE_SOP_INSTANCE:
        return "duplicate"
    if 0xA700 <= status <= 0xA7FF or status in _TRANSIENT:
        return "transient"
    return "permanent"  # 0xA9xx, 0xCxxx, 0x0122 SOP class not supported, ...


def is_missing(exc: S3Error) -> bool:
    """Whether an S3 error says that there is no such object."""
    return exc.code in ("NoSuchKey", "NoSuchObject", "NotFound")


def is_permanent(exc: BaseException) -> bool:
    """Whether an error raised while delivering means that retrying is pointless."""
    if isinstance(exc, DeliveryError):
        return exc.permanent
    if isinstance(exc, S3Error) and exc.response is not None:
        return http_status_is_permanent(exc.response.status)
    # Network errors, 5xx (minio's ServerError) and anything unforeseen: retried, within
    # the attempt limit.
    return False
