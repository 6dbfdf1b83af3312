"""The C-STORE-RSP fast path (store_response): byte for byte what pynetdicom sends, taken only
when pynetdicom's path would do nothing more, and live on the receiver's associations."""

import logging

import pytest
from hypothesis import example, given, reject
from hypothesis import strategies as st
from pydicom import config
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pydicom.valuerep import validate_value
from pynetdicom import AE, evt
from pynetdicom._handlers import standard_dimse_sent_handler
from pynetdicom.dimse import _RSP_TO_MESSAGE
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.events import Event
from receiver_testing import put_datashares, small_instance

from edge_core.datashares import Datashare
from edge_receiver.store_response import dimse_sent_is_silent, encode_store_rsp, store_rsp_pdata
from edge_testing.fuzzing import fuzz_settings

# pydicom warns about the invalid UIDs some examples give it: that path is pynetdicom's.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

VALID_UIDS = st.lists(st.integers(0, 10**12).map(str), min_size=1, max_size=20).map(".".join)
UIDS = st.one_of(
    VALID_UIDS.filter(lambda uid: len(uid) <= 64),
    VALID_UIDS,  # often over 64 characters
    st.text("0123456789.", min_size=1, max_size=64),  # leading zeros, empty components
    st.text(min_size=1, max_size=64),
)
STATUSES = st.one_of(
    st.sampled_from([0x0000, 0xB000, 0xB006, 0xB007, 0xA700, 0xA900, 0xC000, 0xFFFF]),
    st.integers(0, 0xFFFF),
)


def valid_uid(uid: str) -> bool:
    """pydicom's own judgement: neither a warning nor an error when writing it."""
    try:
        validate_value("UI", uid, config.RAISE)
    except ValueError:
        return False
    return True


def _response(
    status: int, message_id: int, sop_class: str, sop_instance: str, **more: object
) -> C_STORE:
    rsp = C_STORE()
    rsp.MessageID = message_id  # set by pynetdicom's storage SCP, not part of the response
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = sop_class
    rsp.AffectedSOPInstanceUID = sop_instance
    rsp.Status = status
    for name, value in more.items():
        setattr(rsp, name, value)
    return rsp


def _pynetdicom(primitive: C_STORE, context_id: int, max_pdu: int) -> list[list[tuple[int, bytes]]]:
    """What DIMSEServiceProvider.send_msg sends: its P-DATAs' PDV lists."""
    message = _RSP_TO_MESSAGE[C_STORE]()
    message.primitive_to_message(primitive)
    return [pdata.presentation_data_value_list for pdata in message.encode_msg(context_id, max_pdu)]


@fuzz_settings(share=20)
@given(
    STATUSES,
    st.integers(0, 0xFFFF),
    UIDS,
    UIDS,
    st.integers(0, 127).map(lambda n: 2 * n + 1),
    st.one_of(st.just(0), st.integers(7, 300), st.just(16384)),
)
@example(0x0000, 1, "1.2.3", "1.2.34", 1, 16384)  # odd and even lengths
@example(0xB000, 65535, "1.2.34", "1.2.3", 255, 0)
def test_a_plain_response_is_encoded_as_pynetdicom_does(
    status, message_id, sop_class, sop_instance, context_id, max_pdu
):
    try:
        primitive = _response(status, message_id, sop_class, sop_instance)
    except ValueError:  # pynetdicom refuses such a UID in a primitive: never sent
        reject()
    fast = store_rsp_pdata(primitive, context_id, max_pdu)
    try:
        expected = _pynetdicom(primitive, context_id, max_pdu)
    except Exception:  # pynetdicom (pydicom) cannot encode it: the fast path did not try
        assert fast is None
        return
    if fast is not None:
        assert [fast.presentation_data_value_list] == expected
    # Only what pynetdicom would fragment, or a UID pydicom may warn about, takes its path.
    plain = valid_uid(sop_class) and valid_uid(sop_instance)
    assert (fast is not None) == (plain and len(expected) == 1)


@pytest.mark.parametrize(
    "more",
    [
        {"ErrorComment": "SOP Instance UID in the data set differs from the request"},
        {"OffendingElement": [0x00080018]},
        {"MessageIDBeingRespondedTo": None},  # a request
        {"AffectedSOPClassUID": None},
        {"AffectedSOPInstanceUID": None},
    ],
)
def test_anything_but_a_plain_response_is_left_to_pynetdicom(more):
    primitive = _response(0xA900, 7, "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", **more)
    assert encode_store_rsp(primitive) is None
    assert store_rsp_pdata(primitive, 1, 0) is None


def test_other_responses_are_left_to_pynetdicom():
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    echo.Status = 0
    assert encode_store_rsp(echo) is None


def test_the_receivers_associations_take_the_fast_path(receiver, receiver_settings, caplog):
    """No handler but pynetdicom's standard one on EVT_DIMSE_SENT, and that one logs
    nothing for a C-STORE-RSP (so skipping it changes nothing); any other handler bound
    turns the fast path off."""
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")
    assert assoc.is_established
    try:
        instance = small_instance()
        assert int(assoc.send_c_store(instance).Status) == 0x0000
        (ours,) = [
            a
            for a in receiver.server.active_associations
            if a.is_established and a.requestor.ae_title == "HOSPITALPACS"
        ]
        assert dimse_sent_is_silent(ours)

        message = _RSP_TO_MESSAGE[C_STORE]()
        message.primitive_to_message(_response(0, 1, instance.SOPClassUID, instance.SOPInstanceUID))
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            for handler, _ in ours.get_handlers(evt.EVT_DIMSE_SENT):
                handler(Event(ours, evt.EVT_DIMSE_SENT, {"message": message}))
        assert handler is standard_dimse_sent_handler
        assert not caplog.records

        ours.bind(evt.EVT_DIMSE_SENT, lambda event: None)
        assert not dimse_sent_is_silent(ours)
        assert int(assoc.send_c_store(small_instance()).Status) == 0x0000
    finally:
        assoc.release()
