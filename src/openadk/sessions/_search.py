"""Full-text search over the text of stored events: query parsing, snippets, SQL per dialect.

What is indexed: the ``text`` parts of an event's content, joined by newlines; events without
text have no index row. Words are runs of letters and digits (``_`` and punctuation separate
them), compared without case. A query is a list of words that must all occur; any FTS syntax in
it (``"``, ``*``, ``NEAR``, ``-``, parentheses, ``:``) is taken as plain text, so no query can
fail to parse or reach the engine's syntax.

The index lives in openadk's own table ``openadk_event_search`` (decision 12):

- SQLite: an FTS5 table holding the text and the event's key; a ``scope`` column holds a token
  per app, user and session, so the app/user filter and deleting a session's rows are index
  look-ups, not scans. An append does not write it: each FTS5 transaction flushes a segment and
  rewrites the structure record, which cost more than the rest of the append. The append puts
  the same row in ``openadk_event_search_pending``, a plain table, and `FLUSH_PENDING` moves the
  pending rows into the FTS5 table in one transaction: before a search runs (so a search sees
  every acknowledged event), once the list passes `PENDING_FLUSH_ROWS`, and when the writer is
  idle. The index is the FTS5 table and the pending rows together: trim and the deletes remove
  from both (PostgreSQL's GIN ``fastupdate`` pending list works the same way).
- PostgreSQL: a table with a stored ``tsvector`` (``simple`` configuration: no stemming, no stop
  words) and a GIN index on it.
- MySQL/MariaDB: an InnoDB table with a FULLTEXT index (the server's ``innodb_ft_min_token_size``
  and stop-word list apply: by default words under 3 characters and stop words are not found).

Every statement is here so an engine other than the SQLAlchemy one (a raw driver fast path) can
run the same ones: `index_events` inside the append transaction, `copy_session_index` inside
fork, `unindex_events`, `unindex_session` and `unindex_user` inside trim, delete_session and
delete_user, and `flush_pending` before a search or a copy of index rows. The service calls them
at the places marked ``# search:`` in ``_database.py``; copies between databases (``_admin.py``)
rebuild DEST's index with `index_stored_events`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from openadk.sessions._schema import from_db_time
from openadk.sessions._search_text import (
    MAX_QUERY_WORDS,
    IndexRow,
    MemoryIndex,
    SearchKey,
    event_text,
    parse_query,
    snippet,
    text_of,
    words,
)

__all__ = [
    "DIALECTS",
    "FLUSH_PENDING",
    "HAS_PENDING",
    "MAX_QUERY_WORDS",
    "PENDING_FLUSH_ROWS",
    "PENDING_INSERT",
    "PENDING_TABLE",
    "SEARCH_TABLE",
    "SQLITE_PENDING_DDL",
    "UNPEND_SESSION",
    "MemoryIndex",
    "copy_session_index",
    "create_index",
    "event_text",
    "flush_pending",
    "has_pending",
    "index_events",
    "index_exists",
    "index_stored_events",
    "indexed_event_ids",
    "parse_query",
    "search_rows",
    "session_match",
    "snippet",
    "stored_index_params",
    "text_of",
    "unindex_events",
    "unindex_session",
    "unindex_user",
]

SEARCH_TABLE = "openadk_event_search"
PENDING_TABLE = "openadk_event_search_pending"
"""SQLite: index rows appended but not yet moved into the FTS5 table (revision 0005)."""
PENDING_FLUSH_ROWS = 256
"""SQLite: the pending rows that make the writer move them into the FTS5 table."""
DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})
"""Dialects whose own full-text engine the search uses."""
_MYSQL_MIN_TOKEN = 3


def _scope(*key: str) -> str:
    digest = hashlib.blake2b("\x00".join(key).encode(), digest_size=8).hexdigest()
    return f"{'aus'[len(key) - 1]}{digest}"


@functools.lru_cache(maxsize=1024)
def _scopes(app_name: str, user_id: str, session_id: str) -> str:
    # Cached: a session's appends all index under the same three tokens.
    return " ".join(
        (_scope(app_name), _scope(app_name, user_id), _scope(app_name, user_id, session_id))
    )


# DDL ---------------------------------------------------------------------------------------

_SQLITE_COLUMNS = "scope, body, app_name, user_id, session_id, event_id, author, ts"
SQLITE_PENDING_DDL = f"""CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (
    id INTEGER PRIMARY KEY, scope TEXT NOT NULL, body TEXT NOT NULL, app_name TEXT NOT NULL,
    user_id TEXT NOT NULL, session_id TEXT NOT NULL, event_id TEXT NOT NULL,
    author TEXT NOT NULL, ts REAL NOT NULL)"""
"""The pending list: a rowid table with no index to keep up (it holds a few hundred rows)."""
_SQLITE_DDL = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(
        scope, body, app_name UNINDEXED, user_id UNINDEXED, session_id UNINDEXED,
        event_id UNINDEXED, author UNINDEXED, ts UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 0')""",
    SQLITE_PENDING_DDL,
]
FLUSH_PENDING = (
    f"INSERT INTO {SEARCH_TABLE} ({_SQLITE_COLUMNS}) "
    f"SELECT {_SQLITE_COLUMNS} FROM {PENDING_TABLE} ORDER BY id",
    f"DELETE FROM {PENDING_TABLE}",
)
"""SQLite: moves the pending rows into the FTS5 table; run both in one write transaction."""
HAS_PENDING = f"SELECT EXISTS (SELECT 1 FROM {PENDING_TABLE})"
"""SQLite: 1 when rows are pending (a search flushes them first)."""
_POSTGRES_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} (
        app_name VARCHAR(128) NOT NULL, user_id VARCHAR(128) NOT NULL,
        session_id VARCHAR(128) NOT NULL, event_id VARCHAR(128) NOT NULL,
        author TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, body TEXT NOT NULL,
        terms TEXT NOT NULL,
        tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED,
        PRIMARY KEY (app_name, user_id, session_id, event_id))""",
    f"CREATE INDEX IF NOT EXISTS idx_openadk_event_search_tsv ON {SEARCH_TABLE} USING gin (tsv)",
]


def _mysql_ddl(collation: str) -> list[str]:
    key = f"VARCHAR(128) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
    return [
        f"""CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} (
            app_name {key}, user_id {key}, session_id {key}, event_id {key},
            author TEXT NOT NULL, ts DOUBLE NOT NULL, body LONGTEXT NOT NULL,
            terms LONGTEXT NOT NULL,
            PRIMARY KEY (app_name, user_id, session_id, event_id),
            FULLTEXT KEY idx_openadk_event_search_terms (terms)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    ]


