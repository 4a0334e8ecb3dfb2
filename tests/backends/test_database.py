"""DatabaseSessionService behaviour that is specific to databases: URLs, engines, schema, SQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openadk.errors import StaleSessionError, StorageError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig
from tests.contract.backends import MYSQL, POSTGRES

SERVERS = {
    "sqlite": None,
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "postgres-psycopg": f"postgresql+psycopg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
    "mariadb-asyncmy": f"mysql+asyncmy://{MYSQL}?charset=utf8mb4",
}


@pytest.fixture(params=list(SERVERS))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = SERVERS[request.param]
    return url or f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"


def message(text_value: str, **delta: Any) -> Event:
    return Event(
        author="user",
        invocation_id=f"e-{uuid.uuid4()}",
        content=types.Content(role="user", parts=[types.Part(text=text_value)]),
        actions=EventActions(state_delta=delta),
    )


# Construction, URLs and engines ----------------------------------------------------------------


def test_exactly_one_of_url_and_engine() -> None:
    with pytest.raises(ValueError, match="Exactly one of 'db_url' or 'db_engine'"):
        DatabaseSessionService()
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ValueError, match="Exactly one of 'db_url' or 'db_engine'"):
        DatabaseSessionService("sqlite+aiosqlite:///:memory:", db_engine=engine)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "Invalid database URL format or argument 'not a url': expected a URL"),
        ("nosuchdb+driver://u:pw@h/db", "Invalid database URL format or argument"),
        (
            "mssql+aioodbc://u:secret@host/db",
            "Database related module not found.*pip install aioodbc",
        ),
        ("", "non-empty"),
    ],
)
def test_bad_urls_give_clear_errors_without_secrets(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        DatabaseSessionService(url)
    assert "secret" not in str(caught.value)


def test_redaction_hides_passwords_and_query_values() -> None:
    from openadk.sessions._dialects import redact_url

    shown = redact_url("postgresql+asyncpg://user:hunter2@db:5432/x?sslpassword=abc&ssl=require")
    assert "hunter2" not in shown and "abc" not in shown
    assert "***" in shown and "REDACTED" in shown
    # What cannot be parsed is shown as typed, password hidden.
    assert redact_url("::::") == "::::"
    assert redact_url("pg ://user:hunter2@db/x") == "pg ://user:***@db/x"


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///{tmp}/sync.db", "aiosqlite"),
        (f"postgresql://{POSTGRES}", "asyncpg"),
        (f"postgresql+psycopg2://{POSTGRES}", "asyncpg"),
        (f"mysql+pymysql://{MYSQL}", "aiomysql"),
    ],
)
@pytest.mark.asyncio
async def test_synchronous_driver_urls_use_the_async_driver(
    url: str, driver: str, tmp_path: Path
) -> None:
    async with DatabaseSessionService(url.format(tmp=tmp_path)) as service:
        assert service.engine.url.get_driver_name() == driver
        created = await service.create_session(app_name="sync-url", user_id="u")
        assert await service.get_session(app_name="sync-url", user_id="u", session_id=created.id)


@pytest.mark.asyncio
async def test_engine_arguments_pass_through() -> None:
    # Seen from the server and from the pool's public counters, not from private attributes.
    name = f"openadk-tests-{uuid.uuid4().hex[:8]}"
    service = DatabaseSessionService(
        f"postgresql+asyncpg://{POSTGRES}",
        pool_size=2,
        max_overflow=1,
        pool_timeout=0.5,
        connect_args={"server_settings": {"application_name": name}},
    )
    try:
        created = await service.create_session(app_name=name, user_id="u")
        assert await service.get_session(app_name=name, user_id="u", session_id=created.id)
        engine = service.engine
        assert isinstance(engine, AsyncEngine)
        async with contextlib.AsyncExitStack() as held:
            # pool_size + max_overflow connections, then the pool is exhausted.
            conns = [await held.enter_async_context(engine.connect()) for _ in range(3)]
            seen = await conns[0].execute(text("SELECT current_setting('application_name')"))
            assert seen.scalar() == name
            with pytest.raises(sa_exc.TimeoutError):
                await held.enter_async_context(engine.connect())
    finally:
        await service.close()


@pytest.mark.asyncio
async def test_a_callers_engine_is_not_disposed(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'mine.db'}")
    async with DatabaseSessionService(db_engine=engine) as service:
        await service.create_session(app_name="a", user_id="u", session_id="s")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar() == 1
    await engine.dispose()


@pytest.mark.asyncio
async def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    service = DatabaseSessionService("postgresql+asyncpg://user:s3cret@127.0.0.1:1/nothing")
    with pytest.raises(StorageError, match=r"[Cc]annot reach the database") as caught:
        await service.get_session(app_name="a", user_id="u", session_id="s")
    assert "s3cret" not in str(caught.value)
    await service.close()


@pytest.mark.asyncio
async def test_sqlite_is_set_up_for_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "tuned.db"
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as service:
        await service.create_session(app_name="a", user_id="u")
        async with service.engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 30000,
    }


# Schema ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_schema_is_google_adks_v1(db_url: str) -> None:
    async with DatabaseSessionService(db_url) as service:
        await service.prepare_tables()
        await service.prepare_tables()  # idempotent
        async with service.engine.connect() as conn:

            def describe(sync_conn: Any) -> dict[str, Any]:
                inspector = inspect(sync_conn)
                return {
                    "tables": set(inspector.get_table_names()),
                    "events": {c["name"]: c for c in inspector.get_columns("events")},
                    "sessions_pk": inspector.get_pk_constraint("sessions")["constrained_columns"],
                    "events_pk": inspector.get_pk_constraint("events")["constrained_columns"],
                    "indexes": {i["name"] for i in inspector.get_indexes("events")},
                    "fks": inspector.get_foreign_keys("events"),
                }

            info = await conn.run_sync(describe)
            version = (
                await conn.execute(
                    text("SELECT value FROM adk_internal_metadata WHERE `key` = 'schema_version'")
                    if service.engine.dialect.name in ("mysql", "mariadb")
                    else text(
                        "SELECT value FROM adk_internal_metadata WHERE key = 'schema_version'"
                    )
                )
            ).scalar()
    dialect = service.engine.dialect.name
    assert {"sessions", "events", "app_states", "user_states", "adk_internal_metadata"} <= info[
        "tables"
    ]
    assert info["sessions_pk"] == ["app_name", "user_id", "id"]
    assert info["events_pk"] == ["id", "app_name", "user_id", "session_id"]
    assert "idx_events_app_user_session_ts_id" in info["indexes"]
    assert info["fks"][0]["referred_table"] == "sessions"
    assert version == "1"
    columns = info["events"]
    assert columns["event_data"]["nullable"] is True
    assert columns["invocation_id"]["type"].length == 256
    type_name = str(columns["event_data"]["type"]).upper()
    stamp = str(columns["timestamp"]["type"]).upper()
    if dialect == "postgresql":
        assert type_name == "JSONB"
        assert stamp == "TIMESTAMP WITHOUT TIME ZONE" or stamp == "TIMESTAMP"
    elif dialect in ("mysql", "mariadb"):
        assert type_name == "LONGTEXT"
        assert stamp == "DATETIME(6)" or getattr(columns["timestamp"]["type"], "fsp", None) == 6
    else:
        assert type_name == "TEXT"
        assert stamp == "DATETIME"


@pytest.mark.asyncio
async def test_v0_and_sqlite_service_layouts_are_refused(tmp_path: Path) -> None:
    v0 = tmp_path / "v0.db"
    with sqlite3.connect(v0) as conn:
        conn.execute("CREATE TABLE events (id TEXT, actions BLOB, timestamp DATETIME)")
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{v0}") as service:
        with pytest.raises(ValueError, match="V0"):
            await service.list_sessions(app_name="a")
    layout = tmp_path / "sqlite-service.db"
    with sqlite3.connect(layout) as conn:
        conn.execute(
            "CREATE TABLE sessions (app_name TEXT, user_id TEXT, id TEXT, state TEXT, "
            "create_time REAL, update_time REAL)"
        )
        conn.execute("CREATE TABLE events (id TEXT, event_data TEXT NOT NULL, timestamp REAL)")
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{layout}") as service:
        with pytest.raises(ValueError, match="SqliteSessionService"):
            await service.list_sessions(app_name="a")


@pytest.mark.asyncio
async def test_stored_rows_are_what_google_adk_writes(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as service:
        session = await service.create_session(
            app_name="a", user_id="u", session_id="s", state={"app:x": 1, "user:y": 2, "z": 3}
        )
        event = message("hi", k="v", **{"temp:t": 1})
        event.timestamp = 1_900_000_000.25
        await service.append_event(session, event)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT id, invocation_id, timestamp, event_data FROM events").fetchone()
        states = conn.execute(
            "SELECT (SELECT state FROM app_states), (SELECT state FROM user_states), "
            "(SELECT state FROM sessions), (SELECT update_time FROM sessions)"
        ).fetchone()
    data = json.loads(row[3])
    assert row[0] == event.id and row[1] == event.invocation_id
    assert row[2] == "2030-03-17 17:46:40.250000"
    assert data["actions"]["state_delta"] == {"k": "v"}
    assert data["timestamp"] == 1_900_000_000.25
    assert "invocationId" not in data and data["invocation_id"] == event.invocation_id
    assert [json.loads(v) for v in states[:3]] == [{"x": 1}, {"y": 2}, {"z": 3, "k": "v"}]
    assert states[3] == "2030-03-17 17:46:40.250000"


# What each operation reads -------------------------------------------------------------------


@pytest.fixture
def statements() -> list[str]:
    return []


def record(service: DatabaseSessionService, into: list[str]) -> None:
    @sa_event.listens_for(service.engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        into.append(" ".join(statement.split()))


@pytest.mark.asyncio
async def test_no_operation_reads_a_whole_history_it_does_not_return(
    db_url: str, statements: list[str]
) -> None:
    async with DatabaseSessionService(db_url) as service:
        app = f"reads-{uuid.uuid4().hex[:8]}"
        session = await service.create_session(app_name=app, user_id="u")
        for i in range(30):
            await service.append_event(session, message(f"m{i}"))
        record(service, statements)
        await service.append_event(session, message("one more", k=1))
        await service.list_sessions(app_name=app)
        got = await service.get_session(
            app_name=app,
            user_id="u",
            session_id=session.id,
            config=GetSessionConfig(num_recent_events=5),
        )
        assert got is not None and len(got.events) == 5
    event_reads = [s for s in statements if "FROM events" in s and s.startswith("SELECT")]
    # Only get_session read events: the last 5 ids with a LIMIT pushed into SQL, then (the
    # events not parsed before) by id.
    assert event_reads
    assert "LIMIT" in event_reads[0]
    assert all("LIMIT" in s or " IN (" in s for s in event_reads)


# Concurrency -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sixteen_writers_on_one_session_in_merge_mode(db_url: str) -> None:
    writers, per_writer = 16, 8
    async with DatabaseSessionService(db_url, on_stale="merge") as service:
        app = f"merge-{uuid.uuid4().hex[:8]}"
        created = await service.create_session(app_name=app, user_id="u")
        acked: list[Event] = []

        async def writer(w: int) -> None:
            handle = await service.get_session(app_name=app, user_id="u", session_id=created.id)
            assert handle is not None
            for i in range(per_writer):
                event = message(f"w{w}-{i}", **{f"count_{w}": i + 1, "last": f"w{w}-{i}"})
                await service.append_event(handle, event)
                acked.append(event)

        await asyncio.gather(*(writer(w) for w in range(writers)))
        stored = await service.get_session(app_name=app, user_id="u", session_id=created.id)
    assert stored is not None
    ids = [e.id for e in stored.events]
    assert len(ids) == writers * per_writer == len(set(ids))
    assert set(ids) == {e.id for e in acked}
    # Stored order is commit order: each append got a later timestamp than every earlier one.
    stamps = [e.timestamp for e in stored.events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    by_id = {e.id: e.timestamp for e in acked}
    assert [by_id[i] for i in ids] == stamps
    # State is the fold of the stored deltas, in stored order.
    folded: dict[str, Any] = {}
    for event in stored.events:
        folded.update(event.actions.state_delta)
    assert stored.state == folded
    assert all(stored.state[f"count_{w}"] == per_writer for w in range(writers))


@pytest.mark.asyncio
async def test_concurrent_writers_that_reload_on_stale_lose_nothing(db_url: str) -> None:
    writers, per_writer = 8, 4
    async with DatabaseSessionService(db_url) as service:
        app = f"stale-{uuid.uuid4().hex[:8]}"
        created = await service.create_session(app_name=app, user_id="u")
        stale_errors = 0
        acked: list[str] = []
        # Every writer reads the session before any appends, so the first round has contention
        # for certain: one append wins and the other seven hold stale handles.
        all_read = asyncio.Barrier(writers)

        async def writer(w: int) -> None:
            nonlocal stale_errors
            first = True
            for i in range(per_writer):
                event = message(f"w{w}-{i}")
                while True:
                    handle = await service.get_session(
                        app_name=app,
                        user_id="u",
                        session_id=created.id,
                        config=GetSessionConfig(num_recent_events=1),
                    )
                    assert handle is not None
                    if first:
                        first = False
                        await all_read.wait()
                    try:
                        await service.append_event(handle, event)
                        break
                    except StaleSessionError:
                        stale_errors += 1
                acked.append(event.id)

        await asyncio.gather(*(writer(w) for w in range(writers)))
        stored = await service.get_session(app_name=app, user_id="u", session_id=created.id)
    assert stale_errors >= writers - 1
    assert stored is not None
    assert sorted(e.id for e in stored.events) == sorted(acked)
    assert len(acked) == len(set(acked)) == writers * per_writer
    logging.getLogger(__name__).info("stale retries: %d", stale_errors)


@pytest.mark.asyncio
async def test_a_failed_append_rolls_back_everything(db_url: str) -> None:
    async with DatabaseSessionService(db_url) as service:
        app = f"rollback-{uuid.uuid4().hex[:8]}"
        session = await service.create_session(app_name=app, user_id="u", state={"k": 0})
        first = message("first")
        await service.append_event(session, first)
        # Same id, different content: refused after the insert fails; nothing else may stick.
        clash = message("second", k=1, **{"app:a": 1, "user:b": 2})
        clash.id = first.id
        with pytest.raises(ValueError, match="already stored"):
            await service.append_event(session, clash)
        got = await service.get_session(app_name=app, user_id="u", session_id=session.id)
        assert got is not None
        assert got.state == {"k": 0}
        assert len(got.events) == 1
        assert session.state == {"k": 0} and len(session.events) == 1
        assert await service.get_user_state(app_name=app, user_id="u") == {}
        await service.append_event(session, message("third", k=2))


@pytest.mark.asyncio
async def test_nul_characters_are_refused_clearly(db_url: str) -> None:
    async with DatabaseSessionService(db_url) as service:
        app = f"nul-{uuid.uuid4().hex[:8]}"
        session = await service.create_session(app_name=app, user_id="u")
        with pytest.raises(ValueError, match="NUL character"):
            await service.append_event(session, message("ok", k="a\x00b"))
        event = message("text with \x00 inside")
        if service.engine.dialect.name == "postgresql":
            with pytest.raises(ValueError, match="NUL character"):
                await service.append_event(session, event)
            assert session.events == []
        else:
            await service.append_event(session, event)
            got = await service.get_session(app_name=app, user_id="u", session_id=session.id)
            assert got is not None and got.events == [event]
