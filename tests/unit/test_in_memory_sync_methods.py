"""InMemorySessionService keeps google-adk's deprecated synchronous twins of four methods."""

from __future__ import annotations

import inspect
import logging

import pytest
from google.adk.sessions import InMemorySessionService as AdkInMemorySessionService

from openadk.sessions import GetSessionConfig, InMemorySessionService

_METHODS = ["create_session_sync", "get_session_sync", "list_sessions_sync", "delete_session_sync"]
_MESSAGE = "Deprecated. Please migrate to the async method."


def _parameters(method: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(method)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize("name", _METHODS)
def test_signatures_match_google_adk(name: str) -> None:
    ours = getattr(InMemorySessionService, name)
    theirs = getattr(AdkInMemorySessionService, name)
    assert _parameters(ours) == _parameters(theirs)


def _round_trip(service: InMemorySessionService, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="openadk.sessions"):
        created = service.create_session_sync(
            app_name="app", user_id="u", state={"k": 1, "user:n": 2}, session_id="s"
        )
        got = service.get_session_sync(
            app_name="app", user_id="u", session_id="s", config=GetSessionConfig()
        )
        listed = service.list_sessions_sync(app_name="app", user_id="u")
        everyone = service.list_sessions_sync(app_name="app")
        service.delete_session_sync(app_name="app", user_id="u", session_id="s")
        gone = service.get_session_sync(app_name="app", user_id="u", session_id="s")
    assert created.id == "s" and created.state == {"k": 1, "user:n": 2}
    assert got is not None and got.state == created.state
    assert [s.id for s in listed.sessions] == [s.id for s in everyone.sessions] == ["s"]
    assert gone is None
    warned = [r for r in caplog.records if r.name == "openadk.sessions"]
    assert [(r.levelno, r.getMessage()) for r in warned] == [(logging.WARNING, _MESSAGE)] * 6


def test_sync_methods_work_and_log_the_deprecation(caplog: pytest.LogCaptureFixture) -> None:
    _round_trip(InMemorySessionService(), caplog)


@pytest.mark.asyncio
async def test_sync_methods_work_inside_a_running_event_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = InMemorySessionService()
    _round_trip(service, caplog)
    # The async methods see what the sync ones did.
    assert await service.get_session(app_name="app", user_id="u", session_id="s") is None


def test_sync_methods_check_their_arguments() -> None:
    service = InMemorySessionService()
    with pytest.raises(ValueError, match="app_name"):
        service.create_session_sync(app_name="", user_id="u")
    with pytest.raises(TypeError, match="session_id"):
        service.get_session_sync(app_name="a", user_id="u", session_id=1)  # type: ignore[arg-type]
