"""google-adk's V0 ("pickle") tables, from the documented V0 schema, and a loader for them.

Used to put the fixture's V0 rows (written by google-adk 1.21 on SQLite) into PostgreSQL and
MariaDB, as google-adk 1.19-1.21 would have laid them out there.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import zoneinfo
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKeyConstraint,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine

from openadk.sessions._schema import JsonColumn, Timestamp

v0 = MetaData()
Table(
    "app_states",
    v0,
    Column("app_name", String(128), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)
Table(
    "user_states",
    v0,
    Column("app_name", String(128), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)
Table(
    "sessions",
    v0,
    Column("app_name", String(128), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("create_time", Timestamp(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)
Table(
    "events",
    v0,
    Column("id", String(128), primary_key=True),
    Column("app_name", String(128), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("invocation_id", String(256), nullable=False),
    Column("author", String(256), nullable=False),
    Column("actions", LargeBinary().with_variant(mysql.LONGBLOB(), "mysql"), nullable=False),
    Column("long_running_tool_ids_json", Text),
    Column("branch", String(256)),
    Column("timestamp", Timestamp(), nullable=False),
    Column("content", JsonColumn()),
    Column("grounding_metadata", JsonColumn()),
    Column("custom_metadata", JsonColumn()),
    Column("usage_metadata", JsonColumn()),
    Column("citation_metadata", JsonColumn()),
    Column("partial", Boolean),
    Column("turn_complete", Boolean),
    Column("error_code", String(256)),
    Column("error_message", String(1024)),
    Column("interrupted", Boolean),
    Column("input_transcription", JsonColumn()),
    Column("output_transcription", JsonColumn()),
    ForeignKeyConstraint(
        ["app_name", "user_id", "session_id"],
        ["sessions.app_name", "sessions.user_id", "sessions.id"],
        ondelete="CASCADE",
    ),
)

_JSON = {"state", *(c.name for c in v0.tables["events"].c if isinstance(c.type, JsonColumn))}
_TIMES = {"update_time", "create_time", "timestamp"}
_BOOLS = {"partial", "turn_complete", "interrupted"}
_UTC = datetime.timezone.utc


def read_sqlite_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the V0 fixture file, as Python values."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        for table in v0.sorted_tables:
            found = []
            for row in conn.execute(f"SELECT * FROM {table.name}"):
                values = dict(row)
                for key, value in values.items():
                    if value is None:
                        continue
                    if key in _JSON:
                        values[key] = json.loads(value)
                    elif key in _TIMES:
                        values[key] = datetime.datetime.fromisoformat(value)
                    elif key in _BOOLS:
                        values[key] = bool(value)
                found.append(values)
            rows[table.name] = found
    return rows


async def load_v0(engine: AsyncEngine, fixture: Path, writer_tz: str) -> dict[str, int]:
    """Creates the V0 tables and loads the fixture's rows; returns the row count per table.

    google-adk 1.20/1.21 wrote a session's update time on PostgreSQL and MySQL in the writer's
    local time (on SQLite in UTC), so those are shifted into ``writer_tz`` here.
    """
    rows = read_sqlite_rows(fixture)
    zone = zoneinfo.ZoneInfo(writer_tz)
    with_events = {(e["app_name"], e["user_id"], e["session_id"]) for e in rows["events"]}
    for session in rows["sessions"]:
        if (session["app_name"], session["user_id"], session["id"]) in with_events:
            stored = session["update_time"].replace(tzinfo=_UTC)
            session["update_time"] = stored.astimezone(zone).replace(tzinfo=None)
    async with engine.begin() as conn:
        await conn.run_sync(v0.create_all)
        for table in v0.sorted_tables:
            if rows[table.name]:
                await conn.execute(table.insert(), rows[table.name])
    return {name: len(found) for name, found in rows.items()}
