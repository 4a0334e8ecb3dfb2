"""The PostgreSQL engine of `DatabaseSessionService`: one round trip per common operation.

Through SQLAlchemy an append is eight round trips (the pool's pre-ping is three, then BEGIN, three
statements and COMMIT). Here the common append (a fresh handle, a new event id) is ONE statement:
a conditional UPDATE of the session row on its exact revision marker, the event's INSERT and the
app/user state upserts, chained as data-modifying CTEs so that nothing is written unless the
UPDATE matched. Anything else (a stale handle, a duplicate, an expired or missing session, merge
mode, a hand-made handle, a corrupt state) makes it write nothing, and the service runs the
locked multi-statement path instead, which tells these cases apart exactly.

Connections are asyncpg's own, from a small pool of this module that resets nothing on release
(every statement here runs in autocommit, so a connection holds no state between operations) and
pings nothing on checkout: a connection found dropped when used is thrown away and the operation
retried on a new one. asyncpg prepares each statement once per connection (its statement cache),
so every later call is a single Bind/Execute.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from openadk.sessions._pool import LifoPool

__all__ = ["PgPool", "append_sql", "asyncpg_connect_kwargs"]

_T = TypeVar("_T")


def asyncpg_connect_kwargs(engine: Any, connect_args: dict[str, Any]) -> dict[str, Any] | None:
    """What to pass to ``asyncpg.connect`` for the engine's URL, or None if not known."""
    import asyncpg  # type: ignore[import-untyped]

    _, kwargs = engine.dialect.create_connect_args(engine.url)
    accepted = set(inspect.signature(asyncpg.connect).parameters)
    merged = {**kwargs, **connect_args}
    unknown = set(merged) - accepted
    if unknown - {"prepared_statement_cache_size", "prepared_statement_name_func"}:
        return None
    return {key: value for key, value in merged.items() if key in accepted}


def _dropped(error: BaseException) -> bool:
    """A connection that went away (server restart, network): the operation may be retried."""
    import asyncpg

    return isinstance(
        error,
        (
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.InternalClientError,  # a protocol left mid-operation by a drop
            ConnectionError,
        ),
    )


class PgPool(LifoPool[Any]):
    """asyncpg connections in autocommit: a failed statement leaves one clean."""

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(**self._kwargs)

    def dropped(self, error: BaseException) -> bool:
        return _dropped(error)

    async def _call(self, conn: Any, body: Callable[[Any], Awaitable[_T]], traced: bool) -> _T:
        return await body(_Traced(conn, self._trace) if traced else conn)

    async def _still_usable(self, conn: Any, error: BaseException) -> bool:
        import asyncpg

        return isinstance(error, asyncpg.PostgresError)

    def _is_closed(self, conn: Any) -> bool:
        return bool(conn.is_closed())

    def _discard(self, conn: Any) -> None:
        conn.terminate()

    async def _close(self, conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), 5)
        except Exception:  # a broken connection is simply dropped
            conn.terminate()


class _Traced:
    """A connection that reports each statement to the engine's ``before_cursor_execute``.

    Listeners of the service's SQLAlchemy engine (tests, tracing) see the statements of this
    path as they would the SQLAlchemy path's.
    """

    def __init__(self, conn: Any, dispatch: Any) -> None:
        self._conn = conn
        self._dispatch = dispatch

    def _report(self, sql: str, args: tuple[Any, ...]) -> None:
        self._dispatch.before_cursor_execute(None, None, sql, args, None, False)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._report(sql, args)
        return await self._conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._report(sql, args)
        return await self._conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self._report(sql, args)
        return await self._conn.fetch(sql, *args)


_LIVE = (
    "NOT EXISTS (SELECT 1 FROM openadk_session_expiry x WHERE x.app_name = $1 "
    "AND x.user_id = $2 AND x.session_id = $3 AND x.expire_time <= $4)"
)


