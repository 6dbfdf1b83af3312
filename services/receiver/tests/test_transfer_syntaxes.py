"""Transfer-syntax negotiation: the receiver accepts, for each presentation context, the
syntax that keeps the data as sent (the proposer's first choice it supports, Explicit
before Implicit otherwise), so senders never convert and private VRs survive."""

import io
import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLosslessSV1,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    Verification,
)
from receiver_testing import put_datashares, wait_for_event

from edge_core.datashares import Datashare
from edge_testing.dcmtk import DCMTK_ENV, dcmtk, storescu
from edge_testing.part10 import PRIVATE_TAG, PRIVATE_VALUE, dataset_bytes, write_instance

# A transfer syntax Edge does not know (a vendor's private one).
UNKNOWN_SYNTAX = UID("1.2.826.0.1.3680043.10.1234.999.1")

# (abstract syntax, proposed transfer syntaxes, the one Edge must accept)
PROPOSALS = [
    (CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ExplicitVRLittleEndian),
    (MRImageStorage, [ImplicitVRLittleEndian, ExplicitVRLittleEndian], ImplicitVRLittleEndian),
    (
        SecondaryCaptureImageStorage,
        [JPEGLosslessSV1, ExplicitVRLittleEndian, ImplicitVRLittleEndian],
        JPEGLosslessSV1,
    ),
    (UltrasoundImageStorage, [RLELossless, ImplicitVRLittleEndian], RLELossless),
    (
        ComputedRadiographyImageStorage,
        [UNKNOWN_SYNTAX, ImplicitVRLittleEndian, ExplicitVRLittleEndian],
        ExplicitVRLittleEndian,
    ),
    (
        DigitalXRayImageStorageForPresentation,
        [ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian],
        ExplicitVRBigEndian,
    ),
    # The same abstract syntax again, in a context of its own (as PACS propose compressed
    # data beside uncompressed): each context still gets its own first choice.
    (CTImageStorage, [RLELossless], RLELossless),
    (MRImageStorage, [JPEGLosslessSV1, ExplicitVRLittleEndian], JPEGLosslessSV1),
]


def names(syntaxes: dict[int, str]) -> dict[int, str]:
    return {context_id: UID(uid).name for context_id, uid in syntaxes.items()}


def stored_object(s3, settings, event) -> bytes:
    return s3.store(settings.buffer_bucket).get_bytes(event.data.key)


def assert_kept_as_sent(source: Path, stored: bytes) -> None:
    """Byte for byte the source's dataset; in an explicit syntax, the private VR intact."""
    assert dataset_bytes(stored) == dataset_bytes(source.read_bytes())
    got = dcmread(io.BytesIO(stored))
    assert got.file_meta.TransferSyntaxUID == dcmread(source).file_meta.TransferSyntaxUID
    private = got[PRIVATE_TAG]
    if got.file_meta.TransferSyntaxUID.is_implicit_VR:  # no VR on the wire: raw bytes
        assert private.value == PRIVATE_VALUE.encode()
    else:
        assert (private.VR, private.value) == ("LO", PRIVATE_VALUE)


