"""Fixtures: a real NATS per test (edge_testing), the monitor's database (SQLite, or a fresh
PostgreSQL database per session), a feed that publishes real events, and the monitor's
consumer folding them."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats as nats_client
import pytest
from sqlalchemy.orm import Session, sessionmaker

from edge_core import events as ev
from edge_core.bus import publish
from edge_core.datashares import Datashare
from edge_core.keys import buffer_key, quarantine_key
from edge_core.tasks import cancel_and_wait
from edge_core.topology import ensure_topology
from edge_embedded.ports import free_ports
from edge_monitor import db, projections
from edge_monitor import models as m
from edge_monitor.config import MonitorSettings
from edge_monitor.consumer import consume
from edge_monitor.status import status
from edge_testing.servers import eventually, wait_for_port

T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite; tests marked ``both_databases`` run on PostgreSQL too (see pytest_generate_tests)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'monitor.db'}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run on SQLite and on PostgreSQL (127.0.0.1:5432)"
    )


@pytest.fixture
def settings(nats, tmp_path: Path, database_url: str) -> MonitorSettings:
    return MonitorSettings(
        nats_url=nats.url,
        api_token="test-token",  # type: ignore[arg-type]
        data_dir=tmp_path,
        database_url=database_url,
        monitor_backlog_poll_s=0.2,
    )


@pytest.fixture
def engine(settings: MonitorSettings):
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)
    with db.writer(engine).begin() as session:  # a shared PostgreSQL database: start empty
        projections.reset(session)
    yield engine
    engine.dispose()


class Feed:
    """Publishes real events into JetStream; remembers the last stream sequence."""

    def __init__(self, js) -> None:
        self.js = js
        self.last_seq = 0

    @staticmethod
    def at(seconds: float) -> datetime:
        """``seconds`` after the fixed start of every test's story (event times are data)."""
        return T0 + timedelta(seconds=seconds)

    async def send(self, event) -> int:
        ack = await publish(self.js, event)
        self.last_seq = max(self.last_seq, ack.seq)
        return ack.seq

    async def datashare(self, ds: str, at: datetime = T0, **fields) -> int:
        fields.setdefault("ae_title", ds)
        data = ev.DatashareChanged(datashare=Datashare(id=ds, **fields))
        return await self.send(ev.DatashareCreatedEvent(datashare=ds, time=at, data=data))

    async def opened(self, ds: str, assoc: str, at: datetime = T0, calling="PACS1") -> int:
        data = ev.AssociationOpened(
            association_id=assoc, calling_ae=calling, called_ae=ds, peer_host="10.0.0.5",
            peer_port=40000,
        )  # fmt: skip
        return await self.send(ev.AssociationOpenedEvent(datashare=ds, time=at, data=data))

    async def closed(self, ds: str, assoc: str, instances: int, at: datetime, abort="") -> int:
        fields = dict(
            association_id=assoc, calling_ae="PACS1", called_ae=ds, peer_host="10.0.0.5",
            peer_port=40000, instances=instances, bytes=instances * 1000,
        )  # fmt: skip
        if abort:
            data = ev.AssociationAborted(**fields, reason=abort)
            return await self.send(ev.AssociationAbortedEvent(datashare=ds, time=at, data=data))
        closed = ev.AssociationClosed(**fields)
        return await self.send(ev.AssociationClosedEvent(datashare=ds, time=at, data=closed))

    async def stored(
        self, ds: str, assoc: str, study: str, sop: str, at: datetime = T0, size: int = 1000,
        sha: str = "ab" * 32,
    ) -> ev.InstanceStored:  # fmt: skip
        data = ev.InstanceStored(
            study_uid=study, series_uid=f"{study}.1", sop_instance_uid=sop,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2", size=size, sha256=sha,
            key=buffer_key(ds, study, f"{study}.1", sop, sha), association_id=assoc,
        )  # fmt: skip
        await self.send(ev.InstanceStoredEvent(datashare=ds, time=at, data=data))
        return data

    async def uploaded(self, ds: str, ref: ev.InstanceRef, at: datetime = T0) -> int:
        data = ev.InstanceUploaded(**ref.model_dump(include=_REF), destination="s3://dest")
        return await self.send(ev.InstanceUploadedEvent(datashare=ds, time=at, data=data))

    async def failed(self, ds: str, ref: ev.InstanceRef, at: datetime, attempt=1) -> int:
        data = ev.InstanceFailed(
            **ref.model_dump(include=_REF), destination="s3://dest", attempt=attempt,
            error="connection refused",
        )  # fmt: skip
        return await self.send(ev.InstanceFailedEvent(datashare=ds, time=at, data=data))

    async def dead(self, ds: str, ref: ev.InstanceRef, at: datetime) -> str:
        qkey = quarantine_key(ref.key)
        data = ev.InstanceDeadLettered(
            **ref.model_dump(include=_REF), destination="s3://dest", attempts=5,
            error="403 Forbidden", quarantine_key=qkey,
        )  # fmt: skip
        await self.send(ev.InstanceDeadLetteredEvent(datashare=ds, time=at, data=data))
        return qkey

    async def rejected(
        self, calling: str, called: str, host: str, at: datetime = T0, reason: int = 7,
        text: str = "",
    ) -> int:  # fmt: skip
        data = ev.AssociationRejected(
            calling_ae=calling, called_ae=called, peer_host=host, peer_port=1234, reason=reason,
            reason_text=text or f"no datashare for called AE title {called!r}",
        )  # fmt: skip
        return await self.send(ev.AssociationRejectedEvent(time=at, data=data))

    async def refused(self, ds: str, assoc: str, reason: str, at: datetime) -> int:
        data = ev.InstanceRefused(association_id=assoc, status=0xA700, reason=reason)
        return await self.send(ev.InstanceRefusedEvent(datashare=ds, time=at, data=data))

    async def buffer(self, used: int, quota: int, refusing: bool, at: datetime = T0) -> int:
        data = ev.BufferUsage(used_bytes=used, objects=used // 1000, quota_bytes=quota,
                              refusing=refusing)  # fmt: skip
        return await self.send(ev.BufferUsageEvent(time=at, data=data))


