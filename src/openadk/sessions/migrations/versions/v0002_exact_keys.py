"""Key columns compare exactly: a binary NO PAD collation on MySQL/MariaDB, in place.

Revision ID: 0002_exact_keys
Revises: 0001_adk_v1

Nothing changes on SQLite, PostgreSQL or Spanner, whose string comparisons are exact already.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect

from openadk.sessions.migrations._convert import ConversionReport
from openadk.sessions.migrations._keys import make_keys_exact

revision = "0002_exact_keys"
down_revision: str | None = "0001_adk_v1"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """ALTERs the loose key columns of google-adk's tables to the binary collation."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    report = attributes.get("openadk_report") or ConversionReport()
    conn = op.get_bind()
    changed = make_keys_exact(conn, frozenset(inspect(conn).get_table_names()))
    report.keys_made_exact.extend(changed)
    if report.action == "nothing":
        report.action = "keys" if changed else "recorded"


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
