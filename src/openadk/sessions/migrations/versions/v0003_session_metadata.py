"""openadk's session titles and labels, and an index for listing an app's sessions in order.

Revision ID: 0003_session_metadata
Revises: 0002_exact_keys

Adds tables only openadk reads (``openadk_session_metadata``, ``openadk_session_labels``) and
one index on google-adk's ``sessions`` table, (app_name, update_time, user_id, id), which the
keyset listing (oldest or newest first) walks without sorting. No column of google-adk's tables
changes, so google-adk keeps reading and writing the database. Each step is skipped when done
already, so a database whose tables a newer service created is upgraded without error.
"""

from __future__ import annotations

from alembic import op

from openadk.sessions._schema import SESSIONS_LISTING_INDEX, session_labels, session_metadata
from openadk.sessions.migrations._convert import ConversionReport

revision = "0003_session_metadata"
down_revision: str | None = "0002_exact_keys"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Creates the metadata tables and the sessions listing index where missing."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    report = attributes.get("openadk_report") or ConversionReport()
    conn = op.get_bind()
    for table in (session_metadata, session_labels):
        table.create(conn, checkfirst=True)
    SESSIONS_LISTING_INDEX.create(conn, checkfirst=True)
    if report.action == "nothing":
        report.action = "metadata"


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
