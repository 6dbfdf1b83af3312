"""Faults in the middle of a transfer, accounted by sets: nothing answered Success is lost,
nothing unexpected arrives, a duplicate is only a redone delivery of identical bytes, and the
monitor counts exactly what the destination holds.

``EDGE_FAULTS`` chooses the faults (``all``, or names from ``fault_injection.FAULTS``;
default: the short form), ``EDGE_FAULTS_IMAGES`` the images sent per fault."""

import os
import time
import uuid

import pytest
from fault_accounting import RESULTS, Accounting, destination_copies, pixels_digest
from fault_injection import FAULTS, SHORT, Site
from pacs_sender import PacsSender
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from edge_testing.dcmtk import echoscu
from edge_testing.dicom_data import EDGE_TEST_ROOT, make_instance
from edge_testing.servers import wait_until

_chosen = os.environ.get("EDGE_FAULTS", "")
CHOSEN = list(FAULTS) if _chosen == "all" else _chosen.split(",") if _chosen else list(SHORT)
IMAGES = int(os.environ.get("EDGE_FAULTS_IMAGES", "24"))
# The full buffer needs more images than the quota holds (~25).
MIN_IMAGES = {"quota": 60}


def small_series(count: int) -> list:
    study, series = generate_uid(prefix=EDGE_TEST_ROOT), generate_uid(prefix=EDGE_TEST_ROOT)
    return [
        make_instance(
            study_uid=study,
            series_uid=series,
            number=i + 1,
            rows=140,
            columns=140,
            sop_class=SecondaryCaptureImageStorage,
            modality="OT",
        )
        for i in range(count)
    ]


def run_fault(site: Site, name: str, images: int) -> Accounting:
    datashare = f"{name[:10]}-{uuid.uuid4().hex[:5]}"  # a datashare of its own each run
    assert site.stack.api("registry", "POST", "/api/v1/datashares", {"id": datashare})[0] == 201
    wait_until(lambda: echoscu(site.stack.receiver_port, datashare), what="datashare live")
    datasets = small_series(images)
    started = time.monotonic()
    sender = PacsSender(site.stack.receiver_port, datashare, datasets).start()
    # Mid-transfer: a third answered, the rest still to come.
    wait_until(lambda: sender.successes() >= images // 3, timeout_s=60, what="a third sent")
    FAULTS[name](site, datashare)
    sender.join(timeout_s=180)

    def copies():
        return destination_copies(site.destination.store(site.bucket).client, site.bucket,
                                  f"{datashare}/")  # fmt: skip

    def monitor() -> dict[str, int]:
        body = site.datashare_status(datashare)
        keys = ("instances_received", "instances_uploaded", "instances_pending",
                "instances_failed")  # fmt: skip
        return {k: body.get(k) for k in keys}

    # Everything answered Success reaches the destination, and the monitor catches up (or
    # the accounting below says what did not).
    success = sender.answers.success
    try:
        wait_until(lambda: success <= set(copies()), timeout_s=120, what="deliveries")
        wait_until(
            lambda: (
                monitor()["instances_uploaded"] == len(success)
                and monitor()["instances_pending"] == 0
            ),
            timeout_s=60,
            what="the monitor to count every delivery",
        )
    except TimeoutError:
        pass
    accounting = Accounting(
        fault=name,
        images=images,
        success=set(success),
        refusals=dict(sender.answers.refusals),
        copies=copies(),
        sent_pixels={str(ds.SOPInstanceUID): pixels_digest(ds) for ds in datasets},
        monitor=monitor(),
        seconds=time.monotonic() - started,
    )
    RESULTS.append(accounting)
    return accounting


@pytest.mark.parametrize("name", CHOSEN)
def test_fault_loses_nothing_answered_success(site, name):
    accounting = run_fault(site, name, max(IMAGES, MIN_IMAGES.get(name, 0)))
    for uid in sorted(accounting.lost)[:3]:  # what the stack said about them
        print(f"--- {uid}", *(line for line in site.stack.log().splitlines() if uid in line),
              sep="\n")  # fmt: skip
    assert accounting.problems() == []
    # The fault struck mid-transfer: the PACS had to send something again, except where
    # the fault is behind the buffer (it absorbs them: nothing to refuse).
    if name not in ("uploader", "monitor", "registry", "destination"):
        assert accounting.refusals, "the fault was not felt by the PACS"
