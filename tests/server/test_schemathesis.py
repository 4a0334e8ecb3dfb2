"""Property-based tests generated from the server's own OpenAPI schema: no input makes it fail."""

from __future__ import annotations

import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from openadk.server import create_app
from openadk.sessions import DatabaseSessionService, InMemorySessionService

API_KEY = "schemathesis-key"

memory_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(InMemorySessionService(), api_key=API_KEY)
)
sqlite_schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(
        DatabaseSessionService(
            f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='openadk-st-')}/st.db"
        ),
        api_key=API_KEY,
    ),
)

for _schema in (memory_schema, sqlite_schema):
    # Valid requests and invalid ones (wrong types, missing fields, extra parameters).
    _schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        allow_x00=True,
    )

_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@memory_schema.parametrize()
@_SETTINGS
def test_no_server_errors_in_memory(case: schemathesis.Case) -> None:
    response = case.call(headers={"x-goog-api-key": API_KEY})
    case.validate_response(response, checks=(not_a_server_error,))


@sqlite_schema.parametrize()
@_SETTINGS
def test_no_server_errors_on_sqlite(case: schemathesis.Case) -> None:
    response = case.call(headers={"x-goog-api-key": API_KEY})
    case.validate_response(response, checks=(not_a_server_error,))
