"""Ids compare exactly on every database (DESIGN decision 10), MariaDB through both drivers.

MariaDB's default collation (``utf8mb4_general_ci``) makes ``ALICE`` alice, ``'S1 '`` s1,
``résumé`` resume and every emoji one user. openadk's tables give the key columns a binary NO
PAD collation, and revision 0002 converts the tables google-adk or an older openadk created.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, migrations
from tests.contract.backends import MYSQL, POSTGRES

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

MARIADB_SERVER = MYSQL.rsplit("/", 1)[0]
MARIADB_DRIVERS = ("aiomysql", "asyncmy")
BACKENDS = ("sqlite", "postgres", "mariadb-aiomysql", "mariadb-asyncmy")
KEY_TABLES = {
    "sessions": ("app_name", "user_id", "id"),
    "events": ("id", "app_name", "user_id", "session_id"),
    "app_states": ("app_name",),
    "user_states": ("app_name", "user_id"),
}


@contextlib.asynccontextmanager
async def mariadb_database(driver: str) -> AsyncIterator[str]:
    """A fresh MariaDB database with the server's default (case-insensitive) collation."""
    name = f"storage_ids_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        f"mysql+{driver}://{MARIADB_SERVER}/?charset=utf8mb4", isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        try:
            yield f"mysql+{driver}://{MARIADB_SERVER}/{name}?charset=utf8mb4"
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def backend_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}"
    elif backend == "postgres":
        yield f"postgresql+asyncpg://{POSTGRES}"
    else:
        async with mariadb_database(backend.removeprefix("mariadb-")) as url:
            yield url


