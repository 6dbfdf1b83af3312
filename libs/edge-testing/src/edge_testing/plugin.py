"""pytest fixtures shared by every test suite (loaded through the ``pytest11`` entry point).

``postgres_url`` is a fresh PostgreSQL database for the session (on the machine's server,
127.0.0.1:5432, or ``EDGE_TEST_POSTGRES_URL``), dropped at the end; ``postgres_database``
one for a single test.

``nats`` is a fresh NATS server per test (it starts in a fraction of a second, and a fresh
one isolates JetStream state); ``s3`` is one ``weed mini`` per session (it takes seconds),
with a bucket of its own per test through ``edge_settings``.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge_core.settings import EdgeSettings
from edge_testing.servers import NatsServer, S3Server, settings_for, start_nats, start_s3


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3"))
    yield server
    server.process.stop()


@pytest.fixture
def edge_settings(nats: NatsServer, s3: S3Server) -> EdgeSettings:
    settings = settings_for(nats, s3)
    s3.store(settings.buffer_bucket)
    return settings


# The admin connection used to create a database for the session (trust auth, user postgres).
POSTGRES_ADMIN_URL = os.environ.get(
    "EDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def _fresh_database() -> Iterator[str]:
    admin = sa.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"edge_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(
            f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL} (set EDGE_TEST_POSTGRES_URL): "
            f"{str(exc).splitlines()[0]}"
        )
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with _fresh_database() as url:
        yield url


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """An empty database of its own for one test (replicas starting on a new database)."""
    with _fresh_database() as url:
        yield url
