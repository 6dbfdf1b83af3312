"""Registry fixtures: the database over SQLite and PostgreSQL, the API in-process (TestClient)
and the whole registry for real (uvicorn on a free port, with its outbox relay to NATS)."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from edge_core.destination_policy import DestinationPolicy
from edge_embedded.ports import free_ports
from edge_registry.api import create_app
from edge_registry.config import RegistrySettings
from edge_registry.db import open_database
from edge_registry.main import build_app
from edge_testing.servers import NatsServer, eventually, wait_until

TOKENS = {"alice": "alice-token", "bob": "bob-token"}
TOKEN_SETTING = ",".join(f"{name}:{token}" for name, token in TOKENS.items())


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def as_user():
    """``as_user("bob")``: the headers that sign a request as bob."""
    return auth


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated registry database: a new SQLite file, or the session's PostgreSQL
    database with the registry's tables emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("postgres_url")
    engine, _ = open_database(url)
    with engine.begin() as conn:
        for table in ("registry_outbox", "registry_history", "registry_datashares"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()
    return url


# The site policy of the in-process API: destinations on test machines are local ones.
TEST_SITE = DestinationPolicy(allow_private=True, allow_insecure=True)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """The API in-process, signed in as alice (no relay: for HTTP behaviour only); any
    destination allowed (test_destination_policy.py has the site's limits)."""
    engine, sessions = open_database(database_url)
    app = create_app(sessions, TOKENS, destinations=TEST_SITE)
    with TestClient(app, headers=auth("alice")) as test_client:
        yield test_client
    engine.dispose()


@dataclass
class RunningRegistry:
    url: str
    settings: RegistrySettings
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "registry did not stop"


def start_registry(settings: RegistrySettings) -> RunningRegistry:
    """The registry as ``edge-registry`` runs it (API + outbox relay), in a thread."""
    (port,) = free_ports(1)
    config = uvicorn.Config(
        build_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="registry", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="registry start")
    assert server.started, "registry failed to start"
    return RunningRegistry(f"http://127.0.0.1:{port}", settings, server, thread)


def registry_settings(nats: NatsServer, database_url: str, data_dir: Path) -> RegistrySettings:
    return RegistrySettings(
        nats_url=nats.url,
        database_url=database_url,
        data_dir=data_dir,
        api_token=TOKEN_SETTING,  # type: ignore[arg-type]
        outbox_retry_s=0.2,
        publish_timeout_s=2.0,
        reconcile_s=0.5,
    )


@pytest.fixture
def registry(nats: NatsServer, database_url: str, tmp_path: Path) -> Iterator[RunningRegistry]:
    running = start_registry(registry_settings(nats, database_url, tmp_path))
    yield running
    running.stop()


@pytest.fixture
def make_registry(nats: NatsServer, database_url: str, tmp_path: Path):
    """Start a registry with some settings changed (stopped at the end of the test)."""
    started: list[RunningRegistry] = []

    def make(**overrides: object) -> RunningRegistry:
        settings = registry_settings(nats, database_url, tmp_path).model_copy(update=overrides)
        started.append(start_registry(settings))
        return started[-1]

    yield make
    for running in started:
        running.stop()


@pytest.fixture(name="eventually")
def eventually_fixture():
    return eventually