async def collations(url: str) -> dict[str, str]:
    """``table.column`` -> collation of every key column (MariaDB)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM "
                        "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return {
        f"{table}.{column}": str(collation)
        for table, column, collation in rows
        if column in KEY_TABLES.get(table, ())
    }


async def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                table: sorted(
                    tuple(row) for row in (await conn.execute(text(f"SELECT * FROM {table}"))).all()
                )
                for table in KEY_TABLES
            }
    finally:
        await engine.dispose()


def delta_event(**delta: Any) -> Event:
    return Event(
        author="user", invocation_id=f"e-{uuid.uuid4()}", actions=EventActions(state_delta=delta)
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ids_differing_in_case_accents_spaces_or_emoji_are_different(
    backend: str, tmp_path: Path
) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    async with backend_url(backend, tmp_path) as url:
        async with DatabaseSessionService(url) as service:
            alice = await service.create_session(
                app_name=app, user_id="alice", session_id="s1", state={"user:plan": "gold", "k": 1}
            )
            await service.append_event(alice, delta_event(k=2))

            # Another spelling of the user or the session finds nothing of alice's.
            for user_id, session_id in (("ALICE", "s1"), ("alice", "S1"), ("alice", "s1 ")):
                got = await service.get_session(
                    app_name=app, user_id=user_id, session_id=session_id
                )
                assert got is None, (user_id, session_id)
            assert await service.get_user_state(app_name=app, user_id="ALICE") == {}
            assert (await service.list_sessions(app_name=app, user_id="ALICE")).sessions == []

            # ALICE is a user of her own: her session, state and appends leave alice's alone.
            upper = await service.create_session(
                app_name=app, user_id="ALICE", session_id="s1", state={"user:plan": "free"}
            )
            assert upper.state == {"user:plan": "free"} and upper.events == []
            await service.append_event(upper, delta_event(**{"k": "upper", "user:plan": "trial"}))
            mine = await service.get_session(app_name=app, user_id="alice", session_id="s1")
            assert mine is not None
            assert mine.state == {"user:plan": "gold", "k": 2} and len(mine.events) == 1
            assert await service.get_user_state(app_name=app, user_id="alice") == {"plan": "gold"}
            assert await service.get_user_state(app_name=app, user_id="ALICE") == {"plan": "trial"}

            # Trailing spaces and case make other sessions of the same user.
            padded = await service.create_session(
                app_name=app, user_id="alice", session_id="S1 ", state={"k": "padded"}
            )
            assert padded.state == {"user:plan": "gold", "k": "padded"}
            listed = await service.list_sessions(app_name=app, user_id="alice")
            assert sorted(s.id for s in listed.sessions) == ["S1 ", "s1"]
            one = await service.get_session(app_name=app, user_id="alice", session_id="s1")
            assert one is not None and one.state["k"] == 2
            # NO PAD: 'S1' is neither 's1' nor 'S1 ' (utf8mb4_bin would find 'S1 ' here).
            assert await service.get_session(app_name=app, user_id="alice", session_id="S1") is None
            assert (
                await service.get_session(app_name=app, user_id="alice ", session_id="s1") is None
            )

            # Accents and distinct emoji are distinct users.
            for user_id, value in (("résumé", 1), ("resume", 2), ("😀", 3), ("😁", 4)):
                made = await service.create_session(
                    app_name=app, user_id=user_id, session_id="e", state={"user:n": value}
                )
                assert made.state == {"user:n": value}, user_id
            for user_id, value in (("résumé", 1), ("resume", 2), ("😀", 3), ("😁", 4)):
                assert await service.get_user_state(app_name=app, user_id=user_id) == {"n": value}
            everyone = await service.list_sessions(app_name=app)
            assert sorted((s.user_id, s.id) for s in everyone.sessions) == sorted(
                [
                    ("alice", "s1"),
                    ("alice", "S1 "),
                    ("ALICE", "s1"),
                    ("résumé", "e"),
                    ("resume", "e"),
                    ("😀", "e"),
                    ("😁", "e"),
                ]
            )
        if backend.startswith("mariadb"):
            found = await collations(url)
            assert len(found) == 10 and set(found.values()) == {"utf8mb4_nopad_bin"}, found


@pytest.mark.parametrize("driver", MARIADB_DRIVERS)
async def test_through_openadk_serve_another_spelling_of_the_user_is_another_user(
    driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from openadk.cli import main
    from openadk.server import _serve

    apps: list[Any] = []
    services: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    real_build = _serve.build_service

    def recording_build(db_url: str) -> Any:
        services.append(real_build(db_url))
        return services[-1]

    monkeypatch.setattr(_serve, "build_service", recording_build)
    async with mariadb_database(driver) as url:
        # `openadk serve --db URL`, with uvicorn.run replaced by a call that keeps the app.
        assert main(["serve", "--db", url, "--port", "9"]) == 0
        (app,) = apps
        (service,) = services
        assert isinstance(service, DatabaseSessionService)
        await service.create_session(
            app_name="app1", user_id="alice", session_id="mine", state={"k": 1}
        )
        parent = "/v1beta1/projects/p/locations/us-central1/reasoningEngines/app1"
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as http:
                as_upper = {"x-openadk-user-id": "ALICE"}
                read = await http.get(f"{parent}/sessions/mine", headers=as_upper)
                assert read.status_code == 403, read.text
                appended = await http.post(
                    f"{parent}/sessions/mine:appendEvent",
                    json={
                        "author": "user",
                        "invocationId": "e-1",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "actions": {"stateDelta": {"k": 2}},
                    },
                    headers=as_upper,
                )
                assert appended.status_code == 403, appended.text
                own = await http.get(
                    f"{parent}/sessions/mine", headers={"x-openadk-user-id": "alice"}
                )
                assert own.status_code == 200 and own.json()["userId"] == "alice"
            stored = await service.get_session(app_name="app1", user_id="alice", session_id="mine")
            assert stored is not None and stored.state == {"k": 1} and stored.events == []
        finally:
            await service.close()


@pytest.mark.parametrize("driver", MARIADB_DRIVERS)
async def test_google_adk_database_is_refused_then_upgraded_in_place(driver: str) -> None:
    from google.adk.events import Event as AdkEvent
    from google.adk.events import EventActions as AdkEventActions
    from google.adk.sessions import DatabaseSessionService as AdkService

    from openadk.cli import main

    async with mariadb_database(driver) as url:
        adk = AdkService(db_url=url)
        session = await adk.create_session(
            app_name="a", user_id="alice", session_id="s1", state={"user:plan": "gold", "k": 1}
        )
        await adk.append_event(
            session,
            AdkEvent(
                author="user", invocation_id="i1", actions=AdkEventActions(state_delta={"k": 2})
            ),
        )
        await adk.close()
        assert set((await collations(url)).values()) == {"utf8mb4_general_ci"}
        before = await table_rows(url)

        # The service says what is wrong and the command that fixes it.
        async with DatabaseSessionService(url) as service:
            with pytest.raises(ValueError, match="compare ids loosely") as refused:
                await service.get_session(app_name="a", user_id="ALICE", session_id="s1")
        message = str(refused.value)
        assert "compare ids loosely (utf8mb4_general_ci" in message
        assert f"openadk db upgrade --db 'mysql+{driver}://root@" in message

        check = await migrations.status(url)
        assert check.behind and check.blocks_use
        assert [revision for revision, _ in check.pending] == [
            "0002_exact_keys",
            "0003_session_metadata",
            "0004_event_search",
            "0005_search_pending",
        ]

        # `openadk db check` reports it, `openadk db upgrade` fixes it, data kept. (The CLI
        # runs its own event loop, so in a thread here.)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert await asyncio.to_thread(main, ["db", "check", "--db", url]) == 1
        assert "0002_exact_keys" in out.getvalue() and "utf8mb4_nopad_bin" in out.getvalue()
        with contextlib.redirect_stdout(out):
            assert await asyncio.to_thread(main, ["db", "upgrade", "--db", url]) == 0
        assert "key column(s) now compare ids exactly" in out.getvalue()
        with contextlib.redirect_stdout(out):
            assert await asyncio.to_thread(main, ["db", "check", "--db", url]) == 0
        assert set((await collations(url)).values()) == {"utf8mb4_nopad_bin"}
        assert await table_rows(url) == before

        async with DatabaseSessionService(url) as service:
            assert await service.get_session(app_name="a", user_id="ALICE", session_id="s1") is None
            mine = await service.get_session(app_name="a", user_id="alice", session_id="s1")
            assert mine is not None and mine.state == {"user:plan": "gold", "k": 2}
            await service.append_event(mine, delta_event(k=3))

        # google-adk keeps working on the converted tables.
        adk = AdkService(db_url=url)
        again = await adk.get_session(app_name="a", user_id="alice", session_id="s1")
        assert again is not None and again.state["k"] == 3 and len(again.events) == 2
        await adk.close()


async def test_older_openadk_database_with_loosely_matched_rows_is_upgraded() -> None:
    """Rows the loose foreign key matched by another spelling are kept, under the session's."""
    async with mariadb_database("aiomysql") as url:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                from google.adk.sessions.schemas import v1 as adk_v1

                # The tables as google-adk (and openadk before revision 0002) created them.
                await conn.run_sync(adk_v1.Base.metadata.create_all)
                await conn.execute(
                    text(
                        "INSERT INTO sessions VALUES ('a', 'alice', 's1', '{}', NOW(6), NOW(6)),"
                        " ('a', 'bob', 's1', '{}', NOW(6), NOW(6))"
                    )
                )
                # Appended through an 'ALICE'/'S1' handle: the loose foreign key accepted it.
                await conn.execute(
                    text(
                        "INSERT INTO events VALUES ('e1', 'a', 'ALICE', 'S1', 'i', NOW(6), "
                        '\'{"id": "e1", "author": "user", "invocation_id": "i", '
                        "\"timestamp\": 1.0}'), ('e2', 'a', 'bob', 's1', 'i', NOW(6), NULL)"
                    )
                )
                await conn.execute(text("INSERT INTO app_states VALUES ('a', '{}', NOW(6))"))
                await conn.execute(
                    text("INSERT INTO user_states VALUES ('a', 'alice', '{}', NOW(6))")
                )
        finally:
            await engine.dispose()
        await migrations.stamp(url, "0001_adk_v1")
        found = await migrations.status(url)
        assert (found.current, found.recorded) == ("0001_adk_v1", True) and found.blocks_use

        # With auto_upgrade the service runs revision 0002 itself.
        async with DatabaseSessionService(url, auto_upgrade=True) as service:
            mine = await service.get_session(app_name="a", user_id="alice", session_id="s1")
            assert mine is not None and [e.id for e in mine.events] == ["e1"]
            assert await service.get_session(app_name="a", user_id="ALICE", session_id="S1") is None
        assert set((await collations(url)).values()) == {"utf8mb4_nopad_bin"}
        rows = await table_rows(url)
        assert [row[:4] for row in rows["events"]] == [
            ("e1", "a", "alice", "s1"),
            ("e2", "a", "bob", "s1"),
        ]
        after = await migrations.status(url)
        assert (after.current, after.recorded, after.pending) == (migrations.HEAD, True, ())