def family(dialect: str) -> str:
    """The dialect's family: ``sqlite``, ``postgresql``, ``mysql`` (MariaDB too), or itself."""
    return _family(dialect)


def _family(dialect: str) -> str:
    return "mysql" if dialect in ("mysql", "mariadb") else dialect


def index_exists(sync_conn: Connection) -> bool:
    """Whether the database has the search table."""
    from sqlalchemy import inspect

    return SEARCH_TABLE in inspect(sync_conn).get_table_names()


def create_index(sync_conn: Connection) -> bool:
    """Creates the search table (and its full-text index) if missing; False on other dialects."""
    dialect = sync_conn.dialect.name
    family = _family(dialect)
    if family == "sqlite":
        statements = _SQLITE_DDL
    elif family == "postgresql":
        statements = _POSTGRES_DDL
    elif family == "mysql":
        from openadk.sessions._schema import exact_collation

        statements = _mysql_ddl(exact_collation(sync_conn.dialect))
    else:
        return False
    if family == "mysql":
        # Stop words ("the", "about", ...) are indexed like any word, as on the other engines.
        sync_conn.execute(text("SET SESSION innodb_ft_enable_stopword = 0"))
    for statement in statements:
        sync_conn.execute(text(statement))
    return True


# Maintenance (inside the writer's transaction) ---------------------------------------------

