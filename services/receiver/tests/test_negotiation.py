"""Association negotiation with real peers: routing modes, restrictions, rejections seen by
the peer as A-ASSOCIATE-RJ with the right reason, and the association events."""

import subprocess

from pynetdicom import AE
from pynetdicom.sop_class import Verification
from receiver_testing import put_datashares, read_events, wait_for_event

from edge_core.datashares import Datashare
from edge_testing.dcmtk import DCMTK_ENV, dcmtk, storescu
from edge_testing.dcmtk import echoscu as echo
from edge_testing.dicom_data import write_small_series
from edge_testing.servers import wait_until


def pynetdicom_associate(port: int, called: str, calling: str = "HOSPITALPACS"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_calling_mode_routes_by_calling_ae_title_and_rejects_with_reason_3(
    receiver, receiver_settings, tmp_path
):
    put_datashares(receiver_settings, Datashare(id="CM1", ae_title="PACSX", match="calling"))
    files = write_small_series(tmp_path / "sc", 1)
    wait_until(lambda: echo(receiver.port, "ANYTHING", calling="PACSX"), what="calling mode live")

    accepted = storescu(receiver.port, "ANYTHING", files, calling="PACSX")
    refused = storescu(receiver.port, "EDGE", files, calling="OTHERPACS")

    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "Association Rejected" in out and "Calling AE Title Not Recognized" in out, out
    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    assert stored.datashare == "CM1" and stored.data.calling_ae == "PACSX"
    rejected = wait_for_event(receiver_settings, "association.rejected")[-1]
    assert (rejected.data.reason, rejected.data.calling_ae) == (3, "OTHERPACS")


def test_substitute_ae_title_files_under_the_datashare_id(receiver, receiver_settings, tmp_path):
    put_datashares(
        receiver_settings,
        Datashare(id="A-VERY-LONG-DATASHARE-ID-2026", ae_title="SUBST1"),
        port=receiver.port,
    )
    files = write_small_series(tmp_path / "sc", 2)

    sent = storescu(receiver.port, "SUBST1", files)

    assert sent.returncode == 0, sent.stdout + sent.stderr
    stored = wait_for_event(receiver_settings, "instance.stored", 2)
    assert {e.datashare for e in stored} == {"A-VERY-LONG-DATASHARE-ID-2026"}
    assert all(e.data.key.startswith("A-VERY-LONG-DATASHARE-ID-2026/") for e in stored)
    # (the echo that waited for the datashare to go live was an association too)
    association_id = stored[0].data.association_id
    (closed,) = [
        e
        for e in wait_for_event(receiver_settings, "association.closed", 2)
        if e.data.association_id == association_id
    ]
    assert closed.datashare == "A-VERY-LONG-DATASHARE-ID-2026"
    assert (closed.data.instances, closed.data.failures) == (2, 0)
    assert closed.data.bytes == sum(e.data.size for e in stored)
    (opened,) = [
        e
        for e in read_events(receiver_settings, "association.opened")
        if e.data.association_id == association_id
    ]
    assert opened.data.called_ae == "SUBST1" and opened.data.contexts


def test_restrictions_and_disabled_datashares_are_rejected(receiver, receiver_settings):
    put_datashares(
        receiver_settings,
        Datashare(id="OPEN1", ae_title="OPEN1"),
        Datashare(id="AETS1", ae_title="AETS1", allowed_calling_aets=["GOODPACS"]),
        Datashare(id="NETS1", ae_title="NETS1", allowed_networks=["10.0.0.0/8"]),
        Datashare(id="LOCAL1", ae_title="LOCAL1", allowed_networks=["127.0.0.0/8"]),
        Datashare(id="OFF1", ae_title="OFF1", enabled=False),
        port=receiver.port,
    )

    def reject_reason(called: str, calling: str = "HOSPITALPACS") -> int | None:
        assoc = pynetdicom_associate(receiver.port, called, calling)
        if assoc.is_established:
            assoc.release()
            return None
        assert assoc.is_rejected, "the peer must see a reject, not an abort"
        rj = assoc.acceptor.primitive
        assert (rj.result, rj.result_source) == (1, 1)
        return rj.diagnostic

    assert reject_reason("AETS1", calling="GOODPACS") is None
    assert reject_reason("AETS1", calling="BADPACS") == 3
    assert reject_reason("NETS1") == 1
    assert reject_reason("LOCAL1") is None
    assert reject_reason("OFF1") == 7
    rejected = wait_for_event(receiver_settings, "association.rejected", 3)
    assert sorted(e.data.reason for e in rejected) == [1, 3, 7]
    assert all(e.data.peer_host == "127.0.0.1" and e.data.reason_text for e in rejected)


def test_a_datashare_created_later_is_routed_without_restart(receiver, receiver_settings):
    assert not echo(receiver.port, "LATER1")
    put_datashares(receiver_settings, Datashare(id="LATER1", ae_title="LATER1"), port=receiver.port)
    put_datashares(
        receiver_settings, Datashare(id="LATER1", ae_title="LATER1", enabled=False, revision=2)
    )
    wait_until(lambda: not echo(receiver.port, "LATER1"), what="disabled datashare refused")


def dcmtk_echo(port: int, called: str, calling: str = "HOSPITALPACS") -> str:
    """echoscu's whole output; empty when the echo succeeded."""
    result = subprocess.run(
        [dcmtk("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr + "(failed)"


def test_ae_titles_match_ignoring_case_and_surrounding_spaces(
    receiver, receiver_settings, tmp_path
):
    put_datashares(
        receiver_settings,
        Datashare(id="plain-ds", ae_title="plain-ds"),
        Datashare(id="calling-ds", ae_title="pacs-a", match="calling"),
        Datashare(id="aets-ds", ae_title="aets-ds", allowed_calling_aets=["goodpacs"]),
        port=receiver.port,
    )
    files = write_small_series(tmp_path / "sc", 1)

    # The way the registry compares them: case and surrounding spaces do not count.
    for called in ("PLAIN-DS", " plain-ds ", "Plain-Ds  "):
        assert dcmtk_echo(receiver.port, called) == "", called
    for calling in ("PACS-A", " pacs-a ", "Pacs-A"):
        assert dcmtk_echo(receiver.port, "ANYTHING", calling=calling) == "", calling
    assert dcmtk_echo(receiver.port, "AETS-DS", calling=" GOODPACS") == ""
    sent = storescu(receiver.port, " PLAIN-DS", files)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    assert stored.datashare == "plain-ds"

    # A genuinely different title is still refused, with the reason for its mode.
    assert "Called AE Title Not Recognized" in dcmtk_echo(receiver.port, "PLAIN-DX")
    assert "Calling AE Title Not Recognized" in dcmtk_echo(receiver.port, "edge", "PACS-B")
    assert "Calling AE Title Not Recognized" in dcmtk_echo(receiver.port, "aets-ds", "BADPACS")
    rejected = wait_for_event(receiver_settings, "association.rejected", 3)
    assert sorted(e.data.reason for e in rejected) == [3, 3, 7]
