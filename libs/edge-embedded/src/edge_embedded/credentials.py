"""Credentials of the embedded NATS and S3 store: generated at first start and kept in
``<EDGE_DATA_DIR>/embedded-credentials.json`` (mode 0600); the launcher starts the servers
with them and hands them to every service it starts."""

import secrets
from pathlib import Path

from pydantic import BaseModel

from edge_core.secretfile import read_or_create

FILE_NAME = "embedded-credentials.json"


class EmbeddedCredentials(BaseModel):
    nats_user: str
    nats_password: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def generate(cls) -> "EmbeddedCredentials":
        return cls(
            nats_user="edge",
            nats_password=secrets.token_urlsafe(32),
            s3_access_key="edge-" + secrets.token_hex(8),
            s3_secret_key=secrets.token_urlsafe(32),
        )

    @classmethod
    def of(cls, data_dir: Path) -> "EmbeddedCredentials":
        """Those kept under ``data_dir``, generated if there are none yet."""
        content = read_or_create(
            data_dir / FILE_NAME, lambda: cls.generate().model_dump_json(indent=2).encode()
        )
        return cls.model_validate_json(content)
