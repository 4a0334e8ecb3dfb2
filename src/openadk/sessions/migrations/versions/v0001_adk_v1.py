"""google-adk's V1 schema: create it, adopt it, or upgrade a google-adk V0 database to it.

Revision ID: 0001_adk_v1
Revises: (none)
"""

from __future__ import annotations

from alembic import op

from openadk.sessions.migrations._convert import (
    ConversionOptions,
    ConversionReport,
    to_v1,
)

revision = "0001_adk_v1"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Creates the V1 tables, adopts google-adk's, or converts V0 events in place."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    options = attributes.get("openadk_options") or ConversionOptions()
    report = attributes.get("openadk_report") or ConversionReport()
    to_v1(op.get_bind(), options, report)


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
