"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from __future__ import annotations

from alembic import op

revision = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = ${repr(branch_labels)}
depends_on: str | None = ${repr(depends_on)}


def upgrade() -> None:
    """Describe what changes, on every supported database, and make it safe to run again."""


def downgrade() -> None:
    """Refused: openadk never turns a database back into an older schema."""
    raise NotImplementedError("openadk does not downgrade session databases.")
