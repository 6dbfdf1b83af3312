"""The whole stack started the way `make run` does (the `edge-run` launcher), on free ports
and in a directory of its own: for end-to-end tests and benchmarks."""

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_core.objectstore import ObjectStore, make_client
from edge_embedded.credentials import FILE_NAME as CREDENTIALS_FILE
from edge_embedded.credentials import EmbeddedCredentials
from edge_embedded.ports import free_port_block, free_ports
from edge_embedded.s3_server import S3_EXTRA_PORTS
from edge_testing.http import call_api
from edge_testing.servers import wait_until

TOKEN = "e2e-token"


@dataclass
class Stack:
    """An `edge-run` launcher, its environment, and how to reach what it started."""

    directory: Path
    env: dict[str, str]
    token: str = TOKEN
    proc: subprocess.Popen[bytes] | None = None

    def _port(self, name: str) -> int:
        return int(self.env[f"EDGE_{name}_PORT"])

    receiver_port = property(lambda self: self._port("RECEIVER"))
    registry_port = property(lambda self: self._port("REGISTRY"))
    monitor_port = property(lambda self: self._port("MONITOR"))
    nats_port = property(lambda self: self._port("EMBEDDED_NATS"))
    s3_port = property(lambda self: self._port("EMBEDDED_S3"))

    @property
    def data_dir(self) -> Path:
        return Path(self.env["EDGE_DATA_DIR"])

    @property
    def log_path(self) -> Path:
        return self.directory / "stack.log"

    def launch(self, timeout_s: float = 180) -> "Stack":
        """Start the launcher and return once it says it is running."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("edge-run"))],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc
        try:
            wait_until(
                lambda: (
                    self.log().count("Edge is running.") > self.starts or proc.poll() is not None
                ),
                timeout_s=timeout_s,
                what="the stack to start",
            )
        except TimeoutError:
            self.stop()
            raise
        if proc.poll() is not None:
            raise RuntimeError(f"edge-run exited with {proc.returncode}:\n{self.log()}")
        self.starts += 1
        return self

    starts: int = 0

    def api(self, service: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        port = self.registry_port if service == "registry" else self.monitor_port
        return call_api(f"http://127.0.0.1:{port}{path}", method, self.token, body)

    @property
    def credentials(self) -> EmbeddedCredentials:
        """What the launcher generated for its embedded NATS and S3 store."""
        path = self.data_dir / CREDENTIALS_FILE
        return EmbeddedCredentials.model_validate_json(path.read_bytes())

    def nats_credentials(self) -> dict[str, str]:
        """``nats.connect`` options to connect as the services do."""
        return {"user": self.credentials.nats_user, "password": self.credentials.nats_password}

    def store(self, bucket: str) -> ObjectStore:
        creds = self.credentials
        client = make_client(f"127.0.0.1:{self.s3_port}", creds.s3_access_key, creds.s3_secret_key)
        return ObjectStore(client, bucket)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, as Ctrl-C would; the launcher stops every child. Returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def start_stack(directory: Path, token: str = TOKEN, **env_overrides: str) -> Stack:
    """Start `edge-run` with everything on free ports, in ``directory``."""
    receiver, registry, monitor = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | {
        "EDGE_DATA_DIR": str(directory / "var"),
        "EDGE_API_TOKEN": token,
        "EDGE_RECEIVER_PORT": str(receiver),
        "EDGE_RECEIVER_HOST": "127.0.0.1",
        "EDGE_REGISTRY_PORT": str(registry),
        "EDGE_REGISTRY_HOST": "127.0.0.1",
        "EDGE_MONITOR_PORT": str(monitor),
        "EDGE_MONITOR_HOST": "127.0.0.1",
        "EDGE_EMBEDDED_NATS_PORT": str(free_port_block(1)),
        "EDGE_EMBEDDED_S3_PORT": str(free_port_block(1 + S3_EXTRA_PORTS)),
        **env_overrides,
    }
    directory.mkdir(parents=True, exist_ok=True)
    return Stack(directory, env, token).launch()
