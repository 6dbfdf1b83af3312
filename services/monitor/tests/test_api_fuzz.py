"""The monitor's API fuzzed from its own OpenAPI document (schemathesis): with the token,
nothing answers 5xx and every answer matches the document; without it, every guarded route
answers 401 before reading the body."""

from collections.abc import Iterator
from pathlib import Path

import nats as nats_client
import pytest

from edge_core import bus
from edge_core.topology import ensure_topology
from edge_monitor import db
from edge_monitor.api import Monitor, create_app
from edge_monitor.config import MonitorSettings
from edge_testing.api_fuzzing import BodyReads, fuzz_with_token, fuzz_without_token

TOKEN = "fuzz-token"
OPENAPI = "/api/openapi.json"
# Open by design (the dashboard page, its docs, the health check): no 401 to expect.
OPEN = frozenset({"/", "/healthz", "/api/docs", "/api/openapi.json"})


@pytest.fixture
def app(tmp_path: Path, nats) -> Iterator[BodyReads]:
    settings = MonitorSettings(
        nats_url=nats.url,
        api_token=TOKEN,  # type: ignore[arg-type]
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
    )
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)

    async def publish(event):  # on whichever event loop the request runs in
        nc = await nats_client.connect(nats.url)
        try:
            await ensure_topology(nc.jetstream(), settings)
            return await bus.publish(nc.jetstream(), event)
        finally:
            await nc.close()

    yield BodyReads(create_app(Monitor(settings, db.reader(engine), publish=publish)))
    engine.dispose()


def test_with_the_token_no_5xx_and_answers_as_documented(app):
    fuzz_with_token(app, OPENAPI, TOKEN)


def test_without_a_valid_token_401_before_the_body_is_read(app):
    fuzz_without_token(app, OPENAPI, OPEN)
