"""The whole stack started the way `make run` does (the `edge-run` launcher), on free ports
and in a directory of its own: for end-to-end tests and benchmarks."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_core.objectstore import ObjectStore, make_client
from edge_embedded.ports import free_port_block, free_ports
from edge_embedded.s3_server import S3_EXTRA_PORTS
from edge_testing.servers import wait_until

TOKEN = "e2e-token"


@dataclass
class Stack:
    """A running `edge-run` launcher and how to reach what it started."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    receiver_port: int
    registry_port: int
    monitor_port: int
    nats_port: int
    s3_port: int
    env: dict[str, str] = field(default_factory=dict)
    token: str = TOKEN

    def api(self, service: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        port = self.registry_port if service == "registry" else self.monitor_port
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def store(self, bucket: str) -> ObjectStore:
        client = make_client(f"127.0.0.1:{self.s3_port}", "edge", "edge-local-secret")
        return ObjectStore(client, bucket)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would; the launcher stops every child."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_stack(directory: Path, token: str = TOKEN, **env_overrides: str) -> Stack:
    """Start `edge-run` with everything on free ports; return once it says it is running."""
    receiver, registry, monitor = free_ports(3)
    nats_port = free_port_block(2)
    s3_port = free_port_block(1 + S3_EXTRA_PORTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | {
        "EDGE_DATA_DIR": str(directory / "var"),
        "EDGE_API_TOKEN": token,
        "EDGE_RECEIVER_PORT": str(receiver),
        "EDGE_RECEIVER_HOST": "127.0.0.1",
        "EDGE_REGISTRY_PORT": str(registry),
        "EDGE_REGISTRY_HOST": "127.0.0.1",
        "EDGE_MONITOR_PORT": str(monitor),
        "EDGE_MONITOR_HOST": "127.0.0.1",
        "EDGE_EMBEDDED_NATS_PORT": str(nats_port),
        "EDGE_EMBEDDED_S3_PORT": str(s3_port),
        **env_overrides,
    }
    log_path = directory / "stack.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("edge-run"))],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    s = Stack(
        proc,
        directory / "var",
        log_path,
        receiver,
        registry,
        monitor,
        nats_port,
        s3_port,
        env,
        token,
    )
    try:
        wait_until(
            lambda: "Edge is running." in s.log() or proc.poll() is not None,
            timeout_s=180,
            what="the stack to start",
        )
    except TimeoutError:
        s.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"edge-run exited:\n{s.log()}")
    return s
