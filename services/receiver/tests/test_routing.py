"""Datashare resolution, as a pure function of the table and the request."""

import pytest

from edge_core.datashares import Datashare
from edge_receiver.routing import Rejection, resolve

TABLE = [
    Datashare(id="STUDY-2026-LONG-ID", ae_title="SHORTAE"),
    Datashare(id="CALLED1", ae_title="CALLED1", allowed_calling_aets=["PACS1"]),
    Datashare(id="NET1", ae_title="NET1", allowed_networks=["10.1.0.0/16", "fd00::/8"]),
    Datashare(id="OFF1", ae_title="OFF1", enabled=False),
    Datashare(id="CALLING1", ae_title="PACSX", match="calling"),
]


def route(calling: str, called: str, host: str = "127.0.0.1"):
    found = resolve(TABLE, calling, called, host, "EDGE")
    return found.id if isinstance(found, Datashare) else found.reason


@pytest.mark.parametrize(
    ("calling", "called", "host", "expected"),
    [
        ("ANY", "SHORTAE", "127.0.0.1", "STUDY-2026-LONG-ID"),  # substitute AE title
        ("ANY", "STUDY-2026-LONG-ID", "127.0.0.1", 7),  # the id is not its AE title any more
        ("PACS1", "CALLED1", "127.0.0.1", "CALLED1"),
        ("PACS2", "CALLED1", "127.0.0.1", 3),  # calling AE title not allowed
        ("ANY", "NET1", "10.1.2.3", "NET1"),
        ("ANY", "NET1", "::ffff:10.1.2.3", "NET1"),  # IPv4-mapped on a dual-stack socket
        ("ANY", "NET1", "fd00::1", "NET1"),
        ("ANY", "NET1", "10.2.0.1", 1),  # network not allowed
        ("ANY", "OFF1", "127.0.0.1", 7),  # disabled
        ("PACSX", "WHATEVER", "127.0.0.1", "CALLING1"),  # calling mode
        ("PACSY", "EDGE", "127.0.0.1", 3),  # called the receiver itself: meant calling mode
        ("PACSY", "NOSUCH", "127.0.0.1", 7),
        ("  PACSX ", " WHATEVER  ", "127.0.0.1", "CALLING1"),  # DICOM pads AE titles
        # AE titles compare as in the registry: ignoring case and surrounding spaces.
        ("ANY", " shortae ", "127.0.0.1", "STUDY-2026-LONG-ID"),
        ("pacs1", "Called1", "127.0.0.1", "CALLED1"),  # allowed_calling_aets too
        ("pacsx", "WHATEVER", "127.0.0.1", "CALLING1"),
        ("PACSY", " edge", "127.0.0.1", 3),  # the receiver's own AE title
        ("PACS1", "CALLED 1", "127.0.0.1", 7),  # inner characters still count
    ],
)
def test_resolution(calling, called, host, expected):
    assert route(calling, called, host) == expected


def test_calling_mode_only_table_rejects_with_reason_3():
    table = [Datashare(id="C1", ae_title="PACSX", match="calling")]
    found = resolve(table, "OTHER", "ANYTHING", "127.0.0.1", "EDGE")
    assert isinstance(found, Rejection) and found.reason == 3
    assert "OTHER" in found.text


def test_enabled_datashare_wins_over_a_disabled_one_with_the_same_ae_title():
    table = [
        Datashare(id="OLD", ae_title="AE1", enabled=False),
        Datashare(id="NEW", ae_title="AE1"),
    ]
    found = resolve(table, "X", "AE1", "127.0.0.1", "EDGE")
    assert isinstance(found, Datashare) and found.id == "NEW"
