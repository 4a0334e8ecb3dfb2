"""Full-text search over the text of stored events: query parsing, snippets, SQL per dialect.

What is indexed: the ``text`` parts of an event's content, joined by newlines; events without
text have no index row. Words are runs of letters and digits (``_`` and punctuation separate
them), compared without case. A query is a list of words that must all occur; any FTS syntax in
it (``"``, ``*``, ``NEAR``, ``-``, parentheses, ``:``) is taken as plain text, so no query can
fail to parse or reach the engine's syntax.

The index lives in openadk's own table ``openadk_event_search`` (decision 12):

- SQLite: an FTS5 table holding the text and the event's key; a ``scope`` column holds a token
  per app, user and session, so the app/user filter and deleting a session's rows are index
  look-ups, not scans.
- PostgreSQL: a table with a stored ``tsvector`` (``simple`` configuration: no stemming, no stop
  words) and a GIN index on it.
- MySQL/MariaDB: an InnoDB table with a FULLTEXT index (the server's ``innodb_ft_min_token_size``
  and stop-word list apply: by default words under 3 characters and stop words are not found).

Every statement is here so an engine other than the SQLAlchemy one (a raw driver fast path) can
run the same ones: `index_events` inside the append transaction, `unindex_events`,
`unindex_session` and `unindex_user` inside trim, delete_session and delete_user. The service
calls them at the places marked ``# search:`` in ``_database.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

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
    "MAX_QUERY_WORDS",
    "SEARCH_TABLE",
    "MemoryIndex",
    "create_index",
    "event_text",
    "index_events",
    "index_exists",
    "parse_query",
    "search_rows",
    "session_match",
    "snippet",
    "text_of",
    "unindex_events",
    "unindex_session",
    "unindex_user",
]

SEARCH_TABLE = "openadk_event_search"
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

_SQLITE_DDL = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(
        scope, body, app_name UNINDEXED, user_id UNINDEXED, session_id UNINDEXED,
        event_id UNINDEXED, author UNINDEXED, ts UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 0')"""
]
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
    "sqlite": text(
        f"INSERT INTO {SEARCH_TABLE} (scope, body, app_name, user_id, session_id, event_id, "
        "author, ts) VALUES (:scope, :body, :app_name, :user_id, :session_id, :event_id, "
        ":author, :ts)"
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
) -> None:
    """Adds events to the index; run in the transaction that inserts them."""
    family = _family(dialect)
    params = [index_params(family, app_name, user_id, session_id, row) for row in rows if row[3]]
    if not params:
        return
    await conn.execute(INSERT[family], params if len(params) > 1 else params[0])


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
        else:
            params.update(app_name=app_name, user_id=user_id, session_id=session_id)
            statement = (
                f"DELETE FROM {SEARCH_TABLE} WHERE app_name = :app_name AND user_id = :user_id "
                f"AND session_id = :session_id AND event_id IN ({marks})"
            )
        await conn.execute(text(statement), params)


async def unindex_session(
    conn: AsyncConnection, dialect: str, app_name: str, user_id: str, session_id: str
) -> None:
    """Removes a session's events from the index (delete_session)."""
    if _family(dialect) == "sqlite":
        await conn.execute(
            text(f"DELETE FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match"),
            {"match": _session_match(app_name, user_id, session_id)},
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
