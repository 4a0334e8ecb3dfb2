"""The MySQL/MariaDB engine of `DatabaseSessionService` (aiomysql): one or two round trips.

Through SQLAlchemy an append is a pool checkout, the locking read, the INSERT, the UPDATE and the
COMMIT, each a round trip, with SQLAlchemy's statement building and result processing around
them. Here the connection runs with multi-statements on, so what does not depend on an answer
goes in one packet: the common append is the locking read of the session row (the handle's exact
revision is checked against it), then ``INSERT; UPDATE; COMMIT`` in one round trip; a create is
one round trip (``INSERT IGNORE`` of the scope and session rows, their states, ``COMMIT``); a
read is its ``SELECT`` statements and ``COMMIT`` in one round trip. Every other case (stale,
duplicate, expired, merge mode, a hand-made handle, app or user state in the delta) ends the
transaction without writing and the service runs the SQLAlchemy path.

Parameters are escaped by the driver into the statement text (as aiomysql always does), so
several statements in one packet carry nothing the driver did not escape. Connections come from
a small pool of this module that pings nothing: a connection found dropped when used is thrown
away and the operation rerun on a new one.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from openadk.sessions._pool import LifoPool

__all__ = ["MyPool", "connect_kwargs"]

_T = TypeVar("_T")

_MULTI_STATEMENTS = 1 << 16  # CLIENT.MULTI_STATEMENTS
_DROPPED = {2006, 2013, 2014, 2045, 2055, 4031}  # gone away, lost, out of sync, ...


def connect_kwargs(engine: Any) -> dict[str, Any]:
    """``aiomysql.connect`` arguments for the engine's URL, multi-statements on."""
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs = dict(kwargs)
    kwargs["client_flag"] = int(kwargs.get("client_flag", 0)) | _MULTI_STATEMENTS
    kwargs["autocommit"] = False
    # A cached read folds a session's event keys into one GROUP_CONCAT string (`stamps_sql`);
    # the server's max_allowed_packet still bounds it, and a longer one is read row by row.
    # (A URL that sets its own init_command keeps it: its reads then come row by row.)
    kwargs.setdefault("init_command", "SET SESSION group_concat_max_len = 1073741824")
    return kwargs


def dropped(error: BaseException) -> bool:
    """A connection that went away: the operation may be rerun on a new one."""
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int) and args[0] in _DROPPED:
        return True
    return isinstance(error, (ConnectionError, asyncio.IncompleteReadError))


class MyPool(LifoPool[Any]):
    """aiomysql connections; a refused statement is rolled back before the connection is reused."""

    async def _connect(self) -> Any:
        import aiomysql  # type: ignore[import-untyped]

        return await aiomysql.connect(**self._kwargs)

    def dropped(self, error: BaseException) -> bool:
        return dropped(error)

    async def _call(self, conn: Any, body: Callable[[Any], Awaitable[_T]], traced: bool) -> _T:
        async with conn.cursor() as cur:
            return await body(_Traced(cur, self._trace) if traced else cur)

    async def _still_usable(self, conn: Any, error: BaseException) -> bool:
        import aiomysql

        if not isinstance(error, aiomysql.Error):
            return False
        try:
            await conn.rollback()
        except Exception:  # the connection is unusable: dropped
            return False
        return True

    def _is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)

    def _discard(self, conn: Any) -> None:
        conn.close()


class _Traced:
    """A cursor that reports each statement to the engine's ``before_cursor_execute``.

    Listeners of the service's SQLAlchemy engine (tests, tracing) see the statements of this
    path as they would the SQLAlchemy path's.
    """

    def __init__(self, cur: Any, dispatch: Any) -> None:
        self._cur = cur
        self._dispatch = dispatch
        self.connection = cur.connection

    async def execute(self, sql: str, params: Any = None) -> Any:
        self._dispatch.before_cursor_execute(None, None, sql, params, None, False)
        return await self._cur.execute(sql, params)

    async def fetchone(self) -> Any:
        return await self._cur.fetchone()

    async def fetchall(self) -> Any:
        return await self._cur.fetchall()

    async def nextset(self) -> Any:
        return await self._cur.nextset()


