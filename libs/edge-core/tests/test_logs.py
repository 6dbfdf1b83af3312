import json
import logging

import pytest

from edge_core.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_logging():
    """configure_logging replaces the root handler: put back pytest's afterwards, so that
    no later test logs into this test's (closed) captured stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    pynetdicom_level = logging.getLogger("pynetdicom").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pynetdicom").setLevel(pynetdicom_level)


def test_json_lines(capsys):
    configure_logging("receiver", "INFO", "json")
    logging.getLogger("edge.test").info("stored %s", "x.dcm", extra={"datashare": "DS1"})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["message"] == "stored x.dcm"
    assert record["level"] == "INFO"
    assert record["service"] == "receiver"
    assert record["logger"] == "edge.test"
    assert record["datashare"] == "DS1"
    assert "time" in record


def test_text_lines_and_quiet_pynetdicom(capsys):
    configure_logging("uploader", "DEBUG", "text")
    logging.getLogger("edge.test").warning("careful")
    logging.getLogger("pynetdicom").info("PDU chatter")
    err = capsys.readouterr().err
    assert "WARNING" in err and "uploader" in err and "careful" in err
    assert "PDU chatter" not in err
