"""The benchmark's peers, each started fresh on free ports by a context manager that yields
where to send (a :class:`Target`).

- ``storescp`` (DCMTK, writing to disk) and ``orthanc`` (storing): ingest references.
- ``edge``: the whole stack (``edge-run``), forwarding to a bucket of its own S3 store.
- Edge forwarding, timed until the last instance is counted at the destination, and Orthanc
  set up as a router to the same kind of destination (a Lua ``OnStoredInstance`` that sends
  the instance on, then deletes it), in pairs:
  ``edge-forward`` / ``orthanc-router``: C-STORE to a DCMTK storescp;
  ``edge-stow`` / ``orthanc-router-stow``: STOW-RS to a second Orthanc (DICOMweb plugin);
  ``edge-s3`` / ``orthanc-router-s3``: S3 PUT into a second ``weed mini``, not Edge's buffer.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_core.objectstore import ObjectStore, make_client
from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess
from edge_embedded.s3_server import S3_EXTRA_PORTS, s3_server
from edge_testing.dcmtk import echoscu
from edge_testing.orthanc import Orthanc, start_orthanc
from edge_testing.servers import wait_until
from edge_testing.stack import start_stack
from edge_testing.storescp import start_storescp

DATASHARE = "BENCH"
DEST_BUCKET = "bench-destination"


@dataclass
class Target:
    name: str
    port: int
    called_ae: str
    # The process whose tree is measured (the peer's server or Edge's launcher): the
    # destination is outside it.
    root_pid: int | None = None
    # How many instances are at the destination now. Set: a scenario is timed until all of
    # its instances are counted there (the whole job).
    delivered: Callable[[], int] | None = None
    # Edge's ingest peer: returns once the buffer is empty (whether the uploader keeps up).
    drain: Callable[[], None] | None = None


def _pid(holder: object) -> int | None:
    proc = getattr(holder, "proc", None)
    return proc.pid if proc is not None else None


@contextmanager
def storescp(work: Path) -> Iterator[Target]:
    scp = start_storescp(work, "--fork")
    try:
        yield Target("storescp", scp.port, scp.aet, _pid(scp.process))
    finally:
        scp.process.stop()


@contextmanager
def orthanc(work: Path) -> Iterator[Target]:
    server = start_orthanc(work / "orthanc")
    try:
        yield Target("orthanc", server.dicom_port, server.aet, _pid(server.process))
    finally:
        server.process.stop()


# Extra EDGE_* settings for Edge's stack (``--env NAME=VALUE``), e.g. to compare two settings.
EDGE_ENV: dict[str, str] = {}


@contextmanager
def edge(work: Path, datashare: dict[str, object] | None = None, **env: str) -> Iterator[Target]:
    """The whole stack with one datashare (``datashare``: more of its fields)."""
    stack = start_stack(work / "edge", **(EDGE_ENV | env))
    try:
        body = {"id": DATASHARE} | (datashare or {})
        status, answer = stack.api("registry", "POST", "/api/v1/datashares", body)
        if status != 201:
            raise RuntimeError(f"could not create the datashare: {status} {answer}")
        wait_until(lambda: echoscu(stack.receiver_port, DATASHARE), what="the datashare to go live")
        buffer = stack.store("edge-buffer")

        def drain() -> None:
            wait_until(lambda: not any(True for _ in buffer.list(f"{DATASHARE}/")), timeout_s=1800)

        yield Target("edge", stack.receiver_port, DATASHARE, _pid(stack), drain=drain)
    finally:
        stack.stop()


@contextmanager
def _edge_to(
    work: Path, name: str, delivered: Callable[[], int], dest: ServerProcess, **kwargs: object
):
    with edge(work, **kwargs) as target:  # type: ignore[arg-type]
        target.name, target.delivered, target.drain = name, delivered, None
        try:
            yield target
        finally:
            dest.terminate()  # stops while the stack does (the caller waits for it)


@contextmanager
def _router(
    work: Path,
    name: str,
    lua: str,
    delivered: Callable[[], int],
    dest: ServerProcess,
    **config: object,
):
    """Orthanc running ``lua`` (its ``OnStoredInstance`` sends on, then deletes)."""
    script = work / "route.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(lua)
    server = start_orthanc(work / "orthanc", LuaScripts=[str(script)], **config)
    try:
        yield Target(name, server.dicom_port, server.aet, _pid(server.process), delivered)
    finally:
        dest.terminate()  # stops while the router does (the caller waits for it)
        server.process.stop()


def _files_in(directory: Path) -> Callable[[], int]:
    return lambda: sum(1 for p in directory.iterdir() if p.is_file())


@contextmanager
def orthanc_router(work: Path) -> Iterator[Target]:
    dest = start_storescp(work / "dest", "--fork")
    lua = (
        "function OnStoredInstance(instanceId, tags, metadata, origin)\n"
        "  SendToModality(instanceId, 'dest')\n"
        "  Delete(instanceId)\n"
        "end\n"
    )
    modalities = {"dest": [dest.aet, "127.0.0.1", dest.port]}
    try:
        with _router(work, "orthanc-router", lua, _files_in(dest.directory), dest.process,
                     DicomModalities=modalities) as target:  # fmt: skip
            yield target
    finally:
        dest.process.stop()


@contextmanager
def edge_forward(work: Path) -> Iterator[Target]:
    dest = start_storescp(work / "dest", "--fork")
    try:
        env = {"EDGE_DEFAULT_DESTINATION": dest.url}
        with _edge_to(
            work, "edge-forward", _files_in(dest.directory), dest.process, **env
        ) as target:
            yield target
    finally:
        dest.process.stop()


@contextmanager
def _stow_destination(work: Path) -> Iterator[Orthanc]:
    dest = start_orthanc(work / "dest", aet="DEST")
    try:
        yield dest
    finally:
        dest.process.stop()


@contextmanager
def orthanc_router_stow(work: Path) -> Iterator[Target]:
    """STOW-RS built in the Lua and sent with Orthanc's ``HttpPost``, one instance per
    request. Not the DICOMweb plugin's client (``/dicom-web/servers/dest/stow``): each of its
    calls runs as an Orthanc job and took 0.5 s here whatever the size (the destination
    answers in ~6 ms), which would make a peer too easy to beat."""
    with _stow_destination(work) as dest:
        lua = (
            f"SetHttpCredentials('{dest.username}', '{dest.password}')\n"
            "function OnStoredInstance(instanceId, tags, metadata, origin)\n"
            "  local body = RestApiGet('/instances/' .. instanceId .. '/file')\n"
            "  local b = 'bench-' .. instanceId\n"
            "  HttpPost('" + dest.url + "/dicom-web/studies',\n"
            "    '--' .. b .. '\\r\\nContent-Type: application/dicom\\r\\n\\r\\n' .. body\n"
            "      .. '\\r\\n--' .. b .. '--\\r\\n',\n"
            "    {['Content-Type'] = 'multipart/related; type=\"application/dicom\"; '\n"
            "       .. 'boundary=' .. b, ['Accept'] = 'application/dicom+json'})\n"
            "  Delete(instanceId)\n"
            "end\n"
        )
        with _router(
            work, "orthanc-router-stow", lua, dest.count_instances, dest.process
        ) as target:
            yield target


@contextmanager
def edge_stow(work: Path) -> Iterator[Target]:
    """The datashare's own destination, with the destination's basic-auth credentials (the
    site-wide default destination takes none); plain HTTP on loopback, hence the two allows."""
    with _stow_destination(work) as dest:
        datashare = {
            "destination": dest.dicomweb_url,
            "destination_credentials": {"username": dest.username, "password": dest.password},
        }
        allow = {f"EDGE_ALLOW_{what}_DESTINATIONS": "true" for what in ("PRIVATE", "INSECURE")}
        with _edge_to(work, "edge-stow", dest.count_instances, dest.process, datashare=datashare,
                      **allow) as target:  # fmt: skip
            yield target


@dataclass
class DestinationS3:
    process: ServerProcess
    port: int
    access_key: str
    secret_key: str
    store: ObjectStore  # DEST_BUCKET, with the keys

    def count(self) -> int:
        return sum(1 for _ in self.store.list())


@contextmanager
def _s3_destination(work: Path) -> Iterator[DestinationS3]:
    """A second ``weed mini`` with one keyed identity and an anonymous one that may only
    write into DEST_BUCKET (Orthanc's Lua ``HttpPut`` cannot sign an S3 request)."""
    port, *others = free_ports(1 + S3_EXTRA_PORTS)
    access, secret = "bench-dest", "bench-dest-secret"
    config = work / "s3-identities.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": access, "secretKey": secret}],
         "actions": ["Admin", "Read", "Write", "List"]},
        {"name": "anonymous", "actions": [f"Write:{DEST_BUCKET}"]},
    ]}))  # fmt: skip
    process = s3_server(work / "dest-s3", port, access, secret, other_ports=others)
    process.argv.append(f"-s3.config={config}")
    process.start(timeout_s=90)
    try:
        store = ObjectStore(make_client(f"127.0.0.1:{port}", access, secret), DEST_BUCKET)
        store.ensure_bucket()
        yield DestinationS3(process, port, access, secret, store)
    finally:
        process.stop()


