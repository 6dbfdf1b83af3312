"""Connecting to a NATS server that requires credentials."""

import nats
import pytest
from nats.errors import Error as NatsError

from edge_core.bus import close, connect_when_ready, credentials
from edge_core.settings import EdgeSettings
from edge_core.topology import DATASHARES_BUCKET
from edge_testing.servers import start_nats


async def test_the_configured_user_is_let_in_and_no_one_else(tmp_path):
    server = start_nats(tmp_path / "nats", user="edge", password="s3cret-pass")
    try:
        good = EdgeSettings(nats_url=server.url, nats_user="edge", nats_password="s3cret-pass")  # type: ignore[arg-type]
        nc, js = await connect_when_ready(good, "test")
        try:
            await (await js.key_value(DATASHARES_BUCKET)).status()
        finally:
            await close(nc)
        for wrong in ({}, {"nats_user": "edge", "nats_password": "guess"}):
            settings = EdgeSettings(nats_url=server.url, **wrong)  # type: ignore[arg-type]
            with pytest.raises(NatsError, match="Authorization Violation"):
                await nats.connect(server.url, allow_reconnect=False, **credentials(settings))
    finally:
        server.process.stop()