INSERT = {
    # SQLite: the FTS5 table itself (the upgrade's fill, bulk loads); appends use PENDING_INSERT.
    "sqlite": text(
        f"INSERT INTO {SEARCH_TABLE} ({_SQLITE_COLUMNS}) VALUES (:scope, :body, :app_name, "
        ":user_id, :session_id, :event_id, :author, :ts)"
    ),
    "postgresql": text(
        f"INSERT INTO {SEARCH_TABLE} (app_name, user_id, session_id, event_id, author, ts, body, "
        "terms) VALUES (:app_name, :user_id, :session_id, :event_id, :author, :ts, :body, "
        ":terms) ON CONFLICT DO NOTHING"
    ),
    "mysql": text(
        f"INSERT IGNORE INTO {SEARCH_TABLE} (app_name, user_id, session_id, event_id, author, "
        "ts, body, terms) VALUES (:app_name, :user_id, :session_id, :event_id, :author, :ts, "
        ":body, :terms)"
    ),
}


PENDING_INSERT = (
    f"INSERT INTO {PENDING_TABLE} ({_SQLITE_COLUMNS}) VALUES (:scope, :body, :app_name, "
    ":user_id, :session_id, :event_id, :author, :ts)"
)
"""SQLite: an appended event's index row, into the pending list; ``lastrowid`` tells how many
rows are pending (the ids restart at 1 once a flush empties the table)."""


def index_params(
    family: str, app_name: str, user_id: str, session_id: str, row: IndexRow
) -> dict[str, Any]:
    """The parameters of `INSERT` for one event (``family`` from `family`)."""
    event_id, author, ts, body = row
    params: dict[str, Any] = {
        "body": body,
        "app_name": app_name,
        "user_id": user_id,
        "session_id": session_id,
        "event_id": event_id,
        "author": author,
        "ts": ts,
    }
    if family == "sqlite":
        params["scope"] = _scopes(app_name, user_id, session_id)
    else:
        # The engines' own parsers read the words as openadk splits them (so "order-42" is
        # "order" and "42" everywhere), space-separated, padded for the short-word LIKE.
        params["terms"] = f" {' '.join(words(body))} "
    return params


async def index_events(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    user_id: str,
    session_id: str,
    rows: Iterable[IndexRow],
) -> int:
    """Adds events to the index; run in the transaction that inserts them.

    Returns how many rows are pending on SQLite (at most: deletes leave gaps), else 0.
    """
    family = _family(dialect)
    params = [index_params(family, app_name, user_id, session_id, row) for row in rows if row[3]]
    if not params:
        return 0
    if family != "sqlite":
        await conn.execute(INSERT[family], params if len(params) > 1 else params[0])
        return 0
    await conn.execute(text(PENDING_INSERT), params if len(params) > 1 else params[0])
    # The ids restart at 1 once a flush empties the table: the largest counts the rows pending.
    return int((await conn.execute(text(f"SELECT max(id) FROM {PENDING_TABLE}"))).scalar() or 0)


async def flush_pending(conn: AsyncConnection, dialect: str) -> None:
    """SQLite: moves the pending index rows into the FTS5 table (a no-op elsewhere).

    Run in a write transaction; whatever then reads or copies the FTS5 table alone (a search,
    a fork copying a session's index rows) sees every event appended before.
    """
    if _family(dialect) != "sqlite":
        return
    for statement in FLUSH_PENDING:
        await conn.execute(text(statement))


async def has_pending(conn: AsyncConnection, dialect: str) -> bool:
    """SQLite: whether index rows are pending (False elsewhere)."""
    if _family(dialect) != "sqlite":
        return False
    return bool((await conn.execute(text(HAS_PENDING))).scalar())


UNPEND_SESSION = (
    f"DELETE FROM {PENDING_TABLE} WHERE app_name = :app_name AND user_id = :user_id "
    "AND session_id = :session_id"
)
"""SQLite: a session's pending index rows (deleted with its FTS5 rows)."""


