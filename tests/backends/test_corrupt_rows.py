"""A row written by another tool (or edited by hand) that openadk cannot parse is a StorageError.

The error names the table and the row's key and chains the parse error, so a caller (``openadk
sessions export``) can report the row and go on with the other sessions. The rows are corrupted
with raw SQL, in a database of their own so no other test reads them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.genai import types
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.errors import CorruptDataError, StorageError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService
from tests.contract.backends import MYSQL, POSTGRES

pytestmark = pytest.mark.asyncio

_SERVERS = {
    "postgres": ("postgresql+asyncpg", POSTGRES.rsplit("/", 1)[0], "postgres", ""),
    "mariadb": ("mysql+asyncmy", MYSQL.rsplit("/", 1)[0], "", "?charset=utf8mb4"),
}


@contextlib.asynccontextmanager
async def _database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database of this test's own, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/corrupt.db"
        return
    scheme, server, admin_db, query = _SERVERS[kind]
    name = f"validation_corrupt_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        f"{scheme}://{server}/{admin_db}{query}", isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield f"{scheme}://{server}/{name}{query}"
        finally:
            async with admin.connect() as conn:
                force = " WITH (FORCE)" if kind == "postgres" else ""
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        await admin.dispose()


class Db:
    """The database under test: its URL, its dialect, and raw SQL on it."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url

    def json(self, param: str) -> str:
        """The SQL for a bound JSON text parameter, for the column's type."""
        return f"CAST(:{param} AS JSONB)" if self.kind == "postgres" else f":{param}"

    async def execute(self, sql: str, **params: Any) -> None:
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                assert result.rowcount == 1, sql
        finally:
            await engine.dispose()