async def results(cur: Any) -> list[list[Any]]:
    """Every result set of the statements ``cur`` just ran, in order (empty for non-SELECTs)."""
    sets = [list(await cur.fetchall())]
    while await cur.nextset():
        sets.append(list(await cur.fetchall()))
    return sets


_LIVE = (
    "NOT EXISTS (SELECT 1 FROM openadk_session_expiry x WHERE x.app_name = s.app_name "
    "AND x.user_id = s.user_id AND x.session_id = s.id AND x.expire_time <= %s)"
)
_KEY = "s.app_name = %s AND s.user_id = %s AND s.id = %s"

LOCK_SQL = f"SELECT s.update_time FROM sessions s WHERE {_KEY} AND {_LIVE} FOR UPDATE"
LOCK_WITH_STATE_SQL = (
    f"SELECT s.update_time, s.state FROM sessions s WHERE {_KEY} AND {_LIVE} FOR UPDATE"
)
WRITE_SQL = (
    "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, timestamp, "
    "event_data) VALUES (%s, %s, %s, %s, %s, %s, %s); "
    "UPDATE sessions SET update_time = %s WHERE app_name = %s AND user_id = %s AND id = %s; "
    "COMMIT"
)
"""The writes of the common append and COMMIT, sent together. Further per-event statements of
the same transaction (an index, a side table) go here, before COMMIT."""
WRITE_WITH_STATE_SQL = WRITE_SQL.replace(
    "SET update_time = %s WHERE", "SET update_time = %s, state = %s WHERE"
)
INDEX_SQL = (
    "INSERT IGNORE INTO openadk_event_search (app_name, user_id, session_id, event_id, author, "
    "ts, body, terms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s); "
)
"""search: the event's index row; put before the COMMIT of `WRITE_SQL` (`write_sql`)."""


def write_sql(with_state: bool, indexed: bool) -> str:
    """`WRITE_SQL` or `WRITE_WITH_STATE_SQL`, with the index row's INSERT when ``indexed``.

    The INSERT's parameters follow the UPDATE's: app, user, session, event id, author, ts,
    text, words.
    """
    sql = WRITE_WITH_STATE_SQL if with_state else WRITE_SQL
    if indexed:
        sql = sql.replace("COMMIT", INDEX_SQL + "COMMIT")
    return sql


CREATE_SQL = (
    "INSERT IGNORE INTO app_states (app_name, state, update_time) VALUES (%s, '{}', %s); "
    "INSERT IGNORE INTO user_states (app_name, user_id, state, update_time) "
    "VALUES (%s, %s, '{}', %s); "
    "INSERT IGNORE INTO sessions (app_name, user_id, id, state, create_time, update_time) "
    "VALUES (%s, %s, %s, %s, %s, %s); "
    "SELECT ROW_COUNT(), (SELECT state FROM app_states WHERE app_name = %s), "
    "(SELECT state FROM user_states WHERE app_name = %s AND user_id = %s); "
    "COMMIT"
)
"""A new session: the scope rows made if missing, the session row, whether it was inserted and
the scope states. ``ROW_COUNT()`` is 0 when the id exists: the transaction then wrote at most
empty scope rows, which the SQLAlchemy path would make too."""

_METADATA_OF = (
    "FROM openadk_session_metadata m WHERE m.app_name = s.app_name AND m.user_id = s.user_id "
    "AND m.session_id = s.id"
)
_METADATA_COLUMNS = f"(SELECT m.display_name {_METADATA_OF}), (SELECT m.labels {_METADATA_OF})"
"""metadata: a session row's title and labels (JSON text), NULL when it has none."""