_REF = set(ev.InstanceRef.model_fields)


@pytest.fixture
async def js(settings: MonitorSettings) -> AsyncIterator:
    nc = await nats_client.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_topology(js, settings)
    yield js
    await nc.close()


@pytest.fixture
def feed(js) -> Feed:
    return Feed(js)


class Folding:
    """The monitor's consumer running in the test's event loop."""

    def __init__(self, settings: MonitorSettings, engine) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = db.reader(engine)

    def position(self) -> int:
        with self.sessions() as session:
            row = session.get(m.Position, projections.POSITION)
            return row.seq if row else 0

    async def reach(self, seq: int) -> None:
        """Wait until the projections include stream sequence ``seq``."""
        await eventually(lambda: self.position() >= seq, what=f"the projections at {seq}")

    def status(self, now: datetime) -> dict:
        with self.sessions() as session:
            return status(session, self.settings, now)

    def datashare(self, ds: str, now: datetime) -> dict:
        return next(d for d in self.status(now)["datashares"] if d["id"] == ds)


@pytest.fixture
async def folding(js, settings: MonitorSettings, engine) -> AsyncIterator[Folding]:
    task = asyncio.create_task(consume(js, settings, db.writer(engine), batch_size=50))
    yield Folding(settings, engine)
    await cancel_and_wait(task)


def _monitor_env(settings: MonitorSettings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "EDGE_NATS_URL": settings.nats_url,
        "EDGE_API_TOKEN": "test-token",
        "EDGE_DATA_DIR": str(settings.data_dir),
        "EDGE_DATABASE_URL": settings.sqlalchemy_url(),
        "EDGE_MONITOR_HOST": "127.0.0.1",
        "EDGE_MONITOR_PORT": str(port),
        "EDGE_MONITOR_BACKLOG_POLL_S": "0.2",
    }


@pytest.fixture
def monitor_env(settings: MonitorSettings) -> dict[str, str]:
    """The environment of an ``edge-monitor`` command using the test's NATS and database."""
    return _monitor_env(settings, 0)


@dataclass
class MonitorProcess:
    process: subprocess.Popen
    url: str
    env: dict[str, str]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": "Bearer test-token"})


@pytest.fixture
def monitor_process(settings: MonitorSettings, tmp_path: Path, engine) -> Iterator[MonitorProcess]:
    """``edge-monitor`` as a process, as operators run it (on tables emptied by ``engine``)."""
    [port] = free_ports(1)
    env = _monitor_env(settings, port)
    log = (tmp_path / "monitor.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "edge_monitor"], env=env, stderr=log)
    try:
        wait_for_port(port)
        yield MonitorProcess(process, f"http://127.0.0.1:{port}", env)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        log.close()