@pytest_asyncio.fixture(params=["sqlite", "postgres", "mariadb"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    async with _database(request.param, tmp_path) as url:
        yield Db(request.param, url)


async def _seed(url: str) -> tuple[str, str]:
    """An app with a good session ``good`` and a session ``bad`` with one event ``e-bad``."""
    app = f"corrupt-{uuid.uuid4().hex[:8]}"
    async with DatabaseSessionService(url) as service:
        for session_id in ("good", "bad"):
            session = await service.create_session(
                app_name=app, user_id="u", session_id=session_id, state={"k": 1, "user:n": 2}
            )
            await service.append_event(
                session,
                Event(
                    id=f"e-{session_id}",
                    author="user",
                    content=types.Content(role="user", parts=[types.Part(text="hi")]),
                    actions=EventActions(state_delta={"app:a": 3}),
                ),
            )
    return app, "u"


def _check(error: StorageError, table: str, key: dict[str, str], *names: str) -> None:
    message = str(error)
    assert isinstance(error, CorruptDataError), message
    assert (error.table, error.key) == (table, key)
    for name in (table, *[f"{k}={v!r}" for k, v in key.items()], *names):
        assert name in message, (name, message)
    assert error.__cause__ is not None, message


_Read = Callable[[DatabaseSessionService, str, str], Awaitable[Any]]


async def _get_bad(service: DatabaseSessionService, app: str, user: str) -> Any:
    return await service.get_session(app_name=app, user_id=user, session_id="bad")


async def _list_bad_events(service: DatabaseSessionService, app: str, user: str) -> Any:
    return await service.list_events(app_name=app, user_id=user, session_id="bad")


async def _list_sessions(service: DatabaseSessionService, app: str, user: str) -> Any:
    return await service.list_sessions(app_name=app)


async def _user_state(service: DatabaseSessionService, app: str, user: str) -> Any:
    return await service.get_user_state(app_name=app, user_id=user)


async def _resume_bad(service: DatabaseSessionService, app: str, user: str) -> Any:
    return await service.create_session(app_name=app, user_id=user, session_id="bad")


async def _append_to_bad(service: DatabaseSessionService, app: str, user: str) -> Any:
    # A handle built by hand (reading one would fail first), current: it ends at e-bad.
    from openadk.sessions import Session

    handle = Session(id="bad", app_name=app, user_id=user, events=[Event(id="e-bad")])
    event = Event(
        author="user", actions=EventActions(state_delta={"k": 2, "user:n": 3, "app:a": 4})
    )
    return await service.append_event(handle, event)


@pytest.mark.parametrize("data", ["{not json", '{"author": 123}', "[1, 2]", '{"content": "x"}'])
async def test_corrupt_event_data_is_a_storage_error_naming_the_row(db: Db, data: str) -> None:
    if db.kind == "postgres" and data == "{not json":
        pytest.skip("PostgreSQL's JSONB column cannot hold invalid JSON")
    app, user = await _seed(db.url)
    await db.execute(
        f"UPDATE events SET event_data = {db.json('v')} WHERE app_name = :a AND id = 'e-bad'",
        v=data,
        a=app,
    )
    async with DatabaseSessionService(db.url) as service:
        for read in (_get_bad, _list_bad_events):
            with pytest.raises(StorageError) as caught:
                await read(service, app, user)
            key = {"app_name": app, "user_id": user, "session_id": "bad", "id": "e-bad"}
            _check(caught.value, "events", key, "event_data")
        # The other session, and listings that do not parse events, still read.
        good = await service.get_session(app_name=app, user_id=user, session_id="good")
        assert good is not None and [e.id for e in good.events] == ["e-good"]
        assert len((await service.list_sessions(app_name=app)).sessions) == 2
    # The event cache does not hide it from a service that read the session before.
    async with DatabaseSessionService(db.url, event_cache_size=0) as uncached:
        with pytest.raises(StorageError):
            await _get_bad(uncached, app, user)


@pytest.mark.parametrize("state", ["{not json", "[1, 2]", '"text"', "null"])
async def test_corrupt_session_state_is_a_storage_error_naming_the_row(db: Db, state: str) -> None:
    if db.kind == "postgres" and state == "{not json":
        pytest.skip("PostgreSQL's JSONB column cannot hold invalid JSON")
    app, user = await _seed(db.url)
    await db.execute(
        f"UPDATE sessions SET state = {db.json('v')} WHERE app_name = :a AND id = 'bad'",
        v=state,
        a=app,
    )
    async with DatabaseSessionService(db.url) as service:
        reads: list[_Read] = [_get_bad, _list_sessions, _resume_bad, _append_to_bad]
        for read in reads:
            with pytest.raises(StorageError) as caught:
                await read(service, app, user)
            _check(caught.value, "sessions", {"app_name": app, "user_id": user, "id": "bad"})
        good = await service.get_session(app_name=app, user_id=user, session_id="good")
        assert good is not None and good.state == {"k": 1, "user:n": 2, "app:a": 3}
        # Nothing was half-written by the refused append.
        events = await service.list_events(app_name=app, user_id=user, session_id="bad")
        assert [e.id for e in events.events] == ["e-bad"]
        assert await service.get_user_state(app_name=app, user_id=user) == {"n": 2}


@pytest.mark.parametrize("table", ["user_states", "app_states"])
@pytest.mark.parametrize("state", ["{not json", "[1, 2]"])
async def test_corrupt_shared_state_is_a_storage_error_naming_the_row(
    db: Db, table: str, state: str
) -> None:
    if db.kind == "postgres" and state == "{not json":
        pytest.skip("PostgreSQL's JSONB column cannot hold invalid JSON")
    app, user = await _seed(db.url)
    await db.execute(
        f"UPDATE {table} SET state = {db.json('v')} WHERE app_name = :a", v=state, a=app
    )
    key = {"app_name": app, "user_id": user} if table == "user_states" else {"app_name": app}
    reads: list[_Read] = [_get_bad, _list_sessions, _resume_bad, _append_to_bad]
    if table == "user_states":
        reads.append(_user_state)
    async with DatabaseSessionService(db.url) as service:
        for read in reads:
            with pytest.raises(StorageError) as caught:
                await read(service, app, user)
            _check(caught.value, table, key, "its state")
        if table == "app_states":
            assert await service.get_user_state(app_name=app, user_id=user) == {"n": 2}


async def test_server_answers_a_corrupt_row_with_a_500_not_a_retry(tmp_path: Path) -> None:
    # A StorageError is a 503 with retry-after (the store may come back); a corrupt row stays
    # corrupt, so clients must not be told to retry.
    import httpx

    from openadk.server import create_app

    url = f"sqlite+aiosqlite:///{tmp_path}/served.db"
    async with DatabaseSessionService(url) as service:
        session = await service.create_session(app_name="app1", user_id="u", session_id="s1")
        await service.append_event(session, Event(id="e-1", author="user"))
    await Db("sqlite", url).execute("UPDATE events SET event_data = '{\"branch\": 5}'")
    async with DatabaseSessionService(url) as service:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            response = await http.get(
                "/v1beta1/projects/p/locations/l/reasoningEngines/app1/sessions/s1/events"
            )
    assert response.status_code == 500, response.text
    assert "retry-after" not in response.headers
    message = response.json()["error"]["message"]
    assert "events row" in message and "id='e-1'" in message, message
