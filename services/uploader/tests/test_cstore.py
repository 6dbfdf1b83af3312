"""The direct C-STORE-RQ encoding sends exactly what pynetdicom's own path sends."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset

from edge_testing.dicom_data import write_small_series
from edge_uploader.destinations import cstore

plain_uids = st.text(alphabet="0123456789.", min_size=1, max_size=64)
# Anything a file's meta information could hold (pynetdicom then encodes it).
odd_uids = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="\\"), min_size=0, max_size=70
)
msg_ids = st.integers(0, 0xFFFF)
priorities = st.integers(0, 2)


def pynetdicom_message(msg_id: int, sop_class: str, sop_instance: str, priority: int, path: Path):
    """pynetdicom's message for ``send_c_store(path, msg_id, priority)`` with its
    ``STORE_SEND_CHUNKED_DATASET`` path (the data set read from the file)."""
    req = C_STORE()
    req.MessageID, req.Priority = msg_id, priority
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = sop_class, sop_instance
    req._dataset_path = (path, split_dataset(path)[1])
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    return message


def pdvs(primitives) -> list[tuple[int, bytes]]:
    return [pdv for p in primitives for pdv in p.presentation_data_value_list]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (path,) = write_small_series(tmp_path_factory.mktemp("cstore"), 1)
    return path


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg_id=msg_ids, sop_class=plain_uids, sop_instance=plain_uids, priority=priorities)
def test_the_command_set_is_byte_for_byte_pynetdicoms(
    instance: Path, msg_id: int, sop_class: str, sop_instance: str, priority: int
) -> None:
    assert cstore._PLAIN_UID.fullmatch(sop_class)  # the direct encoding, not the fallback
    expected = pynetdicom_message(msg_id, sop_class, sop_instance, priority, instance)
    ((_, first),) = pdvs([next(expected.encode_msg(1, 0))])
    assert cstore.command_set(msg_id, sop_class, sop_instance, priority) == first[1:]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg_id=msg_ids, sop_class=odd_uids, sop_instance=odd_uids)
def test_unusual_uids_are_encoded_by_pynetdicom(
    instance: Path, msg_id: int, sop_class: str, sop_instance: str
) -> None:
    expected = pynetdicom_message(msg_id, sop_class, sop_instance, cstore.LOW, instance)
    ((_, first),) = pdvs([next(expected.encode_msg(1, 0))])
    assert cstore.command_set(msg_id, sop_class, sop_instance) == first[1:]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    context_id=st.integers(1, 255).filter(lambda n: n % 2),
    max_pdu=st.one_of(st.just(0), st.integers(7, 300), st.integers(300, 70_000)),
    sop_instance=plain_uids,
    keep=st.integers(0, 50_000),
)
def test_the_p_data_fragments_are_pynetdicoms(
    instance: Path, tmp_path: Path, context_id: int, max_pdu: int, sop_instance: str, keep: int
) -> None:
    # Data sets of many lengths, down to empty (short ones for tiny PDUs: fewer fragments).
    data, start = instance.read_bytes(), split_dataset(instance)[1]
    path = tmp_path / "x.dcm"
    path.write_bytes(data[: start + min(keep, 3000 if 0 < max_pdu < 300 else keep)])
    offset = split_dataset(path)[1]  # as pynetdicom finds it (past a partial element)
    sop_class = "1.2.840.10008.5.1.4.1.1.7"
    expected = pynetdicom_message(9, sop_class, sop_instance, cstore.LOW, path)
    command = cstore.command_set(9, sop_class, sop_instance)
    sent = pdvs(cstore.fragments(context_id, command, path, offset, max_pdu))
    assert sent == pdvs(expected.encode_msg(context_id, max_pdu))
    # Each PDU's variable field (item length, context ID, PDV) fits the peer's maximum.
    assert max_pdu == 0 or all(4 + 1 + len(pdv) <= max_pdu for _, pdv in sent)
