"""SQLite search: appends put their index rows in a pending list, moved into FTS5 in batches.

Every test runs on a real SQLite file through the public service API, on the SQLite engine
(the service's own URL: one writer thread) and on the generic SQLAlchemy path (an engine the
caller built). The tables are read with the stdlib ``sqlite3`` to see where the rows are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.genai import types
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.events import Event
from openadk.sessions import DatabaseSessionService, _search, _sqlite, migrations

pytestmark = pytest.mark.asyncio

PENDING = "openadk_event_search_pending"
FTS = "openadk_event_search"


def _said(words: str, invocation: str | None = None) -> Event:
    return Event(
        author="user",
        invocation_id=invocation or f"e-{uuid.uuid4()}",
        content=types.Content(role="user", parts=[types.Part(text=words)]),
    )


def _count(path: Path, table: str, where: str = "") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0])


async def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Polls ``condition()`` (no timing asserted: only that it happens at all)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False


@contextlib.asynccontextmanager
async def _service(kind: str, path: Path, **kwargs: Any) -> AsyncIterator[DatabaseSessionService]:
    """A service on a SQLite file: its own SQLite engine, or the generic path."""
    url = f"sqlite+aiosqlite:///{path}"
    if kind == "engine":
        service = DatabaseSessionService(url, **kwargs)
        assert service._lite is not None
        async with service:
            yield service
        return
    engine = create_async_engine(url)
    service = DatabaseSessionService(db_engine=engine, **kwargs)
    assert service._lite is None
    async with service:
        yield service
    await engine.dispose()


@pytest_asyncio.fixture(params=["engine", "generic"])
async def made(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[DatabaseSessionService, Path]]:
    path = tmp_path / "s.db"
    async with _service(request.param, path) as service:
        yield service, path


def _quiet_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The idle flush waits an hour: rows stay pending until something else moves them.
    monkeypatch.setattr(_sqlite, "IDLE_SECONDS", 3600.0)


async def test_an_append_is_pending_and_the_next_search_finds_it(
    made: tuple[DatabaseSessionService, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path = made
    _quiet_writer(monkeypatch)
    session = await service.create_session(app_name="a", user_id="u")
    event = await service.append_event(session, _said("the walrus and the carpenter"))
    # The append wrote the plain table, not FTS5.
    assert (_count(path, PENDING), _count(path, FTS)) == (1, 0)
    hits = (await service.search_events(app_name="a", query="walrus")).hits
    assert [h.event_id for h in hits] == [event.id]
    # The search moved it (once) into the FTS5 table.
    assert (_count(path, PENDING), _count(path, FTS)) == (0, 1)
    again = (await service.search_events(app_name="a", query="carpenter")).hits
    assert [h.event_id for h in again] == [event.id]


async def test_deleted_and_trimmed_events_still_pending_are_never_found(
    made: tuple[DatabaseSessionService, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path = made
    _quiet_writer(monkeypatch)
    flushed = await service.create_session(app_name="a", user_id="u1")
    await service.append_event(flushed, _said("oyster flushed before"))
    await service.search_events(app_name="a", query="oyster")
    gone = await service.create_session(app_name="a", user_id="u1")
    trimmed = await service.create_session(app_name="a", user_id="u1")
    other_user = await service.create_session(app_name="a", user_id="u2")
    kept = await service.create_session(app_name="a", user_id="u1")
    await service.append_event(flushed, _said("oyster pending in the flushed session"))
    await service.append_event(gone, _said("oyster in a deleted session"))
    old = await service.append_event(trimmed, _said("oyster trimmed away", "inv-1"))
    new = await service.append_event(trimmed, _said("oyster kept after trim", "inv-2"))
    await service.append_event(other_user, _said("oyster of a deleted user"))
    survivor = await service.append_event(kept, _said("oyster survivor"))
    assert _count(path, PENDING) == 6

    await service.delete_session(app_name="a", user_id="u1", session_id=gone.id)
    assert (
        await service.trim_events(
            app_name="a", user_id="u1", session_id=trimmed.id, keep_last_events=1
        )
        == 1
    )
    assert await service.delete_user(app_name="a", user_id="u2") >= 1
    # Gone from the pending list in the same transactions, before any flush.
    assert _count(path, PENDING) == 3
    hits = (await service.search_events(app_name="a", query="oyster", limit=100)).hits
    assert old.id not in {h.event_id for h in hits}
    assert sorted(h.snippet for h in hits) == sorted(
        [
            "**oyster** flushed before",
            "**oyster** pending in the flushed session",
            "**oyster** kept after trim",
            "**oyster** survivor",
        ]
    )
    assert {h.event_id for h in hits} >= {new.id, survivor.id}
    # Deleting once everything is in FTS5 removes the rows there.
    await service.delete_session(app_name="a", user_id="u1", session_id=kept.id)
    rest = (await service.search_events(app_name="a", query="survivor")).hits
    assert rest == []


@pytest.mark.parametrize("kind", ["engine", "generic"])
async def test_an_expired_session_purged_by_create_takes_its_pending_rows(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _quiet_writer(monkeypatch)
    path = tmp_path / "s.db"
    now = [1_000_000.0]
    async with _service(kind, path, clock=lambda: now[0]) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s", ttl=10)
        await service.append_event(session, _said("heron of the expired session"))
        assert _count(path, PENDING) == 1
        now[0] += 60
        # The id is free again: creating it deletes the expired session and its index rows.
        await service.create_session(app_name="a", user_id="u", session_id="s")
        assert _count(path, PENDING) == 0
        assert (await service.search_events(app_name="a", query="heron")).hits == []


async def test_a_fork_of_a_session_with_pending_rows_finds_each_event_once(
    made: tuple[DatabaseSessionService, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path = made
    _quiet_writer(monkeypatch)
    source = await service.create_session(app_name="a", user_id="u")
    for i in range(3):
        await service.append_event(source, _said(f"narwhal number {i}"))
    assert _count(path, PENDING) == 3
    fork = await service.fork_session(app_name="a", user_id="u", session_id=source.id)
    hits = (await service.search_events(app_name="a", query="narwhal", limit=100)).hits
    assert sorted((h.session_id, h.snippet) for h in hits) == sorted(
        (sid, f"**narwhal** number {i}") for sid in (source.id, fork.id) for i in range(3)
    )


async def test_past_the_threshold_the_pending_rows_are_flushed_without_a_search(
    made: tuple[DatabaseSessionService, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path = made
    _quiet_writer(monkeypatch)
    monkeypatch.setattr(_search, "PENDING_FLUSH_ROWS", 5)
    session = await service.create_session(app_name="a", user_id="u")
    for i in range(4):
        await service.append_event(session, _said(f"penguin {i}"))
    await asyncio.sleep(0.1)
    assert (_count(path, PENDING), _count(path, FTS)) == (4, 0)
    await service.append_event(session, _said("penguin 4"))
    assert await _wait_for(lambda: _count(path, FTS) == 5)
    assert _count(path, PENDING) == 0
    # The ids restart once the list is empty, so the next batch counts from 1 again.
    for i in range(5, 9):
        await service.append_event(session, _said(f"penguin {i}"))
    await asyncio.sleep(0.1)
    assert (_count(path, PENDING), _count(path, FTS)) == (4, 5)
    hits = (await service.search_events(app_name="a", query="penguin", limit=100)).hits
    assert len(hits) == 9


async def test_the_idle_writer_flushes_the_pending_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as service:
        session = await service.create_session(app_name="a", user_id="u")
        for i in range(3):
            await service.append_event(session, _said(f"puffin {i}"))
        # No search and far below the threshold: the writer moves them once it is idle.
        assert await _wait_for(lambda: _count(path, FTS) == 3)
        assert _count(path, PENDING) == 0


_CRASHING_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from google.genai import types
    from openadk.events import Event
    from openadk.sessions import DatabaseSessionService, _sqlite

    _sqlite.IDLE_SECONDS = 3600.0

    async def main() -> None:
        service = DatabaseSessionService(f"sqlite+aiosqlite:///{sys.argv[1]}")
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        for i in range(20):
            await service.append_event(session, Event(
                author="user", invocation_id=f"i{i}",
                content=types.Content(role="user", parts=[types.Part(text=f"albatross {i}")]),
            ))
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_a_writer_killed_before_any_flush_loses_nothing_from_the_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASHING_WRITER, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == -9 and "acknowledged" in done.stdout, done.stderr
    assert (_count(path, PENDING), _count(path, FTS)) == (20, 0)
    async with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as service:
        hits = (await service.search_events(app_name="a", query="albatross", limit=100)).hits
    assert sorted(h.snippet for h in hits) == sorted(f"**albatross** {i}" for i in range(20))


async def test_a_revision_0004_database_gets_the_pending_list(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with DatabaseSessionService(url) as service:
        session = await service.create_session(app_name="a", user_id="u")
        event = await service.append_event(session, _said("manatee indexed before"))
        await service.search_events(app_name="a", query="manatee")
    # As an openadk of revision 0004 left it: the FTS5 table alone.
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TABLE {PENDING}")
    await migrations.stamp(url, "0004_event_search")
    found = await migrations.status(url)
    assert found.current == "0004_event_search" and not found.blocks_use
    assert [r for r, _ in found.pending] == ["0005_search_pending"]
    assert "pending list" in found.pending[0][1]

    report = await migrations.upgrade(url)
    assert (report.before, report.after) == ("0004_event_search", migrations.HEAD)
    assert "pending list" in " ".join(report.summary())
    assert _count(path, PENDING) == 0 and _count(path, FTS) == 1
    after = await migrations.status(url)
    assert (after.current, after.recorded, after.pending) == (migrations.HEAD, True, ())
    async with DatabaseSessionService(url) as service:
        later = await service.append_event(session, _said("manatee appended after"))
        hits = (await service.search_events(app_name="a", query="manatee")).hits
    assert {h.event_id for h in hits} == {event.id, later.id}


async def test_an_unrecorded_sqlite_database_with_both_tables_is_at_head(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'made.db'}"
    async with DatabaseSessionService(url) as service:
        await service.create_session(app_name="a", user_id="u")
    await migrations.stamp(url, "base")
    found = await migrations.status(url)
    assert (found.current, found.recorded, found.pending) == (migrations.HEAD, False, ())


async def test_rebuilding_the_index_with_rows_pending_indexes_each_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite+aiosqlite:///{path}"
    _quiet_writer(monkeypatch)
    async with DatabaseSessionService(url) as service:
        session = await service.create_session(app_name="a", user_id="u")
        for i in range(4):
            await service.append_event(session, _said(f"lobster {i}"))
    assert _count(path, PENDING) == 4
    # Revision 0004 rebuilds the index from the events: the pending rows are among them.
    await migrations.stamp(url, "0003_session_metadata")
    report = await migrations.upgrade(url)
    assert report.events_indexed == 4
    async with DatabaseSessionService(url) as service:
        hits = (await service.search_events(app_name="a", query="lobster", limit=100)).hits
    assert sorted(h.snippet for h in hits) == sorted(f"**lobster** {i}" for i in range(4))
