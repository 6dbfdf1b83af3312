"""Fixtures for the uploader's tests: a site (real NATS, the weed buffer, the datashare table in
JetStream KV) that buffers instances the way the receiver does and records every event, and
uploaders run in-process or as ``edge-uploader`` processes."""

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats as nats_client
import pytest
from minio.versioningconfig import ENABLED, VersioningConfig
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydicom import dcmread
from pydicom.uid import generate_uid

from edge_core.bus import publish
from edge_core.datashares import Datashare
from edge_core.events import Event, InstanceStored, InstanceStoredEvent, parse_event
from edge_core.keys import buffer_key
from edge_core.objectstore import ObjectStore
from edge_core.sitekey import SiteKey
from edge_core.topology import DATASHARES_BUCKET, ensure_topology
from edge_testing.dicom_data import EDGE_TEST_ROOT, make_instance
from edge_testing.orthanc import Orthanc, orthanc_available, start_orthanc
from edge_testing.servers import eventually
from edge_testing.storescp import StoreSCP
from edge_testing.storescp import start_storescp as start_storescp_in
from edge_uploader.config import UploaderSettings
from edge_uploader.main import run

T = TypeVar("T")


def new_uid() -> str:
    return generate_uid(prefix=EDGE_TEST_ROOT)


