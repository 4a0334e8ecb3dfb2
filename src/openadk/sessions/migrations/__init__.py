"""Versioned, in-place schema migrations for `DatabaseSessionService` databases.

openadk's schema is google-adk's; its history is kept as Alembic revisions shipped in this
package and run without an ``alembic.ini``, recording the revision in openadk's own table
``openadk_schema_version`` (google-adk ignores it). Revision ``0001_adk_v1`` is google-adk's V1
schema: it creates it on an empty database, adopts a google-adk V1 database without change, and
upgrades a google-adk V0 ("pickle") database to it in place.

From the command line: ``openadk db upgrade|check|current|stamp`` (see docs/migrations.md).
"""

from openadk.sessions.migrations._convert import BadRow, BadRowsError, UpgradeError
from openadk.sessions.migrations._runner import (
    HEAD,
    SchemaStatus,
    UpgradeReport,
    refusal,
    stamp,
    status,
    upgrade,
    upgrade_command,
)

__all__ = [
    "HEAD",
    "BadRow",
    "BadRowsError",
    "SchemaStatus",
    "UpgradeError",
    "UpgradeReport",
    "refusal",
    "stamp",
    "status",
    "upgrade",
    "upgrade_command",
]
