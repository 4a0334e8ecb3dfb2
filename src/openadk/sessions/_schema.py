"""google-adk 2.13's V1 database schema, table for table and column for column.

A database created here can be used by google-adk's ``DatabaseSessionService`` and the reverse.
Dialect differences live in the two column types: JSON (JSONB on PostgreSQL, LONGTEXT on
MySQL/MariaDB, TEXT elsewhere) and the microsecond timestamp (DATETIME(6) on MySQL/MariaDB).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mssql, mysql, postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "SCHEMA_VERSION",
    "JsonColumn",
    "Timestamp",
    "app_states",
    "events",
    "from_db_time",
    "internal_metadata",
    "metadata",
    "session_expiry",
    "sessions",
    "to_db_time",
    "user_states",
]

SCHEMA_VERSION = "1"
KEY = 128
VARCHAR = 256
MYSQL_FAMILY = ("mysql", "mariadb")

_UTC = datetime.timezone.utc


class JsonColumn(TypeDecorator[Any]):
    """A JSON document: JSONB on PostgreSQL, LONGTEXT on MySQL/MariaDB, TEXT elsewhere.

    On text columns a ``str`` is taken as already-serialized JSON and stored as it is.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        if dialect.name in MYSQL_FAMILY:
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return value if isinstance(value, str) else json.dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, (str, bytes)) and dialect.name != "postgresql":
            return json.loads(value)
        return value


class Timestamp(TypeDecorator[datetime.datetime]):
    """A timestamp precise to the microsecond (DATETIME(6) on MySQL, DATETIME2(6) on MSSQL)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_FAMILY:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "mssql":
            return dialect.type_descriptor(mssql.DATETIME2(precision=6))  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(DateTime())

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime.datetime | None] | None:
        # SQLite keeps whatever a writer put in the column: some google-adk versions and tools
        # store a REAL Unix epoch, which SQLAlchemy's text parser refuses with a TypeError.
        parse = super().result_processor(dialect, coltype)

        def process(value: Any) -> datetime.datetime | None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return datetime.datetime.fromtimestamp(value, tz=_UTC).replace(tzinfo=None)
            return parse(value) if parse is not None else value

        return process


def to_db_time(timestamp: float, aware: bool = False) -> datetime.datetime:
    """Unix seconds to the value stored: naive UTC (tz-aware UTC on Spanner)."""
    value = datetime.datetime.fromtimestamp(timestamp, tz=_UTC)
    return value if aware else value.replace(tzinfo=None)


def from_db_time(value: datetime.datetime | float | int | str) -> datetime.datetime:
    """A stored time to an aware UTC datetime; naive values are UTC, numbers are Unix seconds."""
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=_UTC)
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


metadata = MetaData()

internal_metadata = Table(
    "adk_internal_metadata",
    metadata,
    Column("key", String(KEY), primary_key=True),
    Column("value", String(VARCHAR), nullable=False),
)

app_states = Table(
    "app_states",
    metadata,
    Column("app_name", String(KEY), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

user_states = Table(
    "user_states",
    metadata,
    Column("app_name", String(KEY), primary_key=True),
    Column("user_id", String(KEY), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("app_name", String(KEY), primary_key=True),
    Column("user_id", String(KEY), primary_key=True),
    Column("id", String(KEY), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("create_time", Timestamp(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(KEY), primary_key=True),
    Column("app_name", String(KEY), primary_key=True),
    Column("user_id", String(KEY), primary_key=True),
    Column("session_id", String(KEY), primary_key=True),
    Column("invocation_id", String(VARCHAR), nullable=False),
    Column("timestamp", Timestamp(), nullable=False),
    Column("event_data", JsonColumn(), nullable=True),
    ForeignKeyConstraint(
        ["app_name", "user_id", "session_id"],
        ["sessions.app_name", "sessions.user_id", "sessions.id"],
        ondelete="CASCADE",
    ),
)

Index(
    "idx_events_app_user_session_ts_id",
    events.c.app_name,
    events.c.user_id,
    events.c.session_id,
    events.c.timestamp.desc(),
    events.c.id.desc(),
)


# openadk's own table (google-adk ignores it): when a session expires. Sessions without a row
# never expire. Deleting the session deletes its row.
session_expiry = Table(
    "openadk_session_expiry",
    metadata,
    Column("app_name", String(KEY), primary_key=True),
    Column("user_id", String(KEY), primary_key=True),
    Column("session_id", String(KEY), primary_key=True),
    Column("expire_time", Timestamp(), nullable=False),
    ForeignKeyConstraint(
        ["app_name", "user_id", "session_id"],
        ["sessions.app_name", "sessions.user_id", "sessions.id"],
        ondelete="CASCADE",
    ),
)
