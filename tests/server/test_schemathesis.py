"""Property-based tests generated from the server's own OpenAPI schema.

Every response must conform to the schema (status code, content type, headers, body), no input
may make the server fail, and a request the schema calls valid must not be refused with 400.
"""

from __future__ import annotations

import base64
import tempfile
import time

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import ignored_auth, negative_data_rejection

from openadk.server import create_app
from openadk.sessions import DatabaseSessionService, InMemorySessionService
from openadk.sessions._vertex import parse_time

API_KEY = "schemathesis-key"

# Bytes fields (inlineData.data, thoughtSignature, ...) are ``format: base64url`` strings in the
# schema; schemathesis knows no such format and would send any text as a "valid" value.
schemathesis.openapi.format(
    "base64url", st.binary(max_size=48).map(lambda raw: base64.urlsafe_b64encode(raw).decode())
)

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

# ignored_auth: the test sends the key with every call, so the check's copy of a request with
# one credential spoiled still carries a valid one (401s are tested in test_bad_input.py).
# negative_data_rejection: the server takes some requests the schema calls invalid (unknown
# query parameters, bare filter values); it must still answer them within the schema.
_EXCLUDED = [ignored_auth, negative_data_rejection]


def _without_the_unschemable(case: schemathesis.Case) -> None:
    """Drops what no JSON schema can describe from valid cases.

    A page token is opaque (only a token the server made is valid), and ``expireTime`` must be in
    the future; both are refused with 400 otherwise, as they should be.
    """
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return
    if isinstance(case.query, dict):
        case.query.pop("pageToken", None)
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("expireTime"), str):
        try:
            if parse_time(body["expireTime"]) <= time.time() + 60:
                del body["expireTime"]
        except ValueError:
            pass


@memory_schema.parametrize()
@_SETTINGS
def test_responses_follow_the_schema_in_memory(case: schemathesis.Case) -> None:
    _without_the_unschemable(case)
    response = case.call(headers={"x-goog-api-key": API_KEY})
    case.validate_response(response, excluded_checks=_EXCLUDED)


@sqlite_schema.parametrize()
@_SETTINGS
def test_responses_follow_the_schema_on_sqlite(case: schemathesis.Case) -> None:
    _without_the_unschemable(case)
    response = case.call(headers={"x-goog-api-key": API_KEY})
    case.validate_response(response, excluded_checks=_EXCLUDED)
