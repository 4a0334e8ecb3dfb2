"""A fork's search index rows are copied by the database in one statement, on every engine."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from sqlalchemy import event as sa_event

from openadk.events import Event
from openadk.sessions import DatabaseSessionService
from openadk.sessions._admin import export_sessions, import_sessions
from tests.contract.backends import MYSQL, POSTGRES

SERVERS = {
    "sqlite": None,
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}


@pytest.fixture(params=list(SERVERS))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = SERVERS[request.param]
    return url or f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"


class Statements:
    """Statements the database runs, counting each row of an executemany as one (it is one
    statement per row on every driver's server side)."""

    def __init__(self) -> None:
        self.all: list[str] = []

    def __call__(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        self.all += [statement] * (len(parameters) if executemany else 1)

    def touching(self, table: str) -> list[str]:
        return [s for s in self.all if table in s]


async def _session_with(service: DatabaseSessionService, app: str, word: str, count: int) -> str:
    session = await service.create_session(app_name=app, user_id="ann")
    for n in range(count):
        await service.append_event(
            session,
            Event(
                author="user",
                invocation_id=f"inv-{n}",
                content=types.Content(role="user", parts=[types.Part(text=f"{word} number {n}")]),
            ),
        )
    return session.id


async def _fork_statements(service: DatabaseSessionService, app: str, source: str) -> Statements:
    seen = Statements()
    sync_engine = service.engine.sync_engine  # type: ignore[union-attr]
    sa_event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        await service.fork_session(
            app_name=app, user_id="ann", session_id=source, new_session_id=f"{source}-fork"
        )
    finally:
        sa_event.remove(sync_engine, "before_cursor_execute", seen)
    return seen


@pytest.mark.asyncio
async def test_a_fork_copies_its_index_rows_in_one_statement(db_url: str) -> None:
    app = f"fork-{uuid.uuid4().hex[:8]}"
    word = f"w{uuid.uuid4().hex[:10]}"
    async with DatabaseSessionService(db_url) as service:
        small = await _session_with(service, app, f"{word}small", 3)
        large = await _session_with(service, app, word, 300)
        few = await _fork_statements(service, app, small)
        many = await _fork_statements(service, app, large)
        # However many events: the same statements, one of them copying index rows (on
        # SQLite, after the two that move the pending list into FTS5 first).
        copies = [
            s for s in many.touching("openadk_event_search") if "event_search_pending" not in s
        ]
        assert len(copies) == 1, copies[:3]

        # (Moving SQLite's pending list takes statements of its own when rows are pending.)
        def own(seen: Statements) -> list[str]:
            # The writes (reads vary with what the event cache holds).
            return [
                s
                for s in seen.all
                if "openadk_event_search" not in s and s.lstrip().upper().startswith("INSERT")
            ]

        assert len(own(many)) == len(own(few))

        fork = f"{large}-fork"
        hits: list[Any] = []
        page = await service.search_events(app_name=app, query=word, limit=100)
        while True:
            hits += page.hits
            if page.next_page_token is None:
                break
            page = await service.search_events(
                app_name=app, query=word, limit=100, page_token=page.next_page_token
            )
        by_session: dict[str, set[str]] = {}
        for hit in hits:
            by_session.setdefault(hit.session_id, set()).add(hit.event_id)
        assert set(by_session) == {large, fork}
        assert len(by_session[fork]) == 300
        assert by_session[fork] == by_session[large]

        await service.delete_session(app_name=app, user_id="ann", session_id=fork)
        left = await service.search_events(app_name=app, query=f"{word} 299")
        assert [h.session_id for h in left.hits] == [large]


@pytest.mark.asyncio
async def test_a_fork_up_to_an_invocation_indexes_only_its_events(db_url: str) -> None:
    app = f"fork-{uuid.uuid4().hex[:8]}"
    word = f"w{uuid.uuid4().hex[:10]}"
    async with DatabaseSessionService(db_url) as service:
        source = await _session_with(service, app, word, 10)
        await service.fork_session(
            app_name=app,
            user_id="ann",
            session_id=source,
            new_session_id="cut",
            up_to_invocation_id="inv-3",
        )
        found = await service.search_events(app_name=app, query=word, limit=100)
        fork_hits = sorted(h.event_id for h in found.hits if h.session_id == "cut")
        cut = await service.get_session(app_name=app, user_id="ann", session_id="cut")
        assert cut is not None
        assert fork_hits == sorted(e.id for e in cut.events)
        assert len(fork_hits) == 4
        # The fork's rows are under its own user/app scope: filtered by user too.
        mine = await service.search_events(app_name=app, user_id="ann", query=f"{word} 3")
        assert {h.session_id for h in mine.hits} == {source, "cut"}


@pytest.mark.asyncio
async def test_a_fork_cut_among_events_of_one_time_indexes_only_the_copied_ones(
    db_url: str,
) -> None:
    # Events stored at one time (google-adk lets them tie; an import keeps their times): the
    # cut cannot be a time, so the index rows at that time are taken by event id.
    app = f"fork-{uuid.uuid4().hex[:8]}"
    word = f"w{uuid.uuid4().hex[:10]}"
    async with DatabaseSessionService(db_url) as service:
        await _session_with(service, app, word, 6)
        [line] = [line async for line in export_sessions(service, app_name=app)]
        dump = json.loads(line)
        dump["id"] = "tied"
        for stored in dump["events"]:
            stored["timestamp"] = 1_700_000_000.25
        report = await import_sessions(service, [json.dumps(dump)])
        assert (report.imported, report.errors) == (1, [])
        tied = await service.get_session(app_name=app, user_id="ann", session_id="tied")
        assert tied is not None
        assert len({e.timestamp for e in tied.events}) == 1

        fork = await service.fork_session(
            app_name=app,
            user_id="ann",
            session_id="tied",
            new_session_id="tied-cut",
            up_to_invocation_id=tied.events[2].invocation_id,
        )
        assert [e.id for e in fork.events] == [e.id for e in tied.events[:3]]
        found = await service.search_events(app_name=app, query=word, limit=100)
        indexed = sorted(h.event_id for h in found.hits if h.session_id == "tied-cut")
        assert indexed == sorted(e.id for e in fork.events)
