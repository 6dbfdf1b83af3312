"""The API's typed responses: documented on /api/docs, and the monitor a swappable dependency."""

import httpx

from edge_monitor import db
from edge_monitor.api import Monitor, create_app, get_monitor
from edge_monitor.backlog import Backlog, ConsumerLag

AUTH = {"Authorization": "Bearer test-token"}
DESIGN_FIELDS = {  # DESIGN.md: per datashare at least
    "id", "instances_received", "instances_uploaded", "instances_failed", "instances_pending",
    "bytes_received", "associations_active", "associations_total", "associations_rejected",
    "last_activity", "studies",
}  # fmt: skip


async def test_openapi_documents_the_status_fields(settings, engine):
    app = create_app(Monitor(settings, db.reader(engine)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        spec = (await c.get("/api/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    status = spec["paths"]["/api/v1/status"]["get"]["responses"]["200"]["content"]
    assert status["application/json"]["schema"] == {"$ref": "#/components/schemas/Status"}
    assert set(schemas["Status"]["properties"]) >= {"datashares", "rejections", "buffer"}
    assert set(schemas["DatashareStatus"]["properties"]) >= DESIGN_FIELDS
    assert set(schemas["Health"]["properties"]["verdict"]["enum"]) == {
        "refusing", "failing", "stalled", "receiving", "idle",
    }  # fmt: skip


async def test_the_monitor_is_a_dependency_a_test_can_override(settings, engine):
    app = create_app(Monitor(settings, db.reader(engine)))
    lagging = Backlog(consumers={"uploader": ConsumerLag(pending=7, ack_pending=1, redelivered=0)})
    app.dependency_overrides[get_monitor] = lambda: Monitor(settings, db.reader(engine), lagging)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        status = (await c.get("/api/v1/status", headers=AUTH)).json()
    assert status["uploader"] == {"backlog": 8, "pending": 7, "ack_pending": 1, "redelivered": 0}
