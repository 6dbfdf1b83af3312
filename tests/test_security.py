"""Local processes without credentials are kept out of the embedded NATS and S3 store, and
a datashare rewritten in NATS by one holding them is put back by the registry."""

import asyncio
import base64
import hmac
import json
import re
import secrets
import socket
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import nats as nats_client
import pytest
from nats.errors import Error as NatsError

from edge_core.datashares import Datashare
from edge_core.objectstore import ObjectStore, make_client
from edge_core.topology import DATASHARES_BUCKET
from edge_embedded.s3_server import S3_EXTRA_PORTS, weed_binary
from edge_testing.dcmtk import echoscu, storescu
from edge_testing.dicom_data import write_series
from edge_testing.servers import wait_until
from edge_testing.stack import Stack, start_stack
from edge_testing.storescp import start_storescp

BUFFERED = "PROBE/1.2.3/buffered.dcm"
# The HTTP/2 connection preface, with which every gRPC call starts.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Stack:
    """One stack for the module: its start is most of the time these tests take."""
    stack = start_stack(tmp_path_factory.mktemp("secured"), EDGE_ALLOW_PRIVATE_DESTINATIONS="true")
    try:
        yield stack
    finally:
        stack.stop()
        print(stack.log()[-20000:])


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_credentials_are_generated_at_first_start_and_owner_only(secured):
    creds = secured.credentials
    assert _mode(secured.data_dir / "embedded-credentials.json") == 0o600
    assert len(creds.nats_password) >= 32 and len(creds.s3_secret_key) >= 32
    assert creds.s3_secret_key != "edge-local-secret"
    # What the servers were started with, and what keeps weed's own ports shut.
    assert _mode(secured.data_dir / "nats" / "nats-server.conf") == 0o600
    security = secured.data_dir / "s3" / "security"
    assert _mode(security) == 0o700
    assert {p.name: _mode(p) for p in security.iterdir()} == {
        "security.toml": 0o600,
        "ca.crt": 0o600,
        "node.crt": 0o600,
        "node.key": 0o600,
    }
    # Never on a command line, which every local user can read.
    for pid_file in (secured.data_dir / "run").glob("*.pid"):
        cmdline = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes()
        assert creds.nats_password.encode() not in cmdline
        assert creds.s3_secret_key.encode() not in cmdline


def test_nats_refuses_a_client_without_credentials(secured):
    url = f"nats://127.0.0.1:{secured.nats_port}"

    async def attempt(**credentials) -> str:
        try:
            nc = await nats_client.connect(url, allow_reconnect=False, **credentials)
        except NatsError as exc:
            return str(exc)
        try:
            # Sanity: with the right credentials, the KV, publishing and subscribing work.
            kv = await nc.jetstream().key_value(DATASHARES_BUCKET)
            await kv.status()
            await nc.subscribe("edge.>")
            await nc.publish("edge.probe", b"")
            await nc.flush()
            return "connected"
        finally:
            await nc.close()

    assert "Authorization Violation" in asyncio.run(attempt())
    assert "Authorization Violation" in asyncio.run(attempt(user="edge", password="guess"))
    assert asyncio.run(attempt(**secured.nats_credentials())) == "connected"


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports that process ``pid`` listens on (from /proc)."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    inodes = {
        link.removeprefix("socket:[").removesuffix("]")
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if (link := str(fd.readlink())).startswith("socket:[")
    }
    return {port for inode, port in listening.items() if inode in inodes}


def test_the_embedded_servers_listen_on_their_given_ports_only(secured):
    def pid(name: str) -> int:
        return int((secured.data_dir / "run" / f"{name}.pid").read_text())

    assert _listening_ports(pid("nats-server")) == {secured.nats_port}
    block = set(range(secured.s3_port, secured.s3_port + 1 + S3_EXTRA_PORTS))
    weed = _listening_ports(pid("weed-mini"))
    assert secured.s3_port in weed and weed <= block  # what the next test probes, all of it