async def test_an_interrupted_key_upgrade_is_finished_by_running_it_again() -> None:
    async with mariadb_database("asyncmy") as url:
        async with DatabaseSessionService(url) as service:
            await service.create_session(app_name="a", user_id="u", session_id="s")
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                # As a google-adk database half-way through revision 0002: the children
                # converted (their foreign keys dropped), sessions still loose.
                fks = (
                    await conn.execute(
                        text(
                            "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema."
                            "REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"
                        )
                    )
                ).all()
                assert {table for table, _ in fks} == {"events", "openadk_session_expiry"}
                for table, name in fks:
                    await conn.execute(text(f"ALTER TABLE {table} DROP FOREIGN KEY {name}"))
                await conn.execute(
                    text(
                        "ALTER TABLE sessions MODIFY app_name VARCHAR(128) CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_general_ci NOT NULL"
                    )
                )
        finally:
            await engine.dispose()
        found = await migrations.status(url)
        assert found.layout is not None and found.layout.keys
        assert found.layout.keys.missing_foreign_keys == ("events", "openadk_session_expiry")
        report = await migrations.upgrade(url)
        assert report.keys_made_exact == ["sessions.app_name"]
        assert not (await migrations.status(url)).behind
        async with DatabaseSessionService(url) as service:
            # The foreign keys are back: deleting the session deletes its events.
            session = await service.get_session(app_name="a", user_id="u", session_id="s")
            assert session is not None
            await service.append_event(session, delta_event(k=1))
            await service.delete_session(app_name="a", user_id="u", session_id="s")
        assert (await table_rows(url))["events"] == []


