"""Copies keep what openadk adds to a session: its title, its labels, and its events' search hits.

``openadk sessions export``/``import`` and ``openadk migrate-from`` between real SQLite,
PostgreSQL and MariaDB databases: after the copy, a label-filtered listing, ``get_session``'s
title and labels, and ``search_events`` give on DEST what they give on SOURCE, and running the
copy again changes nothing (no event indexed twice, no label lost).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.events import Event
from openadk.sessions import DatabaseSessionService
from tests.cli.test_admin import cli
from tests.contract.backends import MYSQL, POSTGRES, REDIS

WORDS = ("parcel", "refund", "invoice")


def _server(url: str) -> str:
    return url.rsplit("/", 1)[0]


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SQLite file, PostgreSQL database and MariaDB database, dropped afterwards."""
    name = f"h_copy_{uuid.uuid4().hex[:10]}"
    pg_admin = f"postgresql+asyncpg://{_server(POSTGRES)}/postgres"
    my_admin = f"mysql+aiomysql://{_server(MYSQL)}"

    async def run(url: str, statement: str) -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run(pg_admin, f"CREATE DATABASE {name}"))
    asyncio.run(run(my_admin, f"CREATE DATABASE {name}"))
    try:
        yield {
            "sqlite": f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}",
            "postgres": f"postgresql+asyncpg://{_server(POSTGRES)}/{name}",
            "mariadb": f"mysql+aiomysql://{_server(MYSQL)}/{name}?charset=utf8mb4",
        }
    finally:
        asyncio.run(run(pg_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        asyncio.run(run(my_admin, f"DROP DATABASE IF EXISTS {name}"))


def text_event(words: str, n: int) -> Event:
    return Event(
        author="user" if n % 2 == 0 else "agent",
        invocation_id=f"inv-{n}",
        content=types.Content(role="user", parts=[types.Part(text=words)]),
    )


async def fill(url: str, app: str) -> None:
    """Sessions with and without titles and labels, each with searchable events."""
    async with DatabaseSessionService(url) as service:
        for s in range(4):
            session = await service.create_session(
                app_name=app,
                user_id=f"user{s % 2}",
                session_id=f"s{s}",
                display_name=None if s == 3 else f"Order question {s} — ünïcode",
                labels={} if s >= 2 else {"team": "a" if s == 0 else "b", "vip": "yes"},
            )
            for n, word in enumerate(WORDS):
                await service.append_event(session, text_event(f"{word} for order {s}-{n}", n))
        # One labelled session with no title, one title without labels (s2): both kinds.
        await service.update_session(
            app_name=app, user_id="user1", session_id="s3", labels={"team": "a"}
        )


async def observe(url: str, app: str) -> dict[str, Any]:
    """What the title/label/search API shows of an app."""
    async with DatabaseSessionService(url) as service:
        listed = await service.list_sessions(app_name=app)
        sessions = {}
        for item in listed.sessions:
            got = await service.get_session(app_name=app, user_id=item.user_id, session_id=item.id)
            assert got is not None
            sessions[item.id] = (got.display_name, got.labels, item.display_name, item.labels)
        by_label = {
            f"{key}={value}": sorted(
                s.id
                for s in (await service.list_sessions(app_name=app, labels={key: value})).sessions
            )
            for key, value in (("team", "a"), ("team", "b"), ("vip", "yes"))
        }
        hits = {}
        for word in (*WORDS, "order", "order 2"):
            found = await service.search_events(app_name=app, query=word, limit=100)
            hits[word] = sorted((h.session_id, h.event_id, h.snippet) for h in found.hits)
        mine = await service.search_events(app_name=app, user_id="user0", query="order")
        hits["user0"] = sorted((h.session_id, h.event_id) for h in mine.hits)
    return {"sessions": sessions, "labels": by_label, "hits": hits}


PAIRS = [("sqlite", "postgres"), ("postgres", "mariadb"), ("mariadb", "sqlite")]


@pytest.mark.parametrize(("source", "dest"), PAIRS)
def test_export_import_keeps_titles_labels_and_search(
    tmp_path: Path, databases: dict[str, str], source: str, dest: str
) -> None:
    app = "shop"
    asyncio.run(fill(databases[source], app))
    before = asyncio.run(observe(databases[source], app))
    assert before["labels"]["team=a"] == ["s0", "s3"]
    assert len(before["hits"]["order"]) == 12
    out = cli("sessions", "export", "--db", databases[source], "--app", app, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    dump = {json.loads(line)["id"]: json.loads(line) for line in lines}
    # The title and labels travel under google-adk's camelCase names, only when set.
    assert dump["s0"]["displayName"].startswith("Order question 0")
    assert dump["s0"]["labels"] == {"team": "a", "vip": "yes"}
    assert "labels" not in dump["s2"] and "displayName" not in dump["s3"]
    (tmp_path / "dump.jsonl").write_text(out.stdout)

    done = cli("sessions", "import", "dump.jsonl", "--db", databases[dest], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "imported 4" in done.stdout
    assert asyncio.run(observe(databases[dest], app)) == before
    # Again: skipped; and replaced: the old index rows, title and labels go with the old copy.
    again = cli("sessions", "import", "dump.jsonl", "--db", databases[dest], cwd=tmp_path)
    assert "skipped 4" in again.stdout
    assert asyncio.run(observe(databases[dest], app)) == before
    replaced = cli(
        "sessions", "import", "dump.jsonl", "--replace", "--db", databases[dest], cwd=tmp_path
    )
    assert "replaced 4" in replaced.stdout, replaced.stdout + replaced.stderr
    assert asyncio.run(observe(databases[dest], app)) == before


@pytest.mark.parametrize(("source", "dest"), PAIRS)
def test_migrate_from_keeps_titles_labels_and_search_and_runs_again(
    tmp_path: Path, databases: dict[str, str], source: str, dest: str
) -> None:
    app = "shop"
    asyncio.run(fill(databases[source], app))
    before = asyncio.run(observe(databases[source], app))
    first = cli("migrate-from", databases[source], databases[dest], cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verified: every source row is in DEST" in first.stdout
    assert asyncio.run(observe(databases[dest], app)) == before
    assert "12 copied event(s) indexed" in first.stdout

    again = cli("migrate-from", databases[source], databases[dest], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "verified: every source row is in DEST" in again.stdout
    assert "indexed" not in again.stdout
    assert asyncio.run(observe(databases[dest], app)) == before


def test_a_resumed_copy_indexes_only_the_new_events(
    tmp_path: Path, databases: dict[str, str]
) -> None:
    source, dest = databases["postgres"], databases["sqlite"]
    app = "shop"
    asyncio.run(fill(source, app))
    assert cli("migrate-from", source, dest, cwd=tmp_path).returncode == 0

    async def go_on() -> None:
        async with DatabaseSessionService(source) as service:
            session = await service.get_session(app_name=app, user_id="user0", session_id="s0")
            assert session is not None
            await service.append_event(session, text_event("parcel arrived late", 7))

    asyncio.run(go_on())
    resumed = cli("migrate-from", source, dest, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = asyncio.run(observe(dest, app))
    assert after == asyncio.run(observe(source, app))
    assert len(after["hits"]["parcel"]) == 5
    assert "1 copied event(s) indexed" in resumed.stdout


def test_a_copy_made_before_copies_indexed_is_indexed_when_run_again(
    tmp_path: Path, databases: dict[str, str]
) -> None:
    source, dest = databases["mariadb"], databases["sqlite"]
    app = "shop"
    asyncio.run(fill(source, app))
    assert cli("migrate-from", source, dest, cwd=tmp_path).returncode == 0

    async def drop_index() -> None:  # what an earlier openadk's copy left: no index rows
        engine = create_async_engine(dest)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM openadk_event_search"))
        finally:
            await engine.dispose()

    asyncio.run(drop_index())
    again = cli("migrate-from", source, dest, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert asyncio.run(observe(dest, app)) == asyncio.run(observe(source, app))
    assert "12 copied event(s) indexed" in again.stdout


def test_other_labels_in_dest_are_a_conflict_and_stay(
    tmp_path: Path, databases: dict[str, str]
) -> None:
    source, dest = databases["sqlite"], databases["postgres"]
    app = "shop"
    asyncio.run(fill(source, app))
    assert cli("migrate-from", source, dest, cwd=tmp_path).returncode == 0

    async def relabel() -> None:
        async with DatabaseSessionService(dest) as service:
            await service.update_session(
                app_name=app, user_id="user0", session_id="s0", labels={"team": "c"}
            )

    asyncio.run(relabel())
    again = cli("migrate-from", source, dest, cwd=tmp_path)
    assert again.returncode == 1
    assert "conflict: title and labels of session shop/user0/s0" in again.stderr
    shown = asyncio.run(observe(dest, app))
    assert shown["sessions"]["s0"][1] == {"team": "c"}
    assert shown["labels"]["team=a"] == ["s3"]


def test_redis_holds_no_titles_so_the_copy_says_so(
    tmp_path: Path, databases: dict[str, str]
) -> None:
    source = databases["sqlite"]
    app = f"shop-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill(source, app))
    redis_url = f"{REDIS}?key_prefix=copy-{uuid.uuid4().hex[:8]}:"
    out = cli("migrate-from", source, redis_url, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "not copied: titles and labels of 4 session(s)" in out.stderr

    # Back from Redis into a database: the events are searchable there.
    back = databases["mariadb"]
    out = cli("migrate-from", redis_url, back, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    hits = asyncio.run(observe(back, app))["hits"]
    assert hits == asyncio.run(observe(source, app))["hits"]


def test_import_into_redis_says_what_it_left_out(tmp_path: Path, databases: dict[str, str]) -> None:
    source = databases["sqlite"]
    app = f"shop-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill(source, app))
    out = cli("sessions", "export", "--db", source, "--app", app, cwd=tmp_path)
    redis_url = f"{REDIS}?key_prefix=copy-{uuid.uuid4().hex[:8]}:"
    done = cli("sessions", "import", "-", "--db", redis_url, cwd=tmp_path, stdin=out.stdout)
    assert done.returncode == 0, done.stderr
    assert "imported 4" in done.stdout
    assert "4 session(s) imported without their title and labels" in done.stderr


def test_import_refuses_bad_labels_naming_the_field(
    tmp_path: Path, databases: dict[str, str]
) -> None:
    line = json.dumps(
        {"id": "x", "appName": "shop", "userId": "ann", "labels": {"Team": "a"}, "events": []}
    )
    done = cli("sessions", "import", "-", "--db", databases["sqlite"], cwd=tmp_path, stdin=line)
    assert done.returncode != 0
    assert "line 1: field labels: Invalid label key 'Team'" in done.stderr
