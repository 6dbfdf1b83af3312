from edge_core.auth import authenticate, bearer_token, parse_tokens


def test_parse_tokens():
    assert parse_tokens("abc") == {"staff": "abc"}
    assert parse_tokens("alice:t1, bob:t2,,") == {"alice": "t1", "bob": "t2"}
    assert parse_tokens("") == {}


def test_authenticate():
    tokens = parse_tokens("alice:t1,bob:t2")
    assert authenticate("Bearer t2", tokens) == "bob"
    assert authenticate("bearer t1", tokens) == "alice"
    assert authenticate("Bearer t3", tokens) is None
    assert authenticate("Basic t1", tokens) is None
    assert authenticate(None, tokens) is None
    assert authenticate("Bearer ", tokens) is None
    assert authenticate("Bearer t1", {}) is None
    assert bearer_token("Bearer  x ") == "x"
