"""pytest fixtures shared by every test suite (loaded through the ``pytest11`` entry point).

``nats`` is a fresh NATS server per test (it starts in a fraction of a second, and a fresh
one isolates JetStream state); ``s3`` is one ``weed mini`` per session (it takes seconds),
with a bucket of its own per test through ``edge_settings``.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

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