def dicom_bytes(study_uid: str, series_uid: str, number: int = 1, rows: int = 64) -> bytes:
    """A small, valid Part 10 file, as the receiver buffers it."""
    ds = make_instance(
        study_uid=study_uid, series_uid=series_uid, number=number, rows=rows, columns=rows
    )
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@dataclass
class Site:
    settings: UploaderSettings
    nc: Client
    js: JetStreamContext
    buffer: ObjectStore
    events: list[Event] = field(default_factory=list)
    # Test data helpers, here because test modules cannot import conftest.
    new_uid = staticmethod(new_uid)
    dicom_bytes = staticmethod(dicom_bytes)

    async def add_datashare(
        self,
        ds_id: str,
        destination: str | None = None,
        credentials: dict[str, str] | None = None,
        deidentification: dict[str, object] | None = None,
    ) -> None:
        # Encrypted with the site key, as the registry publishes them.
        site_key = SiteKey.load_or_create(self.settings.site_key_path())
        datashare = Datashare.model_validate(
            {
                "id": ds_id,
                "ae_title": ds_id,
                "destination": destination,
                "destination_credentials": {
                    k: site_key.encrypt(v) for k, v in (credentials or {}).items()
                },
                "deidentification": deidentification,
            }
        )
        kv = await self.js.key_value(DATASHARES_BUCKET)
        await kv.put(ds_id, datashare.model_dump_json().encode())

    async def store(self, ds_id: str, data: bytes | None = None) -> InstanceStored:
        """Buffer one instance (by default a new one) and announce it, as the receiver does."""
        data = data or dicom_bytes(new_uid(), new_uid())
        ds = dcmread(io.BytesIO(data))
        uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        return await self.announce(ds_id, data, *uids, sop_class=ds.SOPClassUID)

    async def announce(
        self, ds_id: str, data: bytes, study: str, series: str, sop: str, sop_class: str = ""
    ) -> InstanceStored:
        """Buffer these bytes (DICOM or not) under these UIDs and announce them."""
        sha = hashlib.sha256(data).hexdigest()
        key = buffer_key(ds_id, study, series, sop, sha)
        await asyncio.to_thread(self.buffer.put_bytes, key, data)
        stored = InstanceStored(
            study_uid=study,
            series_uid=series,
            sop_instance_uid=sop,
            sop_class_uid=sop_class,
            key=key,
            size=len(data),
            sha256=sha,
            association_id="test",
        )
        await publish(self.js, InstanceStoredEvent(datashare=ds_id, data=stored))
        return stored

    async def store_study(self, ds_id: str, count: int) -> list[InstanceStored]:
        study, series = new_uid(), new_uid()
        return [await self.store(ds_id, dicom_bytes(study, series, i + 1)) for i in range(count)]

    async def until(self, predicate: Callable[[], T], timeout_s: float = 60.0, what: str = "") -> T:
        return await eventually(predicate, timeout_s, what)

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.type == event_type]

    async def wait_for(self, event_type: str, count: int, timeout_s: float = 60.0) -> list[Event]:
        """Wait until at least ``count`` events of the type have been seen."""
        return await eventually(
            lambda: len(self.of_type(event_type)) >= count and self.of_type(event_type),
            timeout_s,
            what=f"{count} {event_type}; seen {[e.type for e in self.events]}",
        )

    def buffered(self) -> list[str]:
        return [o.key for o in self.buffer.list()]

    @asynccontextmanager
    async def uploader(self, **overrides: object) -> AsyncIterator[UploaderSettings]:
        """An uploader running in this event loop until the block ends."""
        settings = self.settings.model_copy(update=overrides)
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, stop))
        try:
            yield settings
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    def uploader_process(self, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
        """``edge-uploader`` as a separate process (to be killed, or stopped with SIGTERM)."""
        environ = {**os.environ, **settings_env(self.settings), **env}
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [str(Path(sys.executable).with_name("edge-uploader"))],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def settings_env(settings: UploaderSettings) -> dict[str, str]:
    """The environment that gives an ``edge-uploader`` process these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"EDGE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@pytest.fixture
def uploader_settings(edge_settings, tmp_path: Path) -> UploaderSettings:
    values = {
        **edge_settings.model_dump(),
        "default_destination": f"s3://dest-{uuid.uuid4().hex[:12]}",
        "uploader_backoff_initial_s": 0.2,
        "uploader_backoff_max_s": 1.0,
        "uploader_timeout_s": 10.0,
        "data_dir": tmp_path / "var",
    }
    return UploaderSettings(**values)


@pytest.fixture
async def site(uploader_settings: UploaderSettings, s3) -> AsyncIterator[Site]:
    nc = await nats_client.connect(uploader_settings.nats_url)
    js = nc.jetstream()
    await ensure_topology(js, uploader_settings)
    site = Site(uploader_settings, nc, js, s3.store(uploader_settings.buffer_bucket))

    async def record(msg: Msg) -> None:
        site.events.append(parse_event(msg.data))

    # What JetStream stored (a repeat it dropped as a duplicate is not seen).
    await js.subscribe("edge.events.>", cb=record, ordered_consumer=True)
    yield site
    await nc.close()


@pytest.fixture
def destination_store(s3, uploader_settings: UploaderSettings) -> Iterator[ObjectStore]:
    """The default destination: a second bucket in the same S3 store, versioned, so that every
    PUT stays visible as a version (see ``s3_puts``)."""
    store = s3.store(uploader_settings.default_destination.removeprefix("s3://"))
    store.client.set_bucket_versioning(store.bucket, VersioningConfig(ENABLED))
    yield store


def s3_puts(store: ObjectStore) -> Counter[str]:
    """How many times each key of a versioned bucket was written."""
    found = store.client.list_objects(store.bucket, recursive=True, include_version=True)
    return Counter(str(o.object_name) for o in found)


@pytest.fixture
def destination_puts(destination_store: ObjectStore) -> Callable[[], Counter[str]]:
    return lambda: s3_puts(destination_store)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not orthanc_available():
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (orthanc, orthanc-dicomweb)")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.process.stop()


# --- DCMTK storescp -----------------------------------------------------------------------


@pytest.fixture
def start_storescp(tmp_path: Path) -> Iterator[Callable[..., StoreSCP]]:
    """Start DCMTK storescp, writing every received instance to a directory; extra
    arguments are storescp options (``--sleep-during 20``...)."""
    started: list[StoreSCP] = []

    def start(*options: str) -> StoreSCP:
        started.append(start_storescp_in(tmp_path, *options))
        return started[-1]

    yield start
    for scp in started:
        scp.process.stop()


@pytest.fixture
def storescp(start_storescp: Callable[..., StoreSCP]) -> StoreSCP:
    """storescp keeping every copy it receives (``+uf``: a file per C-STORE, never
    overwritten), so that a test can count what arrived."""
    return start_storescp("+uf")


def received_sops(scp: StoreSCP) -> Counter[str]:
    """How many times storescp received each SOP Instance UID (needs ``+uf``)."""
    return Counter(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in scp.files())


@pytest.fixture
def storescp_copies() -> Callable[[StoreSCP], Counter[str]]:
    return received_sops


# --- Orthanc that keeps the newest version and logs every instance it stores ---------------


@dataclass
class CountingOrthanc:
    """Orthanc with ``OverwriteInstances`` (a re-sent SOP Instance replaces the stored one, as a
    destination must for corrected images to reach it) and a Lua hook that logs each stored
    instance, so that tests count what arrived, repeats included (``/statistics`` cannot)."""

    server: Orthanc
    log: Path

    def __getattr__(self, name: str) -> object:
        return getattr(self.server, name)

    def received(self) -> Counter[str]:
        """SOP Instance UIDs stored so far, each with how many times; call ``settle`` first."""
        return Counter(self.log.read_text().split()) if self.log.exists() else Counter()

    async def settle(self) -> None:
        """Wait until every store so far is in the log: Orthanc runs the Lua hook in the
        background, in order, so a marker instance stored now is logged after them."""
        marker = dicom_bytes(new_uid(), new_uid())
        with self.server.client() as http:
            http.post("/instances", content=marker).raise_for_status()
        uid = str(dcmread(io.BytesIO(marker)).SOPInstanceUID)
        await eventually(lambda: uid in self.received(), 30, "Orthanc's log of stored instances")


@pytest.fixture(scope="session")
def counting_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CountingOrthanc]:
    if not orthanc_available():
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (orthanc, orthanc-dicomweb)")
    directory = tmp_path_factory.mktemp("counting-orthanc")
    log, script = directory / "stored.log", directory / "log-stored.lua"
    script.write_text(
        "function OnStoredInstance(instanceId, tags, metadata, origin)\n"
        f'  local f = io.open("{log}", "a")\n'
        '  f:write(tags["SOPInstanceUID"] .. "\\n")\n'
        "  f:close()\n"
        "end\n"
    )
    server = start_orthanc(directory / "orthanc", OverwriteInstances=True, LuaScripts=[str(script)])
    yield CountingOrthanc(server, log)
    server.process.stop()
