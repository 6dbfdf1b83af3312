"""What the PACS is told when something is wrong: Out of Resources (0xA700) when the buffer
or the bus fails or the buffer is full, 0xC000-range for an undecodable dataset; and
duplicates and new versions of the same instance."""

import asyncio
import random
import struct

import nats as nats_client
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import SecondaryCaptureImageStorage
from receiver_testing import (
    put_datashares,
    pynetdicom_store,
    read_events,
    receiver_settings_for,
    wait_for_event,
)
from receiver_testing import (
    small_instance as instance,
)

from edge_core.datashares import Datashare
from edge_core.events import parse_event
from edge_core.topology import UPLOADER_CONSUMER
from edge_receiver.main import start
from edge_testing.servers import settings_for, start_s3, wait_until


def test_nats_down_gives_out_of_resources_then_recovers(receiver, receiver_settings, nats):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    nats.process.stop()
    wait_until(lambda: not receiver.nc.is_connected, what="receiver to notice NATS is gone")

    assert pynetdicom_store(receiver.port, "DS1", [instance()]) == [0xA700]

    nats.process.start()
    wait_until(lambda: receiver.nc.is_connected, what="receiver to reconnect")
    ds = instance(2)
    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]
    (stored,) = wait_for_event(receiver_settings, "instance.stored")
    assert stored.data.sop_instance_uid == ds.SOPInstanceUID


def test_s3_down_gives_out_of_resources_and_announces_nothing(edge_settings, nats, tmp_path):
    own_s3 = start_s3(tmp_path / "s3")  # a store of our own, to stop
    try:
        base = settings_for(nats, own_s3)
        settings = receiver_settings_for(base, tmp_path / "receiver")
        receiver = start(settings)
        try:
            put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
            own_s3.process.stop()

            assert pynetdicom_store(receiver.port, "DS1", [instance()]) == [0xA700]

            (refused,) = wait_for_event(settings, "instance.refused")
            assert (refused.data.status, refused.data.reason) == (0xA700, "store_error")
            assert not read_events(settings, "instance.stored")
        finally:
            receiver.stop(grace_s=2)
    finally:
        own_s3.process.stop()


def test_undecodable_dataset_gets_a_cannot_understand_status(receiver, receiver_settings):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    no_study = instance()
    del no_study.StudyInstanceUID
    hostile = instance()
    hostile.SeriesInstanceUID = "../../etc/passwd"  # not a UID: hashed into the key
    good = instance()

    statuses = pynetdicom_store(receiver.port, "DS1", [no_study, hostile, good])

    assert statuses[0] & 0xF000 == 0xC000
    assert statuses[1:] == [0x0000, 0x0000]
    stored = wait_for_event(receiver_settings, "instance.stored", 2)
    assert all(".." not in e.data.key and e.data.key.startswith("DS1/") for e in stored)
    (refused,) = wait_for_event(receiver_settings, "instance.refused")
    assert refused.data.reason == "invalid_dataset" and "StudyInstanceUID" in refused.data.detail
    (closed,) = wait_until(
        lambda: [
            e for e in read_events(receiver_settings, "association.closed") if e.data.instances
        ],
        what="the storing association's association.closed",
    )
    assert (closed.data.instances, closed.data.failures) == (2, 1)


def test_garbage_dataset_bytes_get_a_cannot_understand_status(
    receiver, receiver_settings, tmp_path, monkeypatch
):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    path = tmp_path / "garbage.dcm"
    instance().save_as(path, enforce_file_format=True)
    # Keep the File Meta Information (the sender reads it), replace the dataset with noise.
    part10 = path.read_bytes()
    (group_length,) = struct.unpack("<I", part10[140:144])
    path.write_bytes(part10[: 144 + group_length] + random.Random(4).randbytes(5000))
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="DS1")

    status = assoc.send_c_store(path).Status
    assoc.release()

    assert status & 0xF000 == 0xC000
    (refused,) = wait_for_event(receiver_settings, "instance.refused")
    assert refused.data.reason == "invalid_dataset"
    assert not read_events(receiver_settings, "instance.stored")


def test_resend_is_a_duplicate_and_changed_bytes_are_a_new_version(receiver, receiver_settings, s3):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    ds = instance()

    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]
    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]
    ds.PatientName = "EDGE^CHANGED"
    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]

    # Success came after JetStream's acknowledgement: the events are all there already.
    stored = read_events(receiver_settings, "instance.stored")
    assert [e.data.new_version for e in stored] == [False, True]
    assert stored[0].data.sha256 != stored[1].data.sha256
    buffer = s3.store(receiver_settings.buffer_bucket)
    assert sorted(o.key for o in buffer.list("DS1/")) == sorted(e.data.key for e in stored)


def test_full_buffer_refuses_until_drained(edge_settings, s3, tmp_path):
    settings = receiver_settings_for(
        edge_settings, tmp_path / "receiver", buffer_quota_bytes=60_000, buffer_usage_interval_s=1
    )
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        # Each instance is ~8 kB: the quota is reached after a few.
        statuses = pynetdicom_store(receiver.port, "DS1", [instance(i) for i in range(12)])
        assert statuses[0] == 0x0000 and statuses[-1] == 0xA700, [hex(s) for s in statuses]
        wait_until(
            lambda: any(e.data.refusing for e in read_events(settings, "buffer.usage")),
            what="buffer.usage saying it refuses",
        )
        (refused, *_) = read_events(settings, "instance.refused")
        assert refused.data.reason == "buffer_full"

        buffer = s3.store(settings.buffer_bucket)
        for obj in list(buffer.list()):  # what the uploader does once delivered
            buffer.delete(obj.key)

        wait_until(
            lambda: not read_events(settings, "buffer.usage")[-1].data.refusing,
            what="buffer.usage saying it accepts again",
        )
        assert pynetdicom_store(receiver.port, "DS1", [instance(99)]) == [0x0000]
    finally:
        receiver.stop(grace_s=2)


async def _deliver_like_the_uploader(settings, buffer) -> str:
    """Take one instance.stored from the uploader's consumer, delete the object, ack."""
    nc = await nats_client.connect(settings.nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(UPLOADER_CONSUMER, settings.events_stream)
        (msg,) = await sub.fetch(1, timeout=10)
        key = parse_event(msg.data).data.key
        buffer.delete(key)
        await msg.ack_sync()
        return key
    finally:
        await nc.close()


def test_resend_after_delivery_leaves_no_stray_copy(receiver, receiver_settings, s3):
    put_datashares(receiver_settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
    buffer = s3.store(receiver_settings.buffer_bucket)
    ds = instance()
    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]
    key = asyncio.run(_deliver_like_the_uploader(receiver_settings, buffer))

    assert pynetdicom_store(receiver.port, "DS1", [ds]) == [0x0000]

    wait_until(lambda: not buffer.exists(key), what="the re-sent copy nobody collects removed")
    assert len(read_events(receiver_settings, "instance.stored")) == 1
