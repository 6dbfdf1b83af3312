"""Helpers for the receiver's tests: settings, datashares on the bus, events read back, DCMTK."""

import asyncio
import socket
import struct
from pathlib import Path

import nats as nats_client
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification

from edge_core.datashares import Datashare
from edge_core.events import Event, parse_event
from edge_core.settings import EdgeSettings
from edge_core.topology import DATASHARES_BUCKET, ensure_topology
from edge_embedded.ports import free_ports
from edge_receiver.config import ReceiverSettings
from edge_testing.dcmtk import echoscu as echo
from edge_testing.dicom_data import EDGE_TEST_ROOT, make_instance
from edge_testing.servers import wait_until


def receiver_settings_for(
    edge: EdgeSettings, data_dir: Path, **overrides: object
) -> ReceiverSettings:
    values: dict[str, object] = {
        **edge.model_dump(),
        "receiver_host": "127.0.0.1",
        "receiver_port": free_ports(1)[0],
        "data_dir": data_dir,
        "buffer_quota_bytes": 10 * 1024**3,
        "receiver_network_timeout_s": 20,
    }
    values.update(overrides)
    return ReceiverSettings(**values)  # type: ignore[arg-type]


async def _put_datashares(settings: EdgeSettings, datashares: list[Datashare]) -> None:
    nc = await nats_client.connect(settings.nats_url)
    try:
        await ensure_topology(nc.jetstream(), settings)
        kv = await nc.jetstream().key_value(DATASHARES_BUCKET)
        for ds in datashares:
            await kv.put(ds.id, ds.model_dump_json().encode())
    finally:
        await nc.close()


def put_datashares(settings: EdgeSettings, *datashares: Datashare, port: int | None = None) -> None:
    """Publish datashares as the registry does; with ``port``, wait until that receiver
    routes them (an echo to each called-mode datashare succeeds)."""
    asyncio.run(_put_datashares(settings, list(datashares)))
    if port is None:
        return
    for ds in datashares:
        if (
            ds.match == "called"
            and ds.enabled
            and not ds.allowed_calling_aets
            and not ds.allowed_networks
        ):
            wait_until(lambda ds=ds: echo(port, ds.ae_title), what=f"datashare {ds.id} live")


async def _read_events(url: str, stream: str) -> list[Event]:
    nc = await nats_client.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        if not info.state.messages:
            return []
        sub = await js.pull_subscribe(
            "edge.events.>", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL), stream=stream
        )
        out: list[Event] = []
        while len(out) < info.state.messages:
            for msg in await sub.fetch(1000, timeout=5):
                out.append(parse_event(msg.data))
                await msg.ack()
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def read_events(settings: EdgeSettings, type_: str | None = None) -> list[Event]:
    events = asyncio.run(_read_events(settings.nats_url, settings.events_stream))
    return [e for e in events if type_ is None or e.type == type_]


def wait_for_event(settings: EdgeSettings, type_: str, count: int = 1) -> list[Event]:
    return wait_until(
        lambda: (found := read_events(settings, type_)) and len(found) >= count and found,
        what=f"{count} {type_} event(s)",
    )


def pynetdicom_store(port: int, called: str, datasets, calling: str = "HOSPITALPACS") -> list[int]:
    """C-STORE each dataset on one association with a pynetdicom SCU; the statuses."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association not established"
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def small_instance(number: int = 1, rows: int = 64, columns: int = 64) -> Dataset:
    """A secondary-capture instance of a new study (64x64 by default: ~8 kB)."""
    uid = generate_uid(prefix=EDGE_TEST_ROOT)
    return make_instance(
        study_uid=uid,
        series_uid=uid + ".1",
        number=number,
        sop_class=SecondaryCaptureImageStorage,
        modality="OT",
        rows=rows,
        columns=columns,
    )


def closed_by_peer(sock: socket.socket) -> bytes:
    """Everything the receiver sends until it closes the connection."""
    sock.settimeout(30)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def encoded_association_request(called: str) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.calling_ae_title, primitive.called_ae_title = "HOSPITALPACS", called
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    context = build_context(Verification)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    primitive.user_information = [max_length]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return rq.encode()


def established_raw_association(port: int, called: str) -> socket.socket:
    """A raw socket with an accepted association (one context, id 1: Verification)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(encoded_association_request(called))
    sock.settimeout(30)
    header = sock.recv(6, socket.MSG_WAITALL)
    assert header[:1] == b"\x02", header  # A-ASSOCIATE-AC
    (length,) = struct.unpack(">L", header[2:6])
    sock.recv(length, socket.MSG_WAITALL)
    return sock
