"""The whole path, thinly but for real: registry → receiver → buffer → uploader →
destination, watched by the monitor, driven by DCMTK storescu as a PACS would."""

import io

from pydicom import dcmread

from edge_testing.dcmtk import echoscu, storescu
from edge_testing.dicom_data import write_series
from edge_testing.servers import wait_until


def test_twenty_ct_instances_reach_the_destination(stack, tmp_path):
    status, body = stack.api(
        "registry", "POST", "/api/v1/datashares", {"id": "SKELETON1", "description": "e2e"}
    )
    assert status == 201, body

    # The receiver learns the datashare from the registry's events within moments.
    wait_until(lambda: echoscu(stack.receiver_port, "SKELETON1"), what="datashare to go live")

    files = write_series(tmp_path / "ct", 20)
    sent = storescu(stack.receiver_port, "SKELETON1", files)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "Failed" not in sent.stderr

    destination = stack.store("edge-destination")
    buffer = stack.store("edge-buffer")

    def delivered():
        return [o for o in destination.list("SKELETON1/")]

    arrived = wait_until(
        lambda: len(delivered()) == 20 and delivered(),
        timeout_s=120,
        what="20 objects at the destination",
    )
    # What arrived is what was sent: the same instances, pixel data byte for byte.
    sent_by_uid = {ds.SOPInstanceUID: ds for ds in map(dcmread, files)}
    for obj in arrived:
        got = dcmread(io.BytesIO(destination.get_bytes(obj.key)))
        assert got.PixelData == sent_by_uid.pop(got.SOPInstanceUID).PixelData
    assert not sent_by_uid
    wait_until(lambda: not list(buffer.list("SKELETON1/")), what="the buffer to drain")

    def monitored():
        code, body = stack.api("monitor", "GET", "/api/v1/datashares/SKELETON1/status")
        return (
            code == 200
            and body["instances_received"] == 20
            and body["instances_uploaded"] == 20
            and body
        )

    status_body = wait_until(monitored, timeout_s=60, what="monitor to count 20/20")
    assert status_body["instances_pending"] == 0
    assert status_body["bytes_received"] > 20 * 500_000

    refused = storescu(stack.receiver_port, "NOSUCHSHARE", files[:1])
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "Association Rejected" in out, out
    assert "Called AE Title Not Recognized" in out, out
