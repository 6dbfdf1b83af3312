"""Hostile or broken peers: garbage, absurd PDU lengths, TLS clients that never handshake,
too many associations; each is dropped while legitimate associations carry on. And what
arrives compressed is stored byte for byte."""

import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config
from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification
from receiver_testing import (
    closed_by_peer,
    encoded_association_request,
    established_raw_association,
    put_datashares,
    pynetdicom_store,
    read_events,
    receiver_settings_for,
    wait_for_event,
)

from edge_core.datashares import Datashare
from edge_receiver.main import start
from edge_testing.dcmtk import echoscu as echo
from edge_testing.dicom_data import EDGE_TEST_ROOT, make_instance
from edge_testing.servers import wait_until


@pytest.fixture
def live(receiver, receiver_settings):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    return receiver


def test_garbage_bytes_close_that_connection_only(live):
    with socket.create_connection(("127.0.0.1", live.port)) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n")
        assert echo(live.port, "DS1")  # while the garbage connection is open
        answer = closed_by_peer(garbage)
    assert answer in (b"", bytes([7, 0, 0, 0, 0, 4, 0, 0, 2, 0]))  # closed, or A-ABORT first
    assert echo(live.port, "DS1")


def test_oversized_declared_association_request_is_dropped(live):
    with socket.create_connection(("127.0.0.1", live.port)) as hostile:
        # An A-ASSOCIATE-RQ declaring 1 GiB, then a trickle: nothing waits for the rest.
        hostile.sendall(struct.pack(">BBL", 0x01, 0, 2**30) + b"\x00" * 1000)
        closed_by_peer(hostile)
    assert echo(live.port, "DS1")


def test_oversized_declared_pdu_on_an_established_association_is_dropped(live, receiver_settings):
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", live.port, ae_title="DS1")
    assert assoc.is_established
    # Write a P-DATA-TF header declaring 1 GiB straight onto the association's socket.
    assoc.dul.socket.socket.sendall(struct.pack(">BBL", 0x04, 0, 2**30) + b"\x00" * 1000)
    wait_until(lambda: not assoc.is_established, what="the receiver to drop the association")
    assert assoc.is_aborted
    assert echo(live.port, "DS1")
    (aborted,) = wait_for_event(receiver_settings, "association.aborted")
    assert aborted.datashare == "DS1" and aborted.data.reason


def test_peer_abort_is_reported(live, receiver_settings):
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", live.port, ae_title="DS1")
    assert assoc.is_established
    assoc.abort()
    (aborted,) = wait_for_event(receiver_settings, "association.aborted")
    assert (aborted.data.calling_ae, aborted.data.instances) == ("HOSPITALPACS", 0)


def test_too_many_associations_are_rejected_transiently(edge_settings, tmp_path):
    settings = receiver_settings_for(edge_settings, tmp_path / "r", receiver_max_associations=2)
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        ae = AE(ae_title="HOSPITALPACS")
        ae.add_requested_context(Verification)
        held = [ae.associate("127.0.0.1", receiver.port, ae_title="DS1") for _ in range(2)]
        assert all(a.is_established for a in held)
        third = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
        assert third.is_rejected
        rj = third.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (2, 3, 2)
        for a in held:
            a.release()
        (rejected,) = wait_for_event(settings, "association.rejected")
        assert "limit" in rejected.data.reason_text
    finally:
        receiver.stop(grace_s=2)


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_client_that_never_handshakes_holds_up_no_one(edge_settings, tmp_path):
    import ssl

    server_cert, server_key = make_cert(tmp_path, "server")
    client_cert, client_key = make_cert(tmp_path, "client")
    settings = receiver_settings_for(
        edge_settings,
        tmp_path / "r",
        receiver_tls_cert=server_cert,
        receiver_tls_key=server_key,
        receiver_tls_ca=client_cert,
        receiver_network_timeout_s=120,
    )
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"))
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        client.load_cert_chain(str(client_cert), str(client_key))
        ae = AE(ae_title="HOSPITALPACS")
        ae.add_requested_context(Verification)
        ae.acse_timeout = 30
        with socket.create_connection(("127.0.0.1", receiver.port)):  # never handshakes
            assoc = wait_until(
                lambda: (
                    (
                        a := ae.associate(
                            "127.0.0.1",
                            receiver.port,
                            ae_title="DS1",
                            tls_args=(client, "localhost"),
                        )
                    ).is_established
                    and a
                ),
                what="a TLS association while another client stalls its handshake",
            )
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
        # Without a client certificate signed by the CA: no association.
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        assert not ae.associate(
            "127.0.0.1", receiver.port, ae_title="DS1", tls_args=(anonymous, "localhost")
        ).is_established
    finally:
        receiver.stop(grace_s=2)


def dataset_bytes(part10: bytes) -> bytes:
    """A Part 10 file's dataset: what follows the preamble and File Meta Information."""
    (group_length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + group_length :]


