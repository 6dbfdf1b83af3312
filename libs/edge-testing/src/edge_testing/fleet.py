"""Several processes of each service on one machine, as a site that outgrew one of each runs
them: a three-node NATS JetStream cluster, PostgreSQL, receivers sharing one DICOM port
(``SO_REUSEPORT``), uploaders on the shared durable consumer, registries on one database, a
monitor. For the scale test (``tests/test_scale.py``) and ``make scale`` (``bench/scale.py``)."""

import sys
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from edge_core.objectstore import ObjectStore
from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess
from edge_testing.http import call_api
from edge_testing.servers import NatsCluster, S3Server

TOKEN = "scale-token"


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _log_has(path: Path, marker: str, times: int) -> bool:
    try:
        return path.read_text(errors="replace").count(marker) >= times
    except FileNotFoundError:
        return False


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@dataclass
class Service:
    """One process of a service; ready when its log says so (several receivers share one
    port, so an open port says nothing about the second one)."""

    process: ServerProcess
    marker: str
    starts: int = 0

    @property
    def name(self) -> str:
        return self.process.name

    def start(self, timeout_s: float = 120) -> None:
        self.starts += 1
        self.process.spawn()
        log_path = self.process.log_path
        assert log_path is not None
        marker, starts = self.marker, self.starts
        self.process.ready = lambda: _log_has(log_path, marker, starts)
        self.process.wait_ready(timeout_s)


@dataclass
class Fleet:
    directory: Path
    nats: NatsCluster
    s3: S3Server
    database_url: str
    receiver_port: int = 0
    buffer_bucket: str = field(default_factory=lambda: f"buffer-{uuid.uuid4().hex[:10]}")
    destination_bucket: str = field(default_factory=lambda: f"dest-{uuid.uuid4().hex[:10]}")
    site_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    services: dict[str, Service] = field(default_factory=dict)

    def env(self, name: str, **extra: str) -> dict[str, str]:
        return {
            "EDGE_NATS_URL": self.nats.url,
            "EDGE_S3_ENDPOINT": self.s3.endpoint,
            "EDGE_S3_ACCESS_KEY": self.s3.access_key,
            "EDGE_S3_SECRET_KEY": self.s3.secret_key,
            "EDGE_BUFFER_BUCKET": self.buffer_bucket,
            "EDGE_DEFAULT_DESTINATION": f"s3://{self.destination_bucket}",
            "EDGE_DATABASE_URL": self.database_url,
            "EDGE_API_TOKEN": TOKEN,
            "EDGE_SITE_KEY": self.site_key,
            "EDGE_DATA_DIR": str(self.directory / name),
            **extra,
        }

    def add(self, name: str, script: str, marker: str, **env: str) -> Service:
        proc = ServerProcess(
            name, [_script(script)], lambda: False, self.directory / f"{name}.log",
            self.env(name, **env),
        )  # fmt: skip
        service = self.services[name] = Service(proc, marker)
        return service

    def start(self, receivers: int = 2, uploaders: int = 2, registries: int = 2) -> "Fleet":
        """Every service at once (each waits for NATS, the store and the database by itself),
        then wait for each to be ready."""
        self.s3.store(self.buffer_bucket)
        self.s3.store(self.destination_bucket)
        ports = free_ports(registries + 2)
        self.receiver_port = ports[-1]
        for i in range(registries):
            self.add(f"registry-{i + 1}", "edge-registry", "Uvicorn running on",
                     EDGE_REGISTRY_HOST="127.0.0.1", EDGE_REGISTRY_PORT=str(ports[i]),
                     EDGE_OUTBOX_POLL_S="1")  # fmt: skip
        for i in range(receivers):
            self.add(f"receiver-{i + 1}", "edge-receiver", "receiver listening on",
                     EDGE_RECEIVER_HOST="127.0.0.1", EDGE_RECEIVER_PORT=str(self.receiver_port),
                     EDGE_BUFFER_QUOTA_BYTES=str(20 * 1024**3))  # fmt: skip
        for i in range(uploaders):
            self.add(f"uploader-{i + 1}", "edge-uploader", "uploader started",
                     EDGE_UPLOADER_NICE="0")  # fmt: skip
        self.add("monitor", "edge-monitor", "Uvicorn running on",
                 EDGE_MONITOR_HOST="127.0.0.1", EDGE_MONITOR_PORT=str(ports[registries]),
                 EDGE_MONITOR_BACKLOG_POLL_S="0.5")  # fmt: skip
        for service in self.services.values():
            service.starts += 1
            service.process.spawn()
        for service in self.services.values():
            log_path, marker = service.process.log_path, service.marker
            assert log_path is not None
            service.process.ready = partial(_log_has, log_path, marker, 1)
            service.process.wait_ready(180)
        return self

    def of(self, kind: str) -> list[Service]:
        return [s for name, s in self.services.items() if name.startswith(kind + "-")]

    def port(self, name: str) -> int:
        env = self.services[name].process.env
        return int(env.get("EDGE_REGISTRY_PORT") or env["EDGE_MONITOR_PORT"])

    def api(self, service: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return call_api(f"http://127.0.0.1:{self.port(service)}{path}", method, TOKEN, body)

    def buffer(self) -> ObjectStore:
        return self.s3.store(self.buffer_bucket)

    def destination(self) -> ObjectStore:
        return self.s3.store(self.destination_bucket)

    def stop(self) -> None:
        for service in self.services.values():
            service.process.terminate()
        for service in self.services.values():
            service.process.stop()

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name}\n{s.process.tail(lines)}" for name, s in self.services.items()
        )


async def uploaded_events(nats_url: str, stream: str) -> "Counter[tuple[str, str]]":
    """How many ``instance.uploaded`` events the stream holds for each (datashare, SOP
    instance UID)."""
    import nats

    from edge_core.events import SUBJECT_PREFIX, parse_event

    nc = await nats.connect(nats_url.split(","))
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        sub = await js.subscribe(
            f"{SUBJECT_PREFIX}.*.instance.uploaded", stream=stream, ordered_consumer=True
        )
        counts: Counter[tuple[str, str]] = Counter()
        try:
            while True:
                msg = await sub.next_msg(timeout=2)
                event = parse_event(msg.data)
                counts[(event.datashare or "", event.data.sop_instance_uid)] += 1  # type: ignore[union-attr]
                if msg.metadata.sequence.stream >= last:
                    break
        except TimeoutError:
            pass
        return counts
    finally:
        await nc.close()


async def stream_leader(nats_url: str, stream: str) -> str:
    import nats

    nc = await nats.connect(nats_url.split(","))
    try:
        info = await nc.jetstream(timeout=2).stream_info(stream)
        return info.cluster.leader if info.cluster and info.cluster.leader else ""
    finally:
        await nc.close()
