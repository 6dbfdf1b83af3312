"""The launcher restarts its embedded NATS and S3 store when they die; the services
reconnect by themselves, and nothing answered Success is lost."""

import asyncio
import io
import os
import signal
import time
from pathlib import Path

import nats as nats_client
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from edge_core.settings import EdgeSettings
from edge_testing.dcmtk import echoscu
from edge_testing.dicom_data import write_small_series
from edge_testing.servers import wait_until
from edge_testing.stack import start_stack

SERVICES = ("receiver-1", "uploader", "monitor")


def _pid(stack, name: str) -> int:
    return int((stack.data_dir / "run" / f"{name}.pid").read_text())


def _stream_identity(stack) -> tuple:
    """When the events stream was created, and its first sequence: the same after a restart
    on the same data, new if NATS started afresh."""

    async def identity() -> tuple:
        nc = await nats_client.connect(
            f"nats://127.0.0.1:{stack.nats_port}", **stack.nats_credentials()
        )
        try:
            info = await nc.jetstream().stream_info(
                EdgeSettings.model_fields["events_stream"].default
            )
            return info.created, info.state.first_seq
        finally:
            await nc.close()

    return asyncio.run(identity())


def _store_until_success(port: int, called: str, path: Path, timeout_s: float = 60) -> list:
    """C-STORE ``path`` as a PACS would: again (new association) after anything but
    Success, until Success. Returns what was answered before (None: no association)."""
    ae = AE(ae_title="HOSPITALPACS")
    ae.add_requested_context(SecondaryCaptureImageStorage)
    ds = dcmread(path)
    seen: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        status = None
        if assoc.is_established:
            rsp = assoc.send_c_store(ds)
            status = getattr(rsp, "Status", None)
            assoc.release()
        if status == 0x0000:
            return seen
        seen.append(status)
        time.sleep(0.2)  # a PACS waits a little before it retries
    raise TimeoutError(f"{path.name} never answered Success; {len(seen)} answers: {seen[-5:]}")


def test_killed_nats_and_s3_store_are_restarted_and_nothing_is_lost(tmp_path):
    stack = start_stack(tmp_path)
    try:
        assert stack.api("registry", "POST", "/api/v1/datashares", {"id": "OUTAGE"})[0] == 201
        wait_until(lambda: echoscu(stack.receiver_port, "OUTAGE"), what="datashare to go live")
        files = write_small_series(tmp_path / "sc", 30)
        services = {name: _pid(stack, name) for name in SERVICES}
        for path in files[:5]:
            assert _store_until_success(stack.receiver_port, "OUTAGE", path) == []

        for server, batch in (("nats-server", files[5:10]), ("weed-mini", files[10:15])):
            stream = _stream_identity(stack)
            killed = _pid(stack, server)
            os.kill(killed, signal.SIGKILL)
            killed_at = time.monotonic()
            # The PACS keeps sending through the outage (the launcher waits a second before
            # it restarts anything): Out of Resources, so that it sends again, then Success.
            outage = _store_until_success(stack.receiver_port, "OUTAGE", batch[0])
            back_after_s = time.monotonic() - killed_at
            for path in batch[1:]:
                outage += _store_until_success(stack.receiver_port, "OUTAGE", path)
            assert outage and all(s is not None and 0xA700 <= s <= 0xA7FF for s in outage), outage
            # Restarted by the launcher (a new pid), and the receiver reconnected, in time.
            assert _pid(stack, server) != killed
            assert back_after_s < 30, f"{server}: Success again only after {back_after_s:.1f}s"
            assert _stream_identity(stack) == stream  # on its old data, not started afresh
        for path in files[15:]:
            assert _store_until_success(stack.receiver_port, "OUTAGE", path) == []

        # Every instance reaches the destination, and the services did it without a restart.
        destination = stack.store("edge-destination")
        sent = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}

        def delivered() -> set[str]:
            return {
                str(dcmread(io.BytesIO(destination.get_bytes(o.key))).SOPInstanceUID)
                for o in destination.list("OUTAGE/")
            }

        wait_until(lambda: delivered() == sent, timeout_s=120, what="every instance delivered")

        # The monitor counts exactly what reached the destination, although events in flight
        # to it when NATS died come back after later ones (the fold counts each once in any
        # order).
        def outage_counted() -> bool:
            code, body = stack.api("monitor", "GET", "/api/v1/datashares/OUTAGE/status")
            return code == 200 and (body["instances_received"], body["instances_uploaded"]) == (
                len(sent),
                len(sent),
            )

        wait_until(outage_counted, timeout_s=60, what="the monitor to count every instance")

        # It still folds new events: a datashare created after both restarts (which the
        # receiver learns through NATS) is counted exactly.
        assert stack.api("registry", "POST", "/api/v1/datashares", {"id": "AFTER"})[0] == 201
        wait_until(lambda: echoscu(stack.receiver_port, "AFTER"), what="the receiver to learn it")
        later = write_small_series(tmp_path / "after", 3)
        for path in later:
            assert _store_until_success(stack.receiver_port, "AFTER", path) == []

        def counted() -> bool:
            code, body = stack.api("monitor", "GET", "/api/v1/datashares/AFTER/status")
            return (
                code == 200
                and body["instances_received"] == len(later) == body["instances_uploaded"]
            )

        wait_until(counted, timeout_s=60, what="the monitor to count the new datashare")
        assert {name: _pid(stack, name) for name in SERVICES} == services
    finally:
        stack.stop()