# A fork's index rows: the source session's rows, copied by the database in one statement.
# Which rows is said by the rows' own times, not by a join with the fork's events: those were
# inserted in this very transaction, so the planner's statistics know nothing of them and
# PostgreSQL picks a nested loop that reads the fork's events once per index row (38 s for
# 10,000 events, measured). An index row's ``ts`` is its event's stored timestamp, the same
# float the fork read, so a time bound is exact; events sharing a time across the cut are
# named.
_COPY_INDEX_COLUMNS = "(app_name, user_id, session_id, event_id, author, ts, body, terms)"
_COPY_INDEX_SELECT = (
    "SELECT app_name, user_id, :new_id, event_id, author, ts, body, terms "
    f"FROM {SEARCH_TABLE} WHERE app_name = :app_name AND user_id = :user_id "
    "AND session_id = :session_id"
)
_COPY_INDEX_SQLITE = (
    f"INSERT INTO {SEARCH_TABLE} (scope, body, app_name, user_id, session_id, event_id, "
    f"author, ts) SELECT :scope, body, app_name, user_id, :new_id, event_id, author, ts "
    f"FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match"
)
"""SQLite: the source's rows found by its scope token, stored with the fork's scope tokens.

SQLite reads the SELECT into a temporary table first when it reads the table it inserts into;
MySQL/MariaDB do the same, so no copy sees its own rows.
"""


def _fork_cut(
    kept: Sequence[tuple[str, float]], dropped: Sequence[float]
) -> tuple[str, dict[str, Any]]:
    """The condition on index rows that keeps the fork's events and leaves the rest.

    ``kept``: the fork's events' ids and times; ``dropped``: the times of those after the cut.
    """
    if not dropped:
        return "", {}
    low = min(dropped)
    params: dict[str, Any] = {"cut_low": low}
    tied = [event_id for event_id, ts in kept if ts >= low]
    if not tied:
        return " AND ts < :cut_low", params
    params["cut_high"] = max(ts for _, ts in kept)
    params.update({f"cut{i}": event_id for i, event_id in enumerate(tied)})
    marks = ", ".join(f":cut{i}" for i in range(len(tied)))
    return f" AND (ts < :cut_low OR (ts <= :cut_high AND event_id IN ({marks})))", params


async def copy_session_index(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    user_id: str,
    session_id: str,
    new_id: str,
    kept: Sequence[tuple[str, float]],
    dropped: Sequence[float],
) -> None:
    """Indexes a fork's events under ``new_id``: one INSERT ... SELECT, however many events.

    Run in the fork's transaction. ``kept`` are the (id, timestamp) of the events the fork
    copies, ``dropped`` the timestamps of the source's events after them (a fork "up to" an
    invocation).
    """
    cut, params = _fork_cut(kept, dropped)
    family = _family(dialect)
    if family == "sqlite":
        # FTS5 rows are found by the source's scope token and written under the fork's.
        params.update(
            scope=_scopes(app_name, user_id, new_id),
            new_id=new_id,
            match=_session_match(app_name, user_id, session_id),
        )
        await conn.execute(text(_COPY_INDEX_SQLITE + cut), params)
        return
    params.update(app_name=app_name, user_id=user_id, session_id=session_id, new_id=new_id)
    if family == "postgresql":
        statement = (
            f"INSERT INTO {SEARCH_TABLE} {_COPY_INDEX_COLUMNS} {_COPY_INDEX_SELECT}{cut} "
            "ON CONFLICT DO NOTHING"
        )
    else:
        statement = (
            f"INSERT IGNORE INTO {SEARCH_TABLE} {_COPY_INDEX_COLUMNS} {_COPY_INDEX_SELECT}{cut}"
        )
    await conn.execute(text(statement), params)


