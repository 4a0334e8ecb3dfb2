"""google-adk 2.13's V1 database schema, table for table and column for column.

A database created here can be used by google-adk's ``DatabaseSessionService`` and the reverse.
Dialect differences live in the column types: JSON (JSONB on PostgreSQL, LONGTEXT on
MySQL/MariaDB, TEXT elsewhere), the microsecond timestamp (DATETIME(6) on MySQL/MariaDB) and the
key columns, which compare exactly everywhere: on MySQL/MariaDB they get a binary NO PAD
collation (google-adk's tables take the server's case-insensitive default there; that is the one
DDL difference, see `exact_collation`).
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
    "KEY_COLUMNS",
    "SCHEMA_VERSION",
    "SESSIONS_LISTING_INDEX",
    "JsonColumn",
    "KeyString",
    "Timestamp",
    "app_states",
    "compares_exactly",
    "events",
    "exact_collation",
    "from_db_time",
    "internal_metadata",
    "metadata",
    "session_expiry",
    "session_labels",
    "session_metadata",
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


def exact_collation(dialect: Dialect) -> str:
    """The MySQL/MariaDB collation under which key columns compare byte for byte.

    ``utf8mb4_bin`` is not enough: it is PAD SPACE, so ``'s1 '`` equals ``'s1'``. MariaDB has
    ``utf8mb4_nopad_bin`` (10.2+), MySQL 8 ``utf8mb4_0900_bin``; MySQL 5.7 has no NO PAD binary
    collation, so there trailing spaces still compare equal.
    """
    if getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb":
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None)
    if version is not None and tuple(version[:1]) < (8,):
        return "utf8mb4_bin"
    return "utf8mb4_0900_bin"


def compares_exactly(collation: str | None, dialect: Dialect) -> bool:
    """Whether a MySQL/MariaDB column collation tells apart every two different ids."""
    if collation is None:  # a binary string column
        return True
    name = collation.lower()
    return (
        name == exact_collation(dialect)
        or name == "binary"
        or name.endswith(("_nopad_bin", "_0900_bin"))
    )


class KeyString(TypeDecorator[str]):
    """An id or name column, ``VARCHAR(128)``, that compares exactly on every database.

    SQLite, PostgreSQL (deterministic collations) and Spanner compare strings byte for byte
    already; MySQL/MariaDB get `exact_collation`.
    """

    impl = String(KEY)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_FAMILY:
            return dialect.type_descriptor(
                mysql.VARCHAR(KEY, charset="utf8mb4", collation=exact_collation(dialect))
            )
        return dialect.type_descriptor(String(KEY))


KEY_COLUMNS = {
    "app_states": ("app_name",),
    "user_states": ("app_name", "user_id"),
    "sessions": ("app_name", "user_id", "id"),
    "events": ("id", "app_name", "user_id", "session_id"),
    "openadk_session_expiry": ("app_name", "user_id", "session_id"),
    "openadk_session_metadata": ("app_name", "user_id", "session_id"),
    "openadk_session_labels": ("app_name", "user_id", "session_id", "key", "value"),
}
"""The id columns of each table, which must compare exactly (decision 10)."""


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
    Column("app_name", KeyString(), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

user_states = Table(
    "user_states",
    metadata,
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("id", KeyString(), primary_key=True),
    Column("state", JsonColumn(), nullable=False),
    Column("create_time", Timestamp(), nullable=False),
    Column("update_time", Timestamp(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", KeyString(), primary_key=True),
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("session_id", KeyString(), primary_key=True),
    Column("invocation_id", String(VARCHAR), nullable=False),
    Column("timestamp", Timestamp(), nullable=False),
    Column("event_data", JsonColumn(), nullable=True),
    ForeignKeyConstraint(
        ["app_name", "user_id", "session_id"],
        ["sessions.app_name", "sessions.user_id", "sessions.id"],
        ondelete="CASCADE",
    ),
)

# openadk's (revision 0003): lists an app's sessions in update order by keyset, either way,
# without a sort (the session browser pages 100,000 sessions newest first).
SESSIONS_LISTING_INDEX = Index(
    "idx_openadk_sessions_app_update",
    sessions.c.app_name,
    sessions.c.update_time,
    sessions.c.user_id,
    sessions.c.id,
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
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("session_id", KeyString(), primary_key=True),
    Column("expire_time", Timestamp(), nullable=False),
    ForeignKeyConstraint(
        ["app_name", "user_id", "session_id"],
        ["sessions.app_name", "sessions.user_id", "sessions.id"],
        ondelete="CASCADE",
    ),
)


# openadk's own tables (revision 0003, decision 12): a session's title and labels. The labels are
# kept twice: as JSON beside the title, read with the session in one join, and one row per label,
# which the label filter of `list_sessions` finds by index. Deleting the session deletes both
# (explicitly; no foreign key, so revision 0002's collation change on MySQL never meets them).
session_metadata = Table(
    "openadk_session_metadata",
    metadata,
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("session_id", KeyString(), primary_key=True),
    Column("display_name", Text(), nullable=True),
    Column("labels", JsonColumn(), nullable=True),
)

session_labels = Table(
    "openadk_session_labels",
    metadata,
    Column("app_name", KeyString(), primary_key=True),
    Column("user_id", KeyString(), primary_key=True),
    Column("session_id", KeyString(), primary_key=True),
    Column("key", KeyString(), primary_key=True),
    Column("value", KeyString(), nullable=False),
)

Index(
    "idx_openadk_session_labels_find",
    session_labels.c.app_name,
    session_labels.c.key,
    session_labels.c.value,
    session_labels.c.user_id,
    session_labels.c.session_id,
)
