"""A datashare's ``deidentification``: API, validation, history, events and ``edgectl``."""

import pytest

from edge_registry.cli import main

BASIC = {"profile": "basic", "options": [], "keep": [], "remove": []}


def test_default_is_byte_for_byte_and_a_profile_can_be_set_changed_and_removed(client):
    created = client.post("/api/v1/datashares", json={"id": "DS1"}).json()
    assert created["deidentification"] is None

    body = {
        "profile": "basic",
        "options": ["retain_patient_characteristics", "clean_descriptors"],
        "keep": ["patientsex", "(0009,1001)"],
        "remove": ["0008 0070"],
    }
    response = client.patch("/api/v1/datashares/DS1", json={"deidentification": body})
    assert response.status_code == 200, response.text
    # Options sorted; attributes as keywords (a private one as its tag), whatever was typed.
    assert response.json()["deidentification"] == {
        "profile": "basic",
        "options": ["clean_descriptors", "retain_patient_characteristics"],
        "keep": ["PatientSex", "(0009,1001)"],
        "remove": ["Manufacturer"],
    }
    # A PATCH of another field keeps it; {} is the basic profile without options.
    client.patch("/api/v1/datashares/DS1", json={"description": "x"})
    assert client.get("/api/v1/datashares/DS1").json()["deidentification"]["keep"] == [
        "PatientSex",
        "(0009,1001)",
    ]
    response = client.patch("/api/v1/datashares/DS1", json={"deidentification": {}})
    assert response.json()["deidentification"] == BASIC
    response = client.patch("/api/v1/datashares/DS1", json={"deidentification": None})
    assert response.json()["deidentification"] is None

    history = client.get("/api/v1/datashares/DS1/history").json()
    changes = [h["changes"].get("deidentification") for h in history]
    assert history[0]["changes"]["deidentification"] is None
    assert changes[1]["old"] is None and changes[1]["new"]["keep"] == ["PatientSex", "(0009,1001)"]
    assert changes[2] is None  # the description
    assert changes[3]["new"] == BASIC
    assert changes[4] == {"old": BASIC, "new": None}


@pytest.mark.parametrize(
    ("deidentification", "says"),
    [
        ({"profile": "full"}, "basic"),
        ({"options": ["retain_uids"]}, "retain_longitudinal_modified_dates"),
        ({"keep": ["PatientNickname"]}, "not a DICOM attribute keyword"),
        ({"keep": ["(0010,00"]}, "neither a DICOM keyword"),
        ({"remove": ["(0002,0010)"]}, "file meta"),
        ({"keep": ["PatientSex"], "remove": ["(0010,0040)"]}, "both kept and removed"),
        ({"keep": [f"(0009,{n:04X})" for n in range(0x1000, 0x1000 + 201)]}, "at most 200"),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_invalid_deidentification_is_422(client, deidentification, says):
    response = client.post(
        "/api/v1/datashares", json={"id": "DS1", "deidentification": deidentification}
    )
    assert response.status_code == 422, response.text
    assert says in response.text
    assert client.get("/api/v1/datashares/DS1").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_edgectl_sets_and_clears_it(registry, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_REGISTRY_URL", registry.url)
    monkeypatch.setenv("EDGE_API_TOKEN", "alice-token")
    assert main(["datashares", "create", "DS1"]) == 0
    assert "deidentification             -" in capsys.readouterr().out
    argv = ["datashares", "update", "DS1", "--deidentify", "basic"]
    argv += ["--deid-option", "retain_device_identity", "--deid-keep", "StationName", "--json"]
    assert main(argv) == 0
    assert '"options": [\n      "retain_device_identity"\n    ]' in capsys.readouterr().out
    assert main(["datashares", "update", "DS1", "--no-deidentification", "--json"]) == 0
    assert '"deidentification": null' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["datashares", "update", "DS1", "--deid-option", "retain_everything"])
