"""``make run``: the whole stack on one machine.

Starts the embedded NATS and S3 store (unless ``EDGE_NATS_URL`` / ``EDGE_S3_ENDPOINT`` point
at real ones), then the registry, receiver(s), uploader and monitor as child processes; prints
where to find them and the API token; restarts a service, NATS or the S3 store that dies;
stops everything cleanly on Ctrl-C or SIGTERM. Every child dies with the launcher, even when
it is killed with SIGKILL (see ``process.py``). Data lives under ``EDGE_DATA_DIR``
(``./var``) and survives a restart.
"""

import logging
import os
import secrets
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from pydantic import SecretStr

from edge_core.logs import configure_logging
from edge_core.objectstore import ObjectStore
from edge_core.secretfile import read_or_create
from edge_core.settings import EMBEDDED_NATS_PORT, EMBEDDED_S3_PORT, EdgeSettings
from edge_embedded.credentials import FILE_NAME as CREDENTIALS_FILE
from edge_embedded.credentials import EmbeddedCredentials
from edge_embedded.nats_server import nats_server
from edge_embedded.ports import port_is_free
from edge_embedded.process import ServerProcess
from edge_embedded.s3_server import S3_EXTRA_PORTS, s3_server

log = logging.getLogger(__name__)


class LauncherSettings(EdgeSettings):
    # Embedded servers. The S3 store takes a block of ports: this one and the next nine.
    embedded_nats_port: int = EMBEDDED_NATS_PORT
    embedded_s3_port: int = EMBEDDED_S3_PORT
    # Where the services listen (the same variables the services read).
    receiver_port: int = 11112
    registry_port: int = 8000
    monitor_port: int = 8001
    # Receiver processes sharing the DICOM port (SO_REUSEPORT); the kernel spreads associations.
    receiver_processes: int = 1


class PortInUse(RuntimeError):
    pass


