"""The File Meta Information of each spool file, written directly.

pynetdicom starts each spooled C-STORE dataset with a preamble, ``DICM`` and a File Meta
group it builds as a pydicom Dataset and writes with ``write_file_meta_info``: about a
twelfth of the receiver's CPU per small instance, for seven elements of fixed layout.
:class:`SpoolingMessage` (the DIMSE provider's message being assembled) decodes the command
set's last fragment as pynetdicom does, but writes that group itself, byte for byte what
pydicom writes; every other fragment, and any UID pydicom would warn about, goes through
pynetdicom and pydicom as before.
"""

import struct
from io import BytesIO
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, _config
from pynetdicom.dimse_messages import _MESSAGE_TYPES, C_STORE_RQ, DIMSEMessage
from pynetdicom.dsutils import create_file_meta, decode
from pynetdicom.pdu_primitives import P_DATA

from edge_core.dimse_encoding import p_data
from edge_receiver.store_response import plain_uid


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    """A group 2 element, Explicit VR Little Endian (OB: reserved bytes, 4-byte length)."""
    if vr == b"OB":
        return struct.pack("<HH2sHI", 2, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 2, element, vr, len(value)) + value


def _sh(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


_IMPLEMENTATION = _explicit(
    0x0012, b"UI", cast(bytes, plain_uid(PYNETDICOM_IMPLEMENTATION_UID))
) + _explicit(0x0013, b"SH", _sh(PYNETDICOM_IMPLEMENTATION_VERSION))


def file_meta(sop_class: object, sop_instance: object, transfer_syntax: object) -> bytes | None:
    """Preamble, ``DICM`` and the File Meta group as pynetdicom writes them
    (``create_file_meta`` + ``write_file_meta_info``), or None if a UID is one pydicom
    should see (not a plain valid UID: pydicom may warn, raise or write it otherwise)."""
    uids = [plain_uid(uid) for uid in (sop_class, sop_instance, transfer_syntax)]
    if None in uids:
        return None
    sop_class_uid, sop_instance_uid, syntax_uid = cast(list[bytes], uids)
    group = b"".join(
        (
            _explicit(0x0001, b"OB", b"\x00\x01"),
            _explicit(0x0002, b"UI", sop_class_uid),
            _explicit(0x0003, b"UI", sop_instance_uid),
            _explicit(0x0010, b"UI", syntax_uid),
            _IMPLEMENTATION,
        )
    )
    length = struct.pack("<HH2sHI", 2, 0x0000, b"UL", 4, len(group))
    return b"\0" * 128 + b"DICM" + length + group


class SpoolingMessage(DIMSEMessage):
    """A DIMSE message whose C-STORE dataset is spooled under a directly written File Meta.

    pynetdicom's ``decode_msg`` turns the message into its concrete class (``C_STORE_RQ``,
    ...) on the command set's last fragment; this class only handles the P-DATA carrying
    that fragment, repeating pynetdicom's steps (3.0.x, pinned) for it."""

    def __init__(self) -> None:
        # DIMSEMessage.__init__ less its per-class command keywords (it knows only its own
        # class names).
        self.context_id: int | None = None
        self.encoded_command_set = BytesIO()
        self.data_set: BytesIO | None = BytesIO()
        self.command_set = Dataset()
        self._data_set_path: Path | tuple[Path, int] | None = None
        self._data_set_file: Any = None

    def decode_msg(self, primitive: P_DATA, assoc: Any = None) -> bool:
        if primitive.__class__ is not P_DATA:
            return super().decode_msg(primitive, assoc)
        pdvs = primitive.presentation_data_value_list
        last = next((i for i, (_, data) in enumerate(pdvs) if data[:1] and data[0] & 3 == 3), None)
        if last is None:  # no end of the command set here
            return super().decode_msg(primitive, assoc)
        # Fragments before it, and after it (dataset), are pynetdicom's to decode.
        if last and DIMSEMessage.decode_msg(self, p_data(*pdvs[:last]), assoc):
            return True
        context_id, data = pdvs[last]
        self.encoded_command_set.write(data[1:])
        self.context_id = context_id
        self.command_set = decode(self.encoded_command_set, True, True)
        concrete = _MESSAGE_TYPES[cast(int, self.command_set.CommandField)][1]
        self.__class__ = concrete  # type: ignore[assignment]
        if self.command_set.CommandDataSetType == 0x0101:
            return True
        if _config.STORE_RECV_CHUNKED_DATASET and isinstance(self, C_STORE_RQ):
            _spool(self, context_id, assoc)
        rest = pdvs[last + 1 :]
        return bool(rest) and DIMSEMessage.decode_msg(self, p_data(*rest), assoc)


def _spool(message: DIMSEMessage, context_id: int, assoc: Any) -> None:
    """pynetdicom's spool file for a C-STORE-RQ's dataset, its File Meta written here (a
    function: by now the message is a C_STORE_RQ, no longer a SpoolingMessage)."""
    spool = NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")
    message._data_set_file = spool  # type: ignore[assignment]
    message._data_set_path = Path(spool.name)
    # Looked up in pynetdicom's order: a hostile command raises what it raised before.
    syntax = assoc._accepted_cx[context_id].transfer_syntax[0]
    sop_class = message.command_set.AffectedSOPClassUID
    sop_instance = message.command_set.AffectedSOPInstanceUID
    meta = file_meta(sop_class, sop_instance, syntax)
    if meta is not None:
        spool.write(meta)
        return
    spool.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(
        spool,  # type: ignore[arg-type]
        create_file_meta(
            sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
        ),
    )
