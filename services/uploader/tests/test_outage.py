"""A destination that is down: transient failures with a retry schedule, then everything
drains by itself once it is back."""


async def test_destination_down_then_up_drains_by_itself(site, storescp, storescp_copies):
    storescp.process.stop()
    await site.add_datashare("PACS", storescp.url)
    async with site.uploader():
        stored = await site.store_study("PACS", 4)
        # Each instance fails more than once while the peer is away, each time with a schedule.
        await site.until(
            lambda: (
                {f.data.key for f in site.of_type("instance.failed") if f.data.attempt >= 2}
                == {s.key for s in stored}
            ),
            what="every instance retried",
        )
        failures = site.of_type("instance.failed")
        assert all(not f.data.permanent and f.data.next_attempt_at for f in failures)
        assert all(f.data.next_attempt_at > f.time for f in failures)
        assert site.of_type("instance.uploaded") == []

        storescp.process.start()
        uploaded = await site.wait_for("instance.uploaded", 4)
    assert {e.data.key for e in uploaded} == {s.key for s in stored}
    assert all(e.data.attempts >= 3 for e in uploaded)
    assert storescp_copies(storescp) == {s.sop_instance_uid: 1 for s in stored}  # once each
    assert site.of_type("instance.dead_lettered") == []
    assert site.buffered() == []
