"""Killing services in the middle of a transfer loses nothing answered Success and
duplicates nothing at the destination, once the PACS sends again what was not answered."""

import io
import os
import signal
import subprocess

from pydicom import dcmread

from edge_testing.dcmtk import DCMTK_ENV, dcmtk, echoscu, storescu
from edge_testing.dicom_data import write_series
from edge_testing.servers import wait_until


def kill9(stack, service: str) -> int:
    pid = int((stack.data_dir / "run" / f"{service}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


def test_kill_receiver_uploader_and_monitor_mid_transfer(stack, tmp_path):
    assert stack.api("registry", "POST", "/api/v1/datashares", {"id": "CRASH"})[0] == 201
    wait_until(lambda: echoscu(stack.receiver_port, "CRASH"), what="datashare to go live")
    files = write_series(tmp_path / "ct", 60)
    buffer, destination = stack.store("edge-buffer"), stack.store("edge-destination")

    def objects(store):
        return [o for o in store.list("CRASH/")]

    sender = subprocess.Popen(
        [dcmtk("storescu"), "-aec", "CRASH", "127.0.0.1", str(stack.receiver_port),
         *map(str, files)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    # Mid-transfer: some instances already forwarded, more still arriving.
    wait_until(lambda: len(objects(destination)) >= 3, what="the first deliveries")
    killed = {name: kill9(stack, name) for name in ("receiver-1", "uploader", "monitor")}
    out, _ = sender.communicate(timeout=120)
    answered = out.count("Received Store Response (Success)")
    assert sender.returncode != 0 or answered == len(files), out

    # The launcher restarts what died; the PACS sends the whole series again.
    wait_until(
        lambda: all(
            int((stack.data_dir / "run" / f"{n}.pid").read_text()) != pid
            for n, pid in killed.items()
        ),
        what="the launcher to restart the killed services",
    )
    wait_until(lambda: echoscu(stack.receiver_port, "CRASH"), timeout_s=60, what="receiver back")
    again = storescu(stack.receiver_port, "CRASH", files)
    assert again.returncode == 0, again.stdout + again.stderr

    # Every instance exactly once at the destination, byte for byte; the buffer drained.
    wait_until(lambda: len(objects(destination)) == len(files), timeout_s=120,
               what="every instance at the destination")  # fmt: skip
    wait_until(lambda: not objects(buffer), timeout_s=120, what="the buffer to drain")
    sent = {ds.SOPInstanceUID: ds.PixelData for ds in map(dcmread, files)}
    for obj in objects(destination):
        got = dcmread(io.BytesIO(destination.get_bytes(obj.key)))
        assert got.PixelData == sent.pop(got.SOPInstanceUID)
    assert not sent

    def counted():
        code, body = stack.api("monitor", "GET", "/api/v1/datashares/CRASH/status")
        return code == 200 and body["instances_uploaded"] == len(files) and body

    body = wait_until(counted, timeout_s=60, what="the monitor to count every instance")
    assert body["instances_received"] == len(files)
    assert body["instances_pending"] == 0
