import pytest
from pydantic import ValidationError

from edge_core.auth import BearerAuth, authenticate, bearer_token, parse_tokens
from edge_core.settings import EdgeSettings


def test_parse_tokens():
    assert parse_tokens("abc") == {"staff": "abc"}
    assert parse_tokens("alice:t1, bob:t2,,") == {"alice": "t1", "bob": "t2"}
    assert parse_tokens("") == {}


@pytest.mark.parametrize("setting", ["alice:", ":t1", "alice:t1,alice:t2", "t1,staff:t2"])
def test_a_malformed_token_setting_is_refused_at_start(setting):
    with pytest.raises(ValueError):
        parse_tokens(setting)
    with pytest.raises(ValidationError, match="API token"):
        EdgeSettings(api_token=setting)  # type: ignore[arg-type]


def test_the_settings_give_the_named_tokens():
    settings = EdgeSettings(api_token="alice:t1, bob:t2")  # type: ignore[arg-type]
    assert settings.api_tokens == {"alice": "t1", "bob": "t2"}


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


async def test_bearer_auth_answers_before_the_app_or_its_body():
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["path"], scope.get("state", {}).get("actor")))

    async def receive():
        raise AssertionError("the body was read")

    sent = []

    async def send(message):
        sent.append(message)

    guard = BearerAuth(
        app,
        guards={"/api/": {"alice": "t1"}, "/metrics": {"alice": "t1", "metrics": "m"}},
        open_paths={"/api/docs"},
    )

    def scope(path, token=None):
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        return {"type": "http", "path": path, "headers": headers}

    for path, token in [("/api/v1/x", None), ("/api/v1/x", "m"), ("/metrics", "wrong")]:
        await guard(scope(path, token), receive, send)
        assert sent[0]["status"] == 401 and (b"www-authenticate", b"Bearer") in sent[0]["headers"]
        sent.clear()
    assert seen == []

    await guard(scope("/api/v1/x", "t1"), receive, send)
    await guard(scope("/metrics", "m"), receive, send)
    await guard(scope("/api/docs"), receive, send)
    await guard(scope("/healthz"), receive, send)
    assert seen == [("/api/v1/x", "alice"), ("/metrics", "metrics"), ("/api/docs", None),
                    ("/healthz", None)]  # fmt: skip
