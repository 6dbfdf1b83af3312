"""``kill -9`` of an uploader in the middle of a transfer, with a second one running: every
instance reaches the destination once, nothing is lost, nothing is left in the buffer."""

import hashlib
import io
from collections import Counter

from pydicom.uid import generate_uid

from edge_core.keys import destination_key
from edge_testing.dicom_data import make_instance


def ct_bytes(study: str, series: str, number: int) -> bytes:
    ds = make_instance(study_uid=study, series_uid=series, number=number)  # ~0.5 MB
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


async def test_kill_9_mid_transfer_with_a_second_uploader(site, destination_store, tmp_path):
    await site.add_datashare("DS1")
    env = {"EDGE_UPLOADER_CONCURRENCY": "4"}
    first = site.uploader_process(tmp_path / "first.log", **env)
    second = site.uploader_process(tmp_path / "second.log", **env)
    try:
        study, series = generate_uid(), generate_uid()
        stored = [await site.store("DS1", ct_bytes(study, series, i + 1)) for i in range(40)]
        await site.wait_for("instance.uploaded", 5)
        first.kill()  # SIGKILL: no clean-up, its messages are in flight
        first.wait()
        await site.wait_for("instance.uploaded", len(stored), timeout_s=120)
        # The killed one may have announced a delivery without freeing the buffer: its message
        # comes back to the second one after the ack wait, which finishes the job.
        assert await site.until(lambda: site.buffered() == [], 60, "an empty buffer")
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(30)
    # Exactly once: one uploaded event and one object per instance, with the right bytes.
    uploaded = site.of_type("instance.uploaded")
    assert Counter(e.data.key for e in uploaded) == Counter(s.key for s in stored)
    objects = {o.key for o in destination_store.list()}
    assert len(objects) == len(stored)
    for s in stored:
        key = destination_key("", "DS1", s.study_uid, s.series_uid, s.sop_instance_uid)
        assert key in objects
        assert hashlib.sha256(destination_store.get_bytes(key)).hexdigest() == s.sha256
    assert site.of_type("instance.dead_lettered") == []
