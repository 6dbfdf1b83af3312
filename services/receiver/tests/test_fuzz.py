"""Fuzzing what the receiver reads from a peer (hypothesis): the dataset parser, the keys
made from peer UIDs, the transfer-syntax choice, and a live receiver sent garbled PDUs and
datasets over a socket. ``EDGE_FUZZ_EXAMPLES`` sets how many examples (`make faults` runs
many more than `make test`)."""

import io
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import (
    AllTransferSyntaxes,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, _config
from receiver_testing import (
    closed_by_peer,
    encoded_association_request,
    established_raw_association,
    put_datashares,
    small_instance,
)

from edge_core.datashares import Datashare
from edge_core.keys import buffer_key, safe_uid
from edge_receiver.metadata import InvalidDataset, read_metadata
from edge_receiver.negotiation import preferred_syntaxes
from edge_receiver.store import CANNOT_UNDERSTAND, DOES_NOT_MATCH, SUCCESS
from edge_testing.dcmtk import echoscu, storescu
from edge_testing.fuzzing import counted, fuzz_settings
from edge_testing.part10 import dataset_bytes

# pydicom warns about every invalid value it reads: here that is the point.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _part10() -> bytes:
    buffer = io.BytesIO()
    small_instance(rows=8, columns=8).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


PART10 = _part10()
META = PART10[: len(PART10) - len(dataset_bytes(PART10))]  # preamble + File Meta Information


@st.composite
def garbled(draw, original: bytes) -> bytes:
    """``original`` truncated, with bytes overwritten, inserted or deleted, or noise."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "delete", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=4096))
    data = bytearray(original)
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        if kind == "overwrite" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


# --- The parser and the keys: pure properties ---------------------------------------------


@fuzz_settings(share=5)
@given(garbled(PART10))
@counted
def test_dataset_parser_raises_only_invalid_dataset(data):
    try:
        meta = read_metadata(io.BytesIO(data))
    except InvalidDataset:
        return
    # Whatever it read is fileable: the UIDs an instance is filed by are there.
    assert meta.study_uid and meta.series_uid and meta.sop_instance_uid


@fuzz_settings(share=5)
@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200))
@counted
def test_keys_from_peer_uids_stay_under_the_datashare(study, series, sop):
    key = buffer_key("DS1", study, series, sop, "0" * 64)
    parts = key.split("/")
    assert parts[0] == "DS1" and len(parts) == 4
    assert all(part and part not in (".", "..") for part in parts)
    for uid in (study, series, sop):
        component = safe_uid(uid)
        assert len(component) <= 64 and component.isascii() and "/" not in component


@fuzz_settings(share=5)
@given(st.lists(st.sampled_from([*AllTransferSyntaxes, "1.2.3.4", "", "x" * 70]), max_size=8))
@counted
def test_the_chosen_syntax_keeps_the_data_as_sent(proposed):
    chosen = preferred_syntaxes(proposed)
    assert len(set(chosen)) == len(chosen)
    assert set(chosen) == {ts for ts in proposed if ts in AllTransferSyntaxes}
    if chosen and proposed[0] in AllTransferSyntaxes:
        assert chosen[0] == proposed[0]  # the sender's first choice, when supported
    elif ExplicitVRLittleEndian in chosen and ImplicitVRLittleEndian in chosen:
        assert chosen.index(ExplicitVRLittleEndian) < chosen.index(ImplicitVRLittleEndian)


# --- A live receiver ------------------------------------------------------------------------


@pytest.fixture
def live(receiver, receiver_settings):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    return receiver


def pdu(pdu_type: int, body: bytes, declared: int | None = None) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body) if declared is None else declared) + body


# What a hostile peer sends once its association is accepted (or instead of asking for one).
PDUS = st.one_of(
    st.binary(min_size=1, max_size=512),  # not even a PDU
    st.builds(  # a PDU of any type, its declared length right, short or long
        pdu,
        st.integers(0, 255),
        st.binary(max_size=512),
        st.one_of(st.none(), st.integers(0, 2048)),
    ),
    st.builds(  # a P-DATA-TF of well-formed PDVs carrying anything
        lambda pdvs: pdu(
            0x04, b"".join(struct.pack(">LBB", len(d) + 2, cid, ctl) + d for cid, ctl, d in pdvs)
        ),
        st.lists(
            st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=256)),
            min_size=1,
            max_size=8,
        ),
    ),
)

_ANSWER_TYPES = {0x02, 0x03, 0x04, 0x06, 0x07}  # AC, RJ, P-DATA, release RP, abort


def _well_formed_pdus(answer: bytes) -> bool:
    """The receiver's answer is a sequence of whole PDUs of types a peer may send."""
    while answer:
        if len(answer) < 6 or answer[0] not in _ANSWER_TYPES:
            return False
        (length,) = struct.unpack(">L", answer[2:6])
        answer = answer[6 + length :]
    return True


def _answer_to(sock: socket.socket, hostile: list[bytes]) -> bytes:
    try:
        for chunk in hostile:
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)  # nothing more is coming: the receiver must finish
    except OSError:  # it closed already: fine
        return b""
    return closed_by_peer(sock)


@fuzz_settings(share=1)
@given(
    st.one_of(
        st.tuples(st.just("raw"), garbled(encoded_association_request("DS1"))),
        st.tuples(st.just("associated"), st.lists(PDUS, min_size=1, max_size=4)),
    )
)
@counted
def test_garbled_pdus_get_standard_answers_and_the_receiver_stays_up(live, case):
    kind, hostile = case
    if kind == "raw":
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            answer = _answer_to(sock, [hostile])
    else:
        with established_raw_association(live.port, "DS1") as sock:
            answer = _answer_to(sock, hostile)
    assert _well_formed_pdus(answer), answer[:64]
    assert echoscu(live.port, "DS1")


@fuzz_settings(share=1)
@given(garbled(dataset_bytes(PART10)))
@counted
def test_a_garbled_dataset_gets_the_status_its_parse_calls_for(live, tmp_path, data):
    """Success exactly when the dataset reads as the instance the request names, 0xA900
    when it reads as another, 0xC000 when it does not read; never anything else."""
    path = tmp_path / "garbled.dcm"
    path.write_bytes(META + data)
    try:
        meta = read_metadata(io.BytesIO(META + data))
        expected = SUCCESS
        if (meta.sop_class_uid, meta.sop_instance_uid) != (
            SecondaryCaptureImageStorage,
            _sop_uid(PART10),
        ):
            expected = DOES_NOT_MATCH
    except InvalidDataset:
        expected = CANNOT_UNDERSTAND
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", live.port, ae_title="DS1")
    assert assoc.is_established
    try:
        _config.STORE_SEND_CHUNKED_DATASET = True  # the file's bytes as they are
        status = int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    assert status == expected or (expected, status & 0xF000) == (CANNOT_UNDERSTAND, 0xC000)


def _sop_uid(part10: bytes) -> str:
    return read_metadata(io.BytesIO(part10)).sop_instance_uid


def test_after_the_fuzzing_a_real_storescu_still_succeeds(live, tmp_path):
    """Garbage first (one of each kind the fuzzers send), then DCMTK sends a file."""
    for hostile in (b"\x01\x00\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n", pdu(0x04, b"\0" * 9)):
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            _answer_to(sock, [hostile])
    path = Path(tmp_path / "good.dcm")
    path.write_bytes(PART10)
    sent = storescu(live.port, "DS1", [path], "HOSPITALPACS", "-v")
    assert "Received Store Response (Success)" in sent.stdout + sent.stderr, sent
