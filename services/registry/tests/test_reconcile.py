"""The datashares bucket is repaired from the database when JetStream lost or garbled it, or
a client holding NATS credentials rewrote it."""

import shutil

import httpx
import nats as nats_client
import pytest

from edge_core.datashares import Datashare
from edge_core.topology import DATASHARES_BUCKET, ensure_topology
from edge_registry import datashares
from edge_registry.config import RegistrySettings
from edge_registry.db import open_database
from edge_registry.outbox import publish_pending
from edge_registry.reconcile import reconcile
from edge_registry.schemas import DatashareSpec


async def entry_of(kv, ds_id):
    try:
        return Datashare.model_validate_json((await kv.get(ds_id)).value)
    except Exception:  # missing or deleted
        return None


@pytest.fixture
async def js(nats):
    nc = await nats_client.connect(nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield nc.jetstream()
    await nc.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reconcile_repairs_missing_stale_and_ghost_entries(database_url, nats, js):
    engine, sessions = open_database(database_url)
    settings = RegistrySettings(nats_url=nats.url)
    try:
        with sessions() as session:
            for ds_id in ("DS1", "DS2", "DS3"):
                datashares.create(session, DatashareSpec(id=ds_id), "alice")
            row = datashares.get(session, "DS2", for_update=True)
            spec = DatashareSpec.model_validate(
                {**datashares.current_spec(row), "description": "v2"}
            )
            datashares.update(session, row, spec, "alice")
        await ensure_topology(js, settings)
        kv = await js.key_value(DATASHARES_BUCKET)
        assert await publish_pending(engine, js, kv, 5.0) == 4
        assert await reconcile(engine, kv) == []  # nothing to repair

        # The bucket lost: every datashare comes back.
        await js.delete_key_value(DATASHARES_BUCKET)
        await ensure_topology(js, settings)
        kv = await js.key_value(DATASHARES_BUCKET)
        assert sorted(await reconcile(engine, kv)) == ["DS1", "DS2", "DS3"]
        assert (await entry_of(kv, "DS2")).description == "v2"

        # An older value, a key the database does not have, a deleted key it does have.
        stale = Datashare(id="DS2", ae_title="DS2", description="v1", revision=1)
        await kv.put("DS2", stale.model_dump_json().encode())
        await kv.put("GHOST", Datashare(id="GHOST", ae_title="GHOST").model_dump_json().encode())
        await kv.delete("DS3")
        # Rewritten with a higher revision and another destination: newer is not truer.
        forged = Datashare(id="DS1", ae_title="DS1", destination="s3://elsewhere", revision=99)
        await kv.put("DS1", forged.model_dump_json().encode())
        assert sorted(await reconcile(engine, kv)) == ["DS1", "DS2", "DS3", "GHOST"]
        assert (await entry_of(kv, "DS2")).description == "v2"
        assert await entry_of(kv, "GHOST") is None
        assert (await entry_of(kv, "DS3")).id == "DS3"
        repaired = await entry_of(kv, "DS1")
        assert (repaired.destination, repaired.revision) == (None, 1)
        assert await reconcile(engine, kv) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_registry_refills_a_nats_that_lost_its_storage(
    registry, nats, js, tmp_path, eventually
):
    async with httpx.AsyncClient(
        base_url=f"{registry.url}/api/v1", headers={"Authorization": "Bearer alice-token"}
    ) as api:
        for ds_id in ("DS1", "DS2"):
            assert (await api.post("/datashares", json={"id": ds_id})).status_code == 201

    async def bucket_has_both():
        try:
            kv = await js.key_value(DATASHARES_BUCKET)
            return all([await entry_of(kv, "DS1"), await entry_of(kv, "DS2")])
        except Exception:
            return False

    await eventually(bucket_has_both, what="both datashares in the bucket")
    nats.process.stop()
    shutil.rmtree(tmp_path / "nats" / "jetstream")
    nats.process.start()
    await eventually(bucket_has_both, what="both datashares back in the new bucket")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_running_registry_repairs_a_rewritten_entry_within_seconds(
    make_registry, js, eventually
):
    # The periodic pass is an hour away: only the watch on the bucket can repair this soon.
    running = make_registry(reconcile_s=3600.0)
    async with httpx.AsyncClient(
        base_url=f"{running.url}/api/v1", headers={"Authorization": "Bearer alice-token"}
    ) as api:
        assert (await api.post("/datashares", json={"id": "DS1"})).status_code == 201
    kv = await js.key_value(DATASHARES_BUCKET)

    async def published():
        return await entry_of(kv, "DS1")

    genuine = await eventually(published, what="the datashare in the bucket")
    forged = genuine.model_copy(update={"destination": "s3://attacker", "revision": 7})
    await kv.put("DS1", forged.model_dump_json().encode())

    async def repaired():
        entry = await entry_of(kv, "DS1")
        return entry == genuine

    await eventually(repaired, timeout_s=5.0, what="the forged entry rewritten")
    await kv.delete("DS1")
    await eventually(repaired, timeout_s=5.0, what="the deleted entry written again")