SESSION_SQL = (
    "SELECT s.state, s.update_time, (SELECT state FROM app_states WHERE app_name = %s), "
    f"(SELECT state FROM user_states WHERE app_name = %s AND user_id = %s), {_METADATA_COLUMNS} "
    f"FROM sessions s WHERE {_KEY} AND {_LIVE}"
)


def events_sql(with_data: bool, after: bool, limit: bool) -> str:
    """A session's events, newest first: (id, invocation_id, timestamp, data or NULL)."""
    data = "event_data" if with_data else "NULL"
    where = "app_name = %s AND user_id = %s AND session_id = %s"
    if after:
        where += " AND timestamp >= %s"
    cut = " LIMIT %s" if limit else ""
    return (
        f"SELECT id, invocation_id, timestamp, {data} FROM events WHERE {where} "
        f"ORDER BY timestamp DESC, id DESC{cut}"
    )


def stamps_sql(after: bool, limit: bool) -> str:
    """A session's event ids and times, oldest first, as ONE row: (count, length, text).

    Decoding a row costs aiomysql (pure Python) a few microseconds a column, so the 1,000 keys a
    cached read checks come folded into one string: ``HEX(id) time`` pairs joined by ``,`` (hex
    holds neither separator, whatever the id). ``length`` is what the text's length must be: a
    text cut short by ``group_concat_max_len`` or ``max_allowed_packet`` shows up as a length
    that differs, and `parse_stamps` then says so.
    """
    where = "app_name = %s AND user_id = %s AND session_id = %s"
    if after:
        where += " AND timestamp >= %s"
    cut = " LIMIT %s" if limit else ""
    return (
        "SELECT COUNT(*), SUM(CHAR_LENGTH(HEX(id)) + CHAR_LENGTH(timestamp) + 2) - 1, "
        "GROUP_CONCAT(HEX(id), ' ', timestamp ORDER BY timestamp, id SEPARATOR ',') "
        f"FROM (SELECT id, timestamp FROM events WHERE {where} "
        f"ORDER BY timestamp DESC, id DESC{cut}) t"
    )


def parse_stamps(row: Any) -> list[tuple[str, None, datetime.datetime, None]] | None:
    """The (id, None, time, None) records of a `stamps_sql` row, oldest first; None if cut."""
    count, length, folded = row
    if not count:
        return []
    if isinstance(folded, (bytes, bytearray)):
        folded = folded.decode()
    if folded is None or len(folded) != int(length):
        return None
    fromhex, fromiso = bytes.fromhex, datetime.datetime.fromisoformat
    records = []
    for pair in folded.split(","):
        hex_id, _, stamp = pair.partition(" ")
        records.append((fromhex(hex_id).decode(), None, fromiso(stamp), None))
    return records if len(records) == count else None


def event_data_sql(count: int) -> str:
    marks = ", ".join(["%s"] * count)
    return (
        "SELECT id, invocation_id, timestamp, event_data FROM events WHERE app_name = %s "
        f"AND user_id = %s AND session_id = %s AND id IN ({marks}); COMMIT"
    )


def list_sql(one_user: bool, after: bool, limit: bool) -> str:
    """The scopes' states (user_id NULL: the app's), then the sessions in list order, COMMIT."""
    users = " AND user_id = %s" if one_user else ""
    sessions_filter = " AND s.user_id = %s" if one_user else ""
    if after:
        sessions_filter += (
            " AND (s.update_time > %s OR (s.update_time = %s AND s.user_id > %s) "
            "OR (s.update_time = %s AND s.user_id = %s AND s.id > %s))"
        )
    cut = " LIMIT %s" if limit else ""
    return (
        "SELECT NULL, state FROM app_states WHERE app_name = %s "
        f"UNION ALL SELECT user_id, state FROM user_states WHERE app_name = %s{users}; "
        f"SELECT s.user_id, s.id, s.state, s.update_time, {_METADATA_COLUMNS} FROM sessions s "
        f"WHERE s.app_name = %s AND {_LIVE}{sessions_filter} "
        f"ORDER BY s.update_time, s.user_id, s.id{cut}; COMMIT"
    )
