"""A SOP Instance re-sent with other bytes is a new version: every kind of destination ends with
the newest one received, even when an older, larger one is still being delivered."""

import asyncio
import contextlib
import hashlib
import io
import json

from nats.js.errors import KeyNotFoundError
from pydicom import dcmread
from pynetdicom.dsutils import split_dataset

from edge_core.keys import destination_key
from edge_core.topology import UPLOADER_CONSUMER, VERSIONS_BUCKET
from edge_testing.dicom_data import make_instance
from edge_uploader.versions import Claim, Decision, Versions, version_key

DELIVER, WAIT, SUPERSEDED = Decision.DELIVER, Decision.WAIT, Decision.SUPERSEDED


async def test_claims_let_one_version_out_at_a_time_newest_last(site):
    kv = await site.js.key_value(VERSIONS_BUCKET)
    a, b = Versions(kv), Versions(kv)  # two uploaders
    sop = site.new_uid()
    assert await a.claim("DS1", sop, 10) == Claim(DELIVER, 10)  # v1 on its way
    assert await b.claim("DS1", sop, 20) == Claim(WAIT, 20)  # v2 must not land before v1
    await a.release("DS1", sop, 10)  # v1 delivered
    assert await b.claim("DS1", sop, 20) == Claim(DELIVER, 20)
    assert await a.claim("DS1", sop, 10) == Claim(SUPERSEDED, 20)  # v1's message again
    await b.release("DS1", sop, 20)
    assert await a.claim("DS1", sop, 20) == Claim(DELIVER, 20)  # v2 again: harmless
    await a.release("DS1", sop, 20)
    assert await a.claim("DS1", sop, 15) == Claim(SUPERSEDED, 20)
    # Another datashare's instance of the same UID is another instance.
    assert await a.claim("DS2", sop, 15) == Claim(DELIVER, 15)


async def test_release_by_the_claims_revision_keeps_a_newer_version_known(site):
    """Release skips its read while the record is as the claim left it; once a newer version
    was noted meanwhile, it must keep that one as the newest (not blindly write its own)."""
    kv = await site.js.key_value(VERSIONS_BUCKET)
    a, b = Versions(kv), Versions(kv)
    sop = site.new_uid()
    v1 = await a.claim("DS1", sop, 10)
    assert (v1.decision, v1.first) == (DELIVER, True) and v1.revision > 0
    await a.release("DS1", sop, 10, v1.revision)  # unchanged: released without a read
    assert json.loads((await kv.get(version_key("DS1", sop))).value) == {
        "newest": 10,
        "active": None,
    }
    v1 = await a.claim("DS1", sop, 10)  # redelivered: claimed again
    assert await b.claim("DS1", sop, 20) == Claim(WAIT, 20)  # v2 noted meanwhile
    await a.release("DS1", sop, 10, v1.revision)  # stale revision: read, then release
    assert await a.claim("DS1", sop, 15) == Claim(SUPERSEDED, 20)
    assert await b.claim("DS1", sop, 20) == Claim(DELIVER, 20)


async def test_a_crashed_delivery_is_superseded_when_its_message_comes_back(site):
    kv = await site.js.key_value(VERSIONS_BUCKET)
    crashed, alive = Versions(kv), Versions(kv)
    sop = site.new_uid()
    assert (await crashed.claim("DS1", sop, 10)).decision is DELIVER  # then kill -9: no release
    assert (await alive.claim("DS1", sop, 20)).decision is WAIT
    assert (await alive.claim("DS1", sop, 30)).decision is WAIT  # v3 waits for v1 too
    assert await alive.claim("DS1", sop, 20) == Claim(SUPERSEDED, 30)  # v2 never sent
    assert (await alive.claim("DS1", sop, 30)).decision is WAIT  # v1 may still be landing
    # v1's message comes back after the ack wait: it is superseded and lets v3 go.
    assert await alive.claim("DS1", sop, 10) == Claim(SUPERSEDED, 30)
    assert (await alive.claim("DS1", sop, 30)).decision is DELIVER


async def test_concurrent_claims_agree_on_one_delivery(site):
    kv = await site.js.key_value(VERSIONS_BUCKET)
    uploaders = [Versions(kv) for _ in range(4)]
    sop = site.new_uid()
    claims = await asyncio.gather(
        *(uploaders[seq % 4].claim("DS1", sop, seq) for seq in range(1, 21))
    )
    assert [c.decision for c in claims].count(DELIVER) == 1
    # Whichever got it, the newest is now known to all, and it goes once that one is released.
    (first,) = [seq for seq, c in enumerate(claims, 1) if c.decision is DELIVER]
    await uploaders[0].release("DS1", sop, first)
    assert await uploaders[1].claim("DS1", sop, 20) == Claim(DELIVER, 20)


# --- v1 large, then a corrected v2 small, through the real uploader ------------------------


def two_versions(site) -> tuple[bytes, bytes]:
    """v1 of about 32 MB (it takes a while to deliver), then v2, a small correction."""
    study, series, sop = site.new_uid(), site.new_uid(), site.new_uid()
    uids = {"study_uid": study, "series_uid": series, "number": 1, "sop_uid": sop}
    v1 = make_instance(**uids, rows=4000, columns=4000)
    v2 = make_instance(**uids, rows=64, columns=64)
    v2.PatientName = "EDGE^CORRECTED"
    return _file(v1), _file(v2)


