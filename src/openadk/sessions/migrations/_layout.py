"""What a database holds: no tables, google-adk's V0 or V1 layout, or an unfinished upgrade.

Read with SQLAlchemy's inspector, so it works before anything is created and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, inspect, select, text

from openadk.sessions._schema import internal_metadata
from openadk.sessions.migrations._keys import KeyProblems, find_key_problems

__all__ = [
    "ADK_TABLES",
    "NEW_EVENTS",
    "OLD_EVENTS",
    "VERSION_TABLE",
    "Layout",
    "inspect_layout",
]

VERSION_TABLE = "openadk_schema_version"
"""openadk's own Alembic version table (google-adk ignores tables it does not know)."""
NEW_EVENTS = "openadk_v1_events_new"
"""The V1 events table while a V0 upgrade fills it."""
OLD_EVENTS = "openadk_v0_events_old"
"""The V0 events table after the swap, until the upgrade finishes."""
KEPT_EVENTS = "openadk_v0_events"
"""The V0 events table kept because some of its rows were not carried over."""
ADK_TABLES = ("adk_internal_metadata", "app_states", "user_states", "sessions", "events")
METADATA_TABLES = frozenset({"openadk_session_metadata", "openadk_session_labels"})
LISTING_INDEX = "idx_openadk_sessions_app_update"

Kind = Literal["empty", "v0", "v1", "sqlite_service", "unknown_version"]


@dataclass(frozen=True)
class Layout:
    """The schema a database is in, as found."""

    kind: Kind
    tables: frozenset[str]
    adk_version: str | None = None
    """``adk_internal_metadata``'s ``schema_version`` value, if any."""
    stamped: tuple[str, ...] = ()
    """Revisions recorded in ``openadk_schema_version``."""
    event_columns: frozenset[str] = field(default_factory=frozenset)
    keys: KeyProblems = field(default_factory=KeyProblems)
    """MySQL/MariaDB key columns that do not compare exactly (revision 0002 fixes them)."""
    listing_index: bool = False
    """``sessions`` has openadk's (app_name, update_time, user_id, id) index (revision 0003)."""
    dialect: str = ""
    """The SQLAlchemy dialect name (``sqlite``, ``postgresql``, ...)."""

    @property
    def has_search(self) -> bool:
        """The full-text search table exists (revision 0004)."""
        return "openadk_event_search" in self.tables

    @property
    def has_search_pending(self) -> bool:
        """SQLite: the search index's pending list exists (revision 0005)."""
        return "openadk_event_search_pending" in self.tables

    @property
    def has_metadata(self) -> bool:
        """Revision 0003 is in place: the title and label tables and the listing index."""
        return self.listing_index and self.tables >= METADATA_TABLES

    @property
    def interrupted(self) -> bool:
        """A V0 upgrade swapped the events table but did not finish."""
        return OLD_EVENTS in self.tables

    @property
    def needs_conversion(self) -> bool:
        """The V0 events must be converted (or a conversion finished) before use."""
        return self.kind == "v0" or self.interrupted

    def describe(self) -> str:
        """A short phrase for messages."""
        if self.interrupted:
            return "a google-adk V0 database whose upgrade was interrupted"
        return {
            "empty": "an empty database",
            "v0": "google-adk's V0 (pickle) schema",
            "v1": "google-adk's V1 schema",
            "sqlite_service": "google-adk's SqliteSessionService file layout",
            "unknown_version": f"an unknown google-adk schema version {self.adk_version!r}",
        }[self.kind]


def inspect_layout(conn: Connection) -> Layout:
    """Finds out which schema ``conn``'s database is in."""
    inspector = inspect(conn)
    tables = frozenset(inspector.get_table_names())
    stamped: tuple[str, ...] = ()
    if VERSION_TABLE in tables:
        stamped = tuple(
            row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        )
    adk_version = None
    if "adk_internal_metadata" in tables:
        adk_version = conn.execute(
            select(internal_metadata.c.value).where(internal_metadata.c.key == "schema_version")
        ).scalar()
    columns: dict[str, Any] = {}
    if "events" in tables:
        columns = {c["name"]: c for c in inspector.get_columns("events")}
    names = frozenset(columns)
    kind: Kind
    if "events" in tables and "actions" in names and "event_data" not in names:
        kind = "v0"
    elif adk_version is not None and adk_version not in ("0", "1"):
        kind = "unknown_version"
    elif not tables & set(ADK_TABLES):
        kind = "empty"
    else:
        kind = "v1"
        if "sessions" in tables:
            session_columns = {c["name"]: c for c in inspector.get_columns("sessions")}
            update_time = session_columns.get("update_time")
            if update_time is not None and str(update_time["type"]).upper() in ("REAL", "FLOAT"):
                kind = "sqlite_service"
    keys = KeyProblems()
    if kind in ("v0", "v1"):
        keys = find_key_problems(conn, tables)
    listing_index = "sessions" in tables and any(
        index.get("name") == LISTING_INDEX for index in inspector.get_indexes("sessions")
    )
    return Layout(
        kind=kind,
        tables=tables,
        adk_version=adk_version,
        stamped=stamped,
        event_columns=names,
        keys=keys,
        listing_index=listing_index,
        dialect=conn.dialect.name,
    )
