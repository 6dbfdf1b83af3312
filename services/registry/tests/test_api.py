"""The REST API on SQLite and PostgreSQL: every endpoint, conflicts, auth, history and the
secrecy of destination credentials."""

import logging

import httpx
import pytest

from edge_registry.api import create_app
from edge_registry.db import open_database
from edge_testing.http import stream_until_answered

# As in conftest.py (which test modules do not import).
TOKENS = {"alice": "alice-token"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


SECRET = "s3cr3t-never-shown"
S3 = {
    "destination": "s3://edge-dest/site-a",
    "destination_credentials": {"access_key": "AKIA-EDGE", "secret_key": SECRET},
}


def create(client, **fields):
    response = client.post("/api/v1/datashares", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_get_list_update_delete(client, as_user):
    created = create(client, id="DS1", description="Study one")
    assert created == {
        **created,
        "id": "DS1",
        "description": "Study one",
        "ae_title": "DS1",
        "match": "called",
        "allowed_calling_aets": [],
        "allowed_networks": [],
        "destination": None,
        "destination_credentials_set": [],
        "enabled": True,
        "revision": 1,
        "created_by": "alice",
        "updated_by": "alice",
    }
    assert client.get("/api/v1/datashares/DS1").json() == created
    create(client, id="A0", match="calling", enabled=False)
    assert [d["id"] for d in client.get("/api/v1/datashares").json()] == ["A0", "DS1"]
    assert [d["id"] for d in client.get("/api/v1/datashares?enabled=true").json()] == ["DS1"]
    assert [d["id"] for d in client.get("/api/v1/datashares?enabled=false").json()] == ["A0"]

    response = client.patch(
        "/api/v1/datashares/DS1",
        json={"allowed_networks": ["10.0.0.0/8"], "ae_title": "PACSDS1"},
        headers=as_user("bob"),
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["allowed_networks"] == ["10.0.0.0/8"]
    assert updated["ae_title"] == "PACSDS1"
    assert updated["description"] == "Study one"  # untouched fields are kept
    assert (updated["revision"], updated["updated_by"], updated["created_by"]) == (
        2,
        "bob",
        "alice",
    )
    assert updated["updated_at"] > created["updated_at"]

    # ae_title null: back to the id; lists null: back to "any".
    back = client.patch(
        "/api/v1/datashares/DS1", json={"ae_title": None, "allowed_networks": None}
    ).json()
    assert (back["ae_title"], back["allowed_networks"], back["revision"]) == ("DS1", [], 3)

    # A PATCH that changes nothing is no new revision.
    assert client.patch("/api/v1/datashares/DS1", json={"enabled": True}).json()["revision"] == 3

    assert client.delete("/api/v1/datashares/DS1").status_code == 204
    assert client.get("/api/v1/datashares/DS1").status_code == 404
    assert [d["id"] for d in client.get("/api/v1/datashares").json()] == ["A0"]


def test_unknown_datashare_is_404(client):
    for method in ("GET", "DELETE"):
        response = client.request(method, "/api/v1/datashares/NOPE")
        assert response.status_code == 404
        assert response.json()["detail"] == "no datashare with id 'NOPE'"
    assert client.patch("/api/v1/datashares/NOPE", json={"enabled": False}).status_code == 404
    assert client.get("/api/v1/datashares/NOPE/history").status_code == 404


def test_patch_is_validated_as_a_whole(client):
    create(client, id="DS1", **S3)
    # id cannot change, unknown fields are refused.
    for body in ({"id": "DS2"}, {"colour": "blue"}):
        assert client.patch("/api/v1/datashares/DS1", json=body).status_code == 422
    # Moving to a DICOMweb destination with the S3 keys still set: say what to do.
    response = client.patch(
        "/api/v1/datashares/DS1", json={"destination": "dicomweb+https://pacs/dicom-web"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "destination_credentials"]
    assert "{} removes them" in error["msg"]
    assert SECRET not in response.text
    response = client.patch(
        "/api/v1/datashares/DS1",
        json={
            "destination": "dicomweb+https://pacs/dicom-web",
            "destination_credentials": {"token": "t"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["destination_credentials_set"] == ["token"]
    # An id too long for an AE title cannot go back to the id as AE title.
    create(client, id="consortium-study-2026", ae_title="STUDY26")
    response = client.patch("/api/v1/datashares/consortium-study-2026", json={"ae_title": None})
    assert response.status_code == 422
    assert "give a substitute ae_title" in response.json()["detail"][0]["msg"]


def test_duplicate_id_is_409(client):
    create(client, id="DS1")
    response = client.post("/api/v1/datashares", json={"id": "DS1", "ae_title": "OTHER"})
    assert response.status_code == 409
    assert response.json()["detail"] == "a datashare with id 'DS1' already exists"
    response = client.post("/api/v1/datashares", json={"id": "ds1", "ae_title": "OTHER"})
    assert response.status_code == 409
    assert "'DS1' already exists (datashare ids differing only in case" in response.text


def test_ae_title_clash_among_enabled_datashares_in_one_match_mode(client):
    create(client, id="DS1", ae_title="PACS1")
    # Same AE title: refused whatever its case or surrounding spaces.
    for title in ("PACS1", "pacs1", "  Pacs1 "):
        response = client.post("/api/v1/datashares", json={"id": "DS2", "ae_title": title})
        assert response.status_code == 409, title
        detail = response.json()["detail"]
        assert "AE title 'PACS1'" in detail or f"AE title '{title.strip()}'" in detail
        assert "enabled datashare 'DS1' in match mode 'called'" in detail
    # Also a datashare whose id (its default AE title) is the same.
    assert client.post("/api/v1/datashares", json={"id": "PACS1"}).status_code == 409
    # The same AE title is free in the other match mode, or for a disabled datashare.
    create(client, id="DS2", ae_title="PACS1", match="calling")
    create(client, id="DS3", ae_title="PACS1", enabled=False)
    # ... until that one is enabled, or another one moves onto it.
    response = client.patch("/api/v1/datashares/DS3", json={"enabled": True})
    assert response.status_code == 409
    assert "enabled datashare 'DS1'" in response.json()["detail"]
    create(client, id="DS4", ae_title="PACS4")
    assert client.patch("/api/v1/datashares/DS4", json={"ae_title": "pacs1"}).status_code == 409
    assert client.patch("/api/v1/datashares/DS2", json={"match": "called"}).status_code == 409
    # Disabling the holder frees the title.
    assert client.patch("/api/v1/datashares/DS1", json={"enabled": False}).status_code == 200
    assert client.patch("/api/v1/datashares/DS3", json={"enabled": True}).status_code == 200


def test_history_says_who_changed_what_and_when(client, as_user):
    create(client, id="DS1", **S3)
    client.patch(
        "/api/v1/datashares/DS1",
        json={
            "description": "renamed",
            "destination_credentials": {"access_key": "AK2", "secret_key": "new-" + SECRET},
        },
        headers=as_user("bob"),
    )
    client.delete("/api/v1/datashares/DS1", headers=as_user("bob"))
    create(client, id="DS1")  # an id can be used again; its revisions continue

    response = client.get("/api/v1/datashares/DS1/history")
    assert response.status_code == 200
    entries = response.json()
    assert [(e["revision"], e["action"], e["actor"]) for e in entries] == [
        (1, "created", "alice"),
        (2, "updated", "bob"),
        (3, "deleted", "bob"),
        (4, "created", "alice"),
    ]
    assert entries[0]["changes"]["destination"] == "s3://edge-dest/site-a"
    assert entries[0]["changes"]["destination_credentials"] == {
        "access_key": "***",
        "secret_key": "***",
    }
    assert entries[1]["changes"] == {
        "description": {"old": "", "new": "renamed"},
        "destination_credentials": {
            "old": {"access_key": "***", "secret_key": "***"},
            "new": {"access_key": "***", "secret_key": "***"},
        },
    }
    assert entries[2]["changes"]["description"] == "renamed"
    times = [e["time"] for e in entries]
    assert times == sorted(times)
    assert client.get("/api/v1/datashares/DS1").json()["revision"] == 4
    assert SECRET not in response.text


def test_credentials_are_never_returned_nor_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    created = create(client, id="DS1", **S3)
    bad = client.post(
        "/api/v1/datashares",
        json={
            "id": "DS2",
            "destination": "s3://bucket",
            "destination_credentials": {"token": SECRET},
        },
    )
    assert bad.status_code == 422
    bodies = [
        created,
        bad.text,
        client.get("/api/v1/datashares/DS1").text,
        client.get("/api/v1/datashares").text,
        client.get("/api/v1/datashares/DS1/history").text,
        client.patch("/api/v1/datashares/DS1", json={"description": "x"}).text,
        client.get("/openapi.json").text,
    ]
    assert created["destination_credentials_set"] == ["access_key", "secret_key"]
    assert "destination_credentials" not in created
    for body in bodies:
        assert SECRET not in str(body)
    assert caplog.records  # something was logged, and none of it holds the secret
    for record in caplog.records:
        assert SECRET not in record.getMessage()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer alice-token-and-more"},
        {"Authorization": "Basic YWxpY2U6YWxpY2UtdG9rZW4="},
        {"Authorization": "Bearer"},
        {"Authorization": "alice-token"},
    ],
)
def test_every_api_route_needs_a_valid_token(client, headers):
    create(client, id="DS1")
    routes = [
        ("POST", "/api/v1/datashares", {"id": "DS2"}),
        ("GET", "/api/v1/datashares", None),
        ("GET", "/api/v1/datashares/DS1", None),
        ("PATCH", "/api/v1/datashares/DS1", {"enabled": False}),
        ("DELETE", "/api/v1/datashares/DS1", None),
        ("GET", "/api/v1/datashares/DS1/history", None),
        ("GET", "/api/v1/anything-else", None),
    ]
    client.headers.pop("Authorization")
    for method, path, body in routes:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # Nothing changed.
    assert (
        client.get(
            "/api/v1/datashares/DS1", headers={"Authorization": "Bearer alice-token"}
        ).json()["revision"]
        == 1
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_health_and_docs_are_open(client):
    client.headers.pop("Authorization")
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {
        "/api/v1/datashares",
        "/api/v1/datashares/{ds_id}",
        "/api/v1/datashares/{ds_id}/history",
    } <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unauthenticated_bad_json_is_401_not_422(client):
    client.headers.pop("Authorization")
    for method, path in (("POST", "/api/v1/datashares"), ("PATCH", "/api/v1/datashares/DS1")):
        response = client.request(
            method, path, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401, response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_oversized_body_is_413_and_not_read_to_the_end(database_url, declared):
    """A valid datashare padded past the cap. httpx's ASGI transport hands the app the body
    one chunk at a time, as asked for: counting them shows how much the app ever read."""
    from edge_core.settings import DEFAULT_MAX_BODY_BYTES

    chunk, chunks = 64 * 1024, 64  # 4 MiB, four times the default cap
    pulled = 0

    async def body():
        nonlocal pulled
        pulled += 1
        yield b'{"id": "DS1", "description": "'
        for _ in range(chunks):
            pulled += 1
            yield b"x" * chunk
        yield b'"}'

    headers = {**auth("alice"), "Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(chunk * chunks + 33)
    engine, sessions = open_database(database_url)
    transport = httpx.ASGITransport(app=create_app(sessions, TOKENS))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        response = await http.post("/api/v1/datashares", content=body(), headers=headers)
        assert response.status_code == 413, response.text
        assert pulled <= DEFAULT_MAX_BODY_BYTES // chunk + 2
        listed = await http.get("/api/v1/datashares", headers=auth("alice"))
        assert listed.json() == []
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("token", ["alice-token", "wrong"])
def test_real_server_stops_an_endless_body(registry, token):
    """``edge-registry`` under uvicorn: an endless chunked body is answered (413 past the cap
    with the token, 401 at once without) long before it ends."""
    status, sent = stream_until_answered(registry.url, "/api/v1/datashares", token)
    assert status == (413 if token == "alice-token" else 401)
    # What the server never read stays in socket buffers (a few MiB on loopback).
    assert sent < 32 * 1024 * 1024
