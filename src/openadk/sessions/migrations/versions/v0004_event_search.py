"""openadk's full-text search index over the text of stored events, filled in batches.

Revision ID: 0004_event_search
Revises: 0003_session_metadata

Creates ``openadk_event_search`` (SQLite FTS5, PostgreSQL tsvector + GIN, MySQL/MariaDB
FULLTEXT) and indexes every stored event, a batch at a time, reporting progress. The index is
rebuilt from the events, so running it on a database whose index a service already began to fill
leaves each event indexed once. Other dialects have no search: nothing changes there.
"""

from __future__ import annotations

from alembic import op

from openadk.sessions.migrations._convert import ConversionReport
from openadk.sessions.migrations._search_fill import fill_search_index

revision = "0004_event_search"
down_revision: str | None = "0003_session_metadata"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Creates the search index and indexes the stored events."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    report = attributes.get("openadk_report") or ConversionReport()
    options = attributes.get("openadk_options")
    batch_size = getattr(options, "batch_size", 500) or 500
    progress = attributes.get("openadk_progress")
    indexed = fill_search_index(op.get_bind(), batch_size=batch_size, progress=progress)
    report.events_indexed = indexed
    if report.action in ("nothing", "metadata"):
        report.action = "search"


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
