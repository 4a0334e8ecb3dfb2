"""Revision 0001's work: bring any database to google-adk's V1 schema, in place.

* No tables: create them (and the ``schema_version`` row ``'1'``).
* google-adk's V1 schema: adopt it; only missing tables or indexes are created.
* google-adk's V0 schema: the V1 events table is built beside the V0 one under a temporary name,
  every V0 row converted into it, then the two are swapped, the sessions' update times set to
  their last event's time, the ``schema_version`` row written and the V0 table dropped (or kept,
  renamed, when rows were not carried over).

On SQLite and PostgreSQL all of this runs in the caller's one transaction. On MySQL/MariaDB each
DDL statement commits, so every step is written to be safe to run again: a killed upgrade is
finished by running it again (see `openadk.sessions.migrations`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKeyConstraint,
    MetaData,
    Table,
    and_,
    exists,
    func,
    inspect,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import mysql

from openadk.errors import OpenAdkError
from openadk.sessions._schema import (
    KEY,
    MYSQL_FAMILY,
    SCHEMA_VERSION,
    KeyString,
    compares_exactly,
    events,
    internal_metadata,
    metadata,
    sessions,
)
from openadk.sessions._v0 import TimeRule, V0RowError, convert_row
from openadk.sessions.migrations._keys import session_key_collation
from openadk.sessions.migrations._layout import (
    KEPT_EVENTS,
    NEW_EVENTS,
    OLD_EVENTS,
    Layout,
    inspect_layout,
)

__all__ = ["BadRow", "ConversionOptions", "ConversionReport", "UpgradeError", "to_v1"]

logger = logging.getLogger("openadk.migrations")

CONVERTIBLE_DIALECTS = ("sqlite", "postgresql", *MYSQL_FAMILY)


class UpgradeError(OpenAdkError):
    """The schema upgrade cannot proceed; the database is left as it was."""


@dataclass(frozen=True)
class BadRow:
    """A V0 event row that was not carried over, and why."""

    app_name: str
    user_id: str
    session_id: str
    event_id: str
    reason: str

    def __str__(self) -> str:
        return (
            f"event {self.event_id} (app {self.app_name}, user {self.user_id}, "
            f"session {self.session_id}): {self.reason}"
        )


@dataclass
class ConversionOptions:
    """How revision 0001 converts V0 events."""

    times: TimeRule = field(default_factory=lambda: TimeRule.parse("local"))
    skip_bad_rows: bool = False
    allow_unsafe_unpickling: bool = False
    batch_size: int = 500


@dataclass
class ConversionReport:
    """What revision 0001 found and did."""

    action: str = "nothing"
    """``created``, ``adopted``, ``converted``, ``finished`` or ``nothing``."""
    v0_events: int = 0
    converted: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    orphans: list[BadRow] = field(default_factory=list)
    kept_table: str | None = None
    sessions_retimed: int = 0
    keys_made_exact: list[str] = field(default_factory=list)
    """``table.column`` of each key column revision 0002 gave the exact collation."""
    events_indexed: int = 0
    """Events with text that revision 0004 put in the search index."""


class BadRowsError(UpgradeError):
    """V0 rows could not be converted; nothing was changed. ``rows`` lists each with its reason."""

    def __init__(self, rows: list[BadRow], total: int) -> None:
        self.rows = rows
        shown = "\n".join(f"  {row}" for row in rows[:20])
        more = f"\n  ... and {len(rows) - 20} more" if len(rows) > 20 else ""
        super().__init__(
            f"{len(rows)} of {total} V0 event rows cannot be converted; nothing was changed:\n"
            f"{shown}{more}\nFix or delete these rows, or rerun with --skip-bad-rows "
            "(skip_bad_rows=True) to leave them behind in the kept V0 table."
        )


def to_v1(conn: Connection, options: ConversionOptions, report: ConversionReport) -> None:
    """Brings ``conn``'s database to google-adk's V1 schema (revision 0001's upgrade)."""
    layout = inspect_layout(conn)
    if layout.kind == "sqlite_service":
        raise UpgradeError(
            "This SQLite file was written by google-adk's SqliteSessionService, whose layout "
            "differs from the DatabaseSessionService schema openadk uses; it cannot be upgraded."
        )
    if layout.kind == "unknown_version":
        raise UpgradeError(
            f"adk_internal_metadata holds schema version {layout.adk_version!r}, which this "
            "openadk does not know (it knows '0' and '1'); nothing was changed."
        )
    if "events" not in layout.tables and OLD_EVENTS in layout.tables:
        raise UpgradeError(
            f"The events table is missing but {OLD_EVENTS} exists: an upgrade was interrupted "
            f"in a way openadk cannot finish. Rename {OLD_EVENTS} back to events and rerun."
        )
    converting = layout.needs_conversion
    if layout.kind == "v0":
        dialect = conn.dialect.name
        if dialect not in CONVERTIBLE_DIALECTS:
            raise UpgradeError(
                f"Upgrading a V0 database in place is supported on SQLite, PostgreSQL and "
                f"MySQL/MariaDB, not {dialect}. Convert it with google-adk's `adk migrate "
                "session` into a new database instead."
            )
        _build_and_swap(conn, layout, options, report)
    elif layout.interrupted:
        logger.info("Finishing an interrupted V0 upgrade.")
        report.action = "finished"
    if layout.kind == "v1" and not converting and layout.adk_version == "0":
        raise UpgradeError(
            "adk_internal_metadata says schema version '0' but the events table has the V1 "
            "layout; check the database by hand."
        )
    # Missing tables and indexes (all of them on an empty database); existing ones are untouched.
    # While sessions' keys compare loosely (MySQL/MariaDB before revision 0002), a new table
    # with a foreign key to it cannot have exact keys yet: revision 0002 creates it.
    loose_parent = session_key_collation(conn) if conn.dialect.name in MYSQL_FAMILY else None
    if loose_parent is not None and not compares_exactly(loose_parent, conn.dialect):
        present = set(inspect(conn).get_table_names())
        metadata.create_all(
            conn,
            tables=[t for t in metadata.sorted_tables if t.name in present or not t.foreign_keys],
            checkfirst=True,
        )
    else:
        metadata.create_all(conn, checkfirst=True)
    _create_missing_indexes(conn)
    version = conn.execute(
        select(internal_metadata.c.value).where(internal_metadata.c.key == "schema_version")
    ).scalar()
    if version is None:
        conn.execute(internal_metadata.insert().values(key="schema_version", value=SCHEMA_VERSION))
    elif version != SCHEMA_VERSION:
        conn.execute(
            update(internal_metadata)
            .where(internal_metadata.c.key == "schema_version")
            .values(value=SCHEMA_VERSION)
        )
    if converting:
        report.sessions_retimed = _retime_sessions(conn)
        _retire_old_events(conn, report)
        _tidy_names(conn)
        if report.action == "nothing":
            report.action = "finished"
    elif report.action == "nothing":
        report.action = "created" if layout.kind == "empty" else "adopted"


def _create_missing_indexes(conn: Connection) -> None:
    """``create_all`` skips the indexes of tables that exist; google-adk creates them on use."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in tables:
            continue  # left for revision 0002 (see `to_v1`)
        present = {index.get("name") for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)


def _v1_events(name: str, target: MetaData, key_collation: str | None) -> Table:
    """The V1 ``events`` table under another name (no index: it is added after the swap).

    On MySQL/MariaDB its keys take ``key_collation``, the V0 sessions table's: a foreign key
    needs the same collation on both sides (revision 0002 then makes both exact).
    """

    def column_type(column: Column[Any]) -> Any:
        if key_collation is not None and isinstance(column.type, KeyString):
            return mysql.VARCHAR(KEY, collation=key_collation)
        return column.type

    columns = [
        Column(c.name, column_type(c), primary_key=c.primary_key, nullable=c.nullable)
        for c in events.c
    ]
    return Table(
        name,
        target,
        *columns,
        ForeignKeyConstraint(
            ["app_name", "user_id", "session_id"],
            ["sessions.app_name", "sessions.user_id", "sessions.id"],
            ondelete="CASCADE",
        ),
    )


def _build_and_swap(
    conn: Connection, layout: Layout, options: ConversionOptions, report: ConversionReport
) -> None:
    target = MetaData()
    Table(
        "sessions", target, *[Column(c.name, c.type, primary_key=c.primary_key) for c in sessions.c]
    )
    mysql_family = conn.dialect.name in MYSQL_FAMILY
    new = _v1_events(NEW_EVENTS, target, session_key_collation(conn) if mysql_family else None)
    # A table left by an interrupted run is rebuilt from scratch: the V0 rows are unchanged.
    new.drop(conn, checkfirst=True)
    new.create(conn)
    old = Table("events", MetaData(), autoload_with=conn)
    key = [old.c.id, old.c.app_name, old.c.user_id, old.c.session_id]
    session_exists = (
        select(sessions.c.id)
        .where(
            sessions.c.app_name == old.c.app_name,
            sessions.c.user_id == old.c.user_id,
            sessions.c.id == old.c.session_id,
        )
        .correlate(old)
        .exists()
    )
    query = select(*old.c, session_exists.label("_session_exists")).order_by(*key)
    after: tuple[Any, ...] | None = None
    while True:
        page = query if after is None else query.where(tuple_(*key) > tuple_(*after))
        rows = conn.execute(page.limit(options.batch_size)).mappings().all()
        if not rows:
            break
        batch: list[dict[str, Any]] = []
        for row in rows:
            report.v0_events += 1
            where = (row["app_name"], row["user_id"], row["session_id"], row["id"])
            if not row["_session_exists"]:
                report.orphans.append(BadRow(*where, "its session no longer exists"))
                continue
            try:
                converted = convert_row(
                    row, times=options.times, allow_unsafe=options.allow_unsafe_unpickling
                )
            except V0RowError as error:
                report.bad_rows.append(BadRow(*where, str(error)))
                continue
            batch.append(
                {
                    "id": row["id"],
                    "app_name": row["app_name"],
                    "user_id": row["user_id"],
                    "session_id": row["session_id"],
                    "invocation_id": row.get("invocation_id") or "",
                    "timestamp": converted.stored_time,
                    "event_data": converted.event_data,
                }
            )
        if batch and not (report.bad_rows and not options.skip_bad_rows):
            conn.execute(new.insert(), batch)
            report.converted += len(batch)
        last = rows[-1]
        after = (last["id"], last["app_name"], last["user_id"], last["session_id"])
    if report.bad_rows and not options.skip_bad_rows:
        raise BadRowsError(report.bad_rows, report.v0_events)
    copied = conn.execute(select(func.count()).select_from(new)).scalar_one()
    if copied != report.converted:
        raise UpgradeError(
            f"Verification failed: {report.converted} events converted but {copied} stored "
            f"in {NEW_EVENTS}; nothing was swapped."
        )
    _drop_event_indexes(conn, "events")
    _swap(conn)
    report.action = "converted"


def _drop_event_indexes(conn: Connection, table: str) -> None:
    """Drops the V0 table's secondary indexes: their names are needed for the V1 table."""
    for index in inspect(conn).get_indexes(table):
        name = index.get("name")
        if name and name.startswith("idx_events_"):
            quoted = conn.dialect.identifier_preparer.quote(name)
            if conn.dialect.name in MYSQL_FAMILY:
                conn.execute(text(f"DROP INDEX {quoted} ON events"))
            else:
                conn.execute(text(f"DROP INDEX {quoted}"))


def _swap(conn: Connection) -> None:
    if conn.dialect.name in MYSQL_FAMILY:
        # One statement, atomic: a crash leaves either both old names or both new ones.
        conn.execute(text(f"RENAME TABLE events TO {OLD_EVENTS}, {NEW_EVENTS} TO events"))
    else:
        conn.execute(text(f"ALTER TABLE events RENAME TO {OLD_EVENTS}"))
        conn.execute(text(f"ALTER TABLE {NEW_EVENTS} RENAME TO events"))


def _retime_sessions(conn: Connection) -> int:
    """Sets each session's update time to its last event's, as a V1 append leaves it.

    google-adk 1.x wrote V0 update times from the database clock or in local time, depending
    on the version and database; the converted event times are the reliable ones. Sessions
    without events keep their stored time. Idempotent.
    """
    same_session = and_(
        events.c.app_name == sessions.c.app_name,
        events.c.user_id == sessions.c.user_id,
        events.c.session_id == sessions.c.id,
    )
    last = select(func.max(events.c.timestamp)).where(same_session).scalar_subquery()
    result = conn.execute(
        update(sessions)
        .values(update_time=last)
        .where(exists(select(events.c.id).where(same_session)))
    )
    return max(result.rowcount or 0, 0)


def _retire_old_events(conn: Connection, report: ConversionReport) -> None:
    """Drops the swapped-out V0 table, or keeps it (renamed) if rows were not carried over."""
    if OLD_EVENTS not in inspect(conn).get_table_names():
        return
    old = Table(OLD_EVENTS, MetaData(), autoload_with=conn)
    left = conn.execute(select(func.count()).select_from(old)).scalar_one()
    carried = conn.execute(
        select(func.count())
        .select_from(old)
        .where(
            exists(
                select(events.c.id).where(
                    events.c.id == old.c.id,
                    events.c.app_name == old.c.app_name,
                    events.c.user_id == old.c.user_id,
                    events.c.session_id == old.c.session_id,
                )
            )
        )
    ).scalar_one()
    if carried == left:
        old.drop(conn)
        return
    names = set(inspect(conn).get_table_names())
    kept = KEPT_EVENTS
    suffix = 2
    while kept in names:
        kept = f"{KEPT_EVENTS}_{suffix}"
        suffix += 1
    if conn.dialect.name in MYSQL_FAMILY:
        conn.execute(text(f"RENAME TABLE {OLD_EVENTS} TO {kept}"))
    else:
        conn.execute(text(f"ALTER TABLE {OLD_EVENTS} RENAME TO {kept}"))
    report.kept_table = kept
    logger.warning(
        "%d V0 event rows were not carried over; the V0 events are kept in table %s.",
        left - carried,
        kept,
    )


def _tidy_names(conn: Connection) -> None:
    """PostgreSQL: gives the swapped-in table's constraints the names google-adk's would have."""
    if conn.dialect.name != "postgresql":
        return
    inspector = inspect(conn)
    wanted: list[tuple[str | None, str]] = [
        (inspector.get_pk_constraint("events").get("name"), "events_pkey")
    ]
    for fk in inspector.get_foreign_keys("events"):
        wanted.append((fk.get("name"), "events_app_name_user_id_session_id_fkey"))

    def taken(name: str) -> bool:
        query = text("SELECT 1 FROM pg_constraint WHERE conname = :name")
        return conn.execute(query, {"name": name}).first() is not None

    for current, canonical in wanted:
        if current and current.startswith(NEW_EVENTS) and not taken(canonical):
            conn.execute(text(f'ALTER TABLE events RENAME CONSTRAINT "{current}" TO "{canonical}"'))
