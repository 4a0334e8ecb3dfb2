"""PostgreSQL (asyncpg) and MariaDB (aiomysql): how many statements each operation sends, and a
dropped connection rerun on a new one. Statements are counted with the engine's
``before_cursor_execute`` listeners, which the service's own pools report to."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from google.genai import types
from sqlalchemy import event as sa_event

from openadk.errors import StaleSessionError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig
from tests.contract.backends import MYSQL, POSTGRES

pytestmark = pytest.mark.asyncio

URLS = {
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}


def _event(**delta: Any) -> Event:
    return Event(author="user", invocation_id="inv", actions=EventActions(state_delta=delta))


def _text_event(text: str, **delta: Any) -> Event:
    event = _event(**delta)
    event.content = types.Content(role="user", parts=[types.Part(text=text)])
    return event


def _record(service: DatabaseSessionService, into: list[str]) -> None:
    @sa_event.listens_for(service.engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        into.append(" ".join(statement.split()))


@pytest.mark.parametrize("backend", list(URLS))
async def test_statements_per_operation(backend: str) -> None:
    async with DatabaseSessionService(URLS[backend]) as service:
        app = f"trips-{uuid.uuid4().hex[:8]}"
        await service.prepare_tables()
        sent: list[str] = []
        _record(service, sent)
        session = await service.create_session(app_name=app, user_id="u", state={"k": 0})
        created = list(sent)
        sent.clear()
        await service.append_event(session, _event(k=1))
        appended = list(sent)
        sent.clear()
        await service.append_event(session, _text_event("searchable words", k=2))
        indexed = list(sent)
        sent.clear()
        got = await service.get_session(
            app_name=app,
            user_id="u",
            session_id=session.id,
            config=GetSessionConfig(num_recent_events=10),
        )
        read = list(sent)
        sent.clear()
        listed = await service.list_sessions(app_name=app, user_id="u")
        assert len(sent) == 1
        hits = await service.search_events(app_name=app, query="searchable")
    assert got is not None and got.state == {"k": 2} and len(got.events) == 2
    assert [h.event_id for h in hits.hits] == [got.events[1].id]
    assert len(listed.sessions) == 1
    assert len(created) == 1 and len(read) == 1
    if backend == "postgres":
        # One statement: the conditional UPDATE, the INSERT and the upserts as CTEs; with
        # text, the search index row is one more CTE of the same statement.
        assert len(appended) == 1 and appended[0].startswith("WITH upd AS (UPDATE sessions")
        assert "openadk_event_search" not in appended[0]
        assert len(indexed) == 1 and indexed[0].startswith("WITH upd AS (UPDATE sessions")
        assert "srch AS (INSERT INTO openadk_event_search" in indexed[0]
    else:
        # The locking read, then INSERT; UPDATE; COMMIT in one packet; the index row's
        # INSERT goes in the same packet, before COMMIT.
        for trips in (appended, indexed):
            assert len(trips) == 2 and trips[0].endswith("FOR UPDATE")
            assert trips[1].startswith("INSERT INTO events") and trips[1].endswith("COMMIT")
        assert "openadk_event_search" not in appended[1]
        assert "INSERT IGNORE INTO openadk_event_search" in indexed[1]


@pytest.mark.parametrize("backend", list(URLS))
async def test_titles_and_labels_cost_no_extra_round_trip(backend: str) -> None:
    async with DatabaseSessionService(URLS[backend]) as service:
        app = f"meta-{uuid.uuid4().hex[:8]}"
        await service.prepare_tables()
        sent: list[str] = []
        _record(service, sent)
        session = await service.create_session(
            app_name=app, user_id="u", display_name="Title", labels={"env": "prod", "t": "1"}
        )
        created = list(sent)
        sent.clear()
        got = await service.get_session(app_name=app, user_id="u", session_id=session.id)
        read = list(sent)
        sent.clear()
        listed = await service.list_sessions(app_name=app)
        assert len(sent) == 1
        filtered = await service.list_sessions(app_name=app, labels={"env": "prod"})
    assert (session.display_name, session.labels) == ("Title", {"env": "prod", "t": "1"})
    assert got is not None and (got.display_name, got.labels) == (
        session.display_name,
        session.labels,
    )
    assert [(s.display_name, s.labels) for s in listed.sessions] == [("Title", session.labels)]
    assert [s.id for s in filtered.sessions] == [session.id]
    assert len(read) == 1
    if backend == "postgres":
        # The session, its title and its labels in one statement.
        assert len(created) == 1 and "INSERT INTO openadk_session_labels" in created[0]
    else:
        # MariaDB: a create with a title or labels takes the SQLAlchemy path.
        assert any("openadk_session_labels" in statement for statement in created)


@pytest.mark.parametrize("backend", list(URLS))
async def test_a_stale_handle_and_a_repeat_take_the_locked_path(backend: str) -> None:
    async with DatabaseSessionService(URLS[backend]) as service:
        app = f"stale-{uuid.uuid4().hex[:8]}"
        handle = await service.create_session(app_name=app, user_id="u")
        other = await service.get_session(app_name=app, user_id="u", session_id=handle.id)
        assert other is not None
        event = _event(k=1)
        await service.append_event(handle, event)
        await service.append_event(handle, event)  # the same event again: a no-op
        with pytest.raises(StaleSessionError):
            await service.append_event(other, _event(k=2))
        got = await service.get_session(app_name=app, user_id="u", session_id=handle.id)
    assert got is not None and [e.id for e in got.events] == [event.id]


async def test_a_dropped_postgres_connection_is_rerun_on_a_new_one() -> None:
    tag = f"drop-{uuid.uuid4().hex[:8]}"
    url = f"postgresql+asyncpg://{POSTGRES}"
    admin = await asyncpg.connect(f"postgresql://{POSTGRES}")
    settings = {"server_settings": {"application_name": tag}}
    try:
        async with DatabaseSessionService(url, connect_args=settings) as service:
            handle = await service.create_session(app_name=tag, user_id="u")
            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                tag,
            )
            assert any(row[0] for row in killed)
            # The idle pooled connection is dead; the append is rerun on a new one.
            await service.append_event(handle, _event(k=1))
            got = await service.get_session(app_name=tag, user_id="u", session_id=handle.id)
        assert got is not None and got.state == {"k": 1}
    finally:
        await admin.close()


async def test_a_dropped_mariadb_connection_is_rerun_on_a_new_one() -> None:
    import aiomysql

    async with DatabaseSessionService(URLS["mariadb"]) as service:
        app = f"drop-{uuid.uuid4().hex[:8]}"
        handle = await service.create_session(app_name=app, user_id="u")
        pool = service._my
        assert pool is not None and pool._idle
        victim = pool._idle[-1]
        user, _, rest = MYSQL.partition("@")
        host_port, _, database = rest.partition("/")
        host, _, port = host_port.partition(":")
        admin = await aiomysql.connect(host=host, port=int(port or 3306), user=user, db=database)
        try:
            async with admin.cursor() as cur:
                await cur.execute(f"KILL {int(victim.thread_id())}")
        finally:
            admin.close()
        await service.append_event(handle, _event(k=1))
        got = await service.get_session(app_name=app, user_id="u", session_id=handle.id)
    assert got is not None and got.state == {"k": 1}


@pytest.mark.parametrize(
    "query", ["", "&init_command=SET+SESSION+group_concat_max_len%3D200"], ids=["folded", "cut"]
)
async def test_a_cached_mariadb_history_comes_back_as_one_row_of_keys(query: str) -> None:
    # aiomysql decodes each row in Python, so a whole cached history checks its event keys from
    # one folded row; ids holding the fold's separators, or a fold cut short by the server's
    # limits (here a 200-character group_concat_max_len), still read back exactly.
    async with DatabaseSessionService(URLS["mariadb"] + query) as service:
        app = f"fold-{uuid.uuid4().hex[:8]}"
        handle = await service.create_session(app_name=app, user_id="u")
        ids = ["a,b c", "ü ñ,", " lead", "trail ", *[f"e{i}" for i in range(20)]]
        for number, event_id in enumerate(ids):
            event = _text_event(f"text {number}", n=number)
            event.id = event_id
            await service.append_event(handle, event)
        first = await service.get_session(app_name=app, user_id="u", session_id=handle.id)
        sent: list[str] = []
        _record(service, sent)
        again = await service.get_session(app_name=app, user_id="u", session_id=handle.id)
    assert first is not None and again is not None
    assert [e.id for e in again.events] == ids == [e.id for e in first.events]
    assert [e.content.parts[0].text for e in again.events if e.content and e.content.parts] == [
        f"text {n}" for n in range(len(ids))
    ]
    assert again.state == {"n": len(ids) - 1}
    folded = [s for s in sent if "GROUP_CONCAT" in s]
    if query:
        # The cut fold is read again row by row, in the same call.
        assert len(folded) == 1 and len(sent) == 2
    else:
        assert len(folded) == 1 and len(sent) == 1