def append_sql(
    session_delta: bool, app_delta: bool, user_delta: bool, indexed: bool = False
) -> str:
    """The common append as one statement; it returns 1 when it stored the event, else 0.

    Parameters: $1 app, $2 user, $3 session id, $4 now (expiry), $5 the handle's revision
    (update_time), $6 the new update time, $7 event id, $8 invocation id, $9 event JSON, then
    the session, app and user deltas (JSON objects), each only when it is not empty, then
    when ``indexed`` the event's search index row: author, timestamp (seconds), text, words.

    The session row is updated only at the handle's exact revision, when the session is live
    and (with a session delta) its state is a JSON object; every other statement reads ``upd``,
    so it writes only when that UPDATE did. A corrupt app or user state (not an object) fails
    the statement, and nothing is written.

    Per-event statements that belong to the same transaction (an index, a side table) are
    added here, in ``parts``, as further ``name AS (INSERT ... SELECT ... FROM upd)`` CTEs: the
    search index row is one (``srch``), written only when the event is.
    """
    index = 10
    state = typed = ""
    if session_delta:
        state = f", state = sessions.state || ${index}::jsonb"
        typed = " AND jsonb_typeof(sessions.state) = 'object'"
        index += 1
    parts = [
        f"upd AS (UPDATE sessions SET update_time = $6{state} "
        f"WHERE app_name = $1 AND user_id = $2 AND id = $3 AND update_time = $5{typed} "
        f"AND {_LIVE} RETURNING 1)",
        "ins AS (INSERT INTO events (id, app_name, user_id, session_id, invocation_id, "
        "timestamp, event_data) SELECT $7, $1, $2, $3, $8, $6, $9::jsonb FROM upd RETURNING 1)",
    ]
    if app_delta or user_delta:
        app_param = f"${index}" if app_delta else None
        index += int(app_delta)
        user_param = f"${index}" if user_delta else None
        parts.append(_scope_upsert("app_states", "app_name", "$1", app_param))
        parts.append(_scope_upsert("user_states", "app_name, user_id", "$1, $2", user_param))
        index += int(user_delta)
    if indexed:
        author, ts, body, terms = (f"${index + i}" for i in range(4))
        parts.append(
            "srch AS (INSERT INTO openadk_event_search (app_name, user_id, session_id, "
            "event_id, author, ts, body, terms) "
            f"SELECT $1, $2, $3, $7, {author}::text, {ts}::float8, {body}::text, {terms}::text "
            "FROM ins ON CONFLICT DO NOTHING)"
        )
    return f"WITH {', '.join(parts)} SELECT count(*) FROM ins"


def _scope_upsert(table: str, key: str, values: str, delta: str | None) -> str:
    """Creates the scope row if missing; with a ``delta`` parameter, merges it into the row."""
    name = table.split("_")[0] + "_row"
    if delta is None:
        return (
            f"{name} AS (INSERT INTO {table} ({key}, state, update_time) "
            f"SELECT {values}, '{{}}'::jsonb, $6 FROM upd ON CONFLICT ({key}) DO NOTHING)"
        )
    # A stored state that is not an object makes the statement fail (an invalid jsonb cast).
    return (
        f"{name} AS (INSERT INTO {table} ({key}, state, update_time) "
        f"SELECT {values}, {delta}::jsonb, $6 FROM upd ON CONFLICT ({key}) DO UPDATE SET "
        f"state = CASE WHEN jsonb_typeof({table}.state) = 'object' "
        f"THEN {table}.state || EXCLUDED.state "
        f"ELSE ('openadk: corrupt state ' || {table}.state::text)::jsonb END, "
        f"update_time = EXCLUDED.update_time)"
    )


CREATE_SQL = (
    "WITH app AS (INSERT INTO app_states (app_name, state, update_time) "
    "VALUES ($1, '{}'::jsonb, $4) ON CONFLICT (app_name) DO NOTHING), "
    "usr AS (INSERT INTO user_states (app_name, user_id, state, update_time) "
    "VALUES ($1, $2, '{}'::jsonb, $4) ON CONFLICT (app_name, user_id) DO NOTHING), "
    "ses AS (INSERT INTO sessions (app_name, user_id, id, state, create_time, update_time) "
    "VALUES ($1, $2, $3, $5::jsonb, $4, $4) ON CONFLICT (app_name, user_id, id) DO NOTHING "
    "RETURNING 1) "
    "SELECT (SELECT count(*) FROM ses), "
    "(SELECT state::text FROM app_states WHERE app_name = $1), "
    "(SELECT state::text FROM user_states WHERE app_name = $1 AND user_id = $2)"
)
"""A new session in one statement: $1 app, $2 user, $3 id, $4 now, $5 state JSON.

The scope rows a CTE inserts are not visible to the same statement's reads: a missing row
there was just created empty."""

CREATE_WITH_METADATA_SQL = CREATE_SQL.replace(
    "RETURNING 1) ",
    "RETURNING 1), "
    "meta AS (INSERT INTO openadk_session_metadata (app_name, user_id, session_id, "
    "display_name, labels) SELECT $1, $2, $3, $6::text, $7::jsonb FROM ses), "
    "lab AS (INSERT INTO openadk_session_labels (app_name, user_id, session_id, key, value) "
    "SELECT $1, $2, $3, l.key, l.value FROM ses, jsonb_each_text($7::jsonb) l) ",
)
"""`CREATE_SQL` that also stores a title ($6, text or NULL) and labels ($7, a JSON object),
only when the session row is inserted."""

