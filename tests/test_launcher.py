"""`make run`'s launcher: starts everything, stops everything, keeps data, steps aside for
external servers."""

import asyncio
import io
import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import nats as nats_client
from pydicom import dcmread

from edge_core.objectstore import make_client
from edge_core.topology import DATASHARES_BUCKET
from edge_embedded.ports import port_is_free
from edge_embedded.s3_server import MEMORY_LIMIT, S3_EXTRA_PORTS
from edge_testing.dcmtk import DCMTK_ENV, dcmtk, echoscu
from edge_testing.dicom_data import write_series
from edge_testing.servers import wait_until
from edge_testing.stack import start_stack


def _all_ports(stack) -> list[int]:
    return [
        stack.receiver_port,
        stack.registry_port,
        stack.monitor_port,
        stack.nats_port,
        stack.s3_port,
    ]


def test_stops_cleanly_and_keeps_data_across_a_restart(tmp_path):
    stack = start_stack(tmp_path)
    try:
        assert f"API token      : {stack.token}" in stack.log()
        # The embedded S3 store runs under a Go memory limit (its RSS otherwise keeps growing).
        assert stack.proc is not None
        environs = [
            Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            for pid in _descendants(stack.proc.pid)
            if Path(f"/proc/{pid}/comm").read_text().strip() == "weed"
        ]
        assert environs and all(
            f"GOMEMLIMIT={MEMORY_LIMIT}".encode() in environ for environ in environs
        )
        status, body = stack.api("registry", "POST", "/api/v1/datashares", {"id": "KEEPME"})
        assert status == 201, body
        stack.store("edge-buffer").put_bytes("KEEPME/probe.dcm", b"kept")

        assert stack.stop() == 0
        # Every child is gone: nothing listens on any of the stack's ports any more.
        assert [p for p in _all_ports(stack) if not port_is_free(p)] == []

        stack.launch()
        status, body = stack.api("registry", "GET", "/api/v1/datashares/KEEPME")
        assert status == 200, body
        assert stack.store("edge-buffer").get_bytes("KEEPME/probe.dcm") == b"kept"
    finally:
        stack.stop()


def test_generates_and_keeps_a_token_when_none_is_set(tmp_path):
    stack = start_stack(tmp_path, token="")
    try:
        token_file = stack.data_dir / "api-token"
        token = token_file.read_text().strip()
        assert len(token) >= 24
        assert token_file.stat().st_mode & 0o077 == 0
        assert f"API token      : {token}" in stack.log()
        stack.token = token
        assert stack.api("registry", "GET", "/api/v1/datashares")[0] == 200
        stack.token = "wrong"
        assert stack.api("registry", "GET", "/api/v1/datashares")[0] == 401
    finally:
        stack.stop()


def test_external_nats_switches_the_embedded_one_off(tmp_path, nats):
    stack = start_stack(tmp_path, EDGE_NATS_URL=nats.url)
    try:
        assert port_is_free(stack.nats_port)  # no embedded NATS
        assert "(embedded)" not in stack.log().split("NATS           :")[1].splitlines()[0]
        status, _ = stack.api("registry", "POST", "/api/v1/datashares", {"id": "EXTERNAL"})
        assert status == 201

        async def datashare_in_external_nats() -> bytes:
            nc = await nats_client.connect(nats.url)
            try:
                kv = await nc.jetstream().key_value(DATASHARES_BUCKET)
                for _ in range(100):
                    try:
                        return (await kv.get("EXTERNAL")).value or b""
                    except Exception:
                        await asyncio.sleep(0.1)
                return b""
            finally:
                await nc.close()

        assert b'"EXTERNAL"' in asyncio.run(datashare_in_external_nats())
    finally:
        stack.stop()


def test_refuses_to_start_when_its_ports_are_taken(tmp_path):
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port = blocker.getsockname()[1]
        try:
            start_stack(tmp_path, EDGE_EMBEDDED_NATS_PORT=str(port))
        except RuntimeError as exc:
            assert "EDGE_EMBEDDED_NATS_PORT" in str(exc)
        else:
            raise AssertionError("the launcher started on a taken port")
    finally:
        blocker.close()


