"""The registry's API fuzzed from its own OpenAPI document (schemathesis): with the token,
nothing answers 5xx and every answer matches the document; without it, every route answers
401 before reading the body."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_core.destination_policy import DestinationPolicy
from edge_registry.api import create_app
from edge_registry.db import open_database
from edge_testing.api_fuzzing import BodyReads, fuzz_with_token, fuzz_without_token

TOKEN = "fuzz-token"
OPENAPI = "/openapi.json"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[BodyReads]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    policy = DestinationPolicy(allow_private=True)
    yield BodyReads(create_app(sessions, {"alice": TOKEN}, destinations=policy))
    engine.dispose()


def test_with_the_token_no_5xx_and_answers_as_documented(app):
    fuzz_with_token(app, OPENAPI, TOKEN)


def test_without_a_valid_token_401_before_the_body_is_read(app):
    fuzz_without_token(app, OPENAPI)