def compressed_instance(transfer_syntax) -> Dataset:
    uid = generate_uid(prefix=EDGE_TEST_ROOT)
    ds = make_instance(
        study_uid=uid, series_uid=uid + ".1", number=1, rows=16, columns=16,
        sop_class=SecondaryCaptureImageStorage, modality="OT",
    )  # fmt: skip
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    if transfer_syntax.is_encapsulated:
        # Only the label and the bytes matter: nothing on the way decodes them.
        ds.PixelData = encapsulate([bytes(range(256)) * 3 + str(transfer_syntax).encode()])
        ds["PixelData"].VR = "OB"
    return ds


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        JPEGLossless,
        JPEGLSLossless,
        JPEG2000Lossless,
        HTJ2KLossless,
        RLELossless,
    ],
    ids=lambda ts: ts.name,
)
def test_transfer_syntaxes_are_stored_byte_for_byte(
    live, receiver_settings, s3, tmp_path, transfer_syntax, monkeypatch
):
    path = tmp_path / "in.dcm"
    compressed_instance(transfer_syntax).save_as(path, enforce_file_format=True)
    # Sending the file's own bytes (no re-encoding by the sender either).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, transfer_syntax)
    assoc = ae.associate("127.0.0.1", live.port, ae_title="DS1")
    assert assoc.is_established
    assert assoc.send_c_store(path).Status == 0x0000
    assoc.release()

    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    assert stored.data.transfer_syntax == transfer_syntax
    got = s3.store(receiver_settings.buffer_bucket).get_bytes(stored.data.key)
    assert dataset_bytes(got) == dataset_bytes(path.read_bytes())


def test_two_receivers_can_share_one_port(edge_settings, receiver_settings, tmp_path):
    first = start(receiver_settings)
    second = start(receiver_settings.model_copy(update={"data_dir": tmp_path / "second"}))
    try:
        put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=first.port)
        uid = generate_uid(prefix=EDGE_TEST_ROOT)
        datasets = [
            make_instance(study_uid=uid, series_uid=uid + ".1", number=i, rows=16, columns=16)
            for i in range(1, 9)
        ]
        for ds in datasets:  # one association each, so the kernel spreads them
            assert pynetdicom_store(first.port, "DS1", [ds]) == [0x0000]
        stored = wait_for_event(receiver_settings, "instance.stored", 8)
        assert len({e.data.sop_instance_uid for e in stored}) == 8
    finally:
        first.stop(grace_s=2)
        second.stop(grace_s=2)


def test_a_header_sent_byte_by_byte_is_still_an_association(live):
    """The first-PDU check must wait for a whole header, not judge a fragment."""
    encoded = encoded_association_request("DS1")
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in encoded[:6]:
            sock.sendall(bytes([byte]))
            time.sleep(0.02)  # separate segments
        sock.sendall(encoded[6:])
        sock.settimeout(30)
        assert sock.recv(1) == b"\x02"  # A-ASSOCIATE-AC


def test_part_of_a_header_then_close_is_dropped_at_once(live):
    """Not after the PDU deadline (30 s): the peer is gone (found by test_fuzz.py)."""
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(b"\x01\x00\x00")
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert closed_by_peer(sock) == b""
        assert time.monotonic() - started < 5


def test_idle_connections_beyond_the_limit_are_closed_oldest_first(edge_settings, tmp_path):
    settings = receiver_settings_for(edge_settings, tmp_path / "r", receiver_max_connections=2)
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        idle = [socket.create_connection(("127.0.0.1", receiver.port)) for _ in range(3)]
        assert closed_by_peer(idle[0]) == b""
        assert echo(receiver.port, "DS1")  # the limit is full: the oldest idle one gives way
        assert closed_by_peer(idle[1]) == b""
        for sock in idle:
            sock.close()
    finally:
        receiver.stop(grace_s=2)


def p_data(context_id: int, fragment: bytes, control: int = 0x03) -> bytes:
    """One P-DATA-TF with one PDV (``control`` 0x03: a command's last fragment)."""
    pdv = bytes([context_id, control]) + fragment
    return struct.pack(">BBLL", 0x04, 0, len(pdv) + 4, len(pdv)) + pdv


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(p_data(99, b"\x00" * 12), id="p-data-on-unnegotiated-context"),
        pytest.param(p_data(1, b"\xff" * 40), id="garbage-command"),
        pytest.param(b"\x4f" * 64, id="garbage-pdu"),
    ],
)
def test_a_broken_association_is_reported_aborted(live, receiver_settings, hostile):
    """However pynetdicom's threads end, the association is accounted as aborted."""
    with established_raw_association(live.port, "DS1") as sock:
        port = sock.getsockname()[1]
        sock.sendall(hostile)
        closed_by_peer(sock)
    (aborted,) = wait_until(
        lambda: [
            e
            for e in read_events(receiver_settings, "association.aborted")
            if e.data.peer_port == port
        ],
        what="association.aborted for the broken association",
    )
    assert aborted.data.reason
    assert echo(live.port, "DS1")