def _http(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of an anonymous request; (0, b"") if the port does not speak HTTP."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, ValueError):  # reset, TLS garbage, not HTTP/1
        return 0, b""


def _grpc_answers(port: int, tls: bool) -> bool:
    """Whether the port answers an anonymous HTTP/2 (gRPC) connection with its SETTINGS
    frame: in plain text, or over TLS without a client certificate."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            sock: socket.socket = raw
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                context.set_alpn_protocols(["h2"])
                sock = context.wrap_socket(raw)
            sock.sendall(H2_PREFACE)
            reply = sock.recv(64)
    except (OSError, ssl.SSLError):
        return False
    return len(reply) >= 9 and reply[3] == 0x04  # a frame of type SETTINGS


def _fid(stack: Stack, key: str) -> str:
    """The volume file id of an object, asked of the filer over gRPC with weed's own
    certificate (as weed's parts do): what an intruder would need to read or delete it on
    the volume server directly."""
    ports = range(stack.s3_port + 1, stack.s3_port + 1 + S3_EXTRA_PORTS)
    master_grpc, master, _, _, filer, filer_grpc, *_ = ports
    shell = subprocess.run(
        [weed_binary(), f"-config_dir={stack.data_dir / 's3' / 'security'}", "shell",
         f"-master=127.0.0.1:{master}.{master_grpc}", f"-filer=127.0.0.1:{filer}.{filer_grpc}"],
        input=f"fs.meta.cat /buckets/edge-buffer/{key}\n", capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    found = re.search(
        r'"volumeId":\s*(\d+),\s*"fileKey":\s*"(\d+)",\s*"cookie":\s*(\d+)', shell.stdout
    )
    assert found, shell.stdout + shell.stderr
    volume, file_key, cookie = map(int, found.groups())
    key = f"{file_key:x}"
    return f"{volume},{'0' * (len(key) % 2)}{key}{cookie:08x}"


def _signed_read(stack: Stack, fid: str) -> bytes:
    """The file from the volume server with a token signed by weed's read key: proves that
    ``fid`` is right, so that the anonymous refusals below are refusals of the real file."""
    config = tomllib.loads((stack.data_dir / "s3" / "security" / "security.toml").read_text())
    key = config["jwt"]["signing"]["read"]["key"].encode()

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    claims = json.dumps({"fid": fid, "exp": int(time.time()) + 10}).encode()
    unsigned = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(claims)
    token = unsigned + b"." + b64(hmac.digest(key, unsigned, "sha256"))
    volume_port = stack.s3_port + 3
    request = urllib.request.Request(
        f"http://127.0.0.1:{volume_port}/{fid}",
        headers={"Authorization": f"Bearer {token.decode()}"},
    )
    with urllib.request.urlopen(request, timeout=3) as resp:
        return bytes(resp.read())


def test_no_weed_port_serves_lists_writes_or_deletes_without_credentials(secured, tmp_path):
    secret = b"patient data " + secrets.token_bytes(16)
    buffer = secured.store("edge-buffer")
    buffer.put_bytes(BUFFERED, secret)
    fid = _fid(secured, BUFFERED)
    assert _signed_read(secured, fid) == secret
    volume_id = fid.split(",")[0]
    bucket = "edge-buffer"
    attempts = [
        ("GET", f"/{bucket}/{BUFFERED}"),  # S3
        ("GET", f"/{bucket}?list-type=2"),
        ("PUT", f"/{bucket}/PROBE/planted.dcm"),
        ("DELETE", f"/{bucket}/{BUFFERED}"),
        ("GET", f"/buckets/{bucket}/{BUFFERED}"),  # filer
        ("GET", f"/buckets/{bucket}/PROBE/1.2.3/"),
        ("POST", f"/buckets/{bucket}/PROBE/planted.dcm"),
        ("DELETE", f"/buckets/{bucket}/{BUFFERED}"),
        ("GET", f"/{fid}"),  # volume server, and the master's redirect to it
        ("DELETE", f"/{fid}"),
        ("POST", f"/{volume_id},01deadbeef"),
        ("GET", f"/dir/lookup?fileId={fid}"),  # master: hands out signed tokens
        ("GET", "/dir/assign"),
        ("GET", f"/col/delete?collection={bucket}"),
        ("GET", "/vol/status"),
    ]
    ports = list(range(secured.s3_port, secured.s3_port + 1 + S3_EXTRA_PORTS))
    answered: list[tuple[int, str, str, int]] = []
    for port in ports:
        assert not _grpc_answers(port, tls=False), f"port {port} serves gRPC in plain text"
        assert not _grpc_answers(port, tls=True), f"port {port} serves gRPC without a certificate"
        for method, path in attempts:
            body = b"planted" if method in ("PUT", "POST") else None
            status, content = _http(port, method, path, body)
            assert secret not in content, (port, method, path)
            if 200 <= status < 300:
                answered.append((port, method, path, status))
    assert answered == []
    # weed's local sockets: only its owner may connect (writing to a socket is connecting).
    sockets = [sock for port in ports for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert sockets and {sock: _mode(sock) & 0o022 for sock in sockets} == dict.fromkeys(sockets, 0)
    # Nothing read, written or deleted: the object is intact and alone.
    assert buffer.get_bytes(BUFFERED) == secret
    assert [o.key for o in buffer.list("PROBE/")] == [BUFFERED]
    # A wrong S3 key is refused too.
    intruder = ObjectStore(
        make_client(f"127.0.0.1:{secured.s3_port}", secured.credentials.s3_access_key, "guess"),
        bucket,
    )
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        intruder.get_bytes(BUFFERED)
    buffer.delete(BUFFERED)


def test_a_datashare_rewritten_in_nats_is_repaired_and_images_go_to_the_real_one(secured, tmp_path):
    attacker = start_storescp(tmp_path / "attacker", aet="ATTACKER")
    try:
        status, body = secured.api("registry", "POST", "/api/v1/datashares", {"id": "SECURE1"})
        assert status == 201, body
        wait_until(lambda: echoscu(secured.receiver_port, "SECURE1"), what="datashare live")

        async def kv_entry(kv) -> Datashare | None:
            try:
                return Datashare.model_validate_json((await kv.get("SECURE1")).value or b"")
            except Exception:
                return None

        async def forge_and_wait_for_repair() -> float:
            """An insider (holding the NATS credentials) rewrites the destination with a
            higher revision; seconds until the registry has put the entry back."""
            nc = await nats_client.connect(
                f"nats://127.0.0.1:{secured.nats_port}", **secured.nats_credentials()
            )
            try:
                kv = await nc.jetstream().key_value(DATASHARES_BUCKET)
                genuine = await kv_entry(kv)
                assert genuine is not None and genuine.destination is None
                forged = genuine.model_copy(
                    update={"destination": attacker.url, "revision": genuine.revision + 10}
                )
                await kv.put("SECURE1", forged.model_dump_json().encode())
                started = time.monotonic()
                while await kv_entry(kv) != genuine:
                    assert time.monotonic() - started < 10, "the forged entry was not repaired"
                    await asyncio.sleep(0.05)
                return time.monotonic() - started
            finally:
                await nc.close()

        repaired_in = asyncio.run(forge_and_wait_for_repair())
        print(f"forged datashare entry repaired in {repaired_in:.2f}s")
        assert "SECURE1 differed (fields destination, revision)" in secured.log()

        files = write_series(tmp_path / "ct", 3)
        sent = storescu(secured.receiver_port, "SECURE1", files)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        destination = secured.store("edge-destination")
        wait_until(
            lambda: len(list(destination.list("SECURE1/"))) == 3,
            timeout_s=60,
            what="3 instances at the datashare's real destination",
        )
        assert attacker.files() == []
    finally:
        attacker.process.stop()