def stored_index_params(family: str, row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The `INSERT` parameters of a stored ``events`` row, or None when it has no text.

    ``row`` has the events table's columns (``id``, ``app_name``, ``user_id``, ``session_id``,
    ``timestamp``, ``event_data`` as JSON text or a dict). The indexed time is the event's own
    ``timestamp`` field (what the service indexed at append), else the column's.
    """
    data = row["event_data"]
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, Mapping):
        return None
    body = event_text(data)
    if not body:
        return None
    stamp = data.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        stamp = from_db_time(row["timestamp"]).timestamp()
    return index_params(
        family,
        row["app_name"],
        row["user_id"],
        row["session_id"],
        (row["id"], str(data.get("author") or ""), float(stamp), body),
    )


async def index_stored_events(
    conn: AsyncConnection, dialect: str, rows: Iterable[Mapping[str, Any]]
) -> int:
    """Indexes ``events`` rows just written as they are (a copy, an import).

    Run in the transaction that inserts them, so rows and index commit together. Returns how
    many had text.
    """
    family = _family(dialect)
    params = [p for p in (stored_index_params(family, row) for row in rows) if p is not None]
    if params:
        await conn.execute(INSERT[family], params if len(params) > 1 else params[0])
    return len(params)


def _session_match(app_name: str, user_id: str, session_id: str) -> str:
    return f'scope : "{_scope(app_name, user_id, session_id)}"'


def session_match(app_name: str, user_id: str, session_id: str) -> str:
    """SQLite: the FTS5 MATCH expression of a session's index rows."""
    return _session_match(app_name, user_id, session_id)


async def unindex_events(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    user_id: str,
    session_id: str,
    event_ids: Sequence[str],
) -> None:
    """Removes some of a session's events from the index (trim)."""
    family = _family(dialect)
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        marks = ", ".join(f":e{i}" for i in range(len(chunk)))
        params: dict[str, Any] = {f"e{i}": event_id for i, event_id in enumerate(chunk)}
        if family == "sqlite":
            params["match"] = _session_match(app_name, user_id, session_id)
            statement = (
                f"DELETE FROM {SEARCH_TABLE} WHERE rowid IN (SELECT rowid FROM {SEARCH_TABLE} "
                f"WHERE {SEARCH_TABLE} MATCH :match AND event_id IN ({marks}))"
            )
            # The rows still pending go too.
            await conn.execute(
                text(
                    f"DELETE FROM {PENDING_TABLE} WHERE app_name = :app_name AND "
                    f"user_id = :user_id AND session_id = :session_id AND event_id IN ({marks})"
                ),
                {
                    **{k: v for k, v in params.items() if k != "match"},
                    "app_name": app_name,
                    "user_id": user_id,
                    "session_id": session_id,
                },
            )
        else:
            params.update(app_name=app_name, user_id=user_id, session_id=session_id)
            statement = (
                f"DELETE FROM {SEARCH_TABLE} WHERE app_name = :app_name AND user_id = :user_id "
                f"AND session_id = :session_id AND event_id IN ({marks})"
            )
        await conn.execute(text(statement), params)


async def indexed_event_ids(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    user_id: str,
    session_id: str,
    event_ids: Sequence[str],
) -> set[str]:
    """Which of a session's events have an index row.

    A copy checks before indexing events DEST already held: FTS5 has no key to refuse a
    second row. Run in a write transaction: on SQLite the pending rows move into FTS5 first.
    """
    family = _family(dialect)
    await flush_pending(conn, dialect)
    found: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        marks = ", ".join(f":e{i}" for i in range(len(chunk)))
        params: dict[str, Any] = {f"e{i}": event_id for i, event_id in enumerate(chunk)}
        if family == "sqlite":
            params["match"] = _session_match(app_name, user_id, session_id)
            where = f"{SEARCH_TABLE} MATCH :match"
        else:
            params.update(app_name=app_name, user_id=user_id, session_id=session_id)
            where = "app_name = :app_name AND user_id = :user_id AND session_id = :session_id"
        rows = await conn.execute(
            text(f"SELECT event_id FROM {SEARCH_TABLE} WHERE {where} AND event_id IN ({marks})"),
            params,
        )
        found.update(rows.scalars())
    return found


