"""A database is shared with google-adk 2.13's DatabaseSessionService, in both directions."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import DatabaseSessionService as AdkDatabaseSessionService
from google.genai import types
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.errors import StaleSessionError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService
from openadk.testing._contract import full_event
from tests.contract.backends import MYSQL, POSTGRES

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

SERVERS = {
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    return SERVERS[request.param]


@pytest_asyncio.fixture
async def services(db_url: str) -> AsyncIterator[tuple[DatabaseSessionService, Any]]:
    ours = DatabaseSessionService(db_url)
    theirs = AdkDatabaseSessionService(db_url=db_url)
    try:
        yield ours, theirs
    finally:
        await ours.close()
        await theirs.close()


def as_json(event: Any) -> dict[str, Any]:
    """An event's stored JSON form, minus requested_auth_configs (compared separately).

    google-adk parses auth configs into its AuthConfig model and dumps fastapi's Python field
    names back (``type_``, ``in_``); openadk keeps the dict it was given.
    """
    data: dict[str, Any] = json.loads(event.model_dump_json(exclude_none=True))
    data["actions"].pop("requested_auth_configs", None)
    return data


def text_content(value: str, role: str = "user") -> types.Content:
    return types.Content(role=role, parts=[types.Part(text=value)])


async def test_google_adk_reads_and_extends_what_openadk_wrote(
    services: tuple[DatabaseSessionService, Any],
) -> None:
    ours, theirs = services
    app = f"interop-{uuid.uuid4().hex[:8]}"
    session = await ours.create_session(
        app_name=app, user_id="u1", state={"app:plan": "pro", "user:lang": "en", "topic": "tea"}
    )
    first = Event(
        author="user",
        invocation_id="e-1",
        content=text_content("hello"),
        actions=EventActions(state_delta={"topic": "coffee", "temp:scratch": 1}),
    )
    await ours.append_event(session, first)
    await ours.append_event(session, full_event())

    loaded = await theirs.get_session(app_name=app, user_id="u1", session_id=session.id)
    assert loaded is not None
    assert loaded.state == {
        "topic": "coffee",
        "app:plan": "pro",
        "app:shared": 1,
        "user:lang": "en",
        "user:pref": {"theme": "dark"},
        "plain": "v",
    }
    assert [as_json(e) for e in loaded.events] == [as_json(e) for e in session.events]
    auth = loaded.events[1].actions.requested_auth_configs["fc-9"]
    assert auth.credential_key == "k"
    assert auth.auth_scheme.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert loaded.last_update_time == pytest.approx(session.last_update_time, abs=1e-6)

    # google-adk appends to the openadk session, and openadk sees it.
    reply = AdkEvent(
        author="agent",
        invocation_id="e-2",
        content=text_content("hi there", "model"),
        actions=AdkEventActions(state_delta={"user:lang": "fr", "answered": True}),
    )
    await theirs.append_event(loaded, reply)
    again = await ours.get_session(app_name=app, user_id="u1", session_id=session.id)
    assert again is not None
    assert [e.id for e in again.events] == [e.id for e in session.events] + [reply.id]
    assert as_json(again.events[-1]) == as_json(reply)
    assert again.state["user:lang"] == "fr"
    assert again.state["answered"] is True
    listed = await theirs.list_sessions(app_name=app, user_id="u1")
    assert [s.id for s in listed.sessions] == [session.id]
    assert await theirs.get_user_state(app_name=app, user_id="u1") == {
        "lang": "fr",
        "pref": {"theme": "dark"},
    }


async def test_openadk_reads_and_extends_what_google_adk_wrote(
    services: tuple[DatabaseSessionService, Any],
) -> None:
    ours, theirs = services
    app = f"interop-{uuid.uuid4().hex[:8]}"
    created = await theirs.create_session(
        app_name=app, user_id="u2", session_id="adk-made", state={"app:a": 1, "s": "x"}
    )
    events = [
        AdkEvent(
            author="user",
            invocation_id="e-1",
            content=text_content("question"),
            actions=AdkEventActions(state_delta={"user:seen": True}),
        ),
        AdkEvent(
            author="agent",
            invocation_id="e-1",
            content=text_content("answer", "model"),
            long_running_tool_ids={"b", "a"},
            custom_metadata={"someKey": [1, None]},
        ),
    ]
    for event in events:
        await theirs.append_event(created, event)

    session = await ours.get_session(app_name=app, user_id="u2", session_id="adk-made")
    assert session is not None
    assert session.state == {"s": "x", "app:a": 1, "user:seen": True}
    assert [as_json(e) for e in session.events] == [as_json(e) for e in events]

    mine = Event(author="user", invocation_id="e-3", content=text_content("more"))
    mine.actions.state_delta["s"] = "y"
    await ours.append_event(session, mine)
    reloaded = await theirs.get_session(app_name=app, user_id="u2", session_id="adk-made")
    assert reloaded is not None
    assert [e.id for e in reloaded.events] == [e.id for e in events] + [mine.id]
    assert reloaded.state["s"] == "y"
    # google-adk's own stale check notices the openadk write on its old handle.
    with pytest.raises(ValueError, match="modified in storage"):
        await theirs.append_event(created, AdkEvent(author="user", invocation_id="e-4"))
    # And openadk notices google-adk's writes on an openadk handle.
    await theirs.append_event(reloaded, AdkEvent(author="user", invocation_id="e-5"))
    with pytest.raises(StaleSessionError):
        await ours.append_event(session, Event(author="user", invocation_id="e-6"))


async def test_a_database_created_by_google_adk_is_used_as_is(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'adk-first.db'}"
    theirs = AdkDatabaseSessionService(db_url=url)
    made = await theirs.create_session(app_name="a", user_id="u", session_id="s")
    await theirs.append_event(made, AdkEvent(author="user", invocation_id="e"))
    await theirs.close()
    async with DatabaseSessionService(url) as ours:
        session = await ours.get_session(app_name="a", user_id="u", session_id="s")
        assert session is not None and len(session.events) == 1
        await ours.append_event(session, Event(author="user", invocation_id="e2"))
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT key, value FROM adk_internal_metadata"))).all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [("schema_version", "1")]


async def test_a_database_created_by_openadk_is_used_by_google_adk(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'openadk-first.db'}"
    async with DatabaseSessionService(url) as ours:
        made = await ours.create_session(app_name="a", user_id="u", session_id="s")
        await ours.append_event(made, Event(author="user", invocation_id="e"))
    theirs = AdkDatabaseSessionService(db_url=url)
    try:
        session = await theirs.get_session(app_name="a", user_id="u", session_id="s")
        assert session is not None and len(session.events) == 1
        await theirs.append_event(session, AdkEvent(author="user", invocation_id="e2"))
        session = await theirs.get_session(app_name="a", user_id="u", session_id="s")
        assert session is not None and len(session.events) == 2
    finally:
        await theirs.close()
