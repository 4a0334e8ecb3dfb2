"""google-adk 2.13's SqliteSessionService file (adk web's ``.adk/session.db``) and openadk.

Its own layout (REAL timestamps, TEXT event_data, cascading foreign keys) under the V1 table
names: ``openadk db current`` names it, ``openadk migrate-from`` copies it into any database
(reading the file only), and the copy holds what SqliteSessionService returns, for openadk and
for google-adk's DatabaseSessionService.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import DatabaseSessionService as AdkDatabaseSessionService
from google.adk.sessions.base_session_service import GetSessionConfig as AdkGetSessionConfig
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from openadk.adk import AdkSessionService
from openadk.sessions import DatabaseSessionService, SqliteServiceFileReader
from openadk.testing._contract import full_event
from tests.cli.test_admin import cli
from tests.contract.backends import MYSQL, POSTGRES

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

DESTINATIONS = {
    "sqlite": None,
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}


def comparable(session: Any) -> dict[str, Any]:
    return {
        "state": session.state,
        "events": [json.loads(e.model_dump_json(exclude_none=True)) for e in session.events],
        "last_update_time": round(session.last_update_time, 6),
    }


async def write_with_google_adk(path: Path, app: str) -> dict[str, dict[str, Any]]:
    """Fills a SqliteSessionService file; returns what it reads back per session id."""
    service = SqliteSessionService(str(path))
    first = await service.create_session(
        app_name=app, user_id="u1", session_id="s1", state={"app:plan": "pro", "user:lang": "en"}
    )
    for n in range(3):
        await service.append_event(
            first,
            AdkEvent(
                author="user" if n % 2 == 0 else "agent",
                invocation_id=f"inv-{n}",
                content=types.Content(role="user", parts=[types.Part(text=f"message {n}")]),
                actions=AdkEventActions(state_delta={"turn": n, "user:seen": n, "temp:x": 1}),
            ),
        )
    rich = AdkEvent.model_validate_json(full_event().model_dump_json(exclude_none=True))
    await service.append_event(first, rich)
    second = await service.create_session(app_name=app, user_id="u2", session_id="s2")
    await service.append_event(second, AdkEvent(author="user", invocation_id="i"))
    found = {}
    for user, sid in (("u1", "s1"), ("u2", "s2")):
        session = await service.get_session(app_name=app, user_id=user, session_id=sid)
        assert session is not None
        found[sid] = comparable(session)
    return found


def digest(path: Path) -> str:
    """The file's schema and rows (opening it with openadk may switch it to WAL journaling,
    which changes header bytes but not its content)."""
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
    return hashlib.sha256(dump.encode()).hexdigest()


@pytest.fixture
def adk_file(tmp_path: Path) -> tuple[Path, str, dict[str, dict[str, Any]]]:
    path = tmp_path / "agent" / ".adk" / "session.db"
    path.parent.mkdir(parents=True)
    app = f"sqlite-service-{uuid.uuid4().hex[:8]}"
    expected = asyncio.run(write_with_google_adk(path, app))
    return path, app, expected


def test_db_current_names_the_layout(adk_file: tuple[Path, str, Any], tmp_path: Path) -> None:
    path, _, _ = adk_file
    before = digest(path)
    shown = cli("db", "current", "--db", f"sqlite:///{path}", cwd=tmp_path)
    assert "google-adk's SqliteSessionService file layout" in shown.stdout, shown
    assert "openadk migrate-from" in shown.stdout
    as_json = json.loads(
        cli("db", "current", "--db", f"sqlite:///{path}", "--json", cwd=tmp_path).stdout
    )
    assert "SqliteSessionService" in as_json["found"]
    assert digest(path) == before


@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_migrate_from_copies_it_into_any_database(
    adk_file: tuple[Path, str, dict[str, dict[str, Any]]], tmp_path: Path, destination: str
) -> None:
    path, app, expected = adk_file
    before = digest(path)
    dest = DESTINATIONS[destination] or f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}"
    # The path as google-adk's CLI spells it: sqlite:///relative/to/the/working/directory.
    copied = cli("migrate-from", "sqlite:///agent/.adk/session.db", dest, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "verified: every source row is in DEST" in copied.stdout
    assert digest(path) == before  # SOURCE only read

    async def read_back() -> None:
        ours = DatabaseSessionService(dest)
        theirs = AdkDatabaseSessionService(db_url=dest)
        adapter = AdkSessionService(ours)
        try:
            for user, sid in (("u1", "s1"), ("u2", "s2")):
                mine = await ours.get_session(app_name=app, user_id=user, session_id=sid)
                through = await adapter.get_session(app_name=app, user_id=user, session_id=sid)
                google = await theirs.get_session(app_name=app, user_id=user, session_id=sid)
                assert mine is not None and through is not None and google is not None
                assert comparable(mine) == expected[sid]
                assert comparable(through) == expected[sid]
                assert comparable(google) == expected[sid]
            listed = await ours.list_sessions(app_name=app)
            assert [s.id for s in listed.sessions] == ["s1", "s2"]
        finally:
            await ours.close()
            await theirs.close()

    asyncio.run(read_back())


def test_the_service_refuses_the_file_and_says_how_to_copy_it(
    adk_file: tuple[Path, str, Any],
) -> None:
    path, app, _ = adk_file
    before = digest(path)

    async def use() -> None:
        async with DatabaseSessionService(f"sqlite:///{path}") as service:
            with pytest.raises(ValueError, match="openadk migrate-from"):
                await service.get_session(app_name=app, user_id="u1", session_id="s1")

    asyncio.run(use())
    assert digest(path) == before


def test_openadk_reads_the_file_in_place(
    adk_file: tuple[Path, str, dict[str, dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, app, expected = adk_file
    monkeypatch.chdir(tmp_path)
    before = digest(path)

    async def read() -> None:
        google = SqliteSessionService(str(path))
        # The path as google-adk's CLI spells it, relative to the working directory.
        reader = SqliteServiceFileReader("sqlite:///agent/.adk/session.db")
        adapter = AdkSessionService(reader)
        for user, sid in (("u1", "s1"), ("u2", "s2")):
            mine = await reader.get_session(app_name=app, user_id=user, session_id=sid)
            through = await adapter.get_session(app_name=app, user_id=user, session_id=sid)
            assert mine is not None and through is not None
            assert comparable(mine) == expected[sid] == comparable(through)
        for config in (
            AdkGetSessionConfig(num_recent_events=2),
            AdkGetSessionConfig(num_recent_events=0),
            AdkGetSessionConfig(after_timestamp=0.0, num_recent_events=3),
        ):
            theirs = await google.get_session(
                app_name=app, user_id="u1", session_id="s1", config=config
            )
            through = await adapter.get_session(
                app_name=app, user_id="u1", session_id="s1", config=config
            )
            assert theirs is not None and through is not None
            assert comparable(through) == comparable(theirs)
        assert await reader.get_session(app_name=app, user_id="u1", session_id="nope") is None
        listed = await reader.list_sessions(app_name=app)
        theirs_listed = await google.list_sessions(app_name=app)
        assert [(s.id, s.state) for s in listed.sessions] == [
            (s.id, s.state) for s in theirs_listed.sessions
        ]
        page = await reader.list_sessions(app_name=app, limit=1)
        assert [s.id for s in page.sessions] == ["s1"] and page.next_page_token
        rest = await reader.list_sessions(app_name=app, limit=1, page_token=page.next_page_token)
        assert [s.id for s in rest.sessions] == ["s2"] and rest.next_page_token is None
        first = await reader.list_events(app_name=app, user_id="u1", session_id="s1", limit=3)
        more = await reader.list_events(
            app_name=app, user_id="u1", session_id="s1", page_token=first.next_page_token
        )
        assert len(first.events) == 3 and len(more.events) == 1
        user_state = await reader.get_user_state(app_name=app, user_id="u1")
        assert user_state == await google.get_user_state(app_name=app, user_id="u1")
        assert user_state["lang"] == "en" and user_state["seen"] == 2

        # Writes are refused with the way out, and nothing changes.
        session = await reader.get_session(app_name=app, user_id="u1", session_id="s1")
        assert session is not None
        with pytest.raises(ValueError, match="openadk migrate-from"):
            await reader.append_event(session, full_event())
        with pytest.raises(ValueError, match="openadk migrate-from"):
            await reader.create_session(app_name=app, user_id="u1")
        with pytest.raises(ValueError, match="openadk migrate-from"):
            await reader.delete_session(app_name=app, user_id="u1", session_id="s1")

    asyncio.run(read())
    assert digest(path) == before


def test_the_reader_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not postgresql://"):
        SqliteServiceFileReader("postgresql://h/db")
    missing = SqliteServiceFileReader(tmp_path / "missing.db")
    with pytest.raises(ValueError, match="does not exist"):
        asyncio.run(missing.list_sessions(app_name="a"))
    assert not (tmp_path / "missing.db").exists()
    v1 = tmp_path / "v1.db"

    async def make_v1() -> None:
        async with DatabaseSessionService(f"sqlite:///{v1}") as service:
            await service.create_session(app_name="a", user_id="u")

    asyncio.run(make_v1())
    with pytest.raises(ValueError, match="not a google-adk SqliteSessionService file"):
        asyncio.run(SqliteServiceFileReader(v1).list_sessions(app_name="a"))
