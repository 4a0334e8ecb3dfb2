"""Filling the search index from the stored events (revision 0004), a batch at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text

from openadk.sessions import _search
from openadk.sessions._schema import events

__all__ = ["fill_search_index"]

Progress = Callable[[int, int], None]
"""Called with (events read, events in all) after each batch."""


def fill_search_index(
    conn: Connection, *, batch_size: int = 500, progress: Progress | None = None
) -> int:
    """Creates the search index if missing and indexes every event; returns how many had text.

    Runs inside the caller's transaction (the upgrade's), so the index is complete or absent.
    """
    family = _search.family(conn.dialect.name)
    if conn.dialect.name not in _search.DIALECTS:
        return 0
    _search.create_index(conn)
    if family == "sqlite":
        # Rebuilt from scratch: FTS5 has no key to skip rows a service indexed already, and
        # the rows a service left pending are among the events indexed here.
        conn.execute(text(f"DELETE FROM {_search.SEARCH_TABLE}"))
        conn.execute(text(f"DELETE FROM {_search.PENDING_TABLE}"))
    total = conn.execute(select(func.count()).select_from(events)).scalar_one()
    done = indexed = 0
    after: tuple[Any, ...] | None = None
    key = (events.c.app_name, events.c.user_id, events.c.session_id, events.c.id)
    while True:
        query = select(*key, events.c.timestamp, events.c.event_data).order_by(*key)
        if after is not None:
            query = query.where(_after(key, after))
        rows = conn.execute(query.limit(batch_size)).all()
        if not rows:
            break
        params = [
            p
            for p in (_search.stored_index_params(family, row._mapping) for row in rows)
            if p is not None
        ]
        if params:
            conn.execute(_search.INSERT[family], params)
            indexed += len(params)
        done += len(rows)
        after = tuple(getattr(rows[-1], c.name) for c in key)
        if progress is not None:
            progress(done, total)
    return indexed


def _after(key: tuple[Any, ...], last: tuple[Any, ...]) -> Any:
    """Rows after ``last`` in ``key`` order (a keyset condition on the primary key)."""
    conditions = []
    for i in range(len(key)):
        equal = [key[j] == last[j] for j in range(i)]
        conditions.append(and_(*equal, key[i] > last[i]))
    return or_(*conditions)
