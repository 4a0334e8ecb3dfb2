"""PostgreSQL (asyncpg) and MariaDB (aiomysql): how many statements each operation sends, and a
dropped connection rerun on a new one. Statements are counted with the engine's
``before_cursor_execute`` listeners, which the service's own pools report to."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
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
    assert got is not None and got.state == {"k": 1} and len(got.events) == 1
    assert len(listed.sessions) == 1
    assert len(created) == 1 and len(read) == 1
    if backend == "postgres":
        # One statement: the conditional UPDATE, the INSERT and the upserts as CTEs.
        assert len(appended) == 1 and appended[0].startswith("WITH upd AS (UPDATE sessions")
    else:
        # The locking read, then INSERT; UPDATE; COMMIT in one packet.
        assert len(appended) == 2 and appended[0].endswith("FOR UPDATE")
        assert appended[1].startswith("INSERT INTO events") and appended[1].endswith("COMMIT")


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