def test_external_s3_and_database_switch_the_embedded_ones_off(tmp_path, s3, postgres_url):
    import sqlalchemy as sa

    stack = start_stack(
        tmp_path,
        EDGE_S3_ENDPOINT=s3.endpoint,
        EDGE_S3_ACCESS_KEY=s3.access_key,
        EDGE_S3_SECRET_KEY=s3.secret_key,
        EDGE_BUFFER_BUCKET="external-buffer",
        EDGE_DATABASE_URL=postgres_url,
    )
    try:
        assert port_is_free(stack.s3_port)  # no embedded S3 store
        assert not (stack.data_dir / "registry.db").exists()
        assert not (stack.data_dir / "monitor.db").exists()
        status, body = stack.api("registry", "POST", "/api/v1/datashares", {"id": "ONPG"})
        assert status == 201, body
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            ids = conn.exec_driver_sql("SELECT id FROM registry_datashares").scalars().all()
        engine.dispose()
        assert "ONPG" in ids
        # The monitor, on the same PostgreSQL database, learns it from the event.
        wait_until(
            lambda: stack.api("monitor", "GET", "/api/v1/datashares/ONPG/status")[0] == 200,
            what="the monitor to show the datashare",
        )
        # The receiver created its buffer bucket in the external store.
        client = make_client(s3.endpoint, s3.access_key, s3.secret_key)
        assert client.bucket_exists("external-buffer")
    finally:
        stack.stop()


# --- Crashes of the launcher and of its embedded servers -----------------------------------


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc; zombies hold nothing, so they
    count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _started(pid: int) -> str | None:
    """When a live process started (its identity, as pids are reused); None once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _every_port(stack) -> list[int]:
    """Each port the stack listens on, the embedded servers' extra ones included."""
    return [
        stack.receiver_port,
        stack.registry_port,
        stack.monitor_port,
        stack.nats_port,
        *range(stack.s3_port, stack.s3_port + 1 + S3_EXTRA_PORTS),
    ]


def _answered_success(storescu_log: str) -> set[str]:
    """SOP Instance UIDs of the files that storescu -v saw answered Success."""
    answered, current = set(), None
    for line in storescu_log.splitlines():
        if "Sending file: " in line:
            current = line.split("Sending file: ", 1)[1].strip()
        elif "Received Store Response (Success)" in line and current:
            answered.add(str(dcmread(current, stop_before_pixels=True).SOPInstanceUID))
    return answered


def _delivered(destination, prefix: str) -> set[str]:
    return {
        str(
            dcmread(
                io.BytesIO(destination.get_bytes(o.key)), stop_before_pixels=True
            ).SOPInstanceUID
        )
        for o in destination.list(prefix)
    }


def test_killing_the_launcher_takes_every_child_down(tmp_path):
    stack = start_stack(tmp_path)
    children: dict[int, str | None] = {}
    try:
        assert stack.api("registry", "POST", "/api/v1/datashares", {"id": "ORPHAN"})[0] == 201
        wait_until(lambda: echoscu(stack.receiver_port, "ORPHAN"), what="datashare to go live")
        files = write_series(tmp_path / "ct", 40)
        destination = stack.store("edge-destination")
        sender = subprocess.Popen(
            [dcmtk("storescu"), "-v", "-aec", "ORPHAN", "127.0.0.1", str(stack.receiver_port),
             *map(str, files)],
            env=DCMTK_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_until(lambda: len(list(destination.list("ORPHAN/"))) >= 3, what="first deliveries")

        assert stack.proc is not None
        children = {pid: _started(pid) for pid in _descendants(stack.proc.pid)}
        assert len(children) >= 6  # NATS, weed, registry, receiver, uploader, monitor
        stack.proc.kill()  # as an OOM kill or a crashed terminal would
        stack.proc.wait()
        # Every child dies with it and lets go of its ports: a new launcher can start.
        wait_until(
            lambda: (
                not [p for p, started in children.items() if _started(p) == started]
                and not [p for p in _every_port(stack) if not port_is_free(p)]
            ),
            timeout_s=5,
            what="every child of the killed launcher to exit and free its port",
        )
        out, _ = sender.communicate(timeout=60)
        answered = _answered_success(out)
        assert len(answered) >= 3, out  # at least those already delivered

        stack.launch()
        wait_until(
            lambda: answered <= _delivered(destination, "ORPHAN/"),
            timeout_s=120,
            what="every instance answered Success to reach the destination",
        )
    finally:
        stack.stop()
        for pid, started in children.items():  # orphans of a failed run hold ports
            if _started(pid) == started:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
