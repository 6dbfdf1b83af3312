"""The registry for real (uvicorn, outbox relay, real NATS): every change reaches the events
stream and the ``edge_datashares`` bucket, also when NATS was down when it was made."""

import asyncio

import httpx
import nats as nats_client
import pytest
from nats.js.errors import KeyNotFoundError, NotFoundError
from sqlalchemy import func, select, text

from edge_core.datashare_table import DatashareTable
from edge_core.datashares import Datashare
from edge_core.events import parse_event
from edge_core.sitekey import SiteKey
from edge_core.topology import DATASHARES_BUCKET, ensure_topology
from edge_registry import datashares
from edge_registry.config import RegistrySettings
from edge_registry.db import OutboxRow, open_database
from edge_registry.outbox import RELAY_LOCK_KEY, publish_pending
from edge_registry.schemas import DatashareSpec

SECRET = "kv-only-secret"
S3 = {
    "destination": "s3://edge-dest/a",
    "destination_credentials": {"access_key": "AK", "secret_key": SECRET},
}


async def datashare_events(js, stream: str):
    """Every ``datashare.*`` event in the stream, in order, with its subject."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:  # the registry has not declared it yet
        return []
    found = []
    for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        event = parse_event(msg.data)
        if event.type.startswith("datashare."):
            found.append((msg.subject, msg.data, event))
    return found


async def kv_datashare(kv, ds_id: str) -> Datashare | None:
    try:
        entry = await kv.get(ds_id)
    except KeyNotFoundError:  # also raised for a deleted key
        return None
    return Datashare.model_validate_json(entry.value)


def pending_in_outbox(database_url: str) -> int:
    engine, sessions = open_database(database_url)
    try:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(OutboxRow)) or 0
    finally:
        engine.dispose()


@pytest.fixture
async def js(nats):
    nc = await nats_client.connect(nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield nc.jetstream()
    await nc.close()


def api(registry, user: str = "alice") -> httpx.AsyncClient:
    token = {"alice": "alice-token", "bob": "bob-token"}[user]
    return httpx.AsyncClient(
        base_url=f"{registry.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    )


async def test_each_change_publishes_its_event_and_kv_entry(registry, js, eventually):
    stream = registry.settings.events_stream
    async with api(registry) as alice, api(registry, "bob") as bob:
        assert (await alice.post("/datashares", json={"id": "DS1", **S3})).status_code == 201
        assert (await alice.post("/datashares", json={"id": "DS2"})).status_code == 201
        response = await bob.patch("/datashares/DS1", json={"description": "renamed"})
        assert response.status_code == 200
        assert (await bob.delete("/datashares/DS2")).status_code == 204

    events = await eventually(
        lambda: _at_least(datashare_events(js, stream), 4), what="four datashare events"
    )
    assert [(s, e.type, e.datashare, e.data.actor) for s, _, e in events] == [
        ("edge.events.DS1.datashare.created", "datashare.created", "DS1", "alice"),
        ("edge.events.DS2.datashare.created", "datashare.created", "DS2", "alice"),
        ("edge.events.DS1.datashare.updated", "datashare.updated", "DS1", "bob"),
        ("edge.events.DS2.datashare.deleted", "datashare.deleted", "DS2", "bob"),
    ]
    created, _, updated, deleted = (e for _, _, e in events)
    assert created.data.datashare.destination == "s3://edge-dest/a"
    assert created.data.changes["destination_credentials"] == {
        "access_key": "***",
        "secret_key": "***",
    }
    assert updated.data.datashare.revision == 2
    assert updated.data.changes == {"description": {"old": "", "new": "renamed"}}
    assert (deleted.data.id, deleted.data.revision) == ("DS2", 2)
    # Events are kept for months and read by everyone: no credentials in them.
    for _, raw, event in events:
        assert SECRET.encode() not in raw
        if event.type != "datashare.deleted":
            assert event.data.datashare.destination_credentials == {}

    kv = await js.key_value(DATASHARES_BUCKET)
    ds1 = await kv_datashare(kv, "DS1")
    assert ds1 is not None and ds1.revision == 2 and ds1.description == "renamed"
    # The credentials travel encrypted with the site key, which only the uploader uses.
    site_key = SiteKey.load(registry.settings.site_key_path())
    stored = ds1.destination_credentials["secret_key"].get_secret_value()
    assert SECRET not in stored and site_key.decrypt(stored) == SECRET
    assert SECRET.encode() not in (await kv.get("DS1")).value
    assert await kv_datashare(kv, "DS2") is None
    assert pending_in_outbox(registry.settings.database_url) == 0

    # With the registry gone, a reader starting now still learns the datashares.
    registry.stop()
    table = DatashareTable()
    follower = asyncio.create_task(table.follow(js))
    try:
        await asyncio.wait_for(table.loaded.wait(), 30)
        assert [(d.id, d.revision) for d in table.all()] == [("DS1", 2)]
    finally:
        follower.cancel()


async def _at_least(events_coro, count: int):
    events = await events_coro
    return events if len(events) >= count else None


async def test_a_reader_started_later_learns_every_datashare(registry, js, eventually):
    async with api(registry) as alice:
        for ds_id in ("DS1", "DS2", "DS3"):
            assert (await alice.post("/datashares", json={"id": ds_id, **S3})).status_code == 201
        assert (await alice.delete("/datashares/DS3")).status_code == 204
        await eventually(
            lambda: _at_least(datashare_events(js, registry.settings.events_stream), 4),
            what="the events",
        )

        table = DatashareTable()
        follower = asyncio.create_task(table.follow(js))
        try:
            await asyncio.wait_for(table.loaded.wait(), 30)
            assert sorted(d.id for d in table.all()) == ["DS1", "DS2"]
            secret = table.get("DS1").destination_credentials["secret_key"]
            site_key = SiteKey.load(registry.settings.site_key_path())
            assert site_key.decrypt(secret.get_secret_value()) == SECRET
            # ... and then follows each change.
            response = await alice.patch("/datashares/DS2", json={"enabled": False})
            assert response.status_code == 200
            await eventually(
                lambda: _true(not table.get("DS2").enabled), what="DS2 disabled in the table"
            )
            assert (await alice.delete("/datashares/DS1")).status_code == 204
            await eventually(lambda: _true(table.get("DS1") is None), what="DS1 gone")
        finally:
            follower.cancel()


async def _true(value: bool) -> bool:
    return value


async def test_changes_made_while_nats_is_down_are_published_when_it_is_back(
    registry, nats, js, eventually
):
    stream = registry.settings.events_stream
    async with api(registry) as alice:
        assert (await alice.post("/datashares", json={"id": "DS0"})).status_code == 201
        await eventually(lambda: _at_least(datashare_events(js, stream), 1), what="DS0 event")

        nats.process.stop()
        # The API keeps answering; the changes wait in the outbox.
        assert (await alice.post("/datashares", json={"id": "DS1", **S3})).status_code == 201
        response = await alice.patch("/datashares/DS0", json={"description": "during outage"})
        assert response.status_code == 200
        assert pending_in_outbox(registry.settings.database_url) == 2

        nats.process.start()
        events = await eventually(
            lambda: _at_least(datashare_events(js, stream), 3), what="events after the outage"
        )
    assert [(e.type, e.datashare) for _, _, e in events] == [
        ("datashare.created", "DS0"),
        ("datashare.created", "DS1"),
        ("datashare.updated", "DS0"),
    ]
    kv = await js.key_value(DATASHARES_BUCKET)
    assert (await kv_datashare(kv, "DS0")).description == "during outage"
    assert (await kv_datashare(kv, "DS1")).destination == "s3://edge-dest/a"
    assert pending_in_outbox(registry.settings.database_url) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_registry_started_while_nats_is_down_publishes_once_it_is_up(
    database_url, nats, request, js, eventually
):
    nats.process.stop()
    registry = request.getfixturevalue("registry")
    async with api(registry) as alice:
        assert (await alice.post("/datashares", json={"id": "DS1"})).status_code == 201
    nats.process.start()
    kv = await eventually(lambda: _kv_when_ready(js), what="the datashares bucket")
    ds1 = await eventually(lambda: kv_datashare(kv, "DS1"), what="DS1 in the bucket")
    assert ds1.ae_title == "DS1"
    events = await datashare_events(js, registry.settings.events_stream)
    assert [e.type for _, _, e in events] == ["datashare.created"]


async def _kv_when_ready(js):
    try:
        return await js.key_value(DATASHARES_BUCKET)
    except Exception:
        return None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_retried_publish_is_a_duplicate_not_a_second_event(database_url, nats, js):
    """A relay that crashed after publishing but before removing the entry publishes it
    again on restart: JetStream drops it, since the event id is fixed in the entry."""
    engine, sessions = open_database(database_url)
    try:
        with sessions() as session:
            datashares.create(session, DatashareSpec(id="DS1"), "alice")
            entry = session.scalars(select(OutboxRow)).one()
            copy = {c: getattr(entry, c) for c in ("datashare_id", "event", "kv_value")}
        settings = RegistrySettings(nats_url=nats.url)
        kv = await bucket(js, settings)
        assert await publish_pending(engine, js, kv, 5.0) == 1
        with sessions() as session:
            session.add(OutboxRow(**copy))
            session.commit()
        assert await publish_pending(engine, js, kv, 5.0) == 1
        events = await datashare_events(js, settings.events_stream)
        assert len(events) == 1
    finally:
        engine.dispose()


async def bucket(js, settings: RegistrySettings):
    await ensure_topology(js, settings)
    return await js.key_value(DATASHARES_BUCKET)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_registry_processes_sharing_postgresql_take_turns_to_publish(database_url, nats, js):
    engine, sessions = open_database(database_url)
    try:
        with sessions() as session:
            datashares.create(session, DatashareSpec(id="DS1"), "alice")
        kv = await bucket(js, RegistrySettings(nats_url=nats.url))
        with engine.connect() as other:  # another registry process, in the middle of a pass
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY})
            other.commit()
            assert await publish_pending(engine, js, kv, 5.0) == 0
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_KEY})
            other.commit()
        assert await publish_pending(engine, js, kv, 5.0) == 1
        assert await kv_datashare(kv, "DS1") is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_credentials_at_rest_are_encrypted_and_files_owner_only(
    registry, js, eventually, tmp_path
):
    """Neither the database file nor the datashares bucket holds a credential in clear;
    the key is in its own owner-only file, and so is the database."""
    async with api(registry) as alice:
        assert (await alice.post("/datashares", json={"id": "DS1", **S3})).status_code == 201
        # A change that keeps the credentials leaves them as they were (no re-encryption).
        response = await alice.patch("/datashares/DS1", json={"description": "renamed"})
        assert response.status_code == 200
        assert (await alice.patch("/datashares/DS1", json={})).json()["revision"] == 2
    kv = await js.key_value(DATASHARES_BUCKET)

    async def entry():
        ds = await kv_datashare(kv, "DS1")
        return (await kv.get("DS1")).value if ds and ds.revision == 2 else None

    raw = await eventually(entry, what="DS1 in the bucket")
    assert SECRET.encode() not in raw
    site_key = SiteKey.load(registry.settings.site_key_path())
    stored = Datashare.model_validate_json(raw).destination_credentials
    assert site_key.decrypt(stored["secret_key"].get_secret_value()) == SECRET
    assert site_key.decrypt(stored["access_key"].get_secret_value()) == "AK"

    database = tmp_path / "registry.db"
    files = sorted(tmp_path.glob("registry.db*"))  # with SQLite's -wal and -shm
    assert database in files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    for path in [*files, registry.settings.site_key_path()]:
        assert path.stat().st_mode & 0o777 == 0o600, path