async def unindex_session(
    conn: AsyncConnection, dialect: str, app_name: str, user_id: str, session_id: str
) -> None:
    """Removes a session's events from the index (delete_session)."""
    if _family(dialect) == "sqlite":
        await conn.execute(
            text(f"DELETE FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match"),
            {"match": _session_match(app_name, user_id, session_id)},
        )
        await conn.execute(
            text(UNPEND_SESSION),
            {"app_name": app_name, "user_id": user_id, "session_id": session_id},
        )
        return
    await conn.execute(
        text(
            f"DELETE FROM {SEARCH_TABLE} WHERE app_name = :app_name AND user_id = :user_id "
            "AND session_id = :session_id"
        ),
        {"app_name": app_name, "user_id": user_id, "session_id": session_id},
    )


async def unindex_user(conn: AsyncConnection, dialect: str, app_name: str, user_id: str) -> None:
    """Removes a user's events from the index (delete_user)."""
    if _family(dialect) == "sqlite":
        await conn.execute(
            text(f"DELETE FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match"),
            {"match": f'scope : "{_scope(app_name, user_id)}"'},
        )
        await conn.execute(
            text(f"DELETE FROM {PENDING_TABLE} WHERE app_name = :app_name AND user_id = :user_id"),
            {"app_name": app_name, "user_id": user_id},
        )
        return
    await conn.execute(
        text(f"DELETE FROM {SEARCH_TABLE} WHERE app_name = :app_name AND user_id = :user_id"),
        {"app_name": app_name, "user_id": user_id},
    )


# Search ------------------------------------------------------------------------------------


def _after_clause() -> str:
    return (
        "AND (ts < :a_ts OR (ts = :a_ts AND (session_id < :a_sid OR "
        "(session_id = :a_sid AND event_id < :a_eid))))"
    )


async def search_rows(
    conn: AsyncConnection,
    dialect: str,
    app_name: str,
    terms: Sequence[str],
    user_id: str | None,
    limit: int,
    after: SearchKey | None,
) -> list[Any]:
    """Index rows matching every term, newest first, at most ``limit + 1`` of them.

    Columns: session_id, user_id, event_id, author, ts, body. The extra row says that another
    page follows.
    """
    family = _family(dialect)
    params: dict[str, Any] = {"app_name": app_name, "limit": limit + 1}
    where = ["app_name = :app_name"]
    if user_id is not None:
        where.append("user_id = :user_id")
        params["user_id"] = user_id
    if family == "sqlite":
        scope = _scope(app_name) if user_id is None else _scope(app_name, user_id)
        params["match"] = f'scope : "{scope}" AND ' + " AND ".join(
            f'body : "{term}"' for term in terms
        )
        where.insert(0, f"{SEARCH_TABLE} MATCH :match")
    elif family == "postgresql":
        params["query"] = " ".join(terms)
        where.insert(0, "tsv @@ plainto_tsquery('simple', :query)")
    else:
        # InnoDB indexes words of innodb_ft_min_token_size (3) characters and more: shorter
        # ones are matched on the space-padded word list instead.
        long_terms = [term for term in terms if len(term) >= _MYSQL_MIN_TOKEN]
        if long_terms:
            params["query"] = " ".join(f'+"{term}"' for term in long_terms)
            where.insert(0, "MATCH (terms) AGAINST (:query IN BOOLEAN MODE)")
        for i, term in enumerate(t for t in terms if len(t) < _MYSQL_MIN_TOKEN):
            params[f"short{i}"] = f"% {term} %"
            where.append(f"terms LIKE :short{i}")
    clause = ""
    if after is not None:
        clause = _after_clause()
        params.update(a_ts=after[0], a_sid=after[1], a_eid=after[2])
    statement = (
        f"SELECT session_id, user_id, event_id, author, ts, body FROM {SEARCH_TABLE} "
        f"WHERE {' AND '.join(where)} {clause} "
        "ORDER BY ts DESC, session_id DESC, event_id DESC LIMIT :limit"
    )
    return list((await conn.execute(text(statement), params)).all())


def stored_text(event_data: Any) -> str:
    """`event_text` of an ``event_data`` column value (JSON text or a dict)."""
    if isinstance(event_data, (str, bytes)):
        try:
            event_data = json.loads(event_data)
        except ValueError:
            return ""
    return event_text(event_data) if isinstance(event_data, Mapping) else ""
