"""DIMSE command sets and P-DATA, encoded directly.

pynetdicom builds every command set as a pydicom Dataset and encodes it twice (once for the
Command Group Length); for the receiver's plain C-STORE-RSP and the uploader's C-STORE-RQ
that costs more than the rest of the message. Command sets are always Implicit VR Little
Endian, group 0000 (PS3.7 6.3.1); each caller's tests compare the bytes with pynetdicom's."""

import struct

from pynetdicom.pdu_primitives import P_DATA


def ui(uid: str) -> bytes:
    """A UI value: ASCII, padded with NUL to even length."""
    raw = uid.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def command_set(*elements: tuple[int, bytes]) -> bytes:
    """Group 0000 from (element, value) pairs in tag order, led by its group length."""
    body = b"".join(struct.pack("<HHI", 0x0000, tag, len(value)) + value for tag, value in elements)
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def p_data(*pdvs: tuple[int, bytes]) -> P_DATA:
    """A P-DATA primitive of (presentation context ID, PDV with its control header) items."""
    primitive = P_DATA()
    primitive.presentation_data_value_list.extend(pdvs)
    return primitive