_METADATA_OF = (
    "FROM openadk_session_metadata m WHERE m.app_name = s.app_name AND m.user_id = s.user_id "
    "AND m.session_id = s.id"
)
_METADATA_COLUMNS = (
    f"(SELECT m.display_name {_METADATA_OF}), (SELECT m.labels::text {_METADATA_OF})"
)
"""A session row's title and labels (JSON text), NULL when it has none."""


def get_sql(with_data: bool, after: bool, limit: bool) -> str:
    """The session row, its scopes and its (last ``limit``) events' keys, in one statement.

    Parameters: $1 app, $2 user, $3 id, $4 now (expiry), then $5 the earliest event time when
    ``after``, then the limit when ``limit``. ``with_data`` also returns each event's JSON.
    """
    data = "e.event_data::text" if with_data else "NULL::text"
    where = "e.app_name = $1 AND e.user_id = $2 AND e.session_id = $3"
    index = 5
    if after:
        where += f" AND e.timestamp >= ${index}"
        index += 1
    cut = f" LIMIT ${index}" if limit else ""
    return (
        "SELECT s.state::text, s.update_time, "
        "(SELECT state::text FROM app_states WHERE app_name = $1), "
        "(SELECT state::text FROM user_states WHERE app_name = $1 AND user_id = $2), "
        f"ARRAY(SELECT ROW(e.id, e.invocation_id, e.timestamp, {data}) FROM events e "
        f"WHERE {where} ORDER BY e.timestamp DESC, e.id DESC{cut}), {_METADATA_COLUMNS} "
        f"FROM sessions s WHERE s.app_name = $1 AND s.user_id = $2 AND s.id = $3 AND {_LIVE}"
    )


NO_EVENTS_GET_SQL = (
    "SELECT s.state::text, s.update_time, "
    "(SELECT state::text FROM app_states WHERE app_name = $1), "
    "(SELECT state::text FROM user_states WHERE app_name = $1 AND user_id = $2), "
    f"ARRAY[]::record[], {_METADATA_COLUMNS} "
    f"FROM sessions s WHERE s.app_name = $1 AND s.user_id = $2 AND s.id = $3 AND {_LIVE}"
)

EVENT_DATA_SQL = (
    "SELECT id, invocation_id, timestamp, event_data::text FROM events "
    "WHERE app_name = $1 AND user_id = $2 AND session_id = $3 AND id = ANY($4::varchar[])"
)


def list_sql(one_user: bool, after: bool, limit: bool) -> str:
    """The app's state, the users' states and the sessions, in one statement.

    Rows are (kind, user_id, id, state JSON, update_time, display_name, labels JSON): kind 0
    the app, 1 a user, 2 a session, sessions in list order. Parameters: $1 app, $2 now
    (expiry), then $3 the user when ``one_user``, then three for the page position when
    ``after`` (time, user, id), then the limit when ``limit``.
    """
    index = 3
    user_filter = ""
    session_filter = ""
    if one_user:
        user_filter = f" AND user_id = ${index}"
        session_filter = f" AND s.user_id = ${index}"
        index += 1
    if after:
        t, u, i = f"${index}", f"${index + 1}", f"${index + 2}"
        session_filter += (
            f" AND (s.update_time > {t} OR (s.update_time = {t} AND s.user_id > {u}) "
            f"OR (s.update_time = {t} AND s.user_id = {u} AND s.id > {i}))"
        )
        index += 3
    cut = f" LIMIT ${index}" if limit else ""
    live = (
        "NOT EXISTS (SELECT 1 FROM openadk_session_expiry x WHERE x.app_name = s.app_name "
        "AND x.user_id = s.user_id AND x.session_id = s.id AND x.expire_time <= $2)"
    )
    return (
        "SELECT * FROM (SELECT 0 AS kind, NULL::varchar AS user_id, NULL::varchar AS id, "
        "state::text AS state, NULL::timestamp AS update_time, NULL::text AS display_name, "
        "NULL::text AS labels FROM app_states WHERE app_name = $1 "
        "UNION ALL SELECT 1, user_id, NULL, state::text, NULL, NULL, NULL FROM user_states "
        f"WHERE app_name = $1{user_filter} "
        "UNION ALL (SELECT 2, s.user_id, s.id, s.state::text, s.update_time, "
        f"{_METADATA_COLUMNS} FROM sessions s "
        f"WHERE s.app_name = $1 AND {live}{session_filter} "
        f"ORDER BY s.update_time, s.user_id, s.id{cut})) rows "
        "ORDER BY kind, update_time, user_id, id"
    )
