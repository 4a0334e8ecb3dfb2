"""SQLite: the search index's pending list, where appends put their index rows.

Revision ID: 0005_search_pending
Revises: 0004_event_search

Creates ``openadk_event_search_pending`` on SQLite databases that have the FTS5 search table: an
append writes its index row there (a plain B-tree insert), and the rows are moved into the FTS5
table in batches (before a search, past a few hundred rows, when the writer is idle), so an
append no longer pays for an FTS5 segment of its own. Nothing is moved or re-indexed, and other
dialects have nothing to change (the revision is only recorded there).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect, text

from openadk.sessions import _search
from openadk.sessions.migrations._convert import ConversionReport

revision = "0005_search_pending"
down_revision: str | None = "0004_event_search"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Creates the pending list where the SQLite search table exists."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    report = attributes.get("openadk_report") or ConversionReport()
    conn = op.get_bind()
    if conn.dialect.name == "sqlite" and _search.SEARCH_TABLE in inspect(conn).get_table_names():
        conn.execute(text(_search.SQLITE_PENDING_DDL))
    if report.action == "nothing":
        report.action = "search_pending"


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
