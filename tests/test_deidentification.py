"""End to end, as the issue asks: instances holding a value in every attribute of PS3.15
Table E.1-1 sent by DCMTK ``storescu`` through the whole stack to the S3 destination. What
the Basic Profile removes never arrives; pseudonymous UIDs and IDs stay the same across two
associations and a restart of the uploader; pixel data arrives byte for byte; an instance
at risk of burned-in identity is held, and released by a retry once the datashare allows it;
a datashare without de-identification still forwards byte for byte."""

import io
import os
import signal

import httpx
from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
from pydicom import dcmread
from pydicom.uid import SecondaryCaptureImageStorage

from edge_testing.dcmtk import echoscu, storescu
from edge_testing.dicom_data import (
    EDGE_TEST_ROOT,
    SECRET,
    SECRET_DATE,
    make_identified_instance,
)
from edge_testing.part10 import dataset_bytes
from edge_testing.servers import wait_until

TABLE_TAGS = sorted(
    (entry[0] << 16) | entry[1]
    for name in "D_TAGS Z_TAGS X_TAGS U_TAGS Z_D_TAGS X_Z_TAGS X_D_TAGS X_Z_D_TAGS".split()
    for entry in getattr(table, name)
    if len(entry) == 2
)
STUDY = EDGE_TEST_ROOT + "8.1"
SERIES_1, SERIES_2 = EDGE_TEST_ROOT + "8.2", EDGE_TEST_ROOT + "8.3"


def write(path, series: str, sop: str, **changes):
    ds = make_identified_instance(
        TABLE_TAGS, study_uid=STUDY, series_uid=series, sop_uid=EDGE_TEST_ROOT + sop,
        patient_id="MRN-123456",
    )  # fmt: skip
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(path, enforce_file_format=True)
    return path


def send(stack, called: str, *files) -> None:
    sent = storescu(stack.receiver_port, called, list(files), "PACS")
    assert sent.returncode == 0, sent.stdout + sent.stderr


def test_deidentified_on_the_way_out_consistently_and_held_when_at_risk(stack, tmp_path):
    deid = {"id": "deid-ds", "deidentification": {}}
    for body in (deid, {"id": "plain-ds"}):
        assert stack.api("registry", "POST", "/api/v1/datashares", body)[0] == 201
    for aet in ("DEID-DS", "PLAIN-DS"):
        wait_until(lambda aet=aet: echoscu(stack.receiver_port, aet), what=f"{aet} live")
    a = write(tmp_path / "a.dcm", SERIES_1, "8.11")
    b = write(tmp_path / "b.dcm", SERIES_2, "8.12")
    c = write(tmp_path / "c.dcm", SERIES_1, "8.13")
    screen = write(tmp_path / "sc.dcm", SERIES_2, "8.14", SOPClassUID=SecondaryCaptureImageStorage)
    destination = stack.store("edge-destination")

    def arrived(prefix: str, count: int) -> dict[str, bytes]:
        def objects():
            found = list(destination.list(prefix))
            return len(found) == count and {o.key: destination.get_bytes(o.key) for o in found}

        return wait_until(objects, timeout_s=90, what=f"{count} objects under {prefix}")

    def status() -> dict:
        code, body = stack.api("monitor", "GET", "/api/v1/datashares/deid-ds/status")
        assert code == 200, body
        return body

    # Two associations, then the uploader restarted, then a third part of the study.
    send(stack, "DEID-DS", a, screen)
    send(stack, "DEID-DS", b)
    send(stack, "PLAIN-DS", a)
    arrived("deid-ds/", 2)
    wait_until(lambda: status()["instances_held"] == 1, what="the screen capture held")
    # The uploader killed and started again by the launcher: a new process, which must
    # derive the same pseudonyms from the site key.
    pid_file = stack.data_dir / "run" / "uploader.pid"
    killed = int(pid_file.read_text())
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: int(pid_file.read_text()) != killed, what="the uploader restarted")
    send(stack, "DEID-DS", c)
    delivered = arrived("deid-ds/", 3)

    got = {}
    for key, data in delivered.items():
        for needle in (SECRET, SECRET_DATE, EDGE_TEST_ROOT, "MRN-123456"):
            assert needle.encode() not in data, (needle, key)
        ds = dcmread(io.BytesIO(data))
        assert (
            key == f"deid-ds/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        )
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PixelData == dcmread(a).PixelData
        got[ds.SeriesInstanceUID, ds.SOPInstanceUID] = ds
    # One study, one patient, the series sent in two parts (before and after the restart)
    # still one series: the same pseudonyms whatever the association or process.
    assert len({ds.StudyInstanceUID for ds in got.values()}) == 1
    assert len({ds.PatientID for ds in got.values()}) == 1
    assert sorted(len([s for s, _ in got if s == series]) for series in {s for s, _ in got}) == [
        1,
        2,
    ]

    # The datashare without de-identification: the dataset exactly as the PACS sent it.
    [plain] = arrived("plain-ds/", 1).values()
    assert dataset_bytes(plain) == dataset_bytes(a.read_bytes())

    # Held: dead-lettered with its reason, kept as received; allowing it and retrying
    # re-runs de-identification from the original.
    doc = wait_until(lambda: (d := status())["instances_deidentified"] == 3 and d, what="3 counted")
    assert doc["deidentification"] == {"profile": "basic", "options": [], "keep": [], "remove": []}
    assert doc["instances_held"] == 1
    assert "Secondary Capture" in doc["last_error"] and doc["instances_dead_lettered"] == 1
    metrics = httpx.get(
        f"http://127.0.0.1:{stack.monitor_port}/metrics",
        headers={"Authorization": f"Bearer {stack.token}"},
    ).text
    assert 'edge_instances_deidentified_total{datashare="deid-ds"} 3.0' in metrics
    assert 'edge_instances_held_total{datashare="deid-ds"} 1.0' in metrics
    patch = {"deidentification": {"options": ["allow_burned_in"]}}
    assert stack.api("registry", "PATCH", "/api/v1/datashares/deid-ds", patch)[0] == 200
    wait_until(
        lambda: status()["deidentification"]["options"] == ["allow_burned_in"],
        what="the monitor to see the change",
    )
    code, body = stack.api(
        "monitor", "POST", "/api/v1/dead-letters/retry", {"datashare": "deid-ds"}
    )
    assert code == 202 and len(body["requested"]) == 1, body
    for key, data in arrived("deid-ds/", 4).items():
        assert SECRET.encode() not in data, key
    wait_until(lambda: status()["instances_deidentified"] == 4, what="the retry counted")
