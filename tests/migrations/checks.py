"""Assertions shared by the migration tests."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.events import Event
from openadk.sessions import DatabaseSessionService
from tests.migrations.conftest import EXPECTED, WRITER


async def tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def event_columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("events"))
            return {c["name"] for c in columns}
    finally:
        await engine.dispose()


async def count(url: str, table: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


async def rows(url: str, table: str, order: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


async def key_collations(url: str) -> dict[str, str]:
    """MySQL/MariaDB: ``table.column`` -> collation of the id columns of google-adk's tables."""
    keys = {"app_name", "user_id", "id", "session_id"}
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME "
                    "FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN "
                    "('sessions', 'events', 'app_states', 'user_states')"
                )
            )
            return {f"{t}.{c}": str(coll) for t, c, coll in result if c in keys}
    finally:
        await engine.dispose()


async def indexes(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: inspect(c).get_indexes("events"))
            return {str(index["name"]) for index in found}
    finally:
        await engine.dispose()


async def assert_fully_v0(url: str) -> None:
    """The database is exactly google-adk's V0 layout with every fixture row."""
    assert "actions" in await event_columns(url)
    assert "event_data" not in await event_columns(url)
    found = await tables(url)
    assert "adk_internal_metadata" not in found
    leftovers = {t for t in found if t.startswith("openadk_") and "events" in t}
    if leftovers:
        # MySQL commits DDL at once: a run killed while copying leaves the empty new table,
        # which google-adk ignores and the next run rebuilds.
        assert url.startswith("mysql") and leftovers == {"openadk_v1_events_new"}
        assert await count(url, "openadk_v1_events_new") == 0
    assert await count(url, "events") == len(WRITER["event_timestamps"])


def _without_auth(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    data = json.loads(json.dumps(data))
    auth = data["actions"].pop("requested_auth_configs", {})
    return data, auth


async def assert_google_adk_reads_expected(url: str) -> None:
    """google-adk 2.13 reads every session exactly as from its own migration's V1 copy."""
    from google.adk.sessions import DatabaseSessionService as AdkService

    adk = AdkService(db_url=url)
    try:
        for expected in EXPECTED["sessions"]:
            session = await adk.get_session(
                app_name=expected["app_name"],
                user_id=expected["user_id"],
                session_id=expected["id"],
            )
            assert session is not None, expected["id"]
            assert json.loads(session.model_dump_json()) == expected
        listed = 0
        for app in {s["app_name"] for s in EXPECTED["sessions"]}:
            listed += len((await adk.list_sessions(app_name=app)).sessions)
        assert listed == EXPECTED["counts"]["sessions"]
    finally:
        await adk.close()


async def assert_openadk_reads_expected(url: str) -> None:
    """openadk reads every session as google-adk does (auth configs compared as google-adk's)."""
    from google.adk.auth.auth_tool import AuthConfig

    service = DatabaseSessionService(url)
    try:
        total = 0
        for expected in EXPECTED["sessions"]:
            session = await service.get_session(
                app_name=expected["app_name"],
                user_id=expected["user_id"],
                session_id=expected["id"],
            )
            assert session is not None, expected["id"]
            assert session.state == expected["state"]
            assert session.last_update_time == expected["last_update_time"]
            assert [e.id for e in session.events] == [e["id"] for e in expected["events"]]
            for ours, theirs in zip(session.events, expected["events"], strict=True):
                mine, my_auth = _without_auth(ours.model_dump(mode="json", exclude_none=True))
                parsed = Event.model_validate(theirs).model_dump(mode="json", exclude_none=True)
                want, want_auth = _without_auth(parsed)
                assert mine == want, ours.id
                assert {k: AuthConfig.model_validate(v) for k, v in my_auth.items()} == {
                    k: AuthConfig.model_validate(v) for k, v in want_auth.items()
                }
                assert ours.timestamp == WRITER["event_timestamps"][ours.id]
            total += len(session.events)
        assert total == EXPECTED["counts"]["events"]
    finally:
        await service.close()


async def assert_upgraded(url: str) -> None:
    """Fully V1, no leftovers, every event carried over, readable by google-adk and openadk."""
    found = await tables(url)
    assert {"adk_internal_metadata", "openadk_schema_version", "events"} <= found
    assert not {t for t in found if t.startswith("openadk_") and "events" in t}
    assert await event_columns(url) == {
        "id",
        "app_name",
        "user_id",
        "session_id",
        "invocation_id",
        "timestamp",
        "event_data",
    }
    assert await count(url, "events") == EXPECTED["counts"]["events"]
    assert "idx_events_app_user_session_ts_id" in await indexes(url)
    assert await rows(url, "openadk_schema_version", "version_num") == [("0005_search_pending",)]
    assert await metadata_version(url) == "1"
    if url.startswith("mysql"):
        assert set((await key_collations(url)).values()) == {"utf8mb4_nopad_bin"}
    await assert_google_adk_reads_expected(url)
    await assert_openadk_reads_expected(url)


async def metadata_version(url: str) -> str:
    found = await rows(url, "adk_internal_metadata", "value")
    assert len(found) == 1
    return str(found[0][1])


async def assert_google_adk_reads_ids(url: str) -> None:
    """google-adk 2.13 reads every session with its events (times not compared)."""
    from google.adk.sessions import DatabaseSessionService as AdkService

    adk = AdkService(db_url=url)
    try:
        for expected in EXPECTED["sessions"]:
            session = await adk.get_session(
                app_name=expected["app_name"],
                user_id=expected["user_id"],
                session_id=expected["id"],
            )
            assert session is not None
            assert [e.id for e in session.events] == [e["id"] for e in expected["events"]]
    finally:
        await adk.close()
