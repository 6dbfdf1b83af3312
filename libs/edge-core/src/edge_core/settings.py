"""Settings shared by every service; each service's ``config.py`` subclasses :class:`EdgeSettings`.

Every field is read from an ``EDGE_``-prefixed environment variable (``nats_url`` from
``EDGE_NATS_URL``). The defaults are the embedded servers that ``make run`` starts, on ports
chosen not to collide with standard ones (4222, 5432, 9000, ...).
"""

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge_core.auth import parse_tokens

EMBEDDED_NATS_PORT = 14222
EMBEDDED_S3_PORT = 18333
# A datashare or a retry request is a few kB: 1 MiB leaves room without letting a client
# make the API hold megabytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_", extra="ignore", env_file=None)

    # NATS JetStream: the event bus.
    nats_url: str = f"nats://127.0.0.1:{EMBEDDED_NATS_PORT}"
    # NATS credentials: user and password, or a credentials file (JWT + NKey seed); none set:
    # connect anonymously. `make run` generates them for its embedded NATS.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    nats_creds_file: Path | None = None
    # CA certificate(s) to verify the NATS server's TLS certificate (unset: the system's).
    nats_tls_ca_file: Path | None = None
    events_stream: str = "EDGE_EVENTS"
    # Re-publishing the same message id within this window is dropped by JetStream.
    events_duplicate_window_s: float = 120.0
    # Events older than this are discarded (0 = keep for ever); a monitor rebuild replays the rest.
    events_max_age_s: float = 90 * 24 * 3600.0
    # Stream and bucket replicas; 0 chooses from the cluster: 3 on a JetStream cluster of
    # three or more servers, 1 on a single server (edge_core.topology).
    events_replicas: int = 0
    # Where the stream and buckets are placed (a cluster of a super-cluster, server tags,
    # comma-separated), and limits of the stream (0: none); the oldest events go first.
    events_placement_cluster: str = ""
    events_placement_tags: str = ""
    events_max_bytes: int = 0
    events_max_msgs: int = 0

    # S3-compatible object store: the local buffer (MinIO API; embedded: SeaweedFS `weed mini`).
    s3_endpoint: str = f"127.0.0.1:{EMBEDDED_S3_PORT}"
    # `make run` generates them for its embedded store (var/embedded-credentials.json).
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    buffer_bucket: str = "edge-buffer"
    # S3 destinations' endpoint (None: the buffer's); the uploader sends there, the registry
    # refuses the buffer bucket as a destination when it is the same store.
    destination_s3_endpoint: str | None = None
    # Where a datashare without a destination of its own sends its instances (the uploader);
    # the launcher creates its bucket when it is in the embedded store.
    default_destination: str = "s3://edge-destination"

    # Destinations on loopback, link-local or private addresses (e.g. a research PACS inside
    # the hospital), and credentials over plain HTTP: refused unless the site allows them.
    allow_private_destinations: bool = False
    allow_insecure_destinations: bool = False

    # Token(s) for the REST APIs: "token" or "name:token,name2:token2" (names attribute changes).
    api_token: SecretStr = SecretStr("")
    # Largest request body the REST APIs accept (413 beyond; read no further than this).
    api_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    # Where local state lives (embedded servers' data, SQLite files, spool files).
    data_dir: Path = Path("var")
    # The key destination credentials are encrypted with (see edge_core.sitekey): the key
    # itself (e.g. from a Kubernetes Secret), or else the file (unset: <data_dir>/site.key,
    # created by the registry at first start).
    site_key: SecretStr = SecretStr("")
    site_key_file: Path | None = None

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("api_token")
    @classmethod
    def _tokens_are_well_formed(cls, value: SecretStr) -> SecretStr:
        parse_tokens(value.get_secret_value())  # raises on a malformed list
        return value

    @property
    def api_tokens(self) -> dict[str, str]:
        """``{name: token}`` from ``api_token`` (see edge_core.auth)."""
        return parse_tokens(self.api_token.get_secret_value())

    def nats_servers(self) -> list[str]:
        """``nats_url`` as a list: a cluster's members, comma-separated (the client connects
        to one and fails over to the others)."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def site_key_path(self) -> Path:
        return self.site_key_file or self.data_dir / "site.key"