def _file(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


async def send_v1_then_v2(site, ds_id: str):
    """Announce v1 and, as soon as an uploader has taken it, v2: both are then in flight
    together, and v2, far smaller, would finish first if nothing ordered them."""
    v1, v2 = two_versions(site)
    async with site.uploader():
        first = await site.store(ds_id, v1)
        for _ in range(6000):  # polled: taking a message leaves no event to wait on
            info = await site.js.consumer_info(site.settings.events_stream, UPLOADER_CONSUMER)
            if info.delivered.consumer_seq >= 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise TimeoutError("no uploader took v1")
        second = await site.store(ds_id, v2)
        await site.until(
            lambda: resolved(site) >= {first.key, second.key}, 120, "both versions resolved"
        )
    uploaded = [e.data.key for e in site.of_type("instance.uploaded")]
    superseded = [e.data.key for e in site.of_type("instance.superseded")]
    assert uploaded.count(second.key) == 1 and superseded == []  # v2 is never superseded
    assert uploaded.count(first.key) + superseded.count(first.key) == 1
    assert site.of_type("instance.failed") == []
    assert site.buffered() == []
    return second, v2


def resolved(site) -> set[str]:
    kinds = ("instance.uploaded", "instance.superseded")
    return {e.data.key for e in site.events if e.type in kinds}


async def test_s3_ends_with_the_newest_version(site, destination_store, destination_puts):
    await site.add_datashare("DS1")
    second, v2 = await send_v1_then_v2(site, "DS1")
    key = destination_key("", "DS1", second.study_uid, second.series_uid, second.sop_instance_uid)
    assert [o.key for o in destination_store.list()] == [key]
    assert destination_store.get_bytes(key) == v2
    assert destination_puts()[key] <= 2  # v1 (unless superseded before it went), then v2


async def test_stow_rs_ends_with_the_newest_version(site, counting_orthanc):
    orthanc = counting_orthanc
    credentials = {"username": orthanc.username, "password": orthanc.password}
    await site.add_datashare("WEB", orthanc.dicomweb_url, credentials)
    second, v2 = await send_v1_then_v2(site, "WEB")
    assert orthanc.instance_files(second.sop_instance_uid) == [v2]


async def test_c_store_ends_with_the_newest_version(site, start_storescp, tmp_path):
    # Without +uf storescp writes a re-sent SOP Instance over the file of the previous one.
    scp = start_storescp()
    await site.add_datashare("PACS", scp.url)
    second, v2 = await send_v1_then_v2(site, "PACS")
    (received,) = scp.files()
    assert dcmread(received).SOPInstanceUID == second.sop_instance_uid
    (sent := tmp_path / "v2.dcm").write_bytes(v2)
    assert data_set_digest(received) == data_set_digest(sent)


def data_set_digest(path) -> str:
    """Of the data set after the file meta information, as it travels in a C-STORE."""
    _, offset = split_dataset(path)
    return hashlib.sha256(path.read_bytes()[offset:]).hexdigest()


async def test_an_uploader_killed_while_sending_v1_never_lets_v1_overwrite_v2(
    site, start_storescp, tmp_path
):
    # A slow peer (about 6 s a C-STORE) keeps v1 under way; without +uf storescp writes a
    # re-sent SOP Instance over the previous one.
    scp = start_storescp("--sleep-during", "2")
    await site.add_datashare("PACS", scp.url)
    v1, v2 = two_versions(site)
    slow_peer = {"EDGE_UPLOADER_TIMEOUT_S": "60"}
    first = site.uploader_process(tmp_path / "first.log", **slow_peer)
    try:
        stored1 = await site.store("PACS", v1)
        kv = await site.js.key_value(VERSIONS_BUCKET)
        key = version_key("PACS", stored1.sop_instance_uid)
        for _ in range(6000):  # v1 claimed: it is on its way to the peer
            with contextlib.suppress(KeyNotFoundError):
                if json.loads((await kv.get(key)).value or b"{}").get("active"):
                    break
            await asyncio.sleep(0.01)
        else:
            raise TimeoutError("v1 was never claimed")
        first.kill()  # SIGKILL mid-delivery: v1's claim is never released
        first.wait()
    finally:
        first.kill()
    stored2 = await site.store("PACS", v2)
    second = site.uploader_process(tmp_path / "second.log", **slow_peer)
    try:
        # v2 waits until v1's message comes back (after the ack wait) and is superseded.
        (superseded,) = await site.wait_for("instance.superseded", 1, timeout_s=90)
        (uploaded,) = await site.wait_for("instance.uploaded", 1, timeout_s=90)
    finally:
        second.terminate()
        second.wait(30)
    assert (superseded.data.key, uploaded.data.key) == (stored1.key, stored2.key)
    assert superseded.data.newer_stream_seq > superseded.data.stream_seq
    assert uploaded.time > superseded.time  # v2 went only once v1 could no longer land
    (received,) = scp.files()
    (sent := tmp_path / "v2.dcm").write_bytes(v2)
    assert data_set_digest(received) == data_set_digest(sent)
    assert await site.until(lambda: site.buffered() == [], 30, "an empty buffer")