@contextmanager
def orthanc_router_s3(work: Path) -> Iterator[Target]:
    with _s3_destination(work) as dest:
        lua = (
            "function OnStoredInstance(instanceId, tags, metadata, origin)\n"
            "  local body = RestApiGet('/instances/' .. instanceId .. '/file')\n"
            f"  HttpPut('http://127.0.0.1:{dest.port}/{DEST_BUCKET}/' .. instanceId .. '.dcm', "
            "body)\n"
            "  Delete(instanceId)\n"
            "end\n"
        )
        with _router(work, "orthanc-router-s3", lua, dest.count, dest.process) as target:
            yield target


@contextmanager
def edge_s3(work: Path) -> Iterator[Target]:
    with _s3_destination(work) as dest:
        env = {
            "EDGE_DEFAULT_DESTINATION": f"s3://{DEST_BUCKET}",
            "EDGE_DESTINATION_S3_ENDPOINT": f"127.0.0.1:{dest.port}",
            "EDGE_DESTINATION_S3_ACCESS_KEY": dest.access_key,
            "EDGE_DESTINATION_S3_SECRET_KEY": dest.secret_key,
        }
        with _edge_to(work, "edge-s3", dest.count, dest.process, **env) as target:
            yield target


PEERS = {
    "storescp": storescp,
    "orthanc": orthanc,
    "edge": edge,
    "orthanc-router": orthanc_router,
    "edge-forward": edge_forward,
    "orthanc-router-stow": orthanc_router_stow,
    "edge-stow": edge_stow,
    "orthanc-router-s3": orthanc_router_s3,
    "edge-s3": edge_s3,
}