def test_pynetdicom_proposals_get_the_proposers_first_choice(
    receiver, receiver_settings, s3, tmp_path
):
    put_datashares(receiver_settings, Datashare(id="TS1", ae_title="TS1"), port=receiver.port)
    ae = AE(ae_title="HOSPITALPACS")
    for abstract, syntaxes, _ in PROPOSALS:
        ae.add_requested_context(abstract, syntaxes)
    source = write_instance(tmp_path / "ct.dcm", ExplicitVRLittleEndian)

    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="TS1")
    assert assoc.is_established
    try:
        accepted = {cx.context_id: cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
        statuses = [int(assoc.send_c_store(source).Status)]
    finally:
        assoc.release()

    # pynetdicom numbers the requested contexts 1, 3, 5...
    expected = {2 * i + 1: want for i, (_, _, want) in enumerate(PROPOSALS)}
    assert names(accepted) == names(expected)
    assert statuses == [0]
    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    assert stored.data.transfer_syntax == ExplicitVRLittleEndian
    assert_kept_as_sent(source, stored_object(s3, receiver_settings, stored))


STORESCU_CONFIG = r"""
[[TransferSyntaxes]]
[ExplicitFirst]
TransferSyntax1 = LittleEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[UncompressedDcmtkOrder]
TransferSyntax1 = LittleEndianExplicit
TransferSyntax2 = BigEndianExplicit
TransferSyntax3 = LittleEndianImplicit
[ImplicitFirst]
TransferSyntax1 = LittleEndianImplicit
TransferSyntax2 = LittleEndianExplicit
[RLEFirst]
TransferSyntax1 = RLELossless
TransferSyntax2 = LittleEndianExplicit
TransferSyntax3 = LittleEndianImplicit
[JPEGLossless]
TransferSyntax1 = JPEGLossless:Non-hierarchical-1stOrderPrediction
[[PresentationContexts]]
[Edge]
PresentationContext1 = CTImageStorage\ExplicitFirst
PresentationContext2 = CTImageStorage\JPEGLossless
PresentationContext3 = SecondaryCaptureImageStorage\RLEFirst
PresentationContext4 = SecondaryCaptureImageStorage\UncompressedDcmtkOrder
PresentationContext5 = MRImageStorage\ImplicitFirst
[[Profiles]]
[Edge]
PresentationContexts = Edge
"""


def jpeg_lossless_copy(source: Path, target: Path) -> Path:
    subprocess.run([dcmtk("dcmcjpeg"), str(source), str(target)], env=DCMTK_ENV, check=True)
    return target


def test_storescu_sends_every_file_as_it_is(receiver, receiver_settings, s3, tmp_path):
    put_datashares(receiver_settings, Datashare(id="TS2", ae_title="TS2"), port=receiver.port)
    config = tmp_path / "storescu.cfg"
    config.write_text(STORESCU_CONFIG)
    ct = write_instance(tmp_path / "ct.dcm", ExplicitVRLittleEndian)
    expected = {
        ct: ExplicitVRLittleEndian,
        jpeg_lossless_copy(
            write_instance(tmp_path / "ct2.dcm", ExplicitVRLittleEndian), tmp_path / "ct-jpeg.dcm"
        ): JPEGLosslessSV1,
        write_instance(
            tmp_path / "sc-rle.dcm", RLELossless, sop_class=SecondaryCaptureImageStorage
        ): RLELossless,
        write_instance(
            tmp_path / "sc.dcm", ExplicitVRLittleEndian, sop_class=SecondaryCaptureImageStorage
        ): ExplicitVRLittleEndian,
        write_instance(
            tmp_path / "mr.dcm", ImplicitVRLittleEndian, sop_class=MRImageStorage, modality="MR"
        ): ImplicitVRLittleEndian,
    }

    profile = ("-xf", str(config), "Edge")
    sent = storescu(receiver.port, "TS2", list(expected), "HOSPITALPACS", *profile)

    assert sent.returncode == 0, sent.stdout + sent.stderr
    events = wait_for_event(receiver_settings, "instance.stored", len(expected))
    by_uid = {e.data.sop_instance_uid: e for e in events}
    for source, syntax in expected.items():
        event = by_uid[str(dcmread(source).SOPInstanceUID)]
        assert (source.name, UID(event.data.transfer_syntax).name) == (source.name, syntax.name)
        assert_kept_as_sent(source, stored_object(s3, receiver_settings, event))


def test_contexts_the_receiver_cannot_take_are_refused_with_the_right_result(
    receiver, receiver_settings
):
    put_datashares(receiver_settings, Datashare(id="TS3", ae_title="TS3"), port=receiver.port)
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, [UNKNOWN_SYNTAX])
    ae.add_requested_context(UID("1.2.826.0.1.3680043.10.1234.999.2"), [ExplicitVRLittleEndian])

    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="TS3")
    assert assoc.is_established
    try:
        refused = {cx.context_id: cx.result for cx in assoc.rejected_contexts}
        assert int(assoc.send_c_echo().Status) == 0
    finally:
        assoc.release()

    # 0x04: transfer syntaxes not supported; 0x03: abstract syntax not supported.
    assert refused == {3: 0x04, 5: 0x03}
