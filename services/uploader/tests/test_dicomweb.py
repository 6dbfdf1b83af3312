"""STOW-RS to a real Orthanc with its DICOMweb plugin, which logs every instance it stores
(``counting_orthanc``), so that each test also sees how often each instance arrived."""

import hashlib

from edge_core.bus import publish
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent


def credentials(orthanc):
    return {"username": orthanc.username, "password": orthanc.password}


async def test_stow_rs_batches_a_study_and_stores_each_instance_once(site, counting_orthanc):
    orthanc = counting_orthanc
    await site.add_datashare("WEB", orthanc.dicomweb_url, credentials(orthanc))
    async with site.uploader():
        stored = await site.store_study("WEB", 5)
        uploaded = await site.wait_for("instance.uploaded", 5)
    assert {e.data.key for e in uploaded} == {s.key for s in stored}
    assert all(e.data.destination == orthanc.dicomweb_url for e in uploaded)
    for s in stored:
        (data,) = orthanc.instance_files(s.sop_instance_uid)
        assert hashlib.sha256(data).hexdigest() == s.sha256
    assert site.buffered() == []
    await orthanc.settle()
    received = orthanc.received()
    assert [received[s.sop_instance_uid] for s in stored] == [1] * 5  # each sent once


async def test_the_same_instance_again_counts_as_delivered_without_a_copy(site, counting_orthanc):
    orthanc = counting_orthanc
    await site.add_datashare("WEB", orthanc.dicomweb_url, credentials(orthanc))
    async with site.uploader():
        first = await site.store("WEB")
        await site.wait_for("instance.uploaded", 1)
        # A redelivery (the receiver announced it again, or the uploader crashed before the ack
        # and the buffered object is still there).
        await site.store("WEB", site_bytes := orthanc.instance_files(first.sop_instance_uid)[0])
        uploaded = await site.wait_for("instance.uploaded", 2)
    assert hashlib.sha256(site_bytes).hexdigest() == first.sha256
    assert len(orthanc.instance_files(first.sop_instance_uid)) == 1
    await orthanc.settle()
    assert orthanc.received()[first.sop_instance_uid] == 2  # once per announcement
    assert site.of_type("instance.failed") == []
    assert len(uploaded) == 2


async def test_wrong_password_is_dead_lettered_then_retried_once_fixed(site, counting_orthanc):
    orthanc = counting_orthanc
    await site.add_datashare("WEB", orthanc.dicomweb_url, {"username": "edge", "password": "no"})
    async with site.uploader():
        stored = await site.store("WEB")
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
        assert dead.data.attempts == 1  # 401: permanent, no pointless retries
        assert "401" in dead.data.error
        assert orthanc.instance_files(stored.sop_instance_uid) == []
        assert await site.until(lambda: site.buffered() == [dead.data.quarantine_key], 10)

        # Staff fix the credentials and ask for the dead letter to be retried.
        await site.add_datashare("WEB", orthanc.dicomweb_url, credentials(orthanc))
        request = InstanceRetryRequested(quarantine_key=dead.data.quarantine_key, requested_by="x")
        await publish(site.js, InstanceRetryRequestedEvent(datashare="WEB", data=request))
        (uploaded,) = await site.wait_for("instance.uploaded", 1)
    assert uploaded.data.key == stored.key
    assert len(orthanc.instance_files(stored.sop_instance_uid)) == 1
    assert site.buffered() == []
    await orthanc.settle()
    assert orthanc.received()[stored.sop_instance_uid] == 1


async def test_one_bad_instance_in_a_batch_fails_alone(site, counting_orthanc):
    orthanc = counting_orthanc
    await site.add_datashare("WEB", orthanc.dicomweb_url, credentials(orthanc))
    study, series = site.new_uid(), site.new_uid()
    good = [site.dicom_bytes(study, series, n) for n in (1, 2)]
    # Announced before the uploader starts, so that the three go in one STOW-RS request.
    bad = await site.announce("WEB", b"not DICOM at all" * 64, study, series, site.new_uid())
    stored = [await site.store("WEB", data) for data in good]
    async with site.uploader():
        uploaded = await site.wait_for("instance.uploaded", 2)
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
    assert {e.data.key for e in uploaded} == {s.key for s in stored}
    assert dead.data.key == bad.key
    assert dead.data.attempts == 1  # 400 for this instance: permanent
    await orthanc.settle()
    for s in stored:
        assert len(orthanc.instance_files(s.sop_instance_uid)) == 1
        assert orthanc.received()[s.sop_instance_uid] == 1
