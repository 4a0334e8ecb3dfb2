"""The SQL of session titles and labels (`DatabaseSessionService`), in one place.

Every statement on ``openadk_session_metadata`` and ``openadk_session_labels`` is built here, so
an engine other than the SQLAlchemy one (a raw driver fast path) can call the same functions from
its own create, read, list and delete paths. The service calls them at the places marked
``# metadata:`` in ``_database.py``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, and_, cast, delete, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from openadk.errors import CorruptDataError
from openadk.sessions._metadata import SessionMetadata, Unset
from openadk.sessions._schema import session_labels, session_metadata, sessions

__all__ = [
    "decode_labels",
    "delete_session_metadata",
    "delete_user_metadata",
    "label_conditions",
    "metadata_columns",
    "new_metadata",
    "read_metadata",
    "row_metadata",
    "write_metadata",
]


def _owned_by_session(table: Any) -> Any:
    """The row of ``table`` that belongs to the ``sessions`` row of the enclosing query."""
    return and_(
        table.c.app_name == sessions.c.app_name,
        table.c.user_id == sessions.c.user_id,
        table.c.session_id == sessions.c.id,
    )


def _labels_text(dialect: str) -> Any:
    if dialect == "postgresql":
        return cast(session_metadata.c.labels, Text)
    return type_coerce(session_metadata.c.labels, Text)


def metadata_columns(dialect: str) -> list[Any]:
    """Columns to add to a select from ``sessions``: its title and labels (JSON text), or NULL.

    Correlated scalar subqueries on the metadata table's primary key: one index probe per
    session, nothing when the table is empty. `row_metadata` decodes them.
    """
    where = _owned_by_session(session_metadata)
    return [
        select(session_metadata.c.display_name)
        .where(where)
        .scalar_subquery()
        .label("meta_display_name"),
        select(_labels_text(dialect)).where(where).scalar_subquery().label("meta_labels"),
    ]


def row_metadata(row: Any, key: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """The title and labels of a row selected with `metadata_columns`."""
    return row.meta_display_name, _decode_labels(row.meta_labels, key)


def decode_labels(value: Any, key: dict[str, str]) -> dict[str, str]:
    """Labels as stored (JSON text, a dict, or NULL), checked; ``key`` names a corrupt row."""
    return _decode_labels(value, key)


def new_metadata(metadata: SessionMetadata) -> tuple[str | None, dict[str, str]]:
    """The title and labels a new session gets from ``metadata`` (`UNSET` ones: none)."""
    display_name = None if isinstance(metadata.display_name, Unset) else metadata.display_name
    labels = {} if isinstance(metadata.labels, Unset) else dict(metadata.labels)
    return display_name, labels


def _decode_labels(value: Any, key: dict[str, str]) -> dict[str, str]:
    if value is None:
        return {}
    try:
        labels = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError as error:
        raise CorruptDataError(
            f"Cannot read the labels of session {key}: not valid JSON ({error}). Fix or delete "
            "the openadk_session_metadata row.",
            table="openadk_session_metadata",
            key=key,
        ) from error
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise CorruptDataError(
            f"Cannot read the labels of session {key}: not a JSON object of strings. Fix or "
            "delete the openadk_session_metadata row.",
            table="openadk_session_metadata",
            key=key,
        ) from TypeError("labels are not a JSON object of strings")
    return labels


PG_LABEL_LIST_SETUP = "SET LOCAL random_page_cost = 1.1"
"""Run (PostgreSQL, in the listing's transaction) before a label-filtered listing.

With PostgreSQL's default ``random_page_cost`` of 4 (a spinning disk's), the planner prices the
label index's probes above reading the app's every session, and answers a filter matching 1,000
of 100,000 sessions with a sequential scan and a hash join. At an SSD's cost it probes
``idx_openadk_session_labels_find``, then each match's primary key: the listing costs what it
matches. ``SET LOCAL`` lasts only for that transaction.
"""


def label_conditions(labels: dict[str, str]) -> list[Any]:
    """WHERE conditions on ``sessions``: it has each label with exactly that value.

    Each is a semi-join on ``idx_openadk_session_labels_find`` (app, key, value, user,
    session), so a label filter costs what it matches, not the app's session count.
    """
    return [
        select(session_labels.c.session_id)
        .where(
            _owned_by_session(session_labels),
            session_labels.c.key == key,
            session_labels.c.value == value,
        )
        .exists()
        for key, value in labels.items()
    ]


def _key(table: Any, app_name: str, user_id: str, session_id: str) -> tuple[Any, ...]:
    return (
        table.c.app_name == app_name,
        table.c.user_id == user_id,
        table.c.session_id == session_id,
    )


async def read_metadata(
    conn: AsyncConnection, dialect: str, app_name: str, user_id: str, session_id: str
) -> tuple[str | None, dict[str, str]]:
    """A session's stored title and labels (None and ``{}`` when it has none)."""
    row = (
        await conn.execute(
            select(
                session_metadata.c.display_name.label("meta_display_name"),
                _labels_text(dialect).label("meta_labels"),
            ).where(*_key(session_metadata, app_name, user_id, session_id))
        )
    ).first()
    if row is None:
        return None, {}
    return row_metadata(row, {"app_name": app_name, "user_id": user_id, "id": session_id})


async def write_metadata(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    user_id: str,
    session_id: str,
    metadata: SessionMetadata,
) -> tuple[str | None, dict[str, str]]:
    """Stores the given title and labels (`UNSET` ones stay); returns the session's new pair.

    Run inside the transaction that holds (or just created) the session row. Replaces the
    metadata row and, when labels are given, the label rows; a session with neither a title
    nor labels has no rows at all.
    """
    display_name, labels = await read_metadata(conn, dialect, app_name, user_id, session_id)
    if not isinstance(metadata.display_name, Unset):
        display_name = metadata.display_name
    labels_changed = not isinstance(metadata.labels, Unset)
    if not isinstance(metadata.labels, Unset):
        labels = dict(metadata.labels)
    await conn.execute(
        delete(session_metadata).where(*_key(session_metadata, app_name, user_id, session_id))
    )
    if display_name is not None or labels:
        await conn.execute(
            session_metadata.insert().values(
                app_name=app_name,
                user_id=user_id,
                session_id=session_id,
                display_name=display_name,
                labels=labels if dialect == "postgresql" else json.dumps(labels),
            )
        )
    if labels_changed:
        await conn.execute(
            delete(session_labels).where(*_key(session_labels, app_name, user_id, session_id))
        )
        if labels:
            await conn.execute(
                session_labels.insert().values(
                    [
                        {
                            "app_name": app_name,
                            "user_id": user_id,
                            "session_id": session_id,
                            "key": key,
                            "value": value,
                        }
                        for key, value in labels.items()
                    ]
                )
            )
    return display_name, labels


async def delete_session_metadata(
    conn: AsyncConnection, app_name: str, user_id: str, session_id: str
) -> None:
    """Deletes a session's title and labels (with the session, in its transaction)."""
    for table in (session_labels, session_metadata):
        await conn.execute(delete(table).where(*_key(table, app_name, user_id, session_id)))


async def delete_user_metadata(conn: AsyncConnection, app_name: str, user_id: str) -> None:
    """Deletes the titles and labels of all of a user's sessions (`delete_user`)."""
    for table in (session_labels, session_metadata):
        await conn.execute(
            delete(table).where(table.c.app_name == app_name, table.c.user_id == user_id)
        )
