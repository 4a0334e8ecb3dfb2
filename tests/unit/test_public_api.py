"""The public names of each package: what users may import, and nothing private leaking."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import openadk
import openadk.adk
import openadk.errors
import openadk.events
import openadk.sessions
import openadk.testing

EXPECTED = {
    openadk.adk: [
        "AdkSessionService",
        "UnknownFieldError",
        "register",
        "schemes",
        "service_for_uri",
    ],
    openadk.events: [
        "CacheMetadata",
        "Event",
        "EventActions",
        "EventCompaction",
        "NodeInfo",
        "ToolConfirmation",
        "UiWidget",
    ],
    openadk.sessions: [
        "AlreadyExistsError",
        "BaseSessionService",
        "DatabaseSessionService",
        "GetSessionConfig",
        "InMemorySessionService",
        "ListEventsResponse",
        "ListSessionsResponse",
        "RedisSessionService",
        "SearchEventsResponse",
        "SearchHit",
        "Session",
        "SessionNotFoundError",
        "SqliteServiceFileReader",
        "StaleSessionError",
        "State",
        "VertexAiSessionService",
    ],
    openadk.errors: [
        "AlreadyExistsError",
        "CorruptDataError",
        "InvocationNotFoundError",
        "OpenAdkError",
        "SessionNotFoundError",
        "StaleSessionError",
        "StateSchemaError",
        "StorageError",
    ],
    openadk.testing: ["ServiceFactory", "SessionServiceContract"],
}


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_exported_members(module: object) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    assert exported == EXPECTED[module]  # type: ignore[index]
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(module, name) is not None


def test_errors_keep_google_adk_bases_and_messages() -> None:
    from openadk.sessions import AlreadyExistsError, SessionNotFoundError, StaleSessionError

    assert issubclass(SessionNotFoundError, ValueError)
    assert issubclass(StaleSessionError, ValueError)
    assert not issubclass(AlreadyExistsError, ValueError)
    assert str(AlreadyExistsError()) == "The resource already exists."
    assert AlreadyExistsError("x").message == "x"
    assert str(SessionNotFoundError()) == "Session not found."
    assert "modified in storage" in str(StaleSessionError())
    assert issubclass(openadk.errors.StateSchemaError, TypeError)


def test_importing_sessions_does_not_import_optional_drivers() -> None:
    # httpx is not checked: google-genai, whose Content type the models use, imports it itself.
    code = (
        "import sys, openadk.sessions, openadk.events;"
        "mods = ('sqlalchemy', 'redis', 'asyncpg', 'aiosqlite', 'aiomysql');"
        "bad = [m for m in mods if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_of_sessions_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchService"):
        importlib.import_module("openadk.sessions").NoSuchService  # noqa: B018


def test_version() -> None:
    assert openadk.__version__
