"""The SQLite engine: each operation is one transaction on a connection owned by its thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from sqlalchemy import event as sa_event

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig
from openadk.sessions._base import AppendPlan, _event_json
from openadk.sessions._json import dumps_keeping_floats, keep_floats
from openadk.sessions._sqlite import CHECKPOINT_EVERY


def _event(**delta: Any) -> Event:
    return Event(author="user", invocation_id="inv", actions=EventActions(state_delta=delta))


def _record(service: DatabaseSessionService, into: list[tuple[str, str]]) -> None:
    @sa_event.listens_for(service.engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        into.append((threading.current_thread().name, statement.split()[0]))


def _text_event(text: str, **delta: Any) -> Event:
    event = _event(**delta)
    event.content = types.Content(role="user", parts=[types.Part(text=text)])
    return event


@pytest.mark.asyncio
async def test_each_operation_runs_on_its_thread(tmp_path: Path) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        await service.prepare_tables()
        seen: list[tuple[str, str]] = []
        _record(service, seen)
        session = await service.create_session(
            app_name="a", user_id="u", state={"k": 0}, display_name="T", labels={"env": "x"}
        )
        created = list(seen)
        seen.clear()
        await service.append_event(session, _text_event("hello there", k=1, **{"user:n": 1}))
        writes = list(seen)
        seen.clear()
        got = await service.get_session(app_name="a", user_id="u", session_id=session.id)
        listed = await service.list_sessions(app_name="a")
        reads = list(seen)
        hits = await service.search_events(app_name="a", query="hello")
    assert got is not None and got.state == {"k": 1, "user:n": 1}
    assert (got.display_name, got.labels) == ("T", {"env": "x"})
    assert [(s.display_name, s.labels) for s in listed.sessions] == [("T", {"env": "x"})]
    assert [h.event_id for h in hits.hits] == [got.events[0].id]
    # The create (scope rows, session row, scope states), its title and its label in one
    # transaction on the writer.
    assert {thread for thread, _ in created} == {"openadk-sqlite-writer"}
    verbs = ["BEGIN", "INSERT", "INSERT", "INSERT", "SELECT", "INSERT", "INSERT", "COMMIT"]
    assert [verb for _, verb in created] == verbs
    # The whole append (the session row read, INSERT, UPDATE, the user state, the search
    # index row) on the writer.
    assert {thread for thread, _ in writes} == {"openadk-sqlite-writer"}
    # BEGIN, the session row, the event, the session, the scope rows, the user state, the
    # index row, COMMIT.
    verbs = ["BEGIN", "SELECT", "INSERT", "UPDATE", "INSERT", "INSERT", "SELECT", "UPDATE"]
    assert [verb for _, verb in writes] == [*verbs, "INSERT", "COMMIT"]
    # get and list read the title and labels in their own statements (a join), on the reader.
    assert {thread for thread, _ in reads} == {"openadk-sqlite-reader"}
    # get: the session row with its scopes and metadata, the events' keys, the uncached events'
    # data; list: the sessions with their metadata, the scopes.
    get_verbs = ["BEGIN", "SELECT", "SELECT", "SELECT", "COMMIT"]
    assert [verb for _, verb in reads] == [*get_verbs, "BEGIN", "SELECT", "SELECT", "COMMIT"]


@pytest.mark.asyncio
async def test_an_event_without_text_has_no_index_row(tmp_path: Path) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        session = await service.create_session(app_name="a", user_id="u")
        seen: list[tuple[str, str]] = []
        _record(service, seen)
        await service.append_event(session, _event(k=1))
    assert [verb for _, verb in seen] == ["BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"]


@pytest.mark.asyncio
async def test_connect_listeners_apply_and_dispose_closes_connections(tmp_path: Path) -> None:
    service = DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    opened: list[sqlite3.Connection] = []

    @sa_event.listens_for(service.engine.sync_engine, "connect")
    def _mark(dbapi_connection: Any, _record: Any) -> None:
        opened.append(dbapi_connection)

    try:
        session = await service.create_session(app_name="a", user_id="u")
        raw = [c for c in opened if isinstance(c, sqlite3.Connection)]
        assert raw, "the writer's sqlite3 connection got the engine's connect listener"
        assert raw[0].execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw[0].execute("PRAGMA foreign_keys").fetchone()[0] == 1
        await service.engine.dispose()  # type: ignore[union-attr]
        await service.append_event(session, _event(k=1))
        # Disposing of the engine closed the thread's connection: a new one was opened.
        assert len([c for c in opened if isinstance(c, sqlite3.Connection)]) > len(raw)
        with pytest.raises(sqlite3.ProgrammingError):
            raw[0].execute("SELECT 1")
    finally:
        await service.close()


@pytest.mark.asyncio
async def test_a_cached_event_is_the_same_object_on_every_read(tmp_path: Path) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        session = await service.create_session(app_name="a", user_id="u")
        for i in range(5):
            await service.append_event(session, _event(k=i))
        first = await service.get_session(app_name="a", user_id="u", session_id=session.id)
        recent = await service.get_session(
            app_name="a",
            user_id="u",
            session_id=session.id,
            config=GetSessionConfig(num_recent_events=2),
        )
    assert first is not None and recent is not None
    assert [e.id for e in recent.events] == [e.id for e in first.events[-2:]]
    assert all(a is b for a, b in zip(recent.events, first.events[-2:], strict=True))


@pytest.mark.asyncio
async def test_listed_states_are_independent(tmp_path: Path) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        for sid in ("s1", "s2"):
            await service.create_session(
                app_name="a", user_id="u", session_id=sid, state={"own": [1], "app:shared": [1]}
            )
        listed = (await service.list_sessions(app_name="a")).sessions
        listed[0].state["app:shared"].append(2)
        listed[0].state["own"].append(2)
    assert listed[1].state == {"own": [1], "app:shared": [1]}


@pytest.mark.parametrize(
    "delta",
    [
        {"k": 1, "text": "caf\u00e9 \U0001f600", "nested": {"a": [1, 2.5, True]}},
        {"big": 1e16, "small": 1e-7, "e": "1e5 stays text"},
        {"none": None, "list": []},
    ],
)
@pytest.mark.asyncio
async def test_one_pass_text_is_what_the_full_path_writes(delta: dict[str, Any]) -> None:
    event = _event(**delta)
    plan = AppendPlan.for_event(event)
    full = _event_json(event, without_state_delta=False)
    assert json.loads(plan.text) == json.loads(dumps_keeping_floats(full))
    assert Event.model_validate_json(plan.text) == event
    moved = json.loads(plan.text_at(event.timestamp + 1))
    assert moved["timestamp"] == event.timestamp + 1


def test_keep_floats_rewrites_only_numbers() -> None:
    assert keep_floats('{"a": 1e+16, "b": "x1e5", "c": [1e-07]}') == (
        '{"a": 10000000000000000.0, "b": "x1e5", "c": [0.0000001]}'
    )
    plain = '{"a": "every string has an e"}'
    assert keep_floats(plain) is plain


@pytest.mark.asyncio
async def test_uuid_sessions_and_resume_return_their_events(tmp_path: Path) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        sid = str(uuid.uuid4())
        session = await service.create_session(app_name="a", user_id="u", session_id=sid)
        await service.append_event(session, _event(k=1))
        resumed = await service.create_session(
            app_name="a", user_id="u", session_id=sid, state={"k": 2}
        )
    assert resumed.state == {"k": 2} and len(resumed.events) == 1


@pytest.mark.asyncio
async def test_an_expired_id_reused_starts_without_its_labels_or_index_rows(tmp_path: Path) -> None:
    now = [1_000_000.0]
    async with DatabaseSessionService(
        f"sqlite+aiosqlite:///{tmp_path / 's.db'}", clock=lambda: now[0]
    ) as service:
        old = await service.create_session(
            app_name="a", user_id="u", session_id="s", ttl=60, labels={"env": "old"}
        )
        await service.append_event(old, _text_event("forgotten words"))
        now[0] += 120
        # The create purges the expired session (on the writer thread) and starts a new one.
        new = await service.create_session(app_name="a", user_id="u", session_id="s")
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        hits = await service.search_events(app_name="a", query="forgotten")
        listed = await service.list_sessions(app_name="a", labels={"env": "old"})
    assert new.labels == {} and new.events == []
    assert got is not None and got.labels == {} and got.display_name is None
    assert hits.hits == [] and listed.sessions == []


async def _checkpoints_after(service: DatabaseSessionService, appends: int) -> int:
    """The background checkpoints run once ``appends`` appends are in (waiting for the last)."""
    session = await service.create_session(app_name="a", user_id="u")
    for i in range(appends):
        await service.append_event(session, _text_event(f"turn {i}", k=i))
    lite = service._lite
    assert lite is not None
    for _ in range(200):
        if lite.checkpoints and not lite._checkpoint_queued:
            break
        await asyncio.sleep(0.01)
    return lite.checkpoints


@pytest.mark.asyncio
async def test_checkpoints_run_on_their_own_thread_not_in_a_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as service:
        checkpoints = await _checkpoints_after(service, 2 * CHECKPOINT_EVERY)
        lite = service._lite
        assert lite is not None
        backstop = await lite.writer.run(
            lambda c: c.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        last = lite.last_checkpoint
    assert checkpoints >= 1
    # The checkpointer copied the log's pages into the database file.
    assert last is not None and last[2] > 0
    # SQLite's default is 1,000 pages; the writer's own checkpoint is only a backstop.
    assert backstop == 4_000


@pytest.mark.asyncio
async def test_a_caller_who_turns_checkpoints_off_keeps_them_off(tmp_path: Path) -> None:
    service = DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")

    @sa_event.listens_for(service.engine.sync_engine, "connect")
    def _manual(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    try:
        checkpoints = await _checkpoints_after(service, CHECKPOINT_EVERY + 1)
        lite = service._lite
        assert lite is not None
        pages = await lite.writer.run(
            lambda c: c.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
    finally:
        await service.close()
    assert (checkpoints, pages) == (0, 0)


@pytest.mark.asyncio
async def test_a_listing_joins_titles_and_expiry_only_where_some_session_has_them(
    tmp_path: Path,
) -> None:
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 's.db'}") as service:
        plain = await service.create_session(app_name="a", user_id="plain", state={"k": 1})
        await service.create_session(app_name="a", user_id="titled", display_name="T")
        await service.create_session(app_name="a", user_id="expiring", ttl=3600)
        statements: list[str] = []

        @sa_event.listens_for(service.engine.sync_engine, "before_cursor_execute")
        def _capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        listings = {}
        for user in ("plain", "titled", "expiring", None):
            statements.clear()
            listings[user] = await service.list_sessions(app_name="a", user_id=user)
            listings[user, "joined"] = any("LEFT JOIN" in s for s in statements)
    assert [s.id for s in listings["plain"].sessions] == [plain.id]
    assert listings["plain"].sessions[0].state == {"k": 1}
    assert [s.display_name for s in listings["titled"].sessions] == ["T"]
    assert [s.display_name for s in listings[None].sessions] == [None, "T", None]
    # The sessions alone for a user with no title, label or expiry; the join for the others.
    assert [listings[u, "joined"] for u in ("plain", "titled", "expiring", None)] == [
        False,
        True,
        True,
        True,
    ]
