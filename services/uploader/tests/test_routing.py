"""Destination URLs: which class serves each, and what events show of them."""

import pytest
from pydantic import SecretStr

from edge_core.datashare_table import DatashareTable
from edge_core.datashares import Datashare
from edge_core.sitekey import SiteKey
from edge_uploader.config import UploaderSettings
from edge_uploader.destinations import DeliveryError, public_url
from edge_uploader.destinations.dicomweb import DicomWebDestination
from edge_uploader.destinations.dimse import DimseDestination
from edge_uploader.destinations.s3 import S3Destination
from edge_uploader.routing import Router, open_destination

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


def test_destinations_the_site_refuses_are_permanent_failures():
    """The registry's limits hold at delivery too: a datashares entry may not come from it."""
    table = DatashareTable()
    refused = {
        "META": ("dicomweb+https://169.254.169.254/latest", "link-local"),
        "LOCAL": ("dicom://AE@127.0.0.1:8001", "loopback"),
        "BUFFER": (f"s3://{SETTINGS.buffer_bucket}/x", "buffer bucket"),
        "PLAIN": ("dicomweb+http://8.8.8.8/dicom-web", "plain HTTP"),
    }
    for ds, (url, _) in refused.items():
        entry = Datashare(
            id=ds, ae_title=ds, destination=url,
            destination_credentials={"token": SecretStr("t")} if ds == "PLAIN" else {},
        )  # fmt: skip
        table.apply(ds, entry.model_dump_json().encode(), deleted=False)
    router = Router(table, SETTINGS)
    for ds, (_, words) in refused.items():
        with pytest.raises(DeliveryError) as info:
            router.destination_for(ds, attempt=1)
        assert info.value.permanent and words in str(info.value), info.value
    lax = SETTINGS.model_copy(update={"allow_private_destinations": True})
    assert isinstance(Router(table, lax).destination_for("LOCAL", 1), DimseDestination)


def test_credentials_are_decrypted_with_the_site_key(tmp_path):
    """Without the registry's key an encrypted credential cannot be used: a transient
    failure (retried once the key file is in place), never the ciphertext sent as is."""
    settings = SETTINGS.model_copy(
        update={"data_dir": tmp_path, "allow_private_destinations": True}
    )
    table = DatashareTable()

    def publish(sealed: str, revision: int) -> None:
        entry = Datashare(
            id="WEB", ae_title="WEB", destination="dicomweb+https://10.0.0.9/dicom-web",
            destination_credentials={"token": SecretStr(sealed)}, revision=revision,
        )  # fmt: skip
        table.apply("WEB", entry.model_dump_json().encode(), deleted=False)

    publish(SiteKey.generate().encrypt("t0ken"), 1)  # the registry's key
    with pytest.raises(DeliveryError, match="no site key") as missing:
        Router(table, settings).destination_for("WEB", attempt=1)
    SiteKey.load_or_create(tmp_path / "site.key")  # not the registry's key
    with pytest.raises(DeliveryError, match="another") as wrong:
        Router(table, settings).destination_for("WEB", attempt=1)
    assert not missing.value.permanent and not wrong.value.permanent

    publish(SiteKey.load(tmp_path / "site.key").encrypt("t0ken"), 2)
    web = Router(table, settings).destination_for("WEB", attempt=1)
    assert isinstance(web, DicomWebDestination)
    assert web.client.headers["Authorization"] == "Bearer t0ken"


def test_an_unknown_datashare_is_retried_until_the_table_sees_it_deleted():
    """Found by the fault harness: after a NATS restart the table learnt a new datashare
    seconds late, and its instances (answered Success) were dead-lettered meanwhile."""
    table = DatashareTable()
    router = Router(table, SETTINGS)
    with pytest.raises(DeliveryError) as unknown:
        router.destination_for("LATE", attempt=50)
    assert not unknown.value.permanent
    entry = Datashare(id="LATE", ae_title="LATE", destination="s3://bucket")
    table.apply("LATE", entry.model_dump_json().encode(), deleted=False)
    table.apply("LATE", None, deleted=True)
    with pytest.raises(DeliveryError) as gone:
        router.destination_for("LATE", attempt=1)
    assert gone.value.permanent
