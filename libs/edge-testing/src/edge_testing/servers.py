"""Real NATS and S3 servers for tests, on free ports, in a temporary directory."""

import asyncio
import inspect
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats

from edge_core.objectstore import ObjectStore, make_client
from edge_core.settings import EdgeSettings
from edge_embedded.nats_server import nats_server
from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess
from edge_embedded.s3_server import S3_EXTRA_PORTS, s3_server

T = TypeVar("T")


@dataclass
class NatsServer:
    process: ServerProcess
    port: int
    # Set: the server refuses clients without them.
    user: str = ""
    password: str = ""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def restart(self) -> None:
        """Stop and start on the same port and data: JetStream state survives."""
        self.process.stop()
        self.process.start()


@dataclass
class S3Server:
    process: ServerProcess
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def store(self, bucket: str) -> ObjectStore:
        store = ObjectStore(make_client(self.endpoint, self.access_key, self.secret_key), bucket)
        store.ensure_bucket()
        return store


@dataclass
class NatsCluster:
    """A JetStream cluster of NATS servers on this machine (one process each)."""

    members: list[NatsServer]

    @property
    def url(self) -> str:
        """Every member, as a client's server list (it fails over between them)."""
        return ",".join(m.url for m in self.members)

    def member(self, server_name: str) -> NatsServer:
        """The member a stream's ``cluster.leader`` names."""
        return next(m for m in self.members if server_name == f"edge-{m.port}")

    def stop(self) -> None:
        for m in self.members:
            m.process.terminate()
        for m in self.members:
            m.process.stop()


def start_nats_cluster(data_dir: Path, size: int = 3) -> NatsCluster:
    """``size`` servers in one JetStream cluster (anonymous clients), returned once
    JetStream answers (its members have elected a meta leader)."""
    ports = free_ports(2 * size)
    client, cluster = ports[:size], ports[size:]
    procs = [
        nats_server(data_dir / f"nats-{i}", client[i], cluster_port=cluster[i], routes=cluster)
        for i in range(size)
    ]
    for proc in procs:  # all at once: JetStream needs a quorum of them to start
        proc.spawn()
    for proc in procs:
        proc.wait_ready(timeout_s=60)
    members = NatsCluster(
        [NatsServer(proc, port) for proc, port in zip(procs, client, strict=True)]
    )
    # In a thread of its own: the caller may be a coroutine (its loop already runs).
    with ThreadPoolExecutor(1) as pool:
        wait_until(lambda: pool.submit(asyncio.run, _jetstream_answers(members.url)).result(),
                   timeout_s=60, interval_s=0.2, what="the cluster's JetStream")  # fmt: skip
    return members


async def _jetstream_answers(url: str) -> bool:
    nc = await nats.connect(url.split(","), connect_timeout=2, allow_reconnect=False)
    try:
        await nc.jetstream(timeout=2).account_info()
        return True
    except Exception:
        return False
    finally:
        await nc.close()


def start_nats(data_dir: Path, user: str = "", password: str = "") -> NatsServer:
    """Anonymous clients accepted unless a ``user`` is given."""
    (port,) = free_ports(1)
    proc = nats_server(data_dir, port, user=user, password=password).start()
    return NatsServer(proc, port, user, password)


# Tests make a few buckets each, each bucket its own volume: the session's store needs more
# volumes than free disk / 1 GB allows on a smaller disk (volumes are not preallocated).
TEST_MAX_VOLUMES = 1000


def start_s3(data_dir: Path) -> S3Server:
    port, *others = free_ports(1 + S3_EXTRA_PORTS)
    access, secret = "edge-test", "edge-test-secret"
    server = s3_server(
        data_dir, port, access, secret, other_ports=others, max_volumes=TEST_MAX_VOLUMES
    )
    proc = server.start(timeout_s=90)
    return S3Server(proc, port, access, secret)


def settings_for(nats: NatsServer, s3: S3Server, **overrides: object) -> EdgeSettings:
    """Settings pointing at the test servers, with a bucket of its own."""
    values: dict[str, object] = {
        "nats_url": nats.url,
        "nats_user": nats.user,
        "nats_password": nats.password,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "buffer_bucket": f"buffer-{uuid.uuid4().hex[:12]}",
        "api_token": "test-token",
        # The test peers (storescp, Orthanc) listen on 127.0.0.1, Orthanc over plain HTTP.
        "allow_private_destinations": True,
        "allow_insecure_destinations": True,
    }
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def wait_until(
    predicate: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.1, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what or predicate!r}: {last!r}")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float = 30.0,
    what: str = "",
    interval_s: float = 0.05,
) -> T:
    """In a coroutine, as :func:`wait_until`: poll ``predicate`` (a plain function or a
    coroutine function) until it returns something truthy; return that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(
                f"timed out after {timeout_s}s waiting for {what or predicate!r}: {value!r}"
            )
        await asyncio.sleep(interval_s)