def _require_free(ports: list[int], what: str, remedy: str) -> None:
    taken = [p for p in ports if not port_is_free(p)]
    if taken:
        raise PortInUse(f"port(s) {taken} needed by {what} are in use: {remedy}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback http
        return bool(resp.status == 200)


def _tcp_open(port: int) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def api_token(settings: LauncherSettings) -> str:
    """The configured token, or one generated on first run and kept under the data dir."""
    configured = settings.api_token.get_secret_value()
    if configured:
        return configured
    path = settings.data_dir / "api-token"
    return read_or_create(path, lambda: secrets.token_urlsafe(24).encode() + b"\n").decode().strip()


def _script(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if not found.exists():
        raise FileNotFoundError(f"{name} not found next to {sys.executable}: run `uv sync`")
    return str(found)


class Stack:
    def __init__(self, settings: LauncherSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.embedded: list[ServerProcess] = []
        self.services: list[ServerProcess] = []
        self.env: dict[str, str] = {"EDGE_DATA_DIR": str(self.data_dir)}
        self.stopping = False

    def start_embedded(self) -> None:
        """NATS and the S3 store unless configured elsewhere, each refusing clients without
        the credentials that it is started with: those configured (``EDGE_NATS_USER``...),
        else those generated at first start (see ``credentials``). The services get them
        in their environment."""
        settings = self.settings
        embed_nats = "nats_url" not in settings.model_fields_set
        embed_s3 = "s3_endpoint" not in settings.model_fields_set
        if not (embed_nats or embed_s3):
            return
        generated = EmbeddedCredentials.of(self.data_dir)
        if embed_nats:
            port = settings.embedded_nats_port
            _require_free(
                [port],
                "the embedded NATS server",
                "set EDGE_NATS_URL to a NATS server, or EDGE_EMBEDDED_NATS_PORT to another port",
            )
            user, password = settings.nats_user, settings.nats_password.get_secret_value()
            if not user:
                user, password = generated.nats_user, generated.nats_password
            self._start_embedded(
                nats_server(self.data_dir / "nats", port, user=user, password=password),
                60,
                EDGE_NATS_URL=f"nats://127.0.0.1:{port}",
                EDGE_NATS_USER=user,
                EDGE_NATS_PASSWORD=password,
            )
        if embed_s3:
            port = settings.embedded_s3_port
            others = list(range(port + 1, port + 1 + S3_EXTRA_PORTS))
            _require_free(
                [port, *others],
                "the embedded S3 store",
                "set EDGE_EMBEDDED_S3_PORT to another base port, or EDGE_S3_ENDPOINT to an "
                "S3 service",
            )
            access, secret = settings.s3_access_key, settings.s3_secret_key.get_secret_value()
            if not access:
                access, secret = generated.s3_access_key, generated.s3_secret_key
            self._start_embedded(
                s3_server(self.data_dir / "s3", port, access, secret, other_ports=others),
                120,
                EDGE_S3_ENDPOINT=f"127.0.0.1:{port}",
                EDGE_S3_ACCESS_KEY=access,
                EDGE_S3_SECRET_KEY=secret,
            )
            self._create_buckets(f"127.0.0.1:{port}", access, secret)

    def _start_embedded(self, server: ServerProcess, timeout_s: float, **env: str) -> None:
        """Start one embedded server, wait until it serves, and hand its address and
        credentials to the services."""
        self._spawn(server)
        server.wait_ready(timeout_s=timeout_s)
        self.embedded.append(server)
        self.env.update(env)

    def _create_buckets(self, endpoint: str, access_key: str, secret_key: str) -> None:
        """The buffer and, when it lives here too, the default destination's bucket."""
        settings = self.settings
        buckets = [settings.buffer_bucket]
        if settings.default_destination.startswith("s3://"):
            buckets.append(settings.default_destination.removeprefix("s3://").split("/")[0])
        embedded = settings.model_copy(
            update={
                "s3_endpoint": endpoint,
                "s3_access_key": access_key,
                "s3_secret_key": SecretStr(secret_key),
            }
        )
        for bucket in buckets:
            store = ObjectStore.buffer(embedded)
            ObjectStore(store.client, bucket).ensure_bucket()

    def start_services(self, token: str) -> None:
        settings = self.settings
        env = {**self.env, "EDGE_API_TOKEN": token}
        logs = None  # services log to this terminal
        registry = ServerProcess(
            "registry",
            [_script("edge-registry")],
            lambda: _http_ok(f"http://127.0.0.1:{settings.registry_port}/healthz"),
            logs,
            env,
        )
        monitor = ServerProcess(
            "monitor",
            [_script("edge-monitor")],
            lambda: _http_ok(f"http://127.0.0.1:{settings.monitor_port}/healthz"),
            logs,
            env,
        )
        receivers = [
            ServerProcess(
                f"receiver-{i + 1}",
                [_script("edge-receiver")],
                lambda: _tcp_open(settings.receiver_port),
                logs,
                env,
            )
            for i in range(max(1, settings.receiver_processes))
        ]
        uploader = ServerProcess("uploader", [_script("edge-uploader")], lambda: True, logs, env)
        # Start all at once (each waits for NATS and the store, not for the others), then
        # wait for each to be ready.
        self.services = [registry, *receivers, uploader, monitor]
        for proc in self.services:
            self._spawn(proc)
        for proc in self.services:
            proc.wait_ready(timeout_s=120)

    def _spawn(self, proc: ServerProcess) -> None:
        """Start a child and note its pid in ``<data>/run/<name>.pid`` (for operators'
        tools, and tests that kill one). It dies with the launcher, even by SIGKILL: no
        orphan keeps the ports that the next ``make run`` needs."""
        proc.spawn(die_with_parent=True)
        run = self.data_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        assert proc.proc is not None
        # Written aside and renamed: a reader never sees a half-written (empty) pid file.
        pid_file = run / f"{proc.name}.pid"
        partial = pid_file.with_suffix(".pid.tmp")
        partial.write_text(f"{proc.proc.pid}\n")
        partial.replace(pid_file)

    def supervise(self) -> None:
        """Restart a service, NATS or the S3 store that exits on its own (same ports, same
        data; the services reconnect by themselves), backing off if it keeps failing."""
        failures: dict[str, int] = {}
        restart_at: dict[str, float] = {}
        spawned_at: dict[str, float] = {}
        while not self.stopping:
            now = time.monotonic()
            for proc in [*self.embedded, *self.services]:
                if proc.running:
                    # Up for a minute: a later exit starts the backoff afresh.
                    if now - spawned_at.get(proc.name, 0.0) > 60:
                        failures.pop(proc.name, None)
                    continue
                if proc.name not in restart_at:
                    failed = failures.get(proc.name, 0)
                    code = proc.proc.returncode if proc.proc else None
                    delay = min(2**failed, 30)
                    log.error("%s exited (code %s); restarting in %ss", proc.name, code, delay)
                    restart_at[proc.name] = now + delay
                elif now >= restart_at[proc.name]:
                    del restart_at[proc.name]
                    failures[proc.name] = failures.get(proc.name, 0) + 1
                    spawned_at[proc.name] = now
                    self._spawn(proc)
            time.sleep(0.2)

    def stop(self) -> None:
        """Services first, all at once (they flush to NATS and the store), then NATS and
        the store."""
        self.stopping = True
        for proc in self.services:
            proc.terminate()
        for proc in [*self.services, *reversed(self.embedded)]:
            proc.stop()

    def banner(self, token: str) -> str:
        settings = self.settings
        nats = self.env.get("EDGE_NATS_URL", settings.nats_url)
        s3 = self.env.get("EDGE_S3_ENDPOINT", settings.s3_endpoint)
        return "\n".join(
            [
                "",
                "Edge is running.",
                f"  DICOM receiver : port {settings.receiver_port}"
                " (CALLED AE TITLE = Datashare ID)",
                f"  Registry API   : http://127.0.0.1:{settings.registry_port}/api/v1/datashares"
                f"  (docs: http://127.0.0.1:{settings.registry_port}/docs)",
                f"  Monitor        : http://127.0.0.1:{settings.monitor_port}/"
                f"  (status: /api/v1/status, metrics: /metrics)",
                f"  API token      : {token}",
                f"  NATS           : {nats}"
                + (" (embedded)" if "EDGE_NATS_URL" in self.env else ""),
                f"  S3 buffer      : {s3}"
                + (" (embedded)" if "EDGE_S3_ENDPOINT" in self.env else ""),
                *(
                    [f"  Credentials    : {self.data_dir / CREDENTIALS_FILE} (NATS, S3)"]
                    if (self.data_dir / CREDENTIALS_FILE).exists()
                    else []
                ),
                f"  Data           : {self.data_dir}",
                "Press Ctrl-C to stop.",
                "",
            ]
        )


def main() -> None:
    # Everything under var/ owner-only: the embedded NATS and S3 data (instances, the
    # datashares bucket) and the services it starts, which inherit the mask.
    os.umask(0o077)
    settings = LauncherSettings()
    configure_logging("launcher", settings.log_level, settings.log_format)
    stack = Stack(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stack.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start_embedded()
        token = api_token(settings)
        settings.api_token = SecretStr(token)
        stack.start_services(token)
        print(stack.banner(token), flush=True)
        stack.supervise()
    except (PortInUse, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        stack.stop()
        sys.exit(1)
    log.info("stopping")
    stack.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
