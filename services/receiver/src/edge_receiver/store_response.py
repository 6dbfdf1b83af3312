"""The C-STORE-RSP command set, encoded directly.

pynetdicom answers each C-STORE by building a pydicom Dataset from the response primitive
and encoding it twice (once to measure the Command Group Length, once to send): about a
sixth of the receiver's CPU per small instance. A plain answer (Status, the request's
Message ID and UIDs; no Error Comment or Offending Element) is a fixed layout of six
elements, encoded here byte for byte as pydicom would (Implicit VR Little Endian, UIDs
padded with NUL to even length). Anything else is left to pynetdicom.
"""

import re
from typing import Any

from pynetdicom import evt
from pynetdicom._handlers import standard_dimse_sent_handler
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from edge_core.dimse_encoding import command_set, p_data, ui, us

# What pydicom accepts as a UI value without warning or raising (valuerep.VR_REGEXES, max
# length 64): only such UIDs take the fast path, so pydicom's validation is never skipped.
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_C_STORE_RSP = 0x8001  # Command Field
_NO_DATA_SET = 0x0101  # Command Data Set Type


def plain_uid(value: object) -> bytes | None:
    """``value`` encoded as a UI value (NUL-padded to even length), or None when pydicom
    should see it: not a str, over 64 characters, or not a valid UID."""
    if not isinstance(value, str) or len(value) > 64 or not _UID.fullmatch(value):
        return None
    return ui(value)


def _us(value: object) -> bytes | None:
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        return None
    return us(value)


def encode_store_rsp(primitive: object) -> bytes | None:
    """The Implicit VR Little Endian command set pynetdicom would send for ``primitive``, or
    None if it is not a plain C-STORE response (pynetdicom's path must encode it)."""
    if not isinstance(primitive, C_STORE) or primitive.MessageIDBeingRespondedTo is None:
        return None
    if primitive.ErrorComment is not None or primitive.OffendingElement is not None:
        return None
    sop_class = plain_uid(primitive.AffectedSOPClassUID)
    sop_instance = plain_uid(primitive.AffectedSOPInstanceUID)
    message_id = _us(primitive.MessageIDBeingRespondedTo)
    status = _us(primitive.Status)
    if sop_class is None or sop_instance is None or message_id is None or status is None:
        return None
    return command_set(
        (0x0002, sop_class),
        (0x0100, us(_C_STORE_RSP)),
        (0x0120, message_id),
        (0x0800, us(_NO_DATA_SET)),
        (0x0900, status),
        (0x1000, sop_instance),
    )


def store_rsp_pdata(primitive: object, context_id: int, max_pdu: int) -> P_DATA | None:
    """The P-DATA pynetdicom's ``encode_msg`` would send for a plain C-STORE response, or
    None. A command longer than the peer's maximum PDU allows in one PDV (pynetdicom would
    fragment it; the peer would have to take PDUs under ~200 bytes) is left to pynetdicom."""
    command = encode_store_rsp(primitive)
    if command is None or (max_pdu and len(command) + 6 > max_pdu):
        return None
    return p_data((context_id, b"\x03" + command))


def dimse_sent_is_silent(assoc: Any) -> bool:
    """Whether skipping EVT_DIMSE_SENT for a C-STORE-RSP changes nothing: no handler is
    bound but pynetdicom's standard one, which logs nothing for a C-STORE-RSP."""
    handlers = assoc.get_handlers(evt.EVT_DIMSE_SENT)
    return all(handler is standard_dimse_sent_handler for handler, _ in handlers)


def send_store_rsp(dimse: Any, primitive: object, context_id: int) -> bool:
    """Send ``primitive`` if it is a plain C-STORE response; False (nothing sent) for
    pynetdicom's ``send_msg`` to send it instead."""
    if not dimse_sent_is_silent(dimse.assoc):
        return False
    pdata = store_rsp_pdata(primitive, context_id, dimse.maximum_pdu_size)
    if pdata is None:
        return False
    dimse.dul.send_pdu(pdata)
    return True
