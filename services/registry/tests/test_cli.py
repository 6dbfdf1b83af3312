"""``edgectl`` against a running registry: every command, readable output, clear errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_registry.cli import main

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def edgectl(registry, monkeypatch, capsys):
    """Run ``edgectl`` in-process as alice; returns (exit status, stdout, stderr)."""
    monkeypatch.setenv("EDGE_REGISTRY_URL", registry.url)
    monkeypatch.setenv("EDGE_API_TOKEN", "alice-token")

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_create_list_show_update_history_delete(edgectl, monkeypatch):
    status, out, err = edgectl(
        "datashares", "create", "consortium-study-7",
        "--ae-title", "STUDY7", "--description", "Study seven",
        "--allow-calling-aet", "PACS1", "--allow-calling-aet", "PACS2",
        "--allow-network", "10.20.0.0/16",
        "--destination", "s3://edge-dest/study7",
        "--credential", "access_key=AK7", "--credential", "secret_key=cli-secret",
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert "ae_title                     STUDY7" in out
    assert "allowed_calling_aets         PACS1, PACS2" in out
    assert "destination_credentials_set  access_key, secret_key" in out
    assert "cli-secret" not in out
    assert edgectl("datashares", "create", "DS2", "--disable")[0] == 0

    status, out, _ = edgectl("datashares", "list")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "AE",
        "TITLE",
        "MATCH",
        "ENABLED",
        "DESTINATION",
        "REVISION",
        "DESCRIPTION",
    ]
    assert lines[2].split() == ["DS2", "DS2", "called", "no", "-", "1"]
    assert lines[3].split() == [
        "consortium-study-7", "STUDY7", "called", "yes", "s3://edge-dest/study7", "1",
        "Study", "seven",
    ]  # fmt: skip
    # Columns line up: each cell starts where its header does.
    assert lines[3].index("STUDY7") == lines[0].index("AE TITLE") == lines[2].index("DS2", 3)
    status, out, _ = edgectl("datashares", "list", "--disabled")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["DS2"]

    monkeypatch.setenv("EDGE_API_TOKEN", "bob-token")
    status, out, _ = edgectl(
        "datashares", "update", "consortium-study-7",
        "--match", "calling", "--any-calling-aet", "--disable",
    )  # fmt: skip
    assert status == 0
    assert "match                        calling" in out
    assert "allowed_calling_aets         -" in out
    assert "updated_by                   bob" in out

    status, out, _ = edgectl("datashares", "show", "consortium-study-7", "--json")
    shown = json.loads(out)
    assert (shown["enabled"], shown["revision"]) == (False, 2)
    assert shown["allowed_networks"] == ["10.20.0.0/16"]

    status, out, _ = edgectl("datashares", "history", "consortium-study-7")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REVISION", "TIME", "ACTOR", "ACTION", "CHANGES"]
    revision, date, time, actor, action = lines[2].split()[:5]
    assert (revision, actor, action) == ("1", "alice", "created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", date) and re.fullmatch(r"\d\d:\d\d:\d\dZ", time)
    assert "secret_key=***" in lines[2] and "cli-secret" not in out
    assert lines[3].split()[3:5] == ["bob", "updated"]
    assert "match: called -> calling" in lines[3]
    assert "allowed_calling_aets: PACS1, PACS2 -> -" in lines[3]
    assert "enabled: yes -> no" in lines[3]

    status, out, _ = edgectl("datashares", "delete", "DS2")
    assert (status, out) == (0, "deleted datashare DS2\n")
    status, out, _ = edgectl("datashares", "list", "--json")
    assert [d["id"] for d in json.loads(out)] == ["consortium-study-7"]


def test_update_can_return_fields_to_their_defaults(edgectl):
    edgectl(
        "datashares", "create", "DS1", "--ae-title", "PACSDS1", "--allow-network", "10.0.0.0/8",
        "--destination", "dicomweb+https://pacs.example.org/dicom-web", "--credential", "token=t",
    )  # fmt: skip
    status, out, err = edgectl(
        "datashares", "update", "DS1", "--default-ae-title", "--any-network",
        "--default-destination", "--clear-credentials", "--json",
    )  # fmt: skip
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert shown["ae_title"] == "DS1"
    assert shown["allowed_networks"] == []
    assert shown["destination"] is None
    assert shown["destination_credentials_set"] == []


def test_errors_are_clear_and_exit_non_zero(edgectl, monkeypatch):
    status, out, err = edgectl(
        "datashares", "create", "DS1", "--ae-title", "A\\B", "--allow-network", "10.0.0.1/8"
    )
    assert (status, out) == (1, "")
    assert err.startswith("edgectl: 422 Unprocessable")
    assert "\n  ae_title: AE title 'A\\\\B' contains '\\\\'" in err
    assert "\n  allowed_networks: '10.0.0.1/8' is not a network" in err

    assert edgectl("datashares", "create", "DS1")[0] == 0
    status, _, err = edgectl("datashares", "create", "DS1")
    assert status == 1
    assert err == "edgectl: 409 Conflict: a datashare with id 'DS1' already exists\n"
    status, _, err = edgectl("datashares", "show", "NOPE")
    assert (status, err) == (1, "edgectl: 404 Not Found: no datashare with id 'NOPE'\n")
    status, _, err = edgectl("datashares", "update", "DS1")
    assert status == 1 and "nothing to change" in err

    # Usage errors: argparse's exit status 2, and a credential value is never echoed.
    status, _, err = edgectl("datashares", "create", "DS9", "--credential", "secretvalue")
    assert status == 2 and "NAME=VALUE" in err and "secretvalue" not in err
    assert edgectl("datashares", "frobnicate")[0] == 2

    monkeypatch.setenv("EDGE_API_TOKEN", "wrong")
    status, _, err = edgectl("datashares", "list")
    assert status == 1
    assert "401 Unauthorized: missing or wrong bearer token (check EDGE_API_TOKEN)" in err
    monkeypatch.delenv("EDGE_API_TOKEN")
    assert "check EDGE_API_TOKEN" in edgectl("datashares", "list")[2]


def test_unreachable_registry(monkeypatch, capsys, database_url):
    from edge_embedded.ports import free_ports

    (port,) = free_ports(1)
    monkeypatch.setenv("EDGE_REGISTRY_URL", f"http://127.0.0.1:{port}")
    assert main(["datashares", "list"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the registry at http://127.0.0.1:{port}" in err
    assert "Connection refused" in err and "EDGE_REGISTRY_URL" in err


def test_the_installed_console_script(registry):
    edgectl = Path(sys.executable).with_name("edgectl")
    env = {**os.environ, "EDGE_REGISTRY_URL": registry.url, "EDGE_API_TOKEN": "bob-token"}
    done = subprocess.run(
        [str(edgectl), "datashares", "create", "DS1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created_by"] == "bob"
    done = subprocess.run(
        [str(edgectl), "datashares", "show", "NOPE"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "404" in done.stderr


def test_control_characters_are_shown_escaped(edgectl):
    """A description (anyone with a token writes it) cannot drive the terminal of the staff
    who list datashares: no escape sequence, no forged line reaches it raw."""
    hostile = "ok\x1b]0;pwned\x07\x1b[2J\nDS9  FAKE-ROW\r\u202etxt.exe\x9b"
    assert edgectl("datashares", "create", "DS1", "--description", hostile)[0] == 0
    for command in (("list",), ("show", "DS1"), ("history", "DS1")):
        status, out, _ = edgectl("datashares", *command)
        assert status == 0
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", out), (command, out)
        assert "ok\\x1b]0;pwned\\x07\\x1b[2J\\nDS9  FAKE-ROW\\r\\u202etxt.exe\\x9b" in out
    status, out, _ = edgectl("datashares", "list")
    assert len(out.splitlines()) == 3  # header, rule, one datashare
    # The API's own JSON is escaped by the JSON encoder.
    assert json.loads(edgectl("datashares", "list", "--json")[1])[0]["description"] == hostile
