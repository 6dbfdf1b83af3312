"""Fuzzing a REST API from its own OpenAPI document (schemathesis), in-process.

:class:`BodyReads` wraps the app and counts the request bodies it reads, so that a test can
show an unauthenticated request is answered 401 before any of its body is read."""

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from edge_testing.fuzzing import counted, fuzz_settings

# What the APIs promise: no 5xx whatever the request, and every answer as the document
# describes it. Not checked: that every status a route answers is listed (FastAPI lists
# only 200/201 and 422), that every schema-valid body is accepted (an id may be taken, a
# destination not allowed), nor that every request the document calls invalid is refused:
# unknown query parameters are ignored, as HTTP servers do, and the token sent replaces the
# Authorization header schemathesis leaves out or garbles.
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


class BodyReads:
    """An ASGI app that counts how many request-body messages the wrapped app received."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def counting() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.count += 1
            return message

        await self.app(scope, counting, send)


def fuzz(app: BodyReads, openapi_path: str, test: Callable[[Any], None], share: float) -> None:
    """Run ``test`` on requests to every operation of the app's OpenAPI document, valid
    ones and ones the document calls invalid (``share`` of ``EDGE_FUZZ_EXAMPLES``)."""
    schema = schemathesis.openapi.from_asgi(openapi_path, app)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    fuzz_settings(share)(given(cases)(counted(test)))()


def fuzz_with_token(app: BodyReads, openapi_path: str, token: str, share: float = 3) -> None:
    """With the token: nothing answers 5xx and every answer matches the document."""

    def test(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    fuzz(app, openapi_path, test, share)


def fuzz_without_token(
    app: BodyReads, openapi_path: str, open_paths: frozenset[str] = frozenset(), share: float = 2
) -> None:
    """With a wrong token: every route but ``open_paths`` answers 401 before reading the
    body."""

    def test(case: Any) -> None:
        before = app.count
        response = case.call(headers={"Authorization": "Bearer not-the-token"})
        if case.path not in open_paths:
            assert response.status_code == 401, response.text
            assert app.count == before, "the body was read"

    fuzz(app, openapi_path, test, share)
