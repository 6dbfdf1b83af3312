"""Storing instances sent by DCMTK storescu: buffered, announced, then Success."""

import io
from concurrent.futures import ThreadPoolExecutor

from pydicom import dcmread
from receiver_testing import put_datashares, read_events, wait_for_event

from edge_core.datashares import Datashare
from edge_core.keys import buffer_key
from edge_testing.dcmtk import storescu
from edge_testing.dicom_data import write_small_series
from edge_testing.servers import wait_until


def test_storescu_instances_are_buffered_and_announced(receiver, receiver_settings, s3, tmp_path):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    files = write_small_series(tmp_path / "sc", 3)

    sent = storescu(receiver.port, "DS1", files)
    assert sent.returncode == 0, sent.stdout + sent.stderr

    stored = wait_for_event(receiver_settings, "instance.stored", 3)
    buffer = s3.store(receiver_settings.buffer_bucket)
    by_uid = {str(dcmread(f).SOPInstanceUID): f for f in files}
    for event in stored:
        data = event.data
        assert event.datashare == "DS1"
        source = dcmread(by_uid.pop(data.sop_instance_uid))
        assert data.key == buffer_key(
            "DS1",
            source.StudyInstanceUID,
            source.SeriesInstanceUID,
            data.sop_instance_uid,
            data.sha256,
        )
        assert buffer.sha256_of(data.key) == (data.size, data.sha256)
        got = dcmread(io.BytesIO(buffer.get_bytes(data.key)))
        assert got.PixelData == source.PixelData
        assert data.modality == "OT"
    assert not by_uid
    types = [e.type for e in read_events(receiver_settings)]
    assert "association.opened" in types


def test_unknown_called_ae_title_is_rejected_in_negotiation(receiver, receiver_settings, tmp_path):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    files = write_small_series(tmp_path / "sc", 1)

    refused = storescu(receiver.port, "NOSUCHSHARE", files)

    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "Association Rejected" in out, out
    assert "Called AE Title Not Recognized" in out, out
    (rejected,) = wait_for_event(receiver_settings, "association.rejected")
    assert rejected.datashare is None
    assert (rejected.data.calling_ae, rejected.data.called_ae) == ("HOSPITALPACS", "NOSUCHSHARE")
    assert (rejected.data.reason, rejected.data.peer_host) == (7, "127.0.0.1")
    assert not read_events(receiver_settings, "instance.stored")


def test_parallel_associations(receiver, receiver_settings, tmp_path):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    batches = [write_small_series(tmp_path / f"b{i}", 5) for i in range(4)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda files: storescu(receiver.port, "DS1", files), batches))

    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    stored = wait_for_event(receiver_settings, "instance.stored", 20)
    assert len({e.data.sop_instance_uid for e in stored}) == 20

    def sessions_closed():
        events = read_events(receiver_settings, "association.closed")
        return sorted(e.data.instances for e in events if e.data.instances)

    wait_until(lambda: sessions_closed() == [5, 5, 5, 5], what="four associations of five")
