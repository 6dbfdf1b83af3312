"""One C-STORE on a requested association, without pynetdicom's ``send_c_store``.

``send_c_store`` costs more than the C-STORE itself on a small instance: it builds the
command set as a pydicom data set and encodes it twice (once for its group length), and it
"pauses" the association's reactor by spinning (``time.sleep(0.0001)``) until that thread
notices, which with the event-driven reactor (``edge_core.dicom_reactor``) can take its
whole 50 ms wait. Here the command set is encoded directly (byte for byte what pynetdicom
sends, see ``tests/test_cstore.py``; pynetdicom encodes anything unusual), the P-DATA
fragments are exactly those of pynetdicom's ``encode_msg``, and :class:`ScuDimse` keeps the
reactor away from the response instead of pausing it.
"""

import re
from collections.abc import Iterator
from math import ceil
from pathlib import Path

from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider, _QueueItem
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from edge_core import dimse_encoding
from edge_core.dimse_encoding import p_data, ui, us

# send_c_store's default priority (PS3.7 9.1.1.1.7: 0x0002 LOW).
LOW = 2
# A UID as PS3.5 9.1 writes it: the direct encoding handles these, pynetdicom the rest.
_PLAIN_UID = re.compile(r"[0-9.]{1,64}")


class ScuDimse(DIMSEServiceProvider):
    """The DIMSE provider of an association that only sends C-STOREs.

    The association's reactor thread takes messages without blocking, to serve requests
    from the peer; pynetdicom pauses it around every request it sends, or the reactor could
    take the response first. An SCU-only association receives no requests, so here the
    reactor takes nothing and only the thread waiting for a response (blocking) gets one.
    """

    def get_msg(self, block: bool = False) -> _QueueItem:
        if not block:
            return None, None
        return super().get_msg(block=True)


def command_set(msg_id: int, sop_class: str, sop_instance: str, priority: int = LOW) -> bytes:
    """The C-STORE-RQ command set (Implicit VR Little Endian), as pynetdicom encodes it."""
    if not (_PLAIN_UID.fullmatch(sop_class) and _PLAIN_UID.fullmatch(sop_instance)):
        return _pynetdicom_command_set(msg_id, sop_class, sop_instance, priority)
    return dimse_encoding.command_set(
        (0x0002, ui(sop_class)),
        (0x0100, us(0x0001)),  # Command Field: C-STORE-RQ
        (0x0110, us(msg_id)),
        (0x0700, us(priority)),
        (0x0800, us(0x0001)),  # Command Data Set Type: present
        (0x1000, ui(sop_instance)),
    )


def _pynetdicom_command_set(msg_id: int, sop_class: str, sop_instance: str, priority: int) -> bytes:
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.AffectedSOPClassUID = sop_class
    req.AffectedSOPInstanceUID = sop_instance
    req._dataset_path = (Path(), 0)  # a data set follows (Command Data Set Type)
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    first = next(message.encode_msg(1, 0))
    return first.presentation_data_value_list[0][1][1:]


def fragments(
    context_id: int, command: bytes, path: Path, offset: int, max_pdu: int
) -> Iterator[P_DATA]:
    """The P-DATA primitives of pynetdicom's ``DIMSEMessage.encode_msg`` for a data set read
    from ``path`` at ``offset``: one PDV each, at most ``max_pdu`` (0: no limit)."""
    size = len(command) if max_pdu == 0 else max_pdu - 6
    if size <= 0:
        raise ValueError(f"maximum PDU length {max_pdu} leaves no room for a PDV")
    pieces = [command[i : i + size] for i in range(0, len(command), size)] or [b""]
    for n, piece in enumerate(pieces, 1):
        yield p_data((context_id, (b"\x03" if n == len(pieces) else b"\x01") + piece))
    with path.open("rb") as file:
        length = file.seek(0, 2) - file.seek(offset)
        size = length if max_pdu == 0 else max_pdu - 6
        for _ in range(ceil(length / size) - 1 if size else 0):
            yield p_data((context_id, b"\x00" + file.read(size)))
        yield p_data((context_id, b"\x02" + file.read(size)))


def send_c_store(
    assoc: Association,
    context_id: int,
    path: Path,
    offset: int,
    msg_id: int,
    sop_class: str,
    sop_instance: str,
) -> int | None:
    """Send the data set of ``path`` (from ``offset``) and wait for the response: its
    status, or None (the association is then aborted, or ended by the peer) if none came
    within the DIMSE timeout or it was not a valid answer to this request."""
    command = command_set(msg_id, sop_class, sop_instance)
    for primitive in fragments(context_id, command, path, offset, assoc.dimse.maximum_pdu_size):
        assoc.dul.send_pdu(primitive)
    _, rsp = assoc.dimse.get_msg(block=True)
    if (
        isinstance(rsp, C_STORE)
        and rsp.is_valid_response
        and rsp.MessageIDBeingRespondedTo == msg_id
        and rsp.Status is not None
    ):
        return rsp.Status
    if rsp is None:  # none in time (aborted then), or the peer ended the association
        assoc._handle_no_response()
    else:  # as send_c_store does with an invalid response
        assoc.abort()
    return None
