"""Destination URLs: which class serves each, and what events show of them."""

import pytest

from edge_uploader.config import UploaderSettings
from edge_uploader.destinations import DeliveryError, public_url
from edge_uploader.destinations.dicomweb import DicomWebDestination
from edge_uploader.destinations.dimse import DimseDestination
from edge_uploader.destinations.s3 import S3Destination
from edge_uploader.routing import open_destination

SETTINGS = UploaderSettings(_env_file=None)  # type: ignore[call-arg]


def test_each_url_form_opens_its_destination():
    s3 = open_destination("s3://bucket/a/b/", {}, SETTINGS)
    assert isinstance(s3, S3Destination)
    assert (s3.store.bucket, s3.prefix) == ("bucket", "a/b")
    web = open_destination("dicomweb+https://user:pw@host/dicom-web/", {}, SETTINGS)
    assert isinstance(web, DicomWebDestination)
    assert web.stow_url == "https://user:pw@host/dicom-web/studies"
    assert web.url == "dicomweb+https://host/dicom-web/"
    dimse = open_destination("dicom://PACS@10.0.0.5:104", {}, SETTINGS)
    assert isinstance(dimse, DimseDestination)
    assert (dimse.called_ae, dimse.host, dimse.port, dimse.calling_ae) == (
        "PACS",
        "10.0.0.5",
        104,
        "EDGE",
    )


@pytest.mark.parametrize("url", ["ftp://x/y", "dicom://host:104", "dicom://AE@host", "s3:///p"])
def test_invalid_urls_are_permanent_failures(url):
    with pytest.raises(DeliveryError) as info:
        open_destination(url, {}, SETTINGS)
    assert info.value.permanent


def test_public_url_hides_passwords_only():
    assert public_url("dicomweb+https://u:secret@h/p") == "dicomweb+https://h/p"
    assert public_url("dicom://AE@h:104") == "dicom://AE@h:104"
    assert public_url("s3://bucket/prefix") == "s3://bucket/prefix"
