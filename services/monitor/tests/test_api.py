"""The HTTP API over projections fed by real events: auth, status, dead letters, metrics."""

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from edge_core.bus import publish
from edge_core.events import SUBJECT_PREFIX, parse_event
from edge_monitor import db
from edge_monitor.api import Monitor, create_app
from edge_testing.http import stream_until_answered
from edge_testing.servers import eventually

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
async def client(settings, engine, js):
    monitor = Monitor(settings, db.reader(engine), publish=lambda event: publish(js, event))
    transport = httpx.ASGITransport(app=create_app(monitor))
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/api/v1/status", "/api/v1/datashares/DS/status", "/api/v1/dead-letters"]
)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdC10b2tlbg==", "Bearer "])
async def test_api_needs_the_token(client, path, header):
    headers = {"Authorization": header} if header else {}
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    retry = await client.post(
        "/api/v1/dead-letters/retry", json={"datashare": "DS"}, headers=headers
    )
    assert retry.status_code == 401


async def test_open_pages(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    page = await client.get("/")
    assert page.status_code == 200 and "Edge monitor" in page.text
    assert (await client.get("/api/docs")).status_code == 200


async def test_unauthenticated_bad_json_is_401_not_422(client):
    """The token is checked before the body is read: FastAPI parses a route's body before
    running its dependencies, so a per-route token check answered 422 here."""
    for body in (b"{not json", b"[" * 10_000):
        response = await client.post(
            "/api/v1/dead-letters/retry",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 401, response.text


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_oversized_body_is_413_and_not_read_to_the_end(client, settings, declared):
    """httpx's ASGI transport hands the app the body one chunk at a time, as the chunks are
    asked for: counting them shows how much of it the app ever read."""
    chunk, chunks = 64 * 1024, 64  # 4 MiB, four times the default cap
    pulled = 0

    async def body():
        nonlocal pulled
        for _ in range(chunks):
            pulled += 1
            yield b" " * chunk

    headers = {**AUTH, "Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(chunk * chunks)
    response = await client.post("/api/v1/dead-letters/retry", content=body(), headers=headers)
    assert response.status_code == 413, response.text
    assert pulled <= settings.api_max_body_bytes // chunk + 1


async def test_metrics_need_a_token(settings, engine):
    """/metrics names every datashare (an AE title): the API token or the metrics token reads
    it; the metrics token reads nothing else."""
    settings = settings.model_copy(update={"metrics_token": SecretStr("scrape-only")})
    transport = httpx.ASGITransport(app=create_app(Monitor(settings, db.reader(engine))))
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        for header in ({}, {"Authorization": "Bearer wrong"}):
            response = await client.get("/metrics", headers=header)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        scrape = {"Authorization": "Bearer scrape-only"}
        assert (await client.get("/metrics", headers=AUTH)).status_code == 200
        assert (await client.get("/metrics", headers=scrape)).status_code == 200
        assert (await client.get("/api/v1/status", headers=scrape)).status_code == 401
        assert (await client.get("/api/v1/dead-letters", headers=scrape)).status_code == 401


async def test_status_documents(client, feed, folding):
    await feed.datashare("DS", description="Lung screening")
    ref = await feed.stored("DS", "a1", "1.5", "1.5.1", feed.at(1))
    await feed.rejected("XYZ", "FOO", "10.0.0.5", feed.at(2))
    await folding.reach(feed.last_seq)

    status = (await client.get("/api/v1/status", headers=AUTH)).json()
    assert set(status) >= {"datashares", "rejections", "buffer", "uploader", "problems"}
    [ds] = status["datashares"]
    for field in (
        "id", "instances_received", "instances_uploaded", "instances_failed",
        "instances_pending", "bytes_received", "associations_active", "associations_total",
        "associations_rejected", "last_activity", "studies",
    ):  # fmt: skip
        assert field in ds, field
    assert ds["instances_received"] == 1 and ds["studies"][0]["study_uid"] == ref.study_uid
    assert ds["last_activity"] == "2026-11-28T09:00:01Z"
    assert status["rejections"] == [] or status["rejections"][0]["called_ae"] == "FOO"

    one = await client.get("/api/v1/datashares/DS/status", headers=AUTH)
    assert one.json()["description"] == "Lung screening"
    assert (await client.get("/api/v1/datashares/NOPE/status", headers=AUTH)).status_code == 404


async def test_dead_letters_and_retry(client, feed, folding, js):
    await feed.datashare("DS")
    refs = [await feed.stored("DS", "a1", "1.6", f"1.6.{i}", feed.at(i)) for i in range(3)]
    keys = [await feed.dead("DS", ref, feed.at(10)) for ref in refs]
    await folding.reach(feed.last_seq)

    listed = (await client.get("/api/v1/dead-letters", headers=AUTH)).json()
    assert sorted(d["quarantine_key"] for d in listed) == sorted(keys)
    assert listed[0]["error"] == "403 Forbidden" and listed[0]["attempts"] == 5
    assert (await client.get("/api/v1/dead-letters?datashare=OTHER", headers=AUTH)).json() == []

    unknown = await client.post(
        "/api/v1/dead-letters/retry", json={"quarantine_keys": ["quarantine/nope"]}, headers=AUTH
    )
    assert unknown.status_code == 404
    nothing = await client.post("/api/v1/dead-letters/retry", json={}, headers=AUTH)
    assert nothing.status_code == 422
    # As documented for every 422 (found by test_api_fuzz.py: it was a plain string).
    (problem,) = nothing.json()["detail"]
    assert problem["msg"] == "give quarantine_keys or a datashare" and problem["loc"] == ["body"]

    retries = await js.subscribe(f"{SUBJECT_PREFIX}.DS.instance.retry_requested")
    one = await client.post("/api/v1/dead-letters/retry", json=[keys[0]], headers=AUTH)
    assert one.status_code == 202 and one.json() == {"requested": [keys[0]]}
    event = parse_event((await retries.next_msg(timeout=5)).data)
    assert event.type == "instance.retry_requested" and event.datashare == "DS"
    assert event.data.quarantine_key == keys[0] and event.data.requested_by == "staff"

    # The monitor folds its own retry requests: the first is no longer a dead letter.
    await folding.reach((await js.stream_info("EDGE_EVENTS")).state.last_seq)
    rest = await client.post("/api/v1/dead-letters/retry", json={"datashare": "DS"}, headers=AUTH)
    assert rest.json()["requested"] == sorted(keys[1:])
    await folding.reach((await js.stream_info("EDGE_EVENTS")).state.last_seq)
    assert (await client.get("/api/v1/dead-letters", headers=AUTH)).json() == []
    ds = (await client.get("/api/v1/datashares/DS/status", headers=AUTH)).json()
    assert ds["instances_pending"] == 3 and ds["instances_dead_lettered"] == 0


async def test_metrics(client, feed, folding, settings):
    await feed.datashare("DS")
    await feed.opened("DS", "a1")
    ref = await feed.stored("DS", "a1", "1.7", "1.7.1", feed.at(1), size=5000)
    await feed.stored("DS", "a1", "1.7", "1.7.2", feed.at(1), size=7000)
    await feed.uploaded("DS", ref, feed.at(2))
    await feed.dead("DS", await feed.stored("DS", "a1", "1.7", "1.7.3", feed.at(3)), feed.at(4))
    await feed.rejected("XYZ", "FOO", "10.0.0.5")
    await feed.buffer(12345, 10**9, refusing=False)
    await folding.reach(feed.last_seq)

    async def scrape() -> dict:
        text = (await client.get("/metrics", headers=AUTH)).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    samples = await scrape()
    ds = (("datashare", "DS"),)
    assert samples[("edge_instances_received_total", ds)] == 3
    assert samples[("edge_instances_uploaded", ds)] == 1
    assert samples[("edge_instances_pending", ds)] == 1
    assert samples[("edge_instances_dead_lettered", ds)] == 1
    assert samples[("edge_bytes_received_total", ds)] == 13000
    assert samples[("edge_associations_total", ds)] == 1
    assert samples[("edge_associations_active", ds)] == 1
    assert samples[("edge_rejections_total", (("reason", "7"),))] == 1
    assert samples[("edge_buffer_bytes", ())] == 12345
    assert samples[("edge_buffer_refusing", ())] == 0
    # Documented as the text it is (found by test_api_fuzz.py: the OpenAPI said JSON).
    documented = (await client.get("/api/openapi.json")).json()
    assert list(documented["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain"
    ]


async def test_uploader_backlog_is_reported(js, settings, engine, feed):
    """Nobody consumes the uploader's events here: its backlog is what was stored."""
    from edge_monitor.backlog import Backlog, watch_backlog

    await feed.datashare("DS")
    for i in range(4):
        await feed.stored("DS", "a1", "1.8", f"1.8.{i}")
    backlog = Backlog()
    task = asyncio.create_task(watch_backlog(js, settings.events_stream, backlog, 0.1))
    try:
        await eventually(lambda: "uploader" in backlog.consumers, 10, "the uploader's backlog")
    finally:
        task.cancel()
    assert backlog.consumers["uploader"].pending == 4
    assert backlog.stream_last_seq == 5

    monitor = Monitor(settings, db.reader(engine), backlog)
    transport = httpx.ASGITransport(app=create_app(monitor))
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        status = (await client.get("/api/v1/status", headers=AUTH)).json()
        metrics = (await client.get("/metrics", headers=AUTH)).text
    assert status["uploader"]["backlog"] == 4
    assert 'edge_consumer_lag{consumer="uploader"} 4.0' in metrics


@pytest.mark.parametrize("token", ["test-token", "wrong"])
def test_real_server_stops_an_endless_body(monitor_process, settings, token):
    """``edge-monitor`` itself: an endless chunked body is answered (413 past the cap with
    the token, 401 at once without) long before it ends."""
    status, sent = stream_until_answered(monitor_process.url, "/api/v1/dead-letters/retry", token)
    assert status == (413 if token == "test-token" else 401)
    # What the server never read stays in socket buffers (a few MiB on loopback).
    assert sent < settings.api_max_body_bytes + 32 * 1024 * 1024


async def scrape(client) -> dict:
    text = (await client.get("/metrics", headers=AUTH)).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_new_version_is_one_instance_beside_its_replacement(client, feed, folding):
    """A SOP instance re-sent with other bytes is a new version (another buffer key) of the
    same instance: the destination holds one, so the counts show one, and it is uploaded
    when its newest version is."""
    ds = "VERSIONS"
    await feed.datashare(ds)
    old = await feed.stored(ds, "a1", "1.9", "1.9.1", feed.at(1), size=1000, sha="aa" * 32)
    other = await feed.stored(ds, "a1", "1.9", "1.9.2", feed.at(1), size=1000)
    await feed.uploaded(ds, old, feed.at(2))
    await feed.uploaded(ds, other, feed.at(2))
    new = await feed.stored(ds, "a1", "1.9", "1.9.1", feed.at(3), size=2000, sha="bb" * 32)
    await folding.reach(feed.last_seq)

    def counts(doc: dict) -> tuple:
        return tuple(doc[f"instances_{c}"] for c in ("received", "uploaded", "pending", "replaced"))

    doc = (await client.get(f"/api/v1/datashares/{ds}/status", headers=AUTH)).json()
    # the new version is waiting: the instance is no longer delivered as the PACS last sent it
    assert counts(doc) == (2, 1, 1, 1) and doc["versions_received"] == 3
    assert (doc["bytes_received"], doc["bytes_pending"]) == (3000, 2000)
    assert doc["studies"][0]["instances_received"] == 2
    samples = await scrape(client)
    label = (("datashare", ds),)
    assert samples[("edge_instances_received_total", label)] == 2
    assert samples[("edge_instances_replaced_total", label)] == 1
    assert samples[("edge_instance_versions_total", label)] == 3
    assert samples[("edge_instances_pending", label)] == 1

    await feed.uploaded(ds, new, feed.at(4))
    await feed.uploaded(ds, old, feed.at(5))  # a late report about the old version
    await folding.reach(feed.last_seq)
    doc = (await client.get(f"/api/v1/datashares/{ds}/status", headers=AUTH)).json()
    assert counts(doc) == (2, 2, 0, 1)
    assert "everything received was uploaded" in doc["health"]["reason"]


async def test_rejections_suggest_the_datashare_meant(client, feed, folding):
    from datetime import timedelta

    from edge_core.events import utcnow

    recently = utcnow() - timedelta(minutes=5)  # the API lists the last 24 h's
    # Rejected before its datashare existed: 'CT_LATE' was meant (case and spaces aside).
    await feed.rejected("PACS", " ct_late ", "10.0.0.5", recently)
    await feed.datashare("CT_LATE")
    await feed.datashare("CT_TRIAL")
    await feed.datashare("MR_PACS", ae_title="MRSUB", match="calling")
    await feed.datashare("US")
    for calling, called in [
        ("PACS", "CT_TRAIL"),  # two characters swapped
        ("PACS", " ct_trial "),  # the datashare's own title (it refused: disabled, say)
        ("MRSUBB", "ANYTHING"),  # calling mode: one character too many
        ("PACS", "MR"),  # two characters off a two-character title is no typo
        ("PACS", "SOMETHING_ELSE"),
    ]:
        await feed.rejected(calling, called, "10.0.0.5", recently)
    await folding.reach(feed.last_seq)

    status = (await client.get("/api/v1/status", headers=AUTH)).json()
    meant = {
        (r["calling_ae"], r["called_ae"]): r["suggestion"] and r["suggestion"]["datashare"]
        for r in status["rejections"]
    }
    assert meant == {
        ("PACS", " ct_late "): "CT_LATE",
        ("PACS", "CT_TRAIL"): "CT_TRIAL",
        ("PACS", " ct_trial "): None,
        ("MRSUBB", "ANYTHING"): "MR_PACS",
        ("PACS", "MR"): None,
        ("PACS", "SOMETHING_ELSE"): None,
    }
    # AE titles are compared ignoring case and surrounding spaces: that rejection came from
    # the datashare itself, and the status says so rather than "did you mean".
    [own] = [r for r in status["rejections"] if r["called_ae"] == " ct_trial "]
    assert own["datashare"] == "CT_TRIAL"
    [typo] = [r for r in status["rejections"] if r["called_ae"] == "CT_TRAIL"]
    assert typo["suggestion"]["text"] == (
        "Did you mean called AE title 'CT_TRIAL' (datashare 'CT_TRIAL')?"
    )
    assert any(p.endswith(typo["suggestion"]["text"]) for p in status["problems"])
