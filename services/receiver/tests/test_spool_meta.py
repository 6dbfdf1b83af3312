"""The spool file's File Meta (spool_meta): byte for byte what pynetdicom writes, and a
SpoolingMessage decodes any split of a message into P-DATAs as pynetdicom's DIMSEMessage."""

import io
import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom import config, dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import AllTransferSyntaxes, SecondaryCaptureImageStorage
from pydicom.valuerep import validate_value
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dsutils import create_file_meta, encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import build_context
from receiver_testing import put_datashares, wait_for_event

from edge_core.datashares import Datashare
from edge_receiver.spool_meta import SpoolingMessage, file_meta
from edge_testing.dcmtk import storescu
from edge_testing.dicom_data import write_small_series
from edge_testing.fuzzing import fuzz_settings
from edge_testing.part10 import dataset_bytes

# pydicom warns about the invalid UIDs some examples give it: that path is pydicom's.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

VALID_UIDS = st.lists(st.integers(0, 10**12).map(str), min_size=1, max_size=20).map(".".join)
UIDS = st.one_of(
    VALID_UIDS.filter(lambda uid: len(uid) <= 64),
    VALID_UIDS,  # often over 64 characters
    st.text("0123456789.", max_size=64),  # leading zeros, empty components
    st.text(st.characters(max_codepoint=255), max_size=64),
)
SYNTAXES = st.sampled_from(sorted(AllTransferSyntaxes))


def valid_uid(uid: str) -> bool:
    try:
        validate_value("UI", uid, config.RAISE)
    except ValueError:
        return False
    return bool(uid)


def pynetdicom_meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    """What pynetdicom's decode_msg writes at the start of a spool file."""
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    meta = create_file_meta(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
    )
    write_file_meta_info(out, meta)  # type: ignore[arg-type]
    return out.getvalue()


@fuzz_settings(share=20)
@given(UIDS, UIDS, SYNTAXES)
@example("1.2.3", "1.2.34", "1.2.840.10008.1.2.1")  # odd and even lengths
@example("1.2.34", "1.2.3", "1.2.840.10008.1.2")
def test_the_file_meta_is_written_as_pydicom_does(sop_class, sop_instance, syntax):
    fast = file_meta(sop_class, sop_instance, syntax)
    try:
        expected = pynetdicom_meta(sop_class, sop_instance, syntax)
    except Exception:  # pydicom cannot write it: the fast path did not try
        assert fast is None
        return
    assert fast is None or fast == expected
    # Anything pydicom may warn about (or treat otherwise) is pydicom's to write.
    assert (fast is not None) == (valid_uid(sop_class) and valid_uid(sop_instance))


# --- Decoding whole messages ---------------------------------------------------------------


def _command(kind: str, sop_class: str, sop_instance: str) -> bytes:
    """A C-STORE-RQ (with a dataset) or C-ECHO-RQ command set, any UIDs, as pydicom encodes
    it (pynetdicom's primitives would refuse some of these UIDs: a hostile peer need not)."""
    cs = Dataset()
    cs.CommandGroupLength = 0
    cs.AffectedSOPClassUID = sop_class
    if kind == "store":
        cs.CommandField, cs.MessageID, cs.Priority = 0x0001, 7, 2
        cs.CommandDataSetType = 0x0001
        cs.AffectedSOPInstanceUID = sop_instance
    else:
        cs.CommandField, cs.MessageID, cs.CommandDataSetType = 0x0030, 7, 0x0101
    cs.CommandGroupLength = len(encode(cs, True, True)) - 12
    return encode(cs, True, True)


def _split(seq, cuts: list[int]) -> list:
    """``seq`` (not empty) cut into non-empty pieces at ``cuts`` (modulo its length)."""
    edges = [0, *sorted({c % len(seq) for c in cuts} - {0}), len(seq)]
    return [seq[a:b] for a, b in itertools.pairwise(edges)]


def _pdvs(data: bytes, cuts: list[int], more: int, last: int) -> list[tuple[int, bytes]]:
    """``data`` as PDVs of context 1, their control header ``more`` but for the ``last``."""
    parts = _split(data, cuts)
    return [(1, bytes([last if i == len(parts) - 1 else more]) + p) for i, p in enumerate(parts)]


def _decode(message_class: type[DIMSEMessage], pdatas: list[P_DATA], assoc: Association):
    """Feed P-DATAs as the DIMSE provider does, until one completes the message."""
    message = message_class()
    returned = []
    for pdata in pdatas:
        returned.append(message.decode_msg(pdata, assoc))
        if returned[-1]:
            break
    spool = message._data_set_file
    spooled = None
    if spool is not None:
        spool.close()
        spooled = Path(spool.name).read_bytes()
        Path(spool.name).unlink()
    return returned, type(message), message.command_set, spooled, message.data_set.getvalue()


@pytest.fixture
def assoc(monkeypatch, tmp_path) -> Association:
    """A real pynetdicom acceptor with presentation context 1 accepted (in ``syntax``)."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return Association(AE(), "acceptor")


@fuzz_settings(share=10)
@given(
    st.sampled_from(["store", "echo"]),
    UIDS,
    UIDS,
    SYNTAXES,
    st.binary(min_size=1, max_size=300),
    st.lists(st.integers(0, 400), max_size=4),  # command fragments
    st.lists(st.integers(0, 400), max_size=4),  # dataset fragments
    st.lists(st.integers(0, 12), max_size=6),  # where one P-DATA ends and the next begins
)
def test_any_split_of_a_message_decodes_as_pynetdicom_does(
    assoc, kind, sop_class, sop_instance, syntax, data, command_cuts, data_cuts, pdata_cuts
):
    context = build_context(SecondaryCaptureImageStorage, syntax)
    context.context_id = 1
    assoc._accepted_cx = {1: context}
    try:
        command = _command(kind, sop_class, sop_instance)
    except Exception:  # pydicom cannot encode such a value: no peer could send it either
        return
    pdvs = _pdvs(command, command_cuts, 0x01, 0x03)
    if kind == "store":
        pdvs += _pdvs(data, data_cuts, 0x00, 0x02)
    pdatas = []
    for group in _split(pdvs, pdata_cuts):
        pdatas.append(P_DATA())
        pdatas[-1].presentation_data_value_list.extend(group)

    def decoded(message_class):
        try:
            return _decode(message_class, pdatas, assoc)
        except Exception as exc:  # the same failure, if pynetdicom's fails
            return repr(exc)

    assert decoded(SpoolingMessage) == decoded(DIMSEMessage)


def test_a_buffered_instance_is_the_file_meta_pynetdicom_writes_and_the_data_as_sent(
    receiver, receiver_settings, s3, tmp_path
):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    (path,) = write_small_series(tmp_path / "sc", 1)
    sent = storescu(receiver.port, "DS1", [path])
    assert sent.returncode == 0, sent.stdout + sent.stderr

    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    source = dcmread(path)
    expected = pynetdicom_meta(
        source.SOPClassUID, source.SOPInstanceUID, source.file_meta.TransferSyntaxUID
    )
    buffered = s3.store(receiver_settings.buffer_bucket).get_bytes(stored.data.key)
    assert buffered == expected + dataset_bytes(path.read_bytes())
