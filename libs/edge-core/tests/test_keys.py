import pytest

from edge_core.keys import buffer_key, destination_key, quarantine_key, safe_uid


@pytest.mark.parametrize("padded", ["1.2.3", "1.2.3\0", "1.2.3 ", " 1.2.3\0 "])
def test_valid_uid_is_kept_without_its_padding(padded):
    # UI values are padded with NUL, and peers pad with spaces too: the same key either way.
    assert safe_uid(padded) == "1.2.3"


def test_valid_uid_is_kept():
    assert safe_uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert safe_uid("1" * 64) == "1" * 64  # the longest valid UID


@pytest.mark.parametrize(
    "hostile", ["../../etc/passwd", "1.2/3", "a.b", "1" * 65, "", "1..2", "/abs", "1.2 3"]
)
def test_hostile_uid_is_hashed(hostile):
    out = safe_uid(hostile)
    assert out.startswith("x") and len(out) == 41
    assert "/" not in out and "." not in out
    assert safe_uid(hostile) == out  # stable


def test_keys():
    key = buffer_key("DS1", "1.2", "1.2.3", "../x", "ab" * 32)
    assert key.startswith("DS1/1.2/1.2.3/x")
    assert key.endswith(".abababababababab.dcm")
    assert ".." not in key
    assert quarantine_key(key) == "quarantine/" + key
    assert destination_key("pre/fix/", "DS1", "1.2", "1.3", "1.4") == "pre/fix/DS1/1.2/1.3/1.4.dcm"
    assert destination_key("", "DS1", "1.2", "1.3", "1.4") == "DS1/1.2/1.3/1.4.dcm"
