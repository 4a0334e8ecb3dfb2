"""Alembic's environment for openadk's migrations; run only through `openadk.sessions.migrations`.

The caller hands over an open connection (``config.attributes["connection"]``) already inside
its transaction, so the whole upgrade is one transaction wherever the database allows it.
"""

from __future__ import annotations

from alembic import context

from openadk.sessions._schema import metadata
from openadk.sessions.migrations._layout import VERSION_TABLE

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "openadk's migrations run through `openadk db upgrade` or "
        "openadk.sessions.migrations.upgrade(), not the alembic command."
    )
context.configure(
    connection=_connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
