"""The site's limits on destinations: never the buffer bucket; loopback, link-local and
private addresses and credentials over plain HTTP only where the site allows them."""

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from edge_core.destination_policy import DestinationPolicy
from edge_registry.api import create_app
from edge_registry.db import open_database

# As in conftest.py (which test modules do not import).
TOKENS = {"alice": "alice-token"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BUFFER = DestinationPolicy(buffer_bucket="edge-buffer", buffer_endpoint="127.0.0.1:18333")


@pytest.fixture
def api(database_url):
    """``api(policy)``: the registry API in-process under that site policy."""
    engine, sessions = open_database(database_url)
    clients = []

    def make(policy: DestinationPolicy = BUFFER) -> TestClient:
        client = TestClient(create_app(sessions, TOKENS, destinations=policy))
        client.headers.update(auth("alice"))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    engine.dispose()


def refusal(client: TestClient, body: dict) -> str:
    response = client.post("/api/v1/datashares", json={"id": "DS1", **body})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "destination"]
    assert client.get("/api/v1/datashares").json() == []
    return error["msg"]


def created(client: TestClient, body: dict, ds_id: str = "DS1") -> None:
    response = client.post("/api/v1/datashares", json={"id": ds_id, **body})
    assert response.status_code == 201, response.text


TOKEN = {"destination_credentials": {"token": "t0ken"}}


@pytest.mark.parametrize(
    ("destination", "words"),
    [
        ("dicom://ARCHIVE@127.0.0.1:8001", "127.0.0.1 is a loopback address"),
        ("dicomweb+https://169.254.169.254/latest/meta-data", "is a link-local address"),
        ("dicom://ARCHIVE@10.0.0.5:104", "10.0.0.5 is a private or reserved address"),
        ("dicom://ARCHIVE@192.168.1.20:104", "private or reserved"),
        ("dicom://ARCHIVE@100.64.0.1:104", "private or reserved"),
        ("dicom://ARCHIVE@0.0.0.0:104", "private or reserved"),
        ("dicom://ARCHIVE@[::1]:104", "loopback"),
        ("dicom://ARCHIVE@[fe80::1]:104", "link-local"),
        ("dicom://ARCHIVE@[fd00::5]:104", "private or reserved"),
        ("dicom://ARCHIVE@[::ffff:169.254.169.254]:104", "link-local"),
        ("dicomweb+https://224.0.0.1/x", "multicast"),
        # A name is resolved: localhost is loopback whatever it is called.
        ("dicomweb+https://localhost:8001/dicom-web", "localhost (127.0.0.1) is a loopback"),
    ],
)
def test_private_loopback_and_link_local_targets_are_refused(api, destination, words):
    client = api()
    message = refusal(client, {"destination": destination})
    assert words in message and "EDGE_ALLOW_PRIVATE_DESTINATIONS" in message, message
    created(api(replace(BUFFER, allow_private=True)), {"destination": destination})


def test_public_targets_are_accepted(api):
    client = api()
    created(client, {"destination": "dicom://ARCHIVE@8.8.8.8:104"}, "DS1")
    created(client, {"destination": "dicomweb+https://8.8.4.4/dicom-web", **TOKEN}, "DS2")
    created(client, {"destination": "dicomweb+http://8.8.4.4/dicom-web"}, "DS3")  # no secret


def test_credentials_over_plain_http_are_refused_unless_allowed(api):
    body = {"destination": "dicomweb+http://8.8.4.4/dicom-web", **TOKEN}
    message = refusal(api(), body)
    assert "plain HTTP" in message and "EDGE_ALLOW_INSECURE_DESTINATIONS" in message
    basic = {**body, "destination_credentials": {"username": "u", "password": "p"}}
    assert "plain HTTP" in refusal(api(), basic)
    created(api(DestinationPolicy(allow_insecure=True)), body)


def test_the_buffer_bucket_is_refused(api):
    client = api()
    for destination in ("s3://edge-buffer", "s3://edge-buffer/elsewhere"):
        assert "buffer bucket 'edge-buffer'" in refusal(client, {"destination": destination})
    # No setting allows it, on the buffer's own store however it is named in the settings.
    lax = DestinationPolicy(
        buffer_endpoint="127.0.0.1:18333", s3_endpoint="127.0.0.1:18333", allow_private=True,
        allow_insecure=True,
    )  # fmt: skip
    assert "buffer bucket" in refusal(api(lax), {"destination": "s3://edge-buffer"})
    created(client, {"destination": "s3://edge-destination"}, "DS1")
    # A bucket of that name on another store (the destination's own endpoint) is another bucket.
    other_store = DestinationPolicy(buffer_endpoint="127.0.0.1:18333", s3_endpoint="s3.example")
    created(api(other_store), {"destination": "s3://edge-buffer"}, "DS2")


def test_patch_is_checked_when_it_changes_where_or_with_what(api):
    client = api()
    created(client, {"destination": "dicomweb+https://8.8.4.4/dicom-web", **TOKEN})
    for patch in (
        {"destination": "dicom://ARCHIVE@127.0.0.1:104"},
        {"destination": "s3://edge-buffer"},
        {"destination": "dicomweb+http://8.8.4.4/dicom-web"},  # keeps the token: over HTTP
    ):
        response = client.patch("/api/v1/datashares/DS1", json=patch)
        assert response.status_code == 422, (patch, response.text)
    # A datashare set up under a looser policy can still be edited otherwise.
    lax = api(DestinationPolicy(allow_private=True))
    created(lax, {"destination": "dicom://ARCHIVE@10.0.0.5:104"}, "DS2")
    response = client.patch("/api/v1/datashares/DS2", json={"description": "moving soon"})
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/datashares/DS1").json()["revision"] == 1
