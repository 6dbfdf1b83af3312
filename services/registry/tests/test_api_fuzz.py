"""The registry's API fuzzed from its own OpenAPI document (schemathesis): with the token,
nothing answers 5xx and every answer matches the document; without it, every route answers
401 before reading the body."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_core.destination_policy import DestinationPolicy
from edge_registry.api import create_app
from edge_registry.db import open_database
from edge_testing.api_fuzzing import CHECKS, BodyReads, fuzz

TOKEN = "fuzz-token"
OPENAPI = "/openapi.json"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[BodyReads]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    policy = DestinationPolicy(allow_private=True)
    yield BodyReads(create_app(sessions, {"alice": TOKEN}, destinations=policy))
    engine.dispose()


def test_with_the_token_no_5xx_and_answers_as_documented(app):
    def test(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

    fuzz(app, OPENAPI, test, share=3)


def test_without_a_valid_token_401_before_the_body_is_read(app):
    def test(case):
        before = app.count
        response = case.call(headers={"Authorization": "Bearer not-the-token"})
        assert response.status_code == 401, response.text
        assert app.count == before, "the body was read"

    fuzz(app, OPENAPI, test, share=2)
