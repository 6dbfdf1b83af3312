"""Orphans: a C-STORE refused after its buffer write leaves an object no event names; the
reconciler removes it after the grace period and reports it, and never touches an object
whose instance.stored event exists, however old."""

import asyncio
import io
import time
from dataclasses import replace
from datetime import timedelta

from pydicom import dcmread
from pynetdicom import AE

from edge_core.events import BufferUsageEvent
from edge_core.keys import buffer_key
from edge_core.topology import ensure_stream
from edge_embedded.ports import free_ports
from edge_receiver.config import ReceiverSettings
from edge_receiver.main import start
from edge_testing.dcmtk import echoscu
from edge_uploader.orphans import Reconciler

GRACE_S = 1.0


def reconciler(site) -> Reconciler:
    s = site.settings
    return Reconciler(
        site.js, site.buffer, s.events_stream, GRACE_S, s.events_duplicate_window_s,
        s.events_max_age_s, name="test",
    )  # fmt: skip


def c_store(port: int, data: bytes) -> int:
    ds = dcmread(io.BytesIO(data))
    ae = AE(ae_title="PACS")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="ORPH")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


async def test_a_refused_store_leaves_an_orphan_that_is_removed_after_the_grace(site, tmp_path):
    settings = ReceiverSettings(
        **{**site.settings.model_dump(), "receiver_host": "127.0.0.1",
           "receiver_port": free_ports(1)[0], "data_dir": tmp_path / "receiver",
           "buffer_quota_bytes": 10**9, "buffer_usage_interval_s": 1.0},
    )  # fmt: skip
    await site.add_datashare("ORPH")
    receiver = await asyncio.to_thread(start, settings)
    try:
        await site.until(lambda: echoscu(receiver.port, "ORPH"), what="datashare live")
        kept = site.dicom_bytes(site.new_uid(), site.new_uid())
        assert await asyncio.to_thread(c_store, receiver.port, kept) == 0x0000

        # A stream that refuses every event: the buffer write succeeds, the publish fails.
        info = await site.js.stream_info(site.settings.events_stream)
        await site.js.update_stream(replace(info.config, max_msg_size=64))
        lost = site.dicom_bytes(site.new_uid(), site.new_uid(), rows=128)
        assert await asyncio.to_thread(c_store, receiver.port, lost) == 0xA700
        await ensure_stream(site.js, site.settings)  # events accepted again

        (stored,) = await site.wait_for("instance.stored", 1)
        assert len(site.buffered()) == 2
        orphan = next(o for o in site.buffer.list() if o.key != stored.data.key)
        # Within the grace period nothing is removed.
        assert await reconciler(site).sweep(orphan.modified) == []

        two = reconciler(site), reconciler(site)  # two uploaders at once
        removed = await _sweep_until_removed(*two)
        assert [r.key for r in removed] == [orphan.key]
        assert orphan.key not in site.buffered()
        (event,) = await site.wait_for("buffer.orphan_removed", 1)
        assert (event.data.key, event.data.size, event.datashare) == (
            orphan.key,
            orphan.size,
            "ORPH",
        )

        # The object whose event exists stays, however old it is.
        later = orphan.modified + timedelta(days=1)
        assert await reconciler(site).sweep(later) == []
        assert site.buffered() == [stored.data.key]

        # The receiver's usage is back down to the one object left.
        def usage_down() -> bool:
            usage = [e for e in site.events if isinstance(e, BufferUsageEvent)]
            return bool(usage) and usage[-1].data.objects == 1

        await site.until(usage_down, what="buffer.usage with one object")
        await asyncio.sleep(0.5)  # a second report of the same event id would show up here
        assert len(site.of_type("buffer.orphan_removed")) == 1
    finally:
        await asyncio.to_thread(receiver.stop, 2)


async def _sweep_until_removed(*reconcilers: Reconciler):
    """Sweep with every reconciler at once until something is removed (write times have a
    resolution of one second); all that any of them removed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        results = await asyncio.gather(*(r.sweep() for r in reconcilers))
        removed = [o for result in results for o in result]
        if removed:
            return list({o.key: o for o in removed}.values())
        await asyncio.sleep(0.2)
    raise TimeoutError("nothing removed")


async def test_an_orphan_written_again_meanwhile_is_kept(site):
    """The PACS's retry rewrites the same key: the reconciler looks again before deleting."""
    data = site.dicom_bytes(site.new_uid(), site.new_uid())
    key = buffer_key("ORPH", "1.2", "1.2.3", "1.2.3.4", "ab" * 32)
    site.buffer.put_bytes(key, data)
    (listed,) = list(site.buffer.list())
    stale = replace(listed, modified=listed.modified - timedelta(minutes=5))
    assert await reconciler(site)._remove(stale) is None
    assert site.buffered() == [key]


async def test_the_uploader_removes_orphans_by_itself(site):
    """Wired into the uploader: at start-up and then every check interval."""
    key = buffer_key("ORPH", "1.2", "1.2.3", "1.2.3.5", "cd" * 32)
    site.buffer.put_bytes(key, b"refused after the write")
    async with site.uploader(uploader_orphan_grace_s=GRACE_S, uploader_orphan_check_s=0.2):
        (event,) = await site.wait_for("buffer.orphan_removed", 1, timeout_s=20)
    assert event.data.key == key and site.buffered() == []
