"""The site key: destination credentials are kept encrypted with it, in the registry's
database and in the datashares bucket; only the uploader decrypts them, to deliver. The
uploader also derives from it the key of de-identification's pseudonyms.

The key is a Fernet key (AES-128-CBC with HMAC-SHA256, from ``cryptography``) kept apart
from the database, so that a copy of the database or of NATS's data holds no usable
secret: ``EDGE_SITE_KEY`` (the key itself, e.g. from a Kubernetes Secret shared by every
registry and uploader), or else its own owner-only file (``EDGE_SITE_KEY_FILE``, default
``<EDGE_DATA_DIR>/site.key``), which the registry creates at first start.
"""

import hashlib
import hmac
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from edge_core.secretfile import read_or_create
from edge_core.settings import EdgeSettings

# Marks an encrypted value; values without it are from before encryption (still plain).
PREFIX = "fernet:"


class SiteKeyError(Exception):
    pass


class SiteKey:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def pseudonym_key(self) -> bytes:
        """The key of de-identification's pseudonyms (HMAC-SHA256), derived from the site
        key: the same for every uploader of the site, never stored or sent anywhere."""
        return hmac.new(self._key, b"edge pseudonyms v1", hashlib.sha256).digest()

    @classmethod
    def of(cls, settings: EdgeSettings, create: bool = False) -> "SiteKey":
        """``EDGE_SITE_KEY`` if set, else the key file (``create``: made if missing)."""
        value = settings.site_key.get_secret_value().strip()
        if value:
            try:
                return cls(value.encode())
            except ValueError:
                raise SiteKeyError(
                    "EDGE_SITE_KEY is not a site key; make one with: python -c 'from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
                ) from None
        path = settings.site_key_path()
        return cls.load_or_create(path) if create else cls.load(path)

    @classmethod
    def generate(cls) -> "SiteKey":
        return cls(Fernet.generate_key())

    @classmethod
    def load(cls, path: Path) -> "SiteKey":
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            raise SiteKeyError(f"no site key at {path} (EDGE_SITE_KEY_FILE)") from None
        except ValueError:
            raise SiteKeyError(f"{path} does not hold a site key") from None

    @classmethod
    def load_or_create(cls, path: Path) -> "SiteKey":
        """The key in ``path``, created (mode 0600) if there is none. Written to a temporary
        file and linked into place, so that two processes starting together agree on one."""
        read_or_create(path, lambda: Fernet.generate_key() + b"\n")
        return cls.load(path)

    def encrypt(self, value: str) -> str:
        """``value`` encrypted; an already encrypted value is returned as it is."""
        if value.startswith(PREFIX):
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        if not value.startswith(PREFIX):
            return value
        try:
            return self._fernet.decrypt(value.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SiteKeyError(
                "a destination credential does not decrypt with this site key: the registry "
                "encrypted it with another (EDGE_SITE_KEY_FILE must be the same file)"
            ) from None
