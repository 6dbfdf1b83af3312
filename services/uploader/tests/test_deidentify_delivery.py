"""De-identified delivery to real destinations: Orthanc over C-STORE and STOW-RS (a PACS that
parses what it stores) and the S3 destination. A redelivery makes the same copy, counted
as already there; a held instance is dead-lettered once, with its reason, kept as received."""

import hashlib
import io

import pytest
from pydicom import dcmread
from pydicom.uid import UltrasoundImageStorage

from edge_core.keys import destination_key
from edge_core.sitekey import SiteKey
from edge_testing.dicom_data import SECRET, make_identified_instance
from edge_uploader.deidentify import Pseudonyms

PATIENT = "MRN-4242"


def identified(site, **changes) -> bytes:
    ds = make_identified_instance(
        [0x00100030, 0x00081030, 0x00080090, 0x00081140, 0x00200052],
        study_uid=site.new_uid(), series_uid=site.new_uid(), sop_uid=site.new_uid(),
        patient_id=PATIENT,
    )  # fmt: skip
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("how", ["c-store", "stow-rs"])
async def test_orthanc_stores_the_deidentified_copy_once(site, counting_orthanc, how):
    orthanc = counting_orthanc
    if how == "c-store":
        url, credentials = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", {}
    else:
        url = orthanc.dicomweb_url
        credentials = {"username": orthanc.username, "password": orthanc.password}
    await site.add_datashare("DEID", url, credentials, deidentification={})
    data = identified(site)
    async with site.uploader():
        stored = await site.store("DEID", data)
        (first,) = await site.wait_for("instance.uploaded", 1)
        await site.store("DEID", data)  # announced again: a redelivery
        uploaded = await site.wait_for("instance.uploaded", 2)
    assert first.data.deidentified and uploaded[1].data.deidentified
    assert orthanc.instance_files(stored.sop_instance_uid) == []  # never under its real UID
    # Under the pseudonym the site key gives it, stored once, received once per announcement.
    key = SiteKey.load(site.settings.site_key_path()).pseudonym_key()
    sop = Pseudonyms(key, "DEID").uid(stored.sop_instance_uid)
    [copy] = orthanc.instance_files(sop)
    await orthanc.settle()
    assert orthanc.received()[sop] == 2
    assert SECRET.encode() not in copy and PATIENT.encode() not in copy
    assert dcmread(io.BytesIO(copy)).PixelData == dcmread(io.BytesIO(data)).PixelData
    assert site.buffered() == []


async def test_s3_redelivery_finds_the_same_copy_and_held_is_kept_as_received(
    site, destination_store, destination_puts
):
    await site.add_datashare("DEID", deidentification={"options": ["retain_device_identity"]})
    data = identified(site)
    screen = identified(site, SOPClassUID=UltrasoundImageStorage, Modality="US")
    async with site.uploader():
        await site.store("DEID", data)
        (first,) = await site.wait_for("instance.uploaded", 1)
        await site.store("DEID", data)
        (_, again) = await site.wait_for("instance.uploaded", 2)
        held = await site.store("DEID", screen)
        (dead,) = await site.wait_for("instance.dead_lettered", 1)
    assert not first.data.already_present and again.data.already_present
    [(key, puts)] = destination_puts().items()
    assert puts == 1  # the same bytes again: not written twice
    copy = destination_store.get_bytes(key)
    ds = dcmread(io.BytesIO(copy))
    assert key == destination_key(
        "", "DEID", ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    assert ds.DeidentificationMethodCodeSequence[1].CodeValue == "113109"
    assert SECRET.encode() not in copy

    assert dead.data.held and dead.data.attempts == 1
    assert "Ultrasound" in dead.data.error and "allow_burned_in" in dead.data.error
    [failed] = site.of_type("instance.failed")
    assert failed.data.permanent and failed.data.key == held.key
    quarantined = site.buffer.get_bytes(dead.data.quarantine_key)
    assert hashlib.sha256(quarantined).hexdigest() == held.sha256  # kept as received
