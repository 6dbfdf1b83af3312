"""Delivery to S3 destinations: the default bucket and a datashare's own bucket and prefix."""

import hashlib
import uuid

from edge_core.keys import destination_key


async def test_delivers_to_the_default_bucket_then_frees_the_buffer(
    site, destination_store, destination_puts
):
    await site.add_datashare("DS1")
    async with site.uploader():
        stored = await site.store_study("DS1", 3)
        uploaded = await site.wait_for("instance.uploaded", 3)
    assert {e.data.key for e in uploaded} == {s.key for s in stored}
    assert all(not e.data.already_present for e in uploaded)
    assert all(e.data.destination == site.settings.default_destination for e in uploaded)
    for s in stored:
        key = destination_key("", "DS1", s.study_uid, s.series_uid, s.sop_instance_uid)
        data = destination_store.get_bytes(key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (s.size, s.sha256)
    assert len(list(destination_store.list())) == 3  # one object per SOP Instance
    assert sorted(destination_puts().values()) == [1, 1, 1]  # each written once
    assert site.buffered() == []
    assert site.of_type("instance.failed") == []


async def test_datashare_bucket_prefix_and_credentials(site, s3):
    bucket = f"other-{uuid.uuid4().hex[:8]}"
    other = s3.store(bucket)
    credentials = {"access_key": s3.access_key, "secret_key": s3.secret_key}
    await site.add_datashare("DS2", f"s3://{bucket}/in/coming", credentials)
    # The site-wide keys are wrong: only the datashare's own credentials can work.
    async with site.uploader(destination_s3_access_key="nobody"):
        stored = await site.store("DS2")
        await site.wait_for("instance.uploaded", 1)
    key = destination_key(
        "in/coming", "DS2", stored.study_uid, stored.series_uid, stored.sop_instance_uid
    )
    assert key.startswith("in/coming/DS2/")
    assert hashlib.sha256(other.get_bytes(key)).hexdigest() == stored.sha256


async def test_identical_object_already_there_counts_as_delivered(
    site, destination_store, destination_puts
):
    await site.add_datashare("DS1")
    data = site.dicom_bytes(site.new_uid(), site.new_uid())
    async with site.uploader():
        await site.store("DS1", data)
        await site.wait_for("instance.uploaded", 1)
        await site.store("DS1", data)  # announced again (a new event for the same bytes)
        first, again = await site.wait_for("instance.uploaded", 2)
    assert (first.data.already_present, again.data.already_present) == (False, True)
    assert len(list(destination_store.list())) == 1
    assert list(destination_puts().values()) == [1]  # found there: not written again


async def test_wrong_keys_are_a_permanent_failure(site, destination_store):
    await site.add_datashare("DS1", None, {"access_key": "nobody", "secret_key": "wrong"})
    async with site.uploader():
        stored = await site.store("DS1")
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
    assert dead.data.attempts == 1 and dead.data.key == stored.key
    assert list(destination_store.list()) == []