async def test_a_sqlite_database_recorded_at_0001_keeps_working(tmp_path: Path) -> None:
    """Revision 0002 changes nothing on SQLite, so it never blocks an older openadk's database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await migrations.upgrade(url, revision="0001_adk_v1")
    found = await migrations.status(url)
    assert (found.current, found.recorded) == ("0001_adk_v1", True)
    assert found.behind and not found.blocks_use
    assert [revision for revision, _ in found.pending] == [
        "0002_exact_keys",
        "0003_session_metadata",
        "0004_event_search",
        "0005_search_pending",
    ]
    async with DatabaseSessionService(url) as service:
        await service.create_session(app_name="a", user_id="alice", session_id="s1")
        assert await service.get_session(app_name="a", user_id="ALICE", session_id="s1") is None
    report = await migrations.upgrade(url)
    assert report.action == "recorded" and report.keys_made_exact == []
    assert not (await migrations.status(url)).behind


# Pairs a case- or accent-insensitive, PAD SPACE or Unicode-folding collation would equate.
LOOKALIKE_PAIRS = [
    ("alice", "ALICE"),
    ("alice", "Alice"),
    ("s1", "s1 "),
    ("s1 ", "s1  "),
    ("résumé", "resume"),
    ("résumé", "RÉSUMÉ"),
    ("😀", "😁"),
    ("\U0001d51e", "a"),  # mathematical fraktur a
    ("ß", "s"),
    ("ß", "ss"),
    ("Å", "A"),
    ("\uff21", "A"),  # full-width A
    ("ǆ", "Ǆ"),
    ("i", "İ"),
    ("á", "a\u0301"),  # composed and decomposed
    ("x", "x\u00a0"),  # a trailing no-break space
]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_lookalike_ids_stay_apart(backend: str, tmp_path: Path) -> None:
    base = f"app-{uuid.uuid4().hex[:8]}"
    async with backend_url(backend, tmp_path) as url, DatabaseSessionService(url) as service:
        for index, (first, second) in enumerate(LOOKALIKE_PAIRS):
            app = f"{base}-{index}"
            for user_id in (first, second):
                made = await service.create_session(
                    app_name=app, user_id=user_id, session_id=first, state={"user:me": user_id}
                )
                assert made.state == {"user:me": user_id}, (first, second)
            for user_id in (first, second):
                assert await service.get_user_state(app_name=app, user_id=user_id) == {
                    "me": user_id
                }
                listed = await service.list_sessions(app_name=app, user_id=user_id)
                assert [(s.user_id, s.id) for s in listed.sessions] == [(user_id, first)]
            # As session ids of one user, too.
            owner = "owner"
            for session_id in (first, second):
                await service.create_session(
                    app_name=app, user_id=owner, session_id=session_id, state={"id": session_id}
                )
            for session_id in (first, second):
                got = await service.get_session(app_name=app, user_id=owner, session_id=session_id)
                assert got is not None and got.state["id"] == session_id
