"""End to end, a PACS's way: a datashare created in lower case, called in upper case; a
proposal of [Explicit, Implicit] (and RLE beside it) as many PACS send; what reaches the
destination is byte for byte the dataset the PACS had, private VRs intact."""

import io

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, SecondaryCaptureImageStorage

from edge_testing.dcmtk import echoscu, storescu
from edge_testing.part10 import PRIVATE_TAG, dataset_bytes, write_instance
from edge_testing.servers import wait_until

STORESCU_CONFIG = r"""
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LittleEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[RLE]
TransferSyntax1 = RLELossless
[[PresentationContexts]]
[Pacs]
PresentationContext1 = CTImageStorage\Uncompressed
PresentationContext2 = SecondaryCaptureImageStorage\RLE
PresentationContext3 = SecondaryCaptureImageStorage\Uncompressed
[[Profiles]]
[Pacs]
PresentationContexts = Pacs
"""


def test_pacs_data_arrives_as_sent_whatever_the_case_of_the_ae_title(stack, tmp_path):
    status, body = stack.api("registry", "POST", "/api/v1/datashares", {"id": "plain-ds"})
    assert status == 201, body
    wait_until(lambda: echoscu(stack.receiver_port, "PLAIN-DS"), what="datashare to go live")
    config = tmp_path / "storescu.cfg"
    config.write_text(STORESCU_CONFIG)
    files = [
        write_instance(tmp_path / "ct.dcm", ExplicitVRLittleEndian),
        write_instance(tmp_path / "sc.dcm", RLELossless, sop_class=SecondaryCaptureImageStorage),
    ]

    sent = storescu(stack.receiver_port, " Plain-DS", files, "PACS", "-xf", str(config), "Pacs")

    assert sent.returncode == 0, sent.stdout + sent.stderr
    destination = stack.store("edge-destination")
    arrived = wait_until(
        lambda: len(found := list(destination.list("plain-ds/"))) == 2 and found,
        timeout_s=60,
        what="2 objects at the destination",
    )
    sources = {str(dcmread(f).SOPInstanceUID): f for f in files}
    for obj in arrived:
        data = destination.get_bytes(obj.key)
        got = dcmread(io.BytesIO(data))
        source = sources.pop(str(got.SOPInstanceUID))
        assert got.file_meta.TransferSyntaxUID == dcmread(source).file_meta.TransferSyntaxUID
        assert dataset_bytes(data) == dataset_bytes(source.read_bytes())
        assert got[PRIVATE_TAG].VR == "LO"
    assert not sources
