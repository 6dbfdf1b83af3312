"""The uploader's settings (environment variables with the ``EDGE_`` prefix)."""

from pathlib import Path

from pydantic import Field, SecretStr

from edge_core.settings import EdgeSettings


class UploaderSettings(EdgeSettings):
    # S3 destinations: endpoint and keys, each defaulting to the buffer's (EDGE_S3_*).
    # A datashare's destination_credentials (access_key / secret_key) override the keys.
    destination_s3_endpoint: str | None = None
    destination_s3_access_key: str | None = None
    destination_s3_secret_key: SecretStr | None = None
    destination_s3_secure: bool | None = None

    # CPU priority given up at start (os.nice): the buffer absorbs bursts, so under load the
    # PACS-facing receiver gets the CPU first and the uploader catches up. 0: unchanged.
    uploader_nice: int = Field(default=5, ge=0, le=19)
    # Instances in flight per uploader process.
    uploader_concurrency: int = Field(default=8, ge=1)
    # Attempts (deliveries of one event) before a transient failure is dead-lettered.
    # With the default backoff (capped at 5 minutes) 300 attempts last about a day.
    uploader_max_attempts: int = Field(default=300, ge=1)
    uploader_backoff_initial_s: float = Field(default=2.0, gt=0)
    uploader_backoff_max_s: float = Field(default=300.0, gt=0)
    # Calling AE title of C-STORE destinations.
    uploader_ae_title: str = "EDGE"
    # Timeout of one destination request (an S3 call, a STOW-RS request, a DIMSE reply).
    uploader_timeout_s: float = Field(default=120.0, gt=0)
    # Local scratch space for the object being forwarded (default: the system temp dir).
    uploader_spool_dir: Path | None = None

    # Objects in the buffer that no instance.stored event names (their C-STORE was refused
    # after the buffer write) are removed once this old: far longer than any store in flight.
    uploader_orphan_grace_s: float = Field(default=600.0, gt=0)
    # How often the buffer is checked for them (and once at start-up).
    uploader_orphan_check_s: float = Field(default=300.0, gt=0)
