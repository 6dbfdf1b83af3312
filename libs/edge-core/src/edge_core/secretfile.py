"""Secrets generated at first start and kept in owner-only files under ``var/`` (the site
key, the embedded servers' credentials)."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of ``path``, written first (mode 0600) from ``make()`` if there is none.
    Written to a temporary file and linked into place, so that a reader never sees a
    half-written file and two processes starting together agree on one."""
    if not path.exists():
        write_secret(path, make(), replace=False)
    return path.read_bytes()


def write_secret(path: Path, content: bytes, replace: bool = True) -> None:
    """Write ``content`` to ``path`` (mode 0600, atomically); ``replace`` False: keep a file
    that is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        pass  # another process made it first: use that one
    finally:
        temporary.unlink(missing_ok=True)
