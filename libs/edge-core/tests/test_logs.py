import json
import logging
import re

import pytest

from edge_core.logs import configure_logging, escape_controls


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


HOSTILE_UID = "1.2.3\n2026-11-29 08:00:00,000 INFO    receiver edge: all clear\x1b[2J\u202e"


def test_text_lines_escape_control_characters_from_peer_input(capsys):
    """A newline in a peer's UID cannot forge a log line, nor an escape sequence reach the
    terminal of whoever reads the log; a traceback keeps its own lines."""
    configure_logging("receiver", "INFO", "text")
    log = logging.getLogger("edge.test")
    log.warning("C-STORE of %s refused", HOSTILE_UID)
    log.warning("C-STORE of %r refused", HOSTILE_UID)  # repr: already escaped, not twice
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed for %s", "A\nB")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(
        "C-STORE of 1.2.3\\n2026-11-29 08:00:00,000 INFO    receiver edge: all clear"
        "\\x1b[2J\\u202e refused"
    )
    assert lines[1].endswith("C-STORE of '1.2.3\\n2026-11-29 08:00:00,000 INFO    receiver edge:"
                             " all clear\\x1b[2J\\u202e' refused")  # fmt: skip
    assert lines[2].endswith("failed for A\\nB")
    assert lines[3] == "Traceback (most recent call last):"
    assert not any(re.search("[\x00-\x1f\x7f-\x9f\u202e]", line) for line in lines)


def test_json_lines_stay_one_record_per_line(capsys):
    configure_logging("receiver", "INFO", "json")
    logging.getLogger("edge.test").warning("C-STORE of %s refused", HOSTILE_UID)
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == f"C-STORE of {HOSTILE_UID} refused"
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202e]", line)


def test_escape_controls():
    assert escape_controls("a\tb\x00c\x7f\x85\u2028 é ü ✓") == "a\\tb\\x00c\\x7f\\x85\\u2028 é ü ✓"
