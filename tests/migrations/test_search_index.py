"""Revision 0004: a database with events stored before the search index is indexed in batches."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from google.genai import types
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.events import Event
from openadk.sessions import DatabaseSessionService, migrations

pytestmark = pytest.mark.asyncio

POSTGRES = os.environ.get("OPENADK_TEST_POSTGRES", "postgres@127.0.0.1:5432/test")


def _said(words: str) -> Event:
    return Event(
        author="user",
        invocation_id=f"e-{uuid.uuid4()}",
        content=types.Content(role="user", parts=[types.Part(text=words)]),
    )


async def _drop_index(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE openadk_event_search"))
    await engine.dispose()


async def test_upgrade_indexes_events_stored_before_the_index(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    service = DatabaseSessionService(url)
    session = await service.create_session(app_name="a", user_id="u")
    for i in range(7):
        await service.append_event(session, _said(f"pineapple number {i}"))
    await service.append_event(session, Event(author="agent", invocation_id="e-no-text"))
    await service.close()
    # As an openadk of revision 0003 left it: no search table.
    await _drop_index(url)
    await migrations.stamp(url, "0003_session_metadata")
    found = await migrations.status(url)
    assert [r for r, _ in found.pending] == [
        "0004_event_search",
        "0005_search_pending",
    ] and not found.blocks_use

    seen: list[tuple[int, int]] = []
    report = await migrations.upgrade(url, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert report.events_indexed == 7 and report.after == migrations.HEAD
    assert seen == [(3, 8), (6, 8), (8, 8)]
    assert "Indexed 7 event(s) for full-text search" in " ".join(report.summary())

    service = DatabaseSessionService(url)
    hits = (await service.search_events(app_name="a", query="pineapple", limit=100)).hits
    assert sorted(h.snippet for h in hits) == sorted(f"**pineapple** number {i}" for i in range(7))
    # Upgrading again (the index rebuilt) leaves each event indexed once.
    await migrations.stamp(url, "0003_session_metadata")
    await migrations.upgrade(url)
    again = (await service.search_events(app_name="a", query="pineapple", limit=100)).hits
    assert len(again) == 7
    await service.close()


@pytest.mark.parametrize("driver", ["asyncpg"])
async def test_upgrade_indexes_a_postgres_database(driver: str) -> None:
    url = f"postgresql+{driver}://{POSTGRES}"
    app = f"app-{uuid.uuid4().hex[:8]}"
    service = DatabaseSessionService(url)
    session = await service.create_session(app_name=app, user_id="u")
    await service.append_event(session, _said("grapefruit juice"))
    await service.close()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM openadk_event_search WHERE app_name = :a"), {"a": app})
    await engine.dispose()
    service = DatabaseSessionService(url)
    assert (await service.search_events(app_name=app, query="grapefruit")).hits == []
    await migrations.stamp(url, "0003_session_metadata")
    await migrations.upgrade(url)
    hits = (await service.search_events(app_name=app, query="grapefruit")).hits
    assert [h.session_id for h in hits] == [session.id]
    await service.close()
