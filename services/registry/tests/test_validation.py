"""Every invalid value gets a 422 that names the field and says what is wrong; valid values
are stored in their canonical form."""

import pytest

INVALID = [
    # (body fields besides id "DS1", field reported, words the message must contain)
    ({"id": ""}, "id", "1-64 letters"),
    ({"id": "has space"}, "id", "1-64 letters"),
    ({"id": "-leading"}, "id", "starting with a letter or digit"),
    ({"id": "a.b"}, "id", "1-64 letters"),
    ({"id": "x" * 65}, "id", "1-64 letters"),
    ({"id": "TOO_LONG_FOR_AN_AE"}, "ae_title", "give a substitute ae_title"),
    ({"ae_title": ""}, "ae_title", "empty or all spaces"),
    ({"ae_title": "    "}, "ae_title", "empty or all spaces"),
    ({"ae_title": "A" * 17}, "ae_title", "17 characters long; at most 16"),
    ({"ae_title": "BACK\\SLASH"}, "ae_title", "without backslash"),
    ({"ae_title": "TAB\tAE"}, "ae_title", "control characters"),
    ({"ae_title": "NUL\x00"}, "ae_title", "control characters"),
    ({"ae_title": "ÉCOLE"}, "ae_title", "default repertoire"),
    ({"ae_title": 123}, "ae_title", "valid string"),
    ({"match": "both"}, "match", "'called' or 'calling'"),
    ({"allowed_calling_aets": ["OK", "BAD\\ONE"]}, "allowed_calling_aets", "backslash"),
    ({"allowed_calling_aets": "PACS"}, "allowed_calling_aets", "valid list"),
    ({"allowed_networks": ["10.0.0.1/24"]}, "allowed_networks", "did you mean 10.0.0.0/24"),
    ({"allowed_networks": ["10.0.0.0/33"]}, "allowed_networks", "CIDR form"),
    ({"allowed_networks": ["hospital"]}, "allowed_networks", "CIDR form"),
    ({"destination": "http://example.org/x"}, "destination", "is not one of s3://"),
    ({"destination": "ftp://example.org"}, "destination", "is not one of"),
    ({"destination": "bucket/prefix"}, "destination", "is not one of"),
    ({"destination": "s3://Upper/x"}, "destination", "not a valid S3 bucket name"),
    ({"destination": "s3://ab"}, "destination", "not a valid S3 bucket name"),
    ({"destination": "s3://bucket/a//b"}, "destination", "empty, '.' or '..' segment"),
    ({"destination": "s3://bucket/../x"}, "destination", "empty, '.' or '..' segment"),
    ({"destination": "s3://key:secret@bucket"}, "destination", "use destination_credentials"),
    ({"destination": "s3://bucket/x?versioning=1"}, "destination", "query or fragment"),
    ({"destination": "dicomweb+https://"}, "destination", "no valid host"),
    ({"destination": "dicomweb+https://u:p@pacs/x"}, "destination", "use destination_credentials"),
    ({"destination": "dicomweb+http://pacs:99999/x"}, "destination", "invalid port"),
    ({"destination": "dicom://pacs.example.org:104"}, "destination", "needs the called AE title"),
    ({"destination": "dicom://AE@pacs.example.org"}, "destination", "needs a port"),
    ({"destination": "dicom://AE@pacs:0"}, "destination", "outside 1-65535"),
    ({"destination": "dicom://A\\E@pacs:104"}, "destination", "destination AE title"),
    ({"destination": "dicom://AE@pacs:104/path"}, "destination", "no path"),
    ({"destination_credentials": {"token": "t"}}, "destination_credentials", "need a destination"),
    (
        {"destination": "s3://bucket", "destination_credentials": {"access_key": "a"}},
        "destination_credentials",
        "exactly {access_key, secret_key}",
    ),
    (
        {"destination": "dicomweb+https://pacs/x", "destination_credentials": {"key": "k"}},
        "destination_credentials",
        "{token} or {password, username}",
    ),
    (
        {"destination": "dicom://AE@pacs:104", "destination_credentials": {"token": "t"}},
        "destination_credentials",
        "take no destination_credentials",
    ),
    (
        {
            "destination": "s3://bucket",
            "destination_credentials": {"access_key": "a", "secret_key": ""},
        },
        "destination_credentials",
        "must not be empty",
    ),
    ({"enabled": "yes"}, "enabled", "valid boolean"),
    ({"description": "x" * 1001}, "description", "at most 1000"),
    ({"colour": "blue"}, "colour", "Extra inputs"),
]


# The checks do not touch the database: SQLite is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("fields", "field", "words"), INVALID)
def test_invalid_values_are_refused_with_a_clear_message(client, fields, field, words):
    response = client.post("/api/v1/datashares", json={"id": "DS1", **fields})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e for e in errors if e["loc"][:2] == ["body", field] and words in e["msg"]], errors
    assert client.get("/api/v1/datashares").json() == []


def test_malformed_bodies_are_refused(client):
    for body in ("{not json", "[]", '"DS1"'):
        response = client.post(
            "/api/v1/datashares", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (body, response.text)
    assert client.post("/api/v1/datashares", json={}).json()["detail"][0]["loc"] == ["body", "id"]


VALID = [
    ({"ae_title": "  PACS 1  "}, "ae_title", "PACS 1"),
    ({"ae_title": "a-b_c.d e!~"}, "ae_title", "a-b_c.d e!~"),
    (
        {"allowed_calling_aets": [" MODALITY ", "MODALITY", "CT1"]},
        "allowed_calling_aets",
        ["MODALITY", "CT1"],
    ),
    (
        {"allowed_networks": ["10.1.2.3", "192.168.0.0/16", "fd00::/8"]},
        "allowed_networks",
        ["10.1.2.3/32", "192.168.0.0/16", "fd00::/8"],
    ),
    ({"destination": "s3://edge-dest/site-a/"}, "destination", "s3://edge-dest/site-a"),
    ({"destination": "s3://edge-dest"}, "destination", "s3://edge-dest"),
    (
        {"destination": "DICOMweb+HTTPS://pacs.example.org:8443/dicom-web"},
        "destination",
        "dicomweb+https://pacs.example.org:8443/dicom-web",
    ),
    (
        {"destination": "dicom://STORESCP@10.0.0.5:11112"},
        "destination",
        "dicom://STORESCP@10.0.0.5:11112",
    ),
    ({"destination": "dicom://ARCHIVE@[::1]:104"}, "destination", "dicom://ARCHIVE@[::1]:104"),
]


@pytest.mark.parametrize(("fields", "field", "stored"), VALID)
def test_valid_values_are_stored_in_canonical_form(client, fields, field, stored):
    response = client.post("/api/v1/datashares", json={"id": "DS1", **fields})
    assert response.status_code == 201, response.text
    assert response.json()[field] == stored
    assert client.get("/api/v1/datashares/DS1").json()[field] == stored


def test_long_id_with_substitute_ae_title(client):
    long_id = "consortium-study-2026-site-a"
    response = client.post("/api/v1/datashares", json={"id": long_id, "ae_title": "STUDY26A"})
    assert response.status_code == 201, response.text
    assert response.json()["ae_title"] == "STUDY26A"
