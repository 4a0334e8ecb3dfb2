"""`DatabaseSessionService`: sessions in any SQLAlchemy database, in google-adk's V1 schema."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import random
import sqlite3
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar
from typing import cast as typing_cast

try:
    from sqlalchemy import (
        Engine,
        Text,
        and_,
        cast,
        delete,
        exc,
        inspect,
        literal,
        null,
        or_,
        select,
        text,
        type_coerce,
        update,
    )
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
except ImportError as _error:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "DatabaseSessionService requires sqlalchemy>=2.0 with asyncio support. Install it with: "
        "pip install 'openadk[sqlite]' (or [postgres], [mysql])."
    ) from _error

from pydantic import TypeAdapter

from openadk.errors import (
    AlreadyExistsError,
    CorruptDataError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
)
from openadk.events import Event
from openadk.sessions import _dialects, _metadata_sql, _mysql, _postgres, _search, _sqlite
from openadk.sessions._base import (
    AppendOutcome,
    AppendPlan,
    BaseSessionService,
    EventKey,
    OnStale,
    PageKey,
    ScopedDelta,
    SessionFilter,
    encode_page_token,
    first_kept_index,
    fold_session_state,
    fork_length,
    merge_state,
)
from openadk.sessions._json import copy_json, dumps_keeping_floats
from openadk.sessions._metadata import SessionMetadata, Unset, fork_labels
from openadk.sessions._schema import (
    SCHEMA_VERSION,
    app_states,
    events,
    from_db_time,
    internal_metadata,
    metadata,
    session_expiry,
    sessions,
    to_db_time,
    user_states,
)
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    SearchEventsResponse,
    SearchHit,
    Session,
    stored_session,
)
from openadk.sessions._threaded import threaded_connection

__all__ = ["DatabaseSessionService"]

logger = logging.getLogger("openadk.sessions")

_T = TypeVar("_T")
_EVENT_LIST = TypeAdapter(list[Event])
_ONE_MICROSECOND = datetime.timedelta(microseconds=1)
_UTC = datetime.timezone.utc
_RETRIES = 10
_MAX_ROWS = 2**62
"""Larger limits mean "all": every database takes a 64-bit LIMIT at most."""
_EARLIEST = datetime.datetime(1000, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)
_NOT_UNICODE = (
    "{}: a text value is not valid Unicode (it holds a lone surrogate such as '\\ud800'), "
    "which cannot be stored; fix or encode it."
)


def _marker(value: datetime.datetime) -> str:
    """The revision marker of a stored update time, in google-adk's format."""
    return value.astimezone(_UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _epoch(value: datetime.datetime) -> float:
    return value.timestamp()


class DatabaseSessionService(BaseSessionService):
    """Stores sessions in a relational database through SQLAlchemy's asyncio engine.

    The tables are google-adk 2.13's V1 schema (``sessions``, ``events``, ``app_states``,
    ``user_states``, ``adk_internal_metadata``), created on first use, so a database can be
    shared with google-adk or moved between the two. Every append is one transaction under a lock
    on the session row; stored order is commit order; stale handles are detected with an exact
    revision marker.

    Works with any async SQLAlchemy dialect; tuned for SQLite (aiosqlite), PostgreSQL (asyncpg,
    psycopg), MySQL/MariaDB (aiomysql, asyncmy) and Spanner (sqlalchemy-spanner).
    """

    capabilities = frozenset({"metadata"})

    def __init__(
        self,
        db_url: str | None = None,
        db_engine: AsyncEngine | Engine | None = None,
        *,
        on_stale: OnStale = "error",
        sqlite_wal: bool = True,
        sqlite_synchronous: str = "NORMAL",
        sqlite_busy_timeout: float = 30.0,
        event_cache_size: int = 50_000,
        auto_upgrade: bool = False,
        clock: Callable[[], float] = time.time,
        **engine_kwargs: Any,
    ) -> None:
        """Creates the service; no connection is made until the first call.

        Args:
            db_url: A database URL, e.g. ``sqlite+aiosqlite:///./sessions.db`` or
                ``postgresql+asyncpg://user:pass@host/db``. A synchronous driver's URL is
                switched to the async driver of the same database; a database with no async
                driver (Cloud Spanner) runs its synchronous driver in worker threads.
            db_engine: An engine you built instead; it stays yours (not disposed). A
                synchronous `Engine` works too: its calls run in worker threads.
            on_stale: ``"error"`` raises `StaleSessionError` for a stale handle; ``"merge"``
                appends on top of the latest stored state.
            sqlite_wal: Use write-ahead logging on SQLite files (readers never block writers).
            sqlite_synchronous: SQLite ``PRAGMA synchronous`` (``NORMAL`` is durable in WAL mode
                except against power loss; ``FULL`` also survives that).
            sqlite_busy_timeout: Seconds a SQLite writer waits for another process's lock.
            event_cache_size: How many parsed events to keep in memory (0 turns it off).
                Stored events never change, so a session read every turn only parses its new
                events. Events of returned sessions are shared with this cache: treat them as
                read-only.
            auto_upgrade: On a database in an older schema (google-adk's V0 "pickle" schema,
                or an older openadk revision), upgrade it in place on first use. When False
                (the default) such a database is refused with the ``openadk db upgrade``
                command to run. New databases are created either way.
            clock: Returns the current Unix time; session expiry is measured with it (event and
                update times are not). Tests move it instead of sleeping.
            **engine_kwargs: Passed to ``create_async_engine`` (``pool_size``, ``max_overflow``,
                ``pool_timeout``, ``pool_recycle``, ``echo``, ...).

        Raises:
            ValueError: Not exactly one of ``db_url``/``db_engine``, or a bad URL or missing
                driver (the message says what to install).
        """
        super().__init__(on_stale=on_stale, clock=clock)
        if (db_url is None) == (db_engine is None):
            raise ValueError("Exactly one of 'db_url' or 'db_engine' must be provided.")
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                "sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, "
                f"got {sqlite_synchronous!r}."
            )
        if db_url is None:
            if engine_kwargs:
                raise ValueError("Engine arguments cannot be combined with db_engine.")
            self._engine = typing_cast("AsyncEngine | Engine", db_engine)
            self._owns_engine = False
        else:
            self._engine = _dialects.build_engine(db_url, engine_kwargs)
            self._owns_engine = True
            if isinstance(self._engine, AsyncEngine) and self._engine.dialect.name == "sqlite":
                _dialects.configure_sqlite(
                    self._engine,
                    wal=sqlite_wal,
                    synchronous=sqlite_synchronous.upper(),
                    busy_ms=int(sqlite_busy_timeout * 1000),
                )
        self._url = _dialects.redact_url(self._engine.url)
        name = self._engine.dialect.name
        # search: the database's own full-text engine, where openadk knows one.
        self._search_on = name in _search.DIALECTS
        self.capabilities = frozenset(
            {"metadata", "fork", "search"} if self._search_on else {"metadata", "fork"}
        )
        memory = name == "sqlite" and self._engine.url.database in (None, "", ":memory:")
        # One SQLite connection at a time writes anyway; queueing writers here saves them
        # from polling SQLite's busy lock. An in-memory database has a single shared
        # connection, so everything queues.
        self._write_lock = asyncio.Lock() if name == "sqlite" else None
        self._all_lock = asyncio.Lock() if memory else None
        self._prepared = False
        self._prepare_lock = asyncio.Lock()
        self._auto_upgrade = auto_upgrade
        if not isinstance(event_cache_size, int) or event_cache_size < 0:
            raise ValueError(f"event_cache_size must be an int >= 0, got {event_cache_size!r}.")
        self._event_cache = _EventCache(event_cache_size) if event_cache_size else None
        self._lite: _sqlite.SqliteThreads | None = None
        # search: a flush of the pending index rows is queued on the writer (its thread only).
        self._lite_flush_queued = False
        if (
            self._owns_engine
            and isinstance(self._engine, AsyncEngine)
            and _sqlite.fast_path_allowed(self._engine, engine_kwargs)
        ):
            self._lite = _sqlite.SqliteThreads(self._engine)
        self._pg: _postgres.PgPool | None = None
        self._my: _mysql.MyPool | None = None
        self._pg_sql: dict[tuple[Any, ...], str] = {}
        if (
            db_url is not None
            and isinstance(self._engine, AsyncEngine)
            and self._engine.url.drivername in ("mysql+aiomysql", "mariadb+aiomysql")
            and not _sqlite.CUSTOM_CONNECTIONS & set(engine_kwargs)
        ):
            size = int(engine_kwargs.get("pool_size", 5)) + int(
                engine_kwargs.get("max_overflow", 10)
            )
            self._my = _mysql.MyPool(
                _mysql.connect_kwargs(self._engine), max(size, 1), self._engine.sync_engine.dispatch
            )
        if (
            db_url is not None
            and isinstance(self._engine, AsyncEngine)
            and self._engine.url.drivername == "postgresql+asyncpg"
            and not (_sqlite.CUSTOM_CONNECTIONS - {"connect_args"}) & set(engine_kwargs)
        ):
            connect_args = dict(engine_kwargs.get("connect_args") or {})
            ssl_value = _dialects.asyncpg_ssl(db_url)
            if ssl_value is not None:
                connect_args.setdefault("ssl", ssl_value)
            pg_kwargs = _postgres.asyncpg_connect_kwargs(self._engine, connect_args)
            if pg_kwargs is not None:
                size = int(engine_kwargs.get("pool_size", 5)) + int(
                    engine_kwargs.get("max_overflow", 10)
                )
                self._pg = _postgres.PgPool(
                    pg_kwargs, max(size, 1), self._engine.sync_engine.dispatch
                )

    def __repr__(self) -> str:
        return f"DatabaseSessionService({self._url!r})"

    @property
    def engine(self) -> AsyncEngine | Engine:
        """The SQLAlchemy engine the service uses."""
        return self._engine

    @property
    def _dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def _aware_times(self) -> bool:
        # Spanner's TIMESTAMP is time-zone aware; every other engine stores naive UTC.
        return self._dialect.startswith("spanner")

    def _db_time(self, timestamp: float) -> datetime.datetime:
        return to_db_time(timestamp, aware=self._aware_times)

    def _bound_time(self, timestamp: float, what: str) -> datetime.datetime:
        """A time to compare stored times with, clamped to the years 1000-9999 they can have."""
        if math.isnan(timestamp):
            raise ValueError(f"{what} is NaN; give a time in Unix seconds.")
        if timestamp >= _LATEST.timestamp():
            stamp = _LATEST
            return stamp if self._aware_times else stamp.replace(tzinfo=None)
        return self._db_time(max(timestamp, _EARLIEST))

    async def close(self) -> None:
        """Disposes of the engine if the service created it."""
        if self._lite is not None:
            lite, self._lite = self._lite, None
            await lite.close()
        if self._pg is not None:
            await self._pg.close()
        if self._my is not None:
            await self._my.close()
        if not self._owns_engine:
            return
        if isinstance(self._engine, AsyncEngine):
            await self._engine.dispose()
        else:
            await asyncio.to_thread(self._engine.dispose)

    # Transactions ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self, write: bool) -> AsyncIterator[AsyncConnection]:
        locks: list[asyncio.Lock] = []
        if self._all_lock is not None:
            locks.append(self._all_lock)
        elif write and self._write_lock is not None:
            locks.append(self._write_lock)
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            if isinstance(self._engine, AsyncEngine):
                conn = await stack.enter_async_context(self._engine.connect())
            else:
                # The adapter offers the AsyncConnection methods the service uses.
                threaded = await stack.enter_async_context(threaded_connection(self._engine))
                conn = typing_cast(AsyncConnection, threaded)
            if write and self._dialect == "sqlite":
                await conn.execution_options(openadk_write=True)
            yield conn

    async def _run(
        self, operation: str, write: bool, body: Callable[[AsyncConnection], Awaitable[_T]]
    ) -> _T:
        """Runs ``body`` in one transaction, rerunning it after a deadlock or lock timeout.

        Driver errors leave as `StorageError` naming the operation and the (redacted) URL.
        """
        await self._prepare()
        for attempt in range(_RETRIES):
            try:
                async with self._connection(write) as conn, conn.begin():
                    return await body(conn)
            except exc.DBAPIError as error:
                if error.connection_invalidated and attempt < 2:
                    # A pooled connection the server dropped (restart, idle timeout): the
                    # pool has discarded it; rerun on a new one. Appends are idempotent by
                    # event id, so a rerun after a commit whose answer was lost stores nothing.
                    continue
                if _dialects.is_retryable(error) and attempt < _RETRIES - 1:
                    # The losers of a deadlock are rolled back; jitter keeps them from
                    # colliding again in lock step.
                    await asyncio.sleep(random.uniform(0.002, 0.01) * (attempt + 1))
                    continue
                if isinstance(error, exc.IntegrityError):
                    raise
                if _dialects.is_nul_refusal(error):
                    raise ValueError(
                        f"{operation}: the data contains a NUL character (\\x00), which "
                        f"{self._dialect} cannot store; remove or encode it."
                    ) from error
                if _dialects.is_unencodable(error):
                    raise ValueError(_NOT_UNICODE.format(operation)) from error
                raise StorageError(
                    f"{operation} failed on {self._url}: {type(error.orig).__name__}: {error.orig}"
                ) from error
            except UnicodeEncodeError as error:
                # sqlite3, psycopg and the MySQL drivers encode parameters before sending them.
                raise ValueError(_NOT_UNICODE.format(operation)) from error
            except (OSError, asyncio.TimeoutError) as error:
                # Drivers raise these directly when the server cannot be reached.
                raise StorageError(
                    f"{operation} failed: cannot reach the database at {self._url}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _prepare(self) -> None:
        """Creates the tables and the schema-version row on first use (idempotent, locked)."""
        if self._prepared:
            return
        async with self._prepare_lock:
            if self._prepared:
                return
            from openadk.sessions import migrations

            try:
                found = await migrations.status(self._engine)
            except StorageError as error:
                hint = _dialects.sqlite_read_only_hint(self._engine.url)
                if not hint:
                    raise
                raise StorageError(f"{error}.{hint}") from error
            if found.blocks_use:
                if found.problem or not self._auto_upgrade:
                    raise ValueError(migrations.refusal(self._url, found))
                report = await migrations.upgrade(self._engine)
                logger.info("Upgraded %s: %s", self._url, " ".join(report.summary()))
            for attempt in range(3):
                try:
                    async with self._connection(write=True) as conn, conn.begin():
                        await conn.run_sync(_check_layout)
                        await conn.run_sync(metadata.create_all)
                        if self._search_on:
                            # search: the index table; events stored before it existed are
                            # indexed by revision 0004 (`openadk db upgrade`).
                            await conn.run_sync(_search.create_index)
                        version_q = select(internal_metadata.c.value).where(
                            internal_metadata.c.key == "schema_version"
                        )
                        version = (await conn.execute(version_q)).scalar()
                        if version is None:
                            await self._insert_if_absent(
                                conn,
                                internal_metadata,
                                {"key": "schema_version", "value": SCHEMA_VERSION},
                            )
                            version = (await conn.execute(version_q)).scalar_one()
                    break
                except (OSError, asyncio.TimeoutError) as error:
                    raise StorageError(
                        f"Cannot reach the database at {self._url}: {type(error).__name__}: {error}"
                    ) from error
                except exc.DBAPIError as error:
                    # Another process may be creating the same tables right now.
                    if attempt == 2:
                        hint = _dialects.sqlite_read_only_hint(self._engine.url)
                        raise StorageError(
                            f"Could not open the database or create the session tables on "
                            f"{self._url}: {error.orig}.{hint}"
                        ) from error
                    await asyncio.sleep(0.05 * (attempt + 1))
            if version != SCHEMA_VERSION:
                raise ValueError(
                    f"The database at {self._url} has session schema version {version!r}; "
                    f"openadk reads version {SCHEMA_VERSION!r} (google-adk's V1)."
                )
            self._prepared = True

    async def prepare_tables(self) -> None:
        """Creates the tables now instead of on first use (useful at deploy time)."""
        await self._prepare()

    async def _insert_if_absent(
        self, conn: AsyncConnection, table: Any, values: dict[str, Any]
    ) -> bool:
        """Inserts a row unless its key exists; returns whether it inserted."""
        statement = _dialects.insert_if_absent(self._dialect, table, values)
        if statement is not None:
            result = await conn.execute(statement)
            if result.returns_rows:
                return result.first() is not None
            return result.rowcount == 1
        key = [table.c[column.name] == values[column.name] for column in table.primary_key]
        if (await conn.execute(select(*table.primary_key.columns).where(*key))).first():
            return False
        await conn.execute(table.insert().values(values))
        return True

    # Shared state ------------------------------------------------------------------------------

    async def _ensure_scope_rows(
        self, conn: AsyncConnection, app_name: str, user_id: str, now: datetime.datetime
    ) -> None:
        """Creates the app and user state rows if missing (google-adk expects both to exist).

        A plain read comes first: inserting over an existing row would take a shared lock that
        a later row lock must upgrade, which deadlocks concurrent writers on MySQL.
        """
        app_where = app_states.c.app_name == app_name
        user_where = and_(user_states.c.app_name == app_name, user_states.c.user_id == user_id)
        found = (
            await conn.execute(
                select(
                    select(app_states.c.app_name).where(app_where).scalar_subquery().label("a"),
                    select(user_states.c.user_id).where(user_where).scalar_subquery().label("u"),
                )
            )
        ).one()
        if found.a is None:
            await self._insert_if_absent(
                conn, app_states, {"app_name": app_name, "state": {}, "update_time": now}
            )
        if found.u is None:
            await self._insert_if_absent(
                conn,
                user_states,
                {"app_name": app_name, "user_id": user_id, "state": {}, "update_time": now},
            )

    async def _apply_scopes(
        self,
        conn: AsyncConnection,
        app_name: str,
        user_id: str,
        scoped: ScopedDelta,
        now: datetime.datetime,
    ) -> None:
        """Merges the app and user parts of a delta into their rows (locked, top-level replace)."""
        targets = [
            (app_states, [app_states.c.app_name == app_name], scoped.app),
            (
                user_states,
                [user_states.c.app_name == app_name, user_states.c.user_id == user_id],
                scoped.user,
            ),
        ]
        for table, where, delta in targets:
            if not delta:
                continue
            stored = (
                await conn.execute(
                    _dialects.lock_rows(
                        self._dialect, select(self._state(table.c.state)).where(*where)
                    )
                )
            ).scalar_one()
            scope_key = {"app_name": app_name}
            if table is user_states:
                scope_key["user_id"] = user_id
            current = _decode_state(stored, table.name, scope_key)
            await conn.execute(
                update(table).where(*where).values(state={**current, **delta}, update_time=now)
            )

    async def _read_scopes(
        self, conn: AsyncConnection, app_name: str, user_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        app_q, user_q = self._scope_queries(app_name, user_id)
        row = (
            await conn.execute(
                select(app_q.scalar_subquery().label("a"), user_q.scalar_subquery().label("u"))
            )
        ).one()
        return _decode_scopes(row.a, row.u, app_name, user_id)

    def _scope_queries(self, app_name: str, user_id: str) -> tuple[Any, Any]:
        """Selects of the app's and the user's state, as `_decode_state` takes them."""
        app_q = select(self._state(app_states.c.state)).where(app_states.c.app_name == app_name)
        user_q = select(self._state(user_states.c.state)).where(
            user_states.c.app_name == app_name, user_states.c.user_id == user_id
        )
        return app_q, user_q

    def _json_text(self, text: str) -> Any:
        """JSON text as a value for a JSON column (JSONB on PostgreSQL takes it as it is)."""
        if self._dialect == "postgresql":
            return cast(type_coerce(text, Text), JSONB)
        return text

    def _state(self, column: Any) -> Any:
        """A state column as `_decode_state` takes it: JSON text, decoded per row with its key.

        Left to the column type, a corrupt row would fail inside the driver's row processing,
        where no one knows which row it was. PostgreSQL's JSONB is always valid JSON.
        """
        if self._dialect == "postgresql":
            return column.label(column.name)
        return type_coerce(column, Text).label(column.name)

    # Events ------------------------------------------------------------------------------------

    def _event_columns(self) -> list[Any]:
        """What `_rows_to_events` needs: the key columns and ``event_data`` as JSON text."""
        if self._dialect == "postgresql":
            data = cast(events.c.event_data, Text).label("data")
        else:
            data = type_coerce(events.c.event_data, Text).label("data")
        return [events.c.id, events.c.invocation_id, events.c.timestamp, data]

    async def _read_events(
        self,
        conn: AsyncConnection,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> list[Event]:
        where = (
            events.c.app_name == app_name,
            events.c.user_id == user_id,
            events.c.session_id == session_id,
        )
        cached = self._event_cache is not None
        columns = self._event_columns() if not cached else [events.c.id, events.c.timestamp]
        query = select(*columns).where(*where)
        if config is not None and config.after_timestamp is not None:
            at = self._bound_time(config.after_timestamp, "after_timestamp")
            query = query.where(events.c.timestamp >= at)
        query = query.order_by(events.c.timestamp.desc(), events.c.id.desc())
        if config is not None and config.num_recent_events is not None:
            query = query.limit(min(config.num_recent_events, _MAX_ROWS))
        rows = list(reversed((await conn.execute(query)).all()))
        if self._event_cache is None:
            return _rows_to_events(rows, (app_name, user_id, session_id))
        # Stored events never change, so parsed ones are kept: a session read every turn
        # only parses the events added since the last read.
        key = (app_name, user_id, session_id)
        found: dict[str, Event] = {}
        missing: list[str] = []
        for r in rows:
            hit = self._event_cache.get(key, r.id, r.timestamp)
            if hit is None:
                missing.append(r.id)
            else:
                found[r.id] = hit
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            data_rows = (
                await conn.execute(
                    select(*self._event_columns()).where(*where, events.c.id.in_(chunk))
                )
            ).all()
            for row, event in zip(data_rows, _rows_to_events(data_rows, key), strict=True):
                found[row.id] = event
                self._event_cache.put(key, row.id, row.timestamp, event)
        return [found[r.id] for r in rows]

    # Hooks -------------------------------------------------------------------------------------

    async def _create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None = None,
        metadata: SessionMetadata | None = None,
    ) -> Session:
        if self._lite is not None:
            return await self._lite_create(
                app_name, user_id, session_id, state, exist_ok, expire_time, metadata
            )
        if self._pg is not None and not (state.app or state.user) and expire_time is None:
            made = await self._pg_create(app_name, user_id, session_id, state, metadata)
            if made is not None:
                return made
        if (
            self._my is not None
            and not (state.app or state.user)
            and expire_time is None
            and metadata is None  # metadata: a title or labels take the SQLAlchemy path
        ):
            made = await self._my_create(app_name, user_id, session_id, state)
            if made is not None:
                return made
        new_id = session_id or str(uuid.uuid4())

        async def body(conn: AsyncConnection) -> Session:
            now = self._db_time(time.time())
            await self._ensure_scope_rows(conn, app_name, user_id, now)
            key = (
                sessions.c.app_name == app_name,
                sessions.c.user_id == user_id,
                sessions.c.id == new_id,
            )
            existing = None
            if session_id is not None:
                await self._purge_if_expired(
                    conn, app_name, user_id, new_id, self._db_time(self._clock())
                )
                existing = (
                    await conn.execute(
                        select(self._state(sessions.c.state), sessions.c.update_time).where(*key)
                    )
                ).first()
            created = existing is None and await self._insert_if_absent(
                conn,
                sessions,
                {
                    "app_name": app_name,
                    "user_id": user_id,
                    "id": new_id,
                    "state": state.session,
                    "create_time": now,
                    "update_time": now,
                },
            )
            if created:
                own_state, update_time, stored_events = state.session, now, []
            else:
                if not exist_ok:
                    raise AlreadyExistsError(f"Session with id {new_id} already exists.")
                row = existing if existing is not None and not state else None
                if row is None:
                    query = select(self._state(sessions.c.state), sessions.c.update_time).where(
                        *key
                    )
                    locked = _dialects.lock_rows(self._dialect, query, shared=not state)
                    row = (await conn.execute(locked)).one()
                own_state = _decode_state(
                    row.state, "sessions", _session_key(app_name, user_id, new_id)
                )
                update_time = row.update_time
                if state:
                    own_state = {**own_state, **state.session}
                    update_time = max(now, update_time + _ONE_MICROSECOND)
                    await conn.execute(
                        update(sessions)
                        .where(*key)
                        .values(state=own_state, update_time=update_time)
                    )
                stored_events = await self._read_events(conn, app_name, user_id, new_id, None)
            if expire_time is not None:
                await self._set_expiry(conn, app_name, user_id, new_id, expire_time)
            # metadata: the title and labels given, or (resuming) the stored ones.
            display_name: str | None = None
            labels: dict[str, str] = {}
            if metadata is not None:
                display_name, labels = await _metadata_sql.write_metadata(
                    conn, self._dialect, app_name, user_id, new_id, metadata
                )
            elif not created:
                display_name, labels = await _metadata_sql.read_metadata(
                    conn, self._dialect, app_name, user_id, new_id
                )
            await self._apply_scopes(conn, app_name, user_id, state, now)
            app_state, user_state = await self._read_scopes(conn, app_name, user_id)
            return self._session(
                app_name,
                user_id,
                new_id,
                own_state,
                app_state,
                user_state,
                update_time,
                stored_events,
                display_name,
                labels,
            )

        for attempt in range(2):
            try:
                return await self._run("create_session", True, body)
            except exc.IntegrityError as error:
                # Generic dialects insert after a check; a concurrent creator can win the race.
                if attempt == 1 or not _dialects.is_unique_violation(error):
                    raise StorageError(
                        f"create_session failed on {self._url}: {error.orig}"
                    ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _purge_if_expired(
        self,
        conn: AsyncConnection,
        app_name: str,
        user_id: str,
        session_id: str,
        now: datetime.datetime,
    ) -> None:
        """Deletes the session if it has expired, so its id starts a new session."""
        key = _expiry_key(app_name, user_id, session_id)
        found = (
            await conn.execute(
                select(session_expiry.c.session_id).where(*key, session_expiry.c.expire_time <= now)
            )
        ).first()
        if found is None:
            return
        await self._delete_rows(conn, app_name, user_id, session_id)

    async def _delete_rows(
        self, conn: AsyncConnection, app_name: str, user_id: str, session_id: str
    ) -> None:
        """Deletes a session's expiry, events and row (explicitly: no reliance on cascades)."""
        await conn.execute(
            delete(session_expiry).where(*_expiry_key(app_name, user_id, session_id))
        )
        # metadata: the title and labels go with the session.
        await _metadata_sql.delete_session_metadata(conn, app_name, user_id, session_id)
        if self._search_on:
            # search: and its events' index rows.
            await _search.unindex_session(conn, self._dialect, app_name, user_id, session_id)
        await conn.execute(
            delete(events).where(
                events.c.app_name == app_name,
                events.c.user_id == user_id,
                events.c.session_id == session_id,
            )
        )
        await conn.execute(
            delete(sessions).where(
                sessions.c.app_name == app_name,
                sessions.c.user_id == user_id,
                sessions.c.id == session_id,
            )
        )
        if self._event_cache is not None:
            self._event_cache.drop((app_name, user_id, session_id))

    async def _set_expiry(
        self,
        conn: AsyncConnection,
        app_name: str,
        user_id: str,
        session_id: str,
        expire_time: float,
    ) -> None:
        key = _expiry_key(app_name, user_id, session_id)
        await conn.execute(delete(session_expiry).where(*key))
        await conn.execute(
            session_expiry.insert().values(
                app_name=app_name,
                user_id=user_id,
                session_id=session_id,
                expire_time=self._db_time(expire_time),
            )
        )

    def _session(
        self,
        app_name: str,
        user_id: str,
        session_id: str,
        own_state: dict[str, Any],
        app_state: dict[str, Any],
        user_state: dict[str, Any],
        update_time: datetime.datetime,
        stored_events: list[Event],
        display_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Session:
        stamp = from_db_time(update_time)
        return Session._from_storage(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=merge_state(own_state, app_state, user_state),
            events=stored_events,
            last_update_time=_epoch(stamp),
            marker=_marker(stamp),
            display_name=display_name,
            labels=labels,
        )

    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        if self._lite is not None:
            return await self._lite_get(app_name, user_id, session_id, config)
        if self._pg is not None:
            return await self._pg_get(app_name, user_id, session_id, config)
        if self._my is not None:
            return await self._my_get(app_name, user_id, session_id, config)

        async def body(conn: AsyncConnection) -> Session | None:
            app_q, user_q = self._scope_queries(app_name, user_id)
            row = (
                await conn.execute(
                    select(
                        self._state(sessions.c.state),
                        sessions.c.update_time,
                        app_q.scalar_subquery().label("app_state"),
                        user_q.scalar_subquery().label("user_state"),
                        # metadata: title and labels, in the same statement.
                        *_metadata_sql.metadata_columns(self._dialect),
                    ).where(
                        sessions.c.app_name == app_name,
                        sessions.c.user_id == user_id,
                        sessions.c.id == session_id,
                        _live(self._db_time(self._clock())),
                    )
                )
            ).first()
            if row is None:
                return None
            own_state = _decode_state(
                row.state, "sessions", _session_key(app_name, user_id, session_id)
            )
            app_state, user_state = _decode_scopes(row.app_state, row.user_state, app_name, user_id)
            if config is not None and config.num_recent_events == 0:
                stored_events: list[Event] = []
            else:
                stored_events = await self._read_events(conn, app_name, user_id, session_id, config)
            display_name, labels = _metadata_sql.row_metadata(
                row, _session_key(app_name, user_id, session_id)
            )
            return self._session(
                app_name,
                user_id,
                session_id,
                own_state,
                app_state,
                user_state,
                row.update_time,
                stored_events,
                display_name,
                labels,
            )

        return await self._run("get_session", False, body)

    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
        filters: SessionFilter | None = None,
    ) -> ListSessionsResponse:
        # metadata: a listing filtered by labels or update time takes the SQLAlchemy path.
        if self._lite is not None and not filters:
            return await self._lite_list(app_name, user_id, limit, after)
        if self._pg is not None and not filters:
            return await self._pg_list(app_name, user_id, limit, after)
        if self._my is not None and not filters:
            return await self._my_list(app_name, user_id, limit, after)

        async def body(conn: AsyncConnection) -> ListSessionsResponse:
            query = select(
                sessions.c.user_id,
                sessions.c.id,
                self._state(sessions.c.state),
                sessions.c.update_time,
                # metadata: title and labels of each listed session.
                *_metadata_sql.metadata_columns(self._dialect),
            ).where(sessions.c.app_name == app_name, _live(self._db_time(self._clock())))
            if user_id is not None:
                query = query.where(sessions.c.user_id == user_id)
            if filters:
                # metadata: label and update-time filters, in SQL; keyset paging unchanged.
                query = query.where(*_metadata_sql.label_conditions(filters.labels))
                if filters.labels and self._dialect == "postgresql":
                    await conn.execute(text(_metadata_sql.PG_LABEL_LIST_SETUP))
                if filters.updated_after is not None:
                    at = self._bound_time(filters.updated_after, "updated_after")
                    query = query.where(sessions.c.update_time >= at)
                if filters.updated_before is not None:
                    at = self._bound_time(filters.updated_before, "updated_before")
                    query = query.where(sessions.c.update_time < at)
            if after is not None:
                stamp, last_user, last_id = after
                at = self._bound_time(stamp, "page_token")
                query = query.where(
                    or_(
                        sessions.c.update_time > at,
                        and_(sessions.c.update_time == at, sessions.c.user_id > last_user),
                        and_(
                            sessions.c.update_time == at,
                            sessions.c.user_id == last_user,
                            sessions.c.id > last_id,
                        ),
                    )
                )
            query = query.order_by(sessions.c.update_time, sessions.c.user_id, sessions.c.id)
            if limit is not None:
                query = query.limit(min(limit, _MAX_ROWS) + 1)
            rows: Sequence[Any] = (await conn.execute(query)).all()
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if more else rows
            # The app's and the users' states, each decoded once, in one statement.
            users = select(user_states.c.user_id, self._state(user_states.c.state)).where(
                user_states.c.app_name == app_name
            )
            if user_id is not None:
                users = users.where(user_states.c.user_id == user_id)
            app = select(null().label("user_id"), self._state(app_states.c.state)).where(
                app_states.c.app_name == app_name
            )
            scopes: dict[str | None, dict[str, Any]] = {}
            for r in (await conn.execute(app.union_all(users))).all():
                if r.user_id is None:
                    scopes[None] = _decode_state(r.state, "app_states", {"app_name": app_name})
                else:
                    scope_key = {"app_name": app_name, "user_id": r.user_id}
                    scopes[r.user_id] = _decode_state(r.state, "user_states", scope_key)
            app_state = scopes.get(None) or {}
            result = [
                self._session(
                    app_name,
                    r.user_id,
                    r.id,
                    _decode_state(r.state, "sessions", _session_key(app_name, r.user_id, r.id)),
                    app_state,
                    scopes.get(r.user_id) or {},
                    r.update_time,
                    [],
                    *_metadata_sql.row_metadata(r, _session_key(app_name, r.user_id, r.id)),
                )
                for r in rows
            ]
            token = None
            if more:
                last = result[-1]
                token = encode_page_token((last.last_update_time, last.user_id, last.id))
            return ListSessionsResponse(sessions=result, next_page_token=token)

        return await self._run("list_sessions", False, body)

    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        async def body(conn: AsyncConnection) -> ListEventsResponse:
            exists = (
                await conn.execute(
                    select(sessions.c.id).where(
                        sessions.c.app_name == app_name,
                        sessions.c.user_id == user_id,
                        sessions.c.id == session_id,
                        _live(self._db_time(self._clock())),
                    )
                )
            ).first()
            if exists is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            query = select(*self._event_columns()).where(
                events.c.app_name == app_name,
                events.c.user_id == user_id,
                events.c.session_id == session_id,
            )
            if after is not None:
                at = self._bound_time(after[0], "page_token")
                query = query.where(
                    or_(
                        events.c.timestamp > at,
                        and_(events.c.timestamp == at, events.c.id > after[1]),
                    )
                )
            query = query.order_by(events.c.timestamp, events.c.id)
            if limit is not None:
                query = query.limit(min(limit, _MAX_ROWS) + 1)
            rows: Sequence[Any] = (await conn.execute(query)).all()
            more = limit is not None and len(rows) > limit
            page = _rows_to_events(rows[:limit] if more else rows, (app_name, user_id, session_id))
            token = None
            if more:
                token = encode_page_token((page[-1].timestamp, page[-1].id, ""))
            return ListEventsResponse(events=page, next_page_token=token)

        return await self._run("list_events", False, body)

    async def _update_session(
        self, *, app_name: str, user_id: str, session_id: str, metadata: SessionMetadata
    ) -> Session:
        async def body(conn: AsyncConnection) -> Session:
            # The session row is locked (not changed): a concurrent delete waits or wins.
            row = (
                await conn.execute(
                    _dialects.lock_rows(
                        self._dialect,
                        select(self._state(sessions.c.state), sessions.c.update_time).where(
                            sessions.c.app_name == app_name,
                            sessions.c.user_id == user_id,
                            sessions.c.id == session_id,
                            _live(self._db_time(self._clock())),
                        ),
                    )
                )
            ).first()
            if row is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            # metadata: the update itself.
            display_name, labels = await _metadata_sql.write_metadata(
                conn, self._dialect, app_name, user_id, session_id, metadata
            )
            own_state = _decode_state(
                row.state, "sessions", _session_key(app_name, user_id, session_id)
            )
            app_state, user_state = await self._read_scopes(conn, app_name, user_id)
            return self._session(
                app_name,
                user_id,
                session_id,
                own_state,
                app_state,
                user_state,
                row.update_time,
                [],
                display_name,
                labels,
            )

        return await self._run("update_session", True, body)

    async def _search_events(
        self,
        *,
        app_name: str,
        terms: list[str],
        user_id: str | None,
        limit: int,
        after: PageKey | None,
    ) -> SearchEventsResponse:
        async def body(conn: AsyncConnection) -> SearchEventsResponse:
            rows = await _search.search_rows(
                conn, self._dialect, app_name, terms, user_id, limit, after
            )
            more = len(rows) > limit
            page = rows[:limit]
            hits = [
                SearchHit(
                    session_id=r.session_id,
                    user_id=r.user_id,
                    event_id=r.event_id,
                    author=r.author,
                    timestamp=float(r.ts),
                    snippet=_search.snippet(r.body, terms),
                )
                for r in page
            ]
            token = None
            if more and page:
                last = page[-1]
                token = encode_page_token((float(last.ts), last.session_id, last.event_id))
            return SearchEventsResponse(hits=hits, next_page_token=token)

        # search: on SQLite, appended rows may be pending; a search moves them into the FTS5
        # table first (only when there are some), so it finds every acknowledged event.
        async def checked(conn: AsyncConnection) -> SearchEventsResponse | None:
            if await _search.has_pending(conn, self._dialect):
                return None
            return await body(conn)

        found = await self._run("search_events", False, checked)
        if found is not None:
            return found
        await self._flush_search("search_events")
        return await self._run("search_events", False, body)

    async def _flush_search(self, operation: str) -> None:
        """On SQLite, moves the pending index rows into the FTS5 table (one transaction)."""
        if self._lite is not None:
            await self._lite_run(operation, True, self._lite_flush_body)
            return

        async def body(conn: AsyncConnection) -> None:
            await _search.flush_pending(conn, self._dialect)

        await self._run(operation, True, body)

    async def _fork_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        new_session_id: str | None,
        up_to_invocation_id: str | None,
    ) -> Session:
        new_id = new_session_id or str(uuid.uuid4())
        source_key = (
            sessions.c.app_name == app_name,
            sessions.c.user_id == user_id,
            sessions.c.id == session_id,
        )
        event_where = (
            events.c.app_name == app_name,
            events.c.user_id == user_id,
            events.c.session_id == session_id,
        )

        async def body(conn: AsyncConnection) -> Session:
            # The source row is locked (shared): its events cannot change under the copy.
            row = (
                await conn.execute(
                    _dialects.lock_rows(
                        self._dialect,
                        select(sessions.c.id).where(
                            *source_key, _live(self._db_time(self._clock()))
                        ),
                        shared=True,
                    )
                )
            ).first()
            if row is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            if self._search_on:
                # search: on SQLite, the source's index rows are all in the FTS5 table (none
                # pending), for whatever copies them from there.
                await _search.flush_pending(conn, self._dialect)
            await self._purge_if_expired(
                conn, app_name, user_id, new_id, self._db_time(self._clock())
            )
            taken = (
                await conn.execute(
                    select(sessions.c.id).where(
                        sessions.c.app_name == app_name,
                        sessions.c.user_id == user_id,
                        sessions.c.id == new_id,
                    )
                )
            ).first()
            if taken is not None:
                raise AlreadyExistsError(f"Session with id {new_id} already exists.")
            source_events = await self._read_events(conn, app_name, user_id, session_id, None)
            count = fork_length([e.invocation_id for e in source_events], up_to_invocation_id)
            copied = source_events[:count]
            state = fold_session_state(e.actions.state_delta for e in copied)
            display_name, labels = await _metadata_sql.read_metadata(
                conn, self._dialect, app_name, user_id, session_id
            )
            labels = fork_labels(labels, session_id)
            now = self._db_time(time.time())
            update_time = now
            if copied:
                last = self._db_time(copied[-1].timestamp)
                update_time = max(now, last + _ONE_MICROSECOND)
            await conn.execute(
                sessions.insert().values(
                    app_name=app_name,
                    user_id=user_id,
                    id=new_id,
                    state=state,
                    create_time=now,
                    update_time=update_time,
                )
            )
            if copied:
                # One statement, however many events: the database copies the rows up to the
                # last copied event (ordered by (timestamp, id), as stored).
                cut_id = copied[-1].id
                cut_time = (
                    await conn.execute(
                        select(events.c.timestamp).where(*event_where, events.c.id == cut_id)
                    )
                ).scalar_one()
                copy = select(
                    events.c.id,
                    events.c.app_name,
                    events.c.user_id,
                    literal(new_id, type_=sessions.c.id.type).label("session_id"),
                    events.c.invocation_id,
                    events.c.timestamp,
                    events.c.event_data,
                ).where(
                    *event_where,
                    or_(
                        events.c.timestamp < cut_time,
                        and_(events.c.timestamp == cut_time, events.c.id <= cut_id),
                    ),
                )
                columns = [
                    "id",
                    "app_name",
                    "user_id",
                    "session_id",
                    "invocation_id",
                    "timestamp",
                    "event_data",
                ]
                await conn.execute(events.insert().from_select(columns, copy))
            # metadata: the source's title, its labels and forked-from.
            await _metadata_sql.write_metadata(
                conn,
                self._dialect,
                app_name,
                user_id,
                new_id,
                SessionMetadata(display_name=display_name, labels=labels),
            )
            if self._search_on and copied:
                # search: the copies are found under the fork too; the database copies the
                # source's index rows of the copied events in one statement.
                await _search.copy_session_index(
                    conn,
                    self._dialect,
                    app_name,
                    user_id,
                    session_id,
                    new_id,
                    [(e.id, e.timestamp) for e in copied],
                    [e.timestamp for e in source_events[count:]],
                )
            app_state, user_state = await self._read_scopes(conn, app_name, user_id)
            return self._session(
                app_name,
                user_id,
                new_id,
                state,
                app_state,
                user_state,
                update_time,
                list(copied),
                display_name,
                labels,
            )

        try:
            return await self._run("fork_session", True, body)
        except exc.IntegrityError as error:
            if _dialects.is_unique_violation(error):
                raise AlreadyExistsError(f"Session with id {new_id} already exists.") from error
            raise StorageError(f"fork_session failed on {self._url}: {error.orig}") from error

    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        async def body(conn: AsyncConnection) -> None:
            await self._delete_rows(conn, app_name, user_id, session_id)

        await self._run("delete_session", True, body)

    async def _trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        where = (
            events.c.app_name == app_name,
            events.c.user_id == user_id,
            events.c.session_id == session_id,
        )

        async def body(conn: AsyncConnection) -> int:
            locked = _dialects.lock_rows(
                self._dialect,
                select(sessions.c.id).where(
                    sessions.c.app_name == app_name,
                    sessions.c.user_id == user_id,
                    sessions.c.id == session_id,
                ),
            )
            if (await conn.execute(locked)).first() is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            rows = (
                await conn.execute(
                    select(events.c.id, events.c.invocation_id)
                    .where(*where)
                    .order_by(events.c.timestamp, events.c.id)
                )
            ).all()
            start = first_kept_index([r.invocation_id for r in rows], keep_last_events)
            doomed = [r.id for r in rows[:start]]
            for chunk in range(0, len(doomed), 500):
                await conn.execute(
                    delete(events).where(*where, events.c.id.in_(doomed[chunk : chunk + 500]))
                )
            if self._search_on and doomed:
                # search: trimmed events leave the index in the same transaction.
                await _search.unindex_events(
                    conn, self._dialect, app_name, user_id, session_id, doomed
                )
            return len(doomed)

        return await self._run("trim_events", True, body)

    async def _delete_user(self, *, app_name: str, user_id: str) -> int:
        async def body(conn: AsyncConnection) -> int:
            ids = [
                row.id
                for row in (
                    await conn.execute(
                        select(sessions.c.id).where(
                            sessions.c.app_name == app_name, sessions.c.user_id == user_id
                        )
                    )
                ).all()
            ]
            await conn.execute(
                delete(session_expiry).where(
                    session_expiry.c.app_name == app_name, session_expiry.c.user_id == user_id
                )
            )
            # metadata: the user's titles and labels go with the sessions.
            await _metadata_sql.delete_user_metadata(conn, app_name, user_id)
            if self._search_on:
                # search: and their events' index rows.
                await _search.unindex_user(conn, self._dialect, app_name, user_id)
            await conn.execute(
                delete(events).where(events.c.app_name == app_name, events.c.user_id == user_id)
            )
            await conn.execute(
                delete(sessions).where(
                    sessions.c.app_name == app_name, sessions.c.user_id == user_id
                )
            )
            await conn.execute(
                delete(user_states).where(
                    user_states.c.app_name == app_name, user_states.c.user_id == user_id
                )
            )
            return len(ids)

        deleted = await self._run("delete_user", True, body)
        if self._event_cache is not None:
            self._event_cache.drop_user(app_name, user_id)
        return deleted

    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        async def body(conn: AsyncConnection) -> dict[str, Any]:
            value = (
                await conn.execute(
                    select(self._state(user_states.c.state)).where(
                        user_states.c.app_name == app_name, user_states.c.user_id == user_id
                    )
                )
            ).scalar()
            if value is None:
                return {}
            scope_key = {"app_name": app_name, "user_id": user_id}
            return _decode_state(value, "user_states", scope_key)

        return await self._run("get_user_state", False, body)

    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        if self._lite is not None:
            return await self._lite_append(session, event, plan)
        if self._pg is not None:
            fast = await self._pg_append(session, event, plan)
            if fast is not None:
                return fast
        if self._my is not None:
            fast = await self._my_append(session, event, plan)
            if fast is not None:
                return fast
        app_name, user_id, session_id = session.app_name, session.user_id, session.id
        key = (
            sessions.c.app_name == app_name,
            sessions.c.user_id == user_id,
            sessions.c.id == session_id,
        )
        event_key = (
            events.c.app_name == app_name,
            events.c.user_id == user_id,
            events.c.session_id == session_id,
        )

        flush = [False]

        async def body(conn: AsyncConnection) -> AppendOutcome:
            columns = [sessions.c.update_time]
            if plan.scoped.session:
                columns.append(self._state(sessions.c.state))
            row = (
                await conn.execute(
                    _dialects.lock_rows(
                        self._dialect,
                        select(*columns).where(*key, _live(self._db_time(self._clock()))),
                    )
                )
            ).first()
            if row is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            stored_time = from_db_time(row.update_time)
            last_event_id = None
            if session._storage_update_marker is None:
                last_event_id = (
                    await conn.execute(
                        select(events.c.id)
                        .where(*event_key)
                        .order_by(events.c.timestamp.desc(), events.c.id.desc())
                        .limit(1)
                    )
                ).scalar()
            if self._is_stale(session, _marker(stored_time), last_event_id):
                duplicate = await self._find_duplicate(
                    conn, event, plan, event_key, (app_name, user_id, session_id)
                )
                if duplicate is not None:
                    return duplicate
                raise StaleSessionError()
            timestamp, stamp = _next_time(event.timestamp, stored_time)
            db_stamp = stamp if self._aware_times else stamp.replace(tzinfo=None)
            await conn.execute(
                events.insert().values(
                    id=event.id,
                    app_name=app_name,
                    user_id=user_id,
                    session_id=session_id,
                    invocation_id=event.invocation_id,
                    timestamp=db_stamp,
                    # The base class built and checked the stored JSON (it parses back).
                    event_data=self._json_text(plan.text_at(timestamp)),
                )
            )
            if self._search_on:
                # search: indexed in the append's own transaction (on SQLite, into the
                # pending list, which `_flush_search` empties past PENDING_FLUSH_ROWS).
                pending = await _search.index_events(
                    conn,
                    self._dialect,
                    app_name,
                    user_id,
                    session_id,
                    [(event.id, event.author, timestamp, _search.text_of(event))],
                )
                flush[0] = pending >= _search.PENDING_FLUSH_ROWS
            values: dict[str, Any] = {"update_time": db_stamp}
            if plan.scoped.session:
                own = _decode_state(
                    row.state, "sessions", _session_key(app_name, user_id, session_id)
                )
                values["state"] = {**own, **plan.scoped.session}
            await conn.execute(update(sessions).where(*key).values(values))
            if plan.scoped.app or plan.scoped.user:
                await self._ensure_scope_rows(conn, app_name, user_id, db_stamp)
                await self._apply_scopes(conn, app_name, user_id, plan.scoped, db_stamp)
            return AppendOutcome(
                timestamp=timestamp, last_update_time=_epoch(stamp), marker=_marker(stamp)
            )

        try:
            outcome = await self._run("append_event", True, body)
        except exc.IntegrityError as error:
            if not _dialects.is_unique_violation(error):
                raise StorageError(f"append_event failed on {self._url}: {error.orig}") from error
        else:
            if flush[0]:
                # search: after the append's commit (the event is indexed already), in a
                # transaction of its own; the SQLite engine does this on its writer thread.
                # The append stands whatever happens here: a failed move is left to the next.
                try:
                    await self._flush_search("append_event")
                except StorageError as error:
                    logger.warning("Moving the pending search rows failed: %s", error)
            return outcome

        # The event id is taken: the same event appended again is a no-op, another is refused.
        async def check(conn: AsyncConnection) -> AppendOutcome | None:
            return await self._find_duplicate(
                conn, event, plan, event_key, (app_name, user_id, session_id)
            )

        duplicate = await self._run("append_event", False, check)
        if duplicate is None:
            raise ValueError(
                f"Event id {event.id} is already stored in session {session_id} with different "
                f"content; give the new event a new id."
            )
        return duplicate

    async def _find_duplicate(
        self,
        conn: AsyncConnection,
        event: Event,
        plan: AppendPlan,
        event_key: Any,
        key: _SessionKey,
    ) -> AppendOutcome | None:
        """The outcome of an earlier append of this same event, or None if it is not stored."""
        row = (
            await conn.execute(
                select(*self._event_columns()).where(events.c.id == event.id, *event_key)
            )
        ).first()
        if row is None:
            return None
        stored = _rows_to_events([row], key)[0]
        if stored != plan.stored_event(event, stored.timestamp):
            return None
        stamp = from_db_time(row.timestamp)
        return AppendOutcome(
            timestamp=stored.timestamp,
            last_update_time=_epoch(stamp),
            marker=_marker(stamp),
            duplicate=True,
        )

    # SQLite: one hop to a dedicated thread per operation --------------------------------------
    #
    # The same transactions as above, as fixed SQL on a stdlib sqlite3 connection owned by a
    # thread (see `_sqlite`). Each method builds one callable and ships it in one hop; what
    # needs the event cache (owned by the event loop's thread) runs after the hop.

    async def _lite_run(
        self, operation: str, write: bool, body: Callable[[_sqlite.Connection], _T]
    ) -> _T:
        """Runs ``body`` in one transaction on the writer (or reader) thread; errors as `_run`."""
        await self._prepare()
        lite = self._lite
        assert lite is not None
        worker = lite.writer if write else lite.reader

        def job(conn: _sqlite.Connection) -> _T:
            result = _sqlite.transaction(conn, write, body)
            if write:
                lite.wrote()
            return result

        for attempt in range(_RETRIES):
            try:
                return await worker.run(job)
            except sqlite3.OperationalError as error:
                if "locked" in str(error) and attempt < _RETRIES - 1:
                    await asyncio.sleep(random.uniform(0.002, 0.01) * (attempt + 1))
                    continue
                raise self._lite_error(operation, error) from error
            except sqlite3.Error as error:
                raise self._lite_error(operation, error) from error
            except UnicodeEncodeError as error:
                raise ValueError(_NOT_UNICODE.format(operation)) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _lite_error(self, operation: str, error: sqlite3.Error) -> StorageError:
        return StorageError(f"{operation} failed on {self._url}: {type(error).__name__}: {error}")

    def _lite_now(self) -> str:
        """The service clock's time as stored, to compare expiry times with."""
        return _sqlite.db_text_time(self._db_time(self._clock()))

    async def _lite_append(self, session: Session, event: Event, plan: AppendPlan) -> AppendOutcome:
        app_name, user_id, session_id = key = session.app_name, session.user_id, session.id
        now = self._lite_now()
        scoped = plan.scoped
        lock_sql = _LITE_LOCK_WITH_STATE if scoped.session else _LITE_LOCK
        marker = session._storage_update_marker
        search_text = _search.text_of(event) if self._search_on else ""

        def body(conn: _sqlite.Connection) -> AppendOutcome:
            row = conn.one(lock_sql, (app_name, user_id, session_id, now))
            if row is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            stored_time = from_db_time(row[0])
            last_event_id = None
            if marker is None:
                last = conn.one(_LITE_LAST_EVENT, key)
                last_event_id = None if last is None else last[0]
            if self._is_stale(session, _text_marker(row[0], stored_time), last_event_id):
                duplicate = self._lite_duplicate(conn, event, plan, key)
                if duplicate is not None:
                    return duplicate
                raise StaleSessionError()
            timestamp, stamp = _next_time(event.timestamp, stored_time)
            db_stamp = _sqlite.db_text_time(stamp.replace(tzinfo=None))
            try:
                conn.execute(
                    _LITE_INSERT_EVENT,
                    (
                        event.id,
                        app_name,
                        user_id,
                        session_id,
                        event.invocation_id,
                        db_stamp,
                        plan.text_at(timestamp),
                    ),
                )
            except sqlite3.IntegrityError as error:
                if "UNIQUE" not in str(error).upper():
                    raise StorageError(f"append_event failed on {self._url}: {error}") from error
                # The event id is taken: the same event appended again is a no-op.
                duplicate = self._lite_duplicate(conn, event, plan, key)
                if duplicate is None:
                    raise ValueError(
                        f"Event id {event.id} is already stored in session {session_id} with "
                        f"different content; give the new event a new id."
                    ) from None
                return duplicate
            if scoped.session:
                own = _decode_state(row[1], "sessions", _session_key(*key))
                conn.execute(
                    _LITE_UPDATE_SESSION_STATE,
                    (db_stamp, _sqlite.dumps({**own, **scoped.session}), *key),
                )
            else:
                conn.execute(_LITE_UPDATE_SESSION, (db_stamp, *key))
            if scoped.app or scoped.user:
                self._lite_scopes(conn, app_name, user_id, scoped, db_stamp, ensure=True)
            if search_text:
                # search: indexed in the append's own transaction, into the pending list.
                pending = conn.execute(
                    _LITE_INDEX_EVENT,
                    _search.index_params(
                        "sqlite", *key, (event.id, event.author, timestamp, search_text)
                    ),
                ).lastrowid
                self._lite_schedule_flush(pending or 0)
            return AppendOutcome(
                timestamp=timestamp,
                last_update_time=_epoch(stamp),
                marker=_text_marker(db_stamp, stamp),
            )

        return await self._lite_run("append_event", True, body)

    def _lite_schedule_flush(self, pending: int) -> None:
        """On the writer thread, after an append left ``pending`` index rows pending (search).

        Past PENDING_FLUSH_ROWS a flush is queued as a writer job of its own (behind the
        appends already waiting); below, it runs once the writer has been idle a moment.
        """
        lite = self._lite
        if lite is None:
            return
        if pending < _search.PENDING_FLUSH_ROWS:
            lite.writer.when_idle(self._lite_flush_job)
        elif not self._lite_flush_queued:
            self._lite_flush_queued = True
            lite.writer.submit(self._lite_flush_job)

    def _lite_flush_job(self, conn: _sqlite.Connection) -> None:
        self._lite_flush_queued = False
        _sqlite.transaction(conn, True, self._lite_flush_body)

    @staticmethod
    def _lite_flush_body(conn: _sqlite.Connection) -> None:
        for statement in _search.FLUSH_PENDING:
            conn.execute(statement)

    def _lite_duplicate(
        self, conn: _sqlite.Connection, event: Event, plan: AppendPlan, key: _SessionKey
    ) -> AppendOutcome | None:
        """`_find_duplicate` on the SQLite thread."""
        row = conn.one(_LITE_EVENT_BY_ID, (event.id, *key))
        if row is None:
            return None
        stored = _rows_to_events([_sqlite.EventRow(*row)], key)[0]
        if stored != plan.stored_event(event, stored.timestamp):
            return None
        stamp = from_db_time(row[2])
        return AppendOutcome(
            timestamp=stored.timestamp,
            last_update_time=_epoch(stamp),
            marker=_marker(stamp),
            duplicate=True,
        )

    def _lite_scopes(
        self,
        conn: _sqlite.Connection,
        app_name: str,
        user_id: str,
        scoped: ScopedDelta,
        stamp: str,
        *,
        ensure: bool,
    ) -> None:
        """Merges the app and user parts of a delta into their rows (made first if ``ensure``)."""
        if ensure:
            conn.execute(_LITE_ENSURE_APP, (app_name, stamp))
            conn.execute(_LITE_ENSURE_USER, (app_name, user_id, stamp))
        if scoped.app:
            row = conn.one(_LITE_APP_STATE, (app_name,))
            current = _decode_state(row[0], "app_states", {"app_name": app_name})
            conn.execute(
                _LITE_UPDATE_APP, (_sqlite.dumps({**current, **scoped.app}), stamp, app_name)
            )
        if scoped.user:
            row = conn.one(_LITE_USER_STATE, (app_name, user_id))
            user_key = {"app_name": app_name, "user_id": user_id}
            current = _decode_state(row[0], "user_states", user_key)
            conn.execute(
                _LITE_UPDATE_USER,
                (_sqlite.dumps({**current, **scoped.user}), stamp, app_name, user_id),
            )

    def _lite_events(
        self,
        conn: _sqlite.Connection,
        key: _SessionKey,
        config: GetSessionConfig | None,
    ) -> _LiteEvents:
        """A session's events, oldest first, as `_lite_finish_events` takes them.

        With the event cache on, only the ids and times are read, then the data of the events
        the cache does not hold (it is only peeked at here: the event loop's thread owns it).
        """
        where = _LITE_EVENTS_OF
        params: list[Any] = list(key)
        if config is not None and config.after_timestamp is not None:
            at = self._bound_time(config.after_timestamp, "after_timestamp")
            where += " AND timestamp >= ?"
            params.append(_sqlite.db_text_time(at))
        limit = ""
        if config is not None and config.num_recent_events is not None:
            limit = " LIMIT ?"
            params.append(min(config.num_recent_events, _MAX_ROWS))
        newest_first = " ORDER BY timestamp DESC, id DESC"
        cache = self._event_cache
        if cache is None:
            rows = conn.all(
                f"SELECT {_LITE_EVENT_COLUMNS} FROM events WHERE {where}{newest_first}{limit}",
                params,
            )
            rows.reverse()
            return _LiteEvents([], [_sqlite.EventRow(*r) for r in rows], None)
        order_rows = conn.all(
            f"SELECT id, timestamp FROM events WHERE {where}{newest_first}{limit}", params
        )
        order_rows.reverse()
        # Hits are taken here (the event objects, so a later eviction cannot lose them).
        order = [(r[0], r[1], cache.peek(key, r[0], r[1])) for r in order_rows]
        missing = [event_id for event_id, _, hit in order if hit is None]
        data: list[_sqlite.EventRow] = []
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            marks = ",".join("?" * len(chunk))
            data.extend(
                _sqlite.EventRow(*r)
                for r in conn.all(
                    f"SELECT {_LITE_EVENT_COLUMNS} FROM events WHERE {_LITE_EVENTS_OF} "
                    f"AND id IN ({marks})",
                    (*key, *chunk),
                )
            )
        return _LiteEvents(order, data, cache)

    def _lite_finish_events(self, key: _SessionKey, found: _LiteEvents) -> list[Event]:
        """Parses what `_lite_events` read and fills the cache (on the event loop's thread)."""
        parsed = _rows_to_events(found.data, key)
        cache = found.cache
        if cache is None:
            return parsed
        fresh: dict[str, Event] = {}
        for row, event in zip(found.data, parsed, strict=True):
            fresh[row.id] = event
            cache.put(key, row.id, row.timestamp, event)
        cache.touch(key)
        return [fresh[event_id] if hit is None else hit for event_id, _, hit in found.order]

    async def _lite_create(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None,
        metadata: SessionMetadata | None,
    ) -> Session:
        new_id = session_id or str(uuid.uuid4())
        key = (app_name, user_id, new_id)
        now_time = to_db_time(time.time()).replace(tzinfo=_UTC)
        now = _sqlite.db_text_time(now_time.replace(tzinfo=None))
        clock_now = self._lite_now()
        expires = None if expire_time is None else _sqlite.db_text_time(self._db_time(expire_time))

        def body(conn: _sqlite.Connection) -> tuple[Any, ...]:
            conn.execute(_LITE_ENSURE_APP, (app_name, now))
            conn.execute(_LITE_ENSURE_USER, (app_name, user_id, now))
            purged = False
            existing = None
            if session_id is not None:
                if conn.one(_LITE_EXPIRED, (*key, clock_now)) is not None:
                    for statement in _LITE_DELETE_SESSION:
                        conn.execute(statement, key)
                    if self._search_on:
                        conn.execute(_LITE_UNINDEX_SESSION, {"match": _search.session_match(*key)})
                        conn.execute(_LITE_UNPEND_SESSION, key)
                    purged = True
                existing = conn.one(_LITE_SESSION_ROW, key)
            created = (
                existing is None
                and conn.execute(
                    _LITE_INSERT_SESSION, (*key, _sqlite.dumps(state.session), now, now)
                ).rowcount
                == 1
            )
            found: _LiteEvents | None = None
            if created:
                own_state, update_time = state.session, now_time
            else:
                if not exist_ok:
                    raise AlreadyExistsError(f"Session with id {new_id} already exists.")
                row = existing if existing is not None else conn.one(_LITE_SESSION_ROW, key)
                own_state = _decode_state(row[0], "sessions", _session_key(*key))
                update_time = from_db_time(row[1])
                if state:
                    own_state = {**own_state, **state.session}
                    update_time = max(now_time, update_time + _ONE_MICROSECOND)
                    conn.execute(
                        _LITE_UPDATE_SESSION_STATE,
                        (
                            _sqlite.db_text_time(update_time.replace(tzinfo=None)),
                            _sqlite.dumps(own_state),
                            *key,
                        ),
                    )
                found = self._lite_events(conn, key, None)
            if expires is not None:
                conn.execute(_LITE_DELETE_EXPIRY, key)
                conn.execute(_LITE_INSERT_EXPIRY, (*key, expires))
            if state.app or state.user:
                self._lite_scopes(conn, app_name, user_id, state, now, ensure=False)
            scopes = conn.one(_LITE_SCOPES, (app_name, app_name, user_id))
            app_state, user_state = _decode_scopes(scopes[0], scopes[1], app_name, user_id)
            # metadata: the title and labels given, or (resuming) the stored ones.
            pair = self._lite_metadata(conn, key, metadata, created)
            return purged, own_state, app_state, user_state, update_time, found, pair

        purged, own_state, app_state, user_state, update_time, found, pair = await self._lite_run(
            "create_session", True, body
        )
        if purged and self._event_cache is not None:
            self._event_cache.drop(key)
        stored_events = [] if found is None else self._lite_finish_events(key, found)
        return self._session(
            app_name,
            user_id,
            new_id,
            own_state,
            app_state,
            user_state,
            update_time,
            stored_events,
            *pair,
        )

    def _lite_metadata(
        self,
        conn: _sqlite.Connection,
        key: _SessionKey,
        metadata: SessionMetadata | None,
        created: bool,
    ) -> tuple[str | None, dict[str, str]]:
        """`_metadata_sql.write_metadata` (or, without ``metadata``, its read) on the thread."""
        if metadata is None and created:
            return None, {}
        display_name: str | None = None
        labels: dict[str, str] = {}
        if not created:
            row = conn.one(_LITE_READ_METADATA, key)
            if row is not None:
                display_name = row[0]
                labels = _metadata_sql.decode_labels(row[1], _session_key(*key))
        if metadata is None:
            return display_name, labels
        if not isinstance(metadata.display_name, Unset):
            display_name = metadata.display_name
        labels_changed = not isinstance(metadata.labels, Unset)
        if not isinstance(metadata.labels, Unset):
            labels = dict(metadata.labels)
        if not created:
            conn.execute(_LITE_DELETE_METADATA, key)
        if display_name is not None or labels:
            conn.execute(_LITE_INSERT_METADATA, (*key, display_name, json.dumps(labels)))
        if labels_changed:
            if not created:
                conn.execute(_LITE_DELETE_LABELS, key)
            for label, value in labels.items():
                conn.execute(_LITE_INSERT_LABEL, (*key, label, value))
        return display_name, labels

    async def _lite_get(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> Session | None:
        key = (app_name, user_id, session_id)
        now = self._lite_now()

        def body(conn: _sqlite.Connection) -> tuple[Any, ...] | None:
            row = conn.one(_LITE_GET_SESSION, (app_name, app_name, user_id, *key, now))
            if row is None:
                return None
            own_state = _decode_state(row[0], "sessions", _session_key(*key))
            app_state, user_state = _decode_scopes(row[2], row[3], app_name, user_id)
            found = None
            if config is None or config.num_recent_events != 0:
                found = self._lite_events(conn, key, config)
            pair = row[4], _metadata_sql.decode_labels(row[5], _session_key(*key))
            return own_state, app_state, user_state, row[1], found, pair

        result = await self._lite_run("get_session", False, body)
        if result is None:
            return None
        own_state, app_state, user_state, update_time, found, pair = result
        stored_events = [] if found is None else self._lite_finish_events(key, found)
        return self._session(
            app_name,
            user_id,
            session_id,
            own_state,
            app_state,
            user_state,
            update_time,
            stored_events,
            *pair,
        )

    async def _lite_list(
        self, app_name: str, user_id: str | None, limit: int | None, after: PageKey | None
    ) -> ListSessionsResponse:
        # Two forms of the listing: with the title, labels and expiry of each session (a join
        # and a look-up per row), and, when the scopes statement finds no metadata or expiry
        # row for the app (or user), the sessions alone.
        sql = ""
        params: list[Any] = []
        if user_id is not None:
            sql += " AND s.user_id = ?"
            params.append(user_id)
        if after is not None:
            stamp, last_user, last_id = after
            at = _sqlite.db_text_time(self._bound_time(stamp, "page_token"))
            sql += (
                " AND (s.update_time > ? OR (s.update_time = ? AND s.user_id > ?)"
                " OR (s.update_time = ? AND s.user_id = ? AND s.id > ?))"
            )
            params += [at, at, last_user, at, last_user, last_id]
        sql += " ORDER BY s.update_time, s.user_id, s.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(min(limit, _MAX_ROWS) + 1)
        full_sql = _LITE_LIST + sql
        full_params = [app_name, self._lite_now(), *params]
        plain_sql = _LITE_LIST_PLAIN + sql
        plain_params = [app_name, *params]
        if user_id is None:
            scopes_sql = _LITE_LIST_SCOPES
            scope_params: tuple[str, ...] = (app_name,) * 4
        else:
            scopes_sql = _LITE_LIST_USER_SCOPES
            scope_params = (app_name, user_id, app_name, user_id, app_name, app_name, user_id)

        def body(conn: _sqlite.Connection) -> ListSessionsResponse:
            found = conn.all(scopes_sql, scope_params)
            plain = not any(row[2] for row in found if row[0] == 0)
            scopes = [(row[1], row[2]) for row in found if row[0] != 0]
            rows = conn.all(plain_sql, plain_params) if plain else conn.all(full_sql, full_params)
            return self._listing(app_name, limit, scopes, rows)

        return await self._lite_run("list_sessions", False, body)

    # PostgreSQL: one round trip per common operation on raw asyncpg ----------------------------
    #
    # `_postgres` has the statements. What they cannot settle alone (an append that matched no
    # row, a create of an id that exists, ...) goes on to the SQLAlchemy path above.

    async def _pg_run(self, operation: str, body: Callable[[Any], Awaitable[_T]]) -> _T:
        """Runs ``body`` on a pooled asyncpg connection; errors leave as `_run`'s do."""
        import asyncpg  # type: ignore[import-untyped]

        await self._prepare()
        pool = self._pg
        assert pool is not None
        try:
            return await pool.run(body)
        except asyncpg.PostgresError as error:
            if _dialects.is_unencodable(error):  # asyncpg's DataError around it
                raise ValueError(_NOT_UNICODE.format(operation)) from error
            sqlstate = getattr(error, "sqlstate", None)
            text = str(error).lower()
            if sqlstate == "22P05" or (sqlstate == "22021" and "0x00" in text):
                raise ValueError(
                    f"{operation}: the data contains a NUL character (\\x00), which "
                    f"{self._dialect} cannot store; remove or encode it."
                ) from error
            raise StorageError(
                f"{operation} failed on {self._url}: {type(error).__name__}: {error}"
            ) from error
        except UnicodeEncodeError as error:
            raise ValueError(_NOT_UNICODE.format(operation)) from error
        except (OSError, asyncio.TimeoutError, asyncpg.InterfaceError) as error:
            raise StorageError(
                f"{operation} failed: cannot reach the database at {self._url}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _pg_statement(self, key: tuple[Any, ...], build: Callable[[], str]) -> str:
        sql = self._pg_sql.get(key)
        if sql is None:
            sql = self._pg_sql[key] = build()
        return sql

    async def _pg_append(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome | None:
        """The common append in one statement; None when the locked path must decide."""
        import asyncpg

        marker = session._storage_update_marker
        if marker is None or self._on_stale == "merge":
            return None
        try:
            revision = datetime.datetime.fromisoformat(marker)
        except ValueError:
            return None
        timestamp, stamp = _next_time(event.timestamp, revision.replace(tzinfo=_UTC))
        scoped = plan.scoped
        search_text = _search.text_of(event) if self._search_on else ""
        flags = (bool(scoped.session), bool(scoped.app), bool(scoped.user), bool(search_text))
        sql = self._pg_statement(("append", *flags), lambda: _postgres.append_sql(*flags))
        args: list[Any] = [
            session.app_name,
            session.user_id,
            session.id,
            self._db_time(self._clock()),
            revision,
            stamp.replace(tzinfo=None),
            event.id,
            event.invocation_id,
            plan.text_at(timestamp),
        ]
        args.extend(dumps_keeping_floats(part) for part in scoped_parts(scoped) if part)
        if search_text:
            # search: the index row, written by the same statement.
            index_row = (event.id, event.author, timestamp, search_text)
            params = _search.index_params(
                "postgresql", session.app_name, session.user_id, session.id, index_row
            )
            args += [params["author"], float(timestamp), params["body"], params["terms"]]

        async def body(conn: Any) -> int:
            try:
                return int(await conn.fetchval(sql, *args))
            except (
                asyncpg.UniqueViolationError,  # the id is taken: a duplicate, or another event
                asyncpg.InvalidTextRepresentationError,  # a corrupt app or user state
                asyncpg.DeadlockDetectedError,
                asyncpg.SerializationError,
            ):
                return 0

        if await self._pg_run("append_event", body) != 1:
            return None
        return AppendOutcome(
            timestamp=timestamp, last_update_time=_epoch(stamp), marker=_marker(stamp)
        )

    async def _pg_create(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        metadata: SessionMetadata | None,
    ) -> Session | None:
        """A new session in one statement; None when the id exists (the locked path decides)."""
        new_id = session_id or str(uuid.uuid4())
        now = self._db_time(time.time())
        args: list[Any] = [app_name, user_id, new_id, now, dumps_keeping_floats(state.session)]
        display_name: str | None = None
        labels: dict[str, str] = {}
        sql = _postgres.CREATE_SQL
        if metadata is not None:
            # metadata: stored by the same statement, only if it creates the session.
            display_name, labels = _metadata_sql.new_metadata(metadata)
            if display_name is not None or labels:
                sql = _postgres.CREATE_WITH_METADATA_SQL
                args += [display_name, json.dumps(labels)]

        async def body(conn: Any) -> Any:
            return await conn.fetchrow(sql, *args)

        row = await self._pg_run("create_session", body)
        if row[0] != 1:
            return None
        app_state, user_state = _decode_scopes(row[1], row[2], app_name, user_id)
        return self._session(
            app_name,
            user_id,
            new_id,
            state.session,
            app_state,
            user_state,
            now,
            [],
            display_name,
            labels,
        )

    async def _pg_get(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> Session | None:
        key = (app_name, user_id, session_id)
        cache = self._event_cache
        recent = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        # Recent events come with their data (few, and they are what a first read needs);
        # a whole history comes as keys, and only the events not cached are fetched.
        with_data = cache is None or (recent is not None and recent <= 100)
        flags = (with_data, after is not None, recent is not None)
        sql = self._pg_statement(("get", *flags), lambda: _postgres.get_sql(*flags))
        args: list[Any] = [app_name, user_id, session_id, self._db_time(self._clock())]
        if after is not None:
            args.append(self._bound_time(after, "after_timestamp"))
        if recent is not None:
            args.append(min(recent, _MAX_ROWS))

        async def body(conn: Any) -> tuple[Any, list[Any]] | None:
            row = await conn.fetchrow(sql, *args)
            if row is None:
                return None
            records = row[4]
            records.reverse()
            if cache is None or with_data:
                return row, records
            missing = cache.missing(key, records)
            if not missing:
                return row, records
            data = {r[0]: r for r in await conn.fetch(_postgres.EVENT_DATA_SQL, *key, missing)}
            return row, [data.get(r[0], r) for r in records]

        found = await self._pg_run("get_session", body)
        if found is None:
            return None
        row, records = found
        return self._read_session(key, row, records, row[5], row[6])

    def _read_session(
        self,
        key: _SessionKey,
        row: Any,
        records: list[Any],
        display_name: str | None,
        labels_text: Any,
    ) -> Session:
        """A session from a PostgreSQL or MariaDB session row and its event records.

        The row starts with state, update time, app state and user state; the title and labels
        sit where each engine's statement puts them.
        """
        app_name, user_id, session_id = key
        own_state = _decode_state(row[0], "sessions", _session_key(*key))
        app_state, user_state = _decode_scopes(row[2], row[3], app_name, user_id)
        return self._session(
            app_name,
            user_id,
            session_id,
            own_state,
            app_state,
            user_state,
            row[1],
            self._pg_events(key, records),
            display_name,
            _metadata_sql.decode_labels(labels_text, _session_key(*key)),
        )

    def _pg_events(self, key: _SessionKey, records: list[Any]) -> list[Event]:
        """Events from (id, invocation_id, timestamp, data) records, cached ones reused."""
        cache = self._event_cache
        if cache is None:
            return _rows_to_events([_sqlite.EventRow(*r) for r in records], key)
        result = cache.get_many(key, records)
        todo = [_sqlite.EventRow(*r) for r, hit in zip(records, result, strict=True) if hit is None]
        if todo:
            parsed = iter(_rows_to_events(todo, key))
            for index, hit in enumerate(result):
                if hit is None:
                    event = next(parsed)
                    cache.put(key, records[index][0], records[index][2], event)
                    result[index] = event
        return typing_cast("list[Event]", result)

    async def _pg_list(
        self, app_name: str, user_id: str | None, limit: int | None, after: PageKey | None
    ) -> ListSessionsResponse:
        flags = (user_id is not None, after is not None, limit is not None)
        sql = self._pg_statement(("list", *flags), lambda: _postgres.list_sql(*flags))
        args: list[Any] = [app_name, self._db_time(self._clock())]
        if user_id is not None:
            args.append(user_id)
        if after is not None:
            stamp, last_user, last_id = after
            args += [self._bound_time(stamp, "page_token"), last_user, last_id]
        if limit is not None:
            args.append(min(limit, _MAX_ROWS) + 1)

        async def body(conn: Any) -> list[Any]:
            return typing_cast("list[Any]", await conn.fetch(sql, *args))

        rows = await self._pg_run("list_sessions", body)
        scopes = [(r[1], r[3]) for r in rows if r[0] != 2]
        return self._listing(app_name, limit, scopes, [r[1:] for r in rows if r[0] == 2])

    def _listing(
        self,
        app_name: str,
        limit: int | None,
        scope_rows: Sequence[Any],
        session_rows: Sequence[Any],
    ) -> ListSessionsResponse:
        """A listing from rows of the sessions and of the scopes.

        ``session_rows`` are (user_id, id, state, update_time, display_name, labels JSON), in
        list order; ``scope_rows`` are (user_id, state), user_id None for the app's.
        """
        scopes: dict[str | None, dict[str, Any]] = {}
        for scope_user, value in scope_rows:
            if scope_user is None:
                scopes[None] = _decode_state(value, "app_states", {"app_name": app_name})
            else:
                scope_key = {"app_name": app_name, "user_id": scope_user}
                scopes[scope_user] = _decode_state(value, "user_states", scope_key)
        rows = list(session_rows)
        more = limit is not None and len(rows) > limit
        if more:
            del rows[limit:]
        states = _decode_states(app_name, rows)
        # The app's and each user's keys, prefixed once per listing rather than once per session.
        app_part = _prefixed(scopes.get(None) or {}, "app:")
        parts: dict[str | None, dict[str, Any]] = {}
        result = []
        for (row_user, row_id, _, update_time, display_name, labels), own in zip(
            rows, states, strict=True
        ):
            part = parts.get(row_user)
            if part is None:
                user_part = _prefixed(scopes.get(row_user) or {}, "user:")
                part = parts[row_user] = {**app_part, **user_part}
            if part:
                # Decoded for this session alone, the state is its own: no copy; the shared
                # app and user values are copied where they are containers.
                for name, value in part.items():
                    own[name] = value if value.__class__ in _PLAIN else copy_json(value)
            if update_time.__class__ is str and len(update_time) == 26 and update_time[10] == " ":
                # SQLAlchemy's SQLite text form; the marker is its ISO form (with a "T").
                epoch = (_from_iso(update_time) - _EPOCH_NAIVE).total_seconds()
                marker = update_time[:10] + "T" + update_time[11:]
            else:
                epoch, marker = _stamp_fields(update_time)
            if labels is not None:
                labels = _metadata_sql.decode_labels(
                    labels, _session_key(app_name, row_user, row_id)
                )
            result.append(
                stored_session(
                    Session,
                    row_id,
                    app_name,
                    row_user,
                    own,
                    [],
                    epoch,
                    marker,
                    display_name,
                    labels,
                )
            )
        token = None
        if more:
            last = result[-1]
            token = encode_page_token((last.last_update_time, last.user_id, last.id))
        return ListSessionsResponse(sessions=result, next_page_token=token)

    # MySQL/MariaDB (aiomysql): the statements of an operation sent together --------------------
    #
    # `_mysql` has the statements. What they cannot settle alone goes on to the SQLAlchemy path.

    async def _my_run(self, operation: str, body: Callable[[Any], Awaitable[_T]]) -> _T:
        """Runs ``body`` on a pooled aiomysql cursor; errors leave as `_run`'s do."""
        import aiomysql  # type: ignore[import-untyped]

        await self._prepare()
        pool = self._my
        assert pool is not None
        try:
            return await pool.run(body)
        except UnicodeEncodeError as error:
            raise ValueError(_NOT_UNICODE.format(operation)) from error
        except aiomysql.Error as error:
            if _dialects.is_unencodable(error):
                raise ValueError(_NOT_UNICODE.format(operation)) from error
            if _mysql.dropped(error):
                raise StorageError(
                    f"{operation} failed: cannot reach the database at {self._url}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            raise StorageError(
                f"{operation} failed on {self._url}: {type(error).__name__}: {error}"
            ) from error
        except (OSError, asyncio.TimeoutError) as error:
            raise StorageError(
                f"{operation} failed: cannot reach the database at {self._url}: "
                f"{type(error).__name__}: {error}"
            ) from error

    async def _my_append(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome | None:
        """The common append in two round trips; None when the SQLAlchemy path must decide."""
        import aiomysql

        marker = session._storage_update_marker
        scoped = plan.scoped
        if marker is None or self._on_stale == "merge" or scoped.app or scoped.user:
            return None
        key = (session.app_name, session.user_id, session.id)
        now = self._db_time(self._clock())
        search_text = _search.text_of(event) if self._search_on else ""
        sql = _mysql.write_sql(bool(scoped.session), bool(search_text))

        async def body(cur: Any) -> AppendOutcome | None:
            lock = _mysql.LOCK_WITH_STATE_SQL if scoped.session else _mysql.LOCK_SQL
            await cur.execute(lock, (*key, now))
            row = await cur.fetchone()
            if row is None or _marker(from_db_time(row[0])) != marker:
                await cur.connection.rollback()
                return None
            timestamp, stamp = _next_time(event.timestamp, from_db_time(row[0]))
            db_stamp = stamp.replace(tzinfo=None)
            head = (event.id, *key, event.invocation_id, db_stamp, plan.text_at(timestamp))
            if scoped.session:
                try:
                    own = _decode_state(row[1], "sessions", _session_key(*key))
                except CorruptDataError:
                    await cur.connection.rollback()
                    raise
                params: tuple[Any, ...] = (
                    *head,
                    db_stamp,
                    json.dumps({**own, **scoped.session}),
                    *key,
                )
            else:
                params = (*head, db_stamp, *key)
            if search_text:
                # search: the index row, in the same packet, before the COMMIT.
                index = _search.index_params(
                    "mysql", *key, (event.id, event.author, timestamp, search_text)
                )
                params += (
                    *key,
                    event.id,
                    index["author"],
                    float(timestamp),
                    index["body"],
                    index["terms"],
                )
            try:
                await cur.execute(sql, params)
                await _mysql.results(cur)
            except (aiomysql.IntegrityError, aiomysql.OperationalError) as error:
                code = error.args[0] if error.args else None
                if code not in (1062, 1205, 1213):  # duplicate id, lock timeout, deadlock
                    raise
                await cur.connection.rollback()
                return None
            return AppendOutcome(
                timestamp=timestamp, last_update_time=_epoch(stamp), marker=_marker(stamp)
            )

        return await self._my_run("append_event", body)

    async def _my_create(
        self, app_name: str, user_id: str, session_id: str | None, state: ScopedDelta
    ) -> Session | None:
        """A new session in one round trip; None when the id exists (the other path decides)."""
        new_id = session_id or str(uuid.uuid4())
        now = self._db_time(time.time())
        params = (
            app_name,
            now,
            app_name,
            user_id,
            now,
            app_name,
            user_id,
            new_id,
            json.dumps(state.session),
            now,
            now,
            app_name,
            app_name,
            user_id,
        )

        async def body(cur: Any) -> Any:
            await cur.execute(_mysql.CREATE_SQL, params)
            return (await _mysql.results(cur))[3][0]

        row = await self._my_run("create_session", body)
        if row[0] != 1:
            return None
        app_state, user_state = _decode_scopes(row[1], row[2], app_name, user_id)
        return self._session(
            app_name, user_id, new_id, state.session, app_state, user_state, now, []
        )

    async def _my_get(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> Session | None:
        key = (app_name, user_id, session_id)
        cache = self._event_cache
        recent = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        with_data = cache is None or (recent is not None and recent <= 100)
        flags = (with_data, after is not None, recent is not None)
        sql = self._pg_statement(
            ("my-get", *flags),
            lambda: f"{_mysql.SESSION_SQL}; {_mysql.events_sql(*flags)}; COMMIT",
        )
        # A whole history checked against the cache comes as one folded row (`stamps_sql`).
        folded_sql = self._pg_statement(
            ("my-get-folded", *flags[1:]),
            lambda: f"{_mysql.SESSION_SQL}; {_mysql.stamps_sql(*flags[1:])}; COMMIT",
        )
        params: list[Any] = [app_name, app_name, user_id, *key, self._db_time(self._clock())]
        params += key
        if after is not None:
            params.append(self._bound_time(after, "after_timestamp"))
        if recent is not None:
            params.append(min(recent, _MAX_ROWS))

        async def body(cur: Any) -> tuple[Any, list[Any]] | None:
            records: list[Any] | None = None
            if not with_data:
                await cur.execute(folded_sql, params)
                sets = await _mysql.results(cur)
                if not sets[0]:
                    return None
                records = _mysql.parse_stamps(sets[1][0])
            if records is None:  # with data, or a history too long to fold into one row
                await cur.execute(sql, params)
                sets = await _mysql.results(cur)
                if not sets[0]:
                    return None
                records = sets[1]
                records.reverse()
            if cache is None or with_data:
                return sets[0][0], records
            missing = cache.missing(key, records)
            if not missing:
                return sets[0][0], records
            data: dict[str, Any] = {}
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                await cur.execute(_mysql.event_data_sql(len(chunk)), (*key, *chunk))
                data.update((r[0], r) for r in (await _mysql.results(cur))[0])
            return sets[0][0], [data.get(r[0], r) for r in records]

        found = await self._my_run("get_session", body)
        if found is None:
            return None
        row, records = found
        return self._read_session(key, row, records, row[4], row[5])

    async def _my_list(
        self, app_name: str, user_id: str | None, limit: int | None, after: PageKey | None
    ) -> ListSessionsResponse:
        flags = (user_id is not None, after is not None, limit is not None)
        sql = self._pg_statement(("my-list", *flags), lambda: _mysql.list_sql(*flags))
        params: list[Any] = [app_name, app_name]
        if user_id is not None:
            params.append(user_id)
        params += [app_name, self._db_time(self._clock())]
        if user_id is not None:
            params.append(user_id)
        if after is not None:
            stamp, last_user, last_id = after
            at = self._bound_time(stamp, "page_token")
            params += [at, at, last_user, at, last_user, last_id]
        if limit is not None:
            params.append(min(limit, _MAX_ROWS) + 1)

        async def body(cur: Any) -> list[list[Any]]:
            await cur.execute(sql, params)
            return await _mysql.results(cur)

        sets = await self._my_run("list_sessions", body)
        return self._listing(app_name, limit, sets[0], sets[1])


_SessionKey = tuple[str, str, str]


# The SQLite engine's statements, fixed strings that sqlite3 keeps prepared -------------------

_LITE_LIVE = (
    "NOT EXISTS (SELECT 1 FROM openadk_session_expiry x WHERE x.app_name = s.app_name "
    "AND x.user_id = s.user_id AND x.session_id = s.id AND x.expire_time <= ?)"
)
_LITE_SESSION_KEY = "s.app_name = ? AND s.user_id = ? AND s.id = ?"
_LITE_LOCK = f"SELECT s.update_time FROM sessions s WHERE {_LITE_SESSION_KEY} AND {_LITE_LIVE}"
_LITE_LOCK_WITH_STATE = (
    f"SELECT s.update_time, s.state FROM sessions s WHERE {_LITE_SESSION_KEY} AND {_LITE_LIVE}"
)
_LITE_EVENTS_OF = "app_name = ? AND user_id = ? AND session_id = ?"
_LITE_EVENT_COLUMNS = "id, invocation_id, timestamp, event_data"
_LITE_LAST_EVENT = (
    f"SELECT id FROM events WHERE {_LITE_EVENTS_OF} ORDER BY timestamp DESC, id DESC LIMIT 1"
)
_LITE_EVENT_BY_ID = f"SELECT {_LITE_EVENT_COLUMNS} FROM events WHERE id = ? AND {_LITE_EVENTS_OF}"
_LITE_INSERT_EVENT = (
    "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, timestamp, "
    "event_data) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_LITE_UPDATE_SESSION = (
    "UPDATE sessions SET update_time = ? WHERE app_name = ? AND user_id = ? AND id = ?"
)
_LITE_UPDATE_SESSION_STATE = (
    "UPDATE sessions SET update_time = ?, state = ? WHERE app_name = ? AND user_id = ? AND id = ?"
)
_LITE_ENSURE_APP = (
    "INSERT INTO app_states (app_name, state, update_time) VALUES (?, '{}', ?) "
    "ON CONFLICT DO NOTHING"
)
_LITE_ENSURE_USER = (
    "INSERT INTO user_states (app_name, user_id, state, update_time) VALUES (?, ?, '{}', ?) "
    "ON CONFLICT DO NOTHING"
)
_LITE_APP_STATE = "SELECT state FROM app_states WHERE app_name = ?"
_LITE_USER_STATE = "SELECT state FROM user_states WHERE app_name = ? AND user_id = ?"
_LITE_UPDATE_APP = "UPDATE app_states SET state = ?, update_time = ? WHERE app_name = ?"
_LITE_UPDATE_USER = (
    "UPDATE user_states SET state = ?, update_time = ? WHERE app_name = ? AND user_id = ?"
)
_LITE_SCOPES = f"SELECT ({_LITE_APP_STATE}), ({_LITE_USER_STATE})"
_LITE_EXPIRY_KEY = "app_name = ? AND user_id = ? AND session_id = ?"
_LITE_EXPIRED = (
    f"SELECT 1 FROM openadk_session_expiry WHERE {_LITE_EXPIRY_KEY} AND expire_time <= ?"
)
_LITE_DELETE_EXPIRY = f"DELETE FROM openadk_session_expiry WHERE {_LITE_EXPIRY_KEY}"
_LITE_INSERT_EXPIRY = (
    "INSERT INTO openadk_session_expiry (app_name, user_id, session_id, expire_time) "
    "VALUES (?, ?, ?, ?)"
)
_LITE_DELETE_SESSION = (
    _LITE_DELETE_EXPIRY,
    f"DELETE FROM openadk_session_labels WHERE {_LITE_EVENTS_OF}",
    f"DELETE FROM openadk_session_metadata WHERE {_LITE_EVENTS_OF}",
    f"DELETE FROM events WHERE {_LITE_EVENTS_OF}",
    "DELETE FROM sessions WHERE app_name = ? AND user_id = ? AND id = ?",
)
_LITE_SESSION_ROW = (
    "SELECT state, update_time FROM sessions WHERE app_name = ? AND user_id = ? AND id = ?"
)
_LITE_INSERT_SESSION = (
    "INSERT INTO sessions (app_name, user_id, id, state, create_time, update_time) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# metadata: a session's title and labels, joined on the metadata table's primary key.
_LITE_WITH_METADATA = (
    "sessions s LEFT JOIN openadk_session_metadata m ON m.app_name = s.app_name "
    "AND m.user_id = s.user_id AND m.session_id = s.id"
)
_LITE_GET_SESSION = (
    f"SELECT s.state, s.update_time, ({_LITE_APP_STATE}), ({_LITE_USER_STATE}), "
    f"m.display_name, m.labels FROM {_LITE_WITH_METADATA} "
    f"WHERE {_LITE_SESSION_KEY} AND {_LITE_LIVE}"
)
_LITE_LIST = (
    f"SELECT s.user_id, s.id, s.state, s.update_time, m.display_name, m.labels "
    f"FROM {_LITE_WITH_METADATA} WHERE s.app_name = ? AND {_LITE_LIVE}"
)
_LITE_READ_METADATA = (
    f"SELECT display_name, labels FROM openadk_session_metadata WHERE {_LITE_EVENTS_OF}"
)
_LITE_DELETE_METADATA = f"DELETE FROM openadk_session_metadata WHERE {_LITE_EVENTS_OF}"
_LITE_DELETE_LABELS = f"DELETE FROM openadk_session_labels WHERE {_LITE_EVENTS_OF}"
_LITE_INSERT_METADATA = (
    "INSERT INTO openadk_session_metadata (app_name, user_id, session_id, display_name, labels) "
    "VALUES (?, ?, ?, ?, ?)"
)
_LITE_INSERT_LABEL = (
    "INSERT INTO openadk_session_labels (app_name, user_id, session_id, key, value) "
    "VALUES (?, ?, ?, ?, ?)"
)
# search: the index row of an appended event; a session's rows, found by its scope token.
# The row goes to the pending list (see `_search`); its rowid counts the rows pending.
_LITE_INDEX_EVENT = _search.PENDING_INSERT
_LITE_UNINDEX_SESSION = (
    f"DELETE FROM {_search.SEARCH_TABLE} WHERE {_search.SEARCH_TABLE} MATCH :match"
)
_LITE_UNPEND_SESSION = (
    f"DELETE FROM {_search.PENDING_TABLE} WHERE app_name = ? AND user_id = ? AND session_id = ?"
)
_LITE_LIST_PLAIN = (
    "SELECT s.user_id, s.id, s.state, s.update_time, NULL, NULL FROM sessions s "
    "WHERE s.app_name = ?"
)
# (kind, user_id, state): the scopes' states (kind 1, user_id None for the app's), and a flag
# row (kind 0): whether any session of the app (or user) has a title, labels or an expiry time,
# which needs `_LITE_LIST`'s join; without, `_LITE_LIST_PLAIN` gives the same rows.
_LITE_LIST_SCOPES = (
    "SELECT 0, NULL, EXISTS (SELECT 1 FROM openadk_session_metadata WHERE app_name = ?) "
    "OR EXISTS (SELECT 1 FROM openadk_session_expiry WHERE app_name = ?) "
    "UNION ALL SELECT 1, NULL, state FROM app_states WHERE app_name = ? "
    "UNION ALL SELECT 1, user_id, state FROM user_states WHERE app_name = ?"
)
_LITE_LIST_USER_SCOPES = (
    "SELECT 0, NULL, EXISTS (SELECT 1 FROM openadk_session_metadata WHERE app_name = ? "
    "AND user_id = ?) "
    "OR EXISTS (SELECT 1 FROM openadk_session_expiry WHERE app_name = ? AND user_id = ?) "
    "UNION ALL SELECT 1, NULL, state FROM app_states WHERE app_name = ? "
    "UNION ALL SELECT 1, user_id, state FROM user_states WHERE app_name = ? AND user_id = ?"
)


class _LiteEvents(NamedTuple):
    """What `_lite_events` read.

    The order (id, stored time, cached event or None), the rows to parse, and the cache they go
    into (None: no cache, and ``data`` is the whole answer).
    """

    order: list[tuple[str, Any, Event | None]]
    data: list[_sqlite.EventRow]
    cache: _EventCache | None


_PLAIN = (str, int, float, bool, type(None))


def scoped_parts(scoped: ScopedDelta) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A delta's session, app and user parts, in `_postgres.append_sql`'s parameter order."""
    return scoped.session, scoped.app, scoped.user


class _EventCache:
    """Parsed events by session, least recently read sessions evicted first.

    An entry is used only while its stored timestamp matches the row's, so a row replaced under
    the same id (a session deleted and recreated elsewhere) is parsed again.
    """

    def __init__(self, max_events: int) -> None:
        self._max = max_events
        self._count = 0
        self._sessions: OrderedDict[_SessionKey, dict[str, tuple[Any, Event]]] = OrderedDict()

    def get(self, key: _SessionKey, event_id: str, stamp: Any) -> Event | None:
        entries = self._sessions.get(key)
        if entries is None:
            return None
        self._sessions.move_to_end(key)
        hit = entries.get(event_id)
        return hit[1] if hit is not None and hit[0] == stamp else None

    def get_many(self, key: _SessionKey, records: list[Any]) -> list[Event | None]:
        """`get` of each (id, _, stamp, ...) record, in order; None where not cached."""
        entries = self._sessions.get(key)
        if entries is None:
            return [None] * len(records)
        self._sessions.move_to_end(key)
        found = entries.get
        result: list[Event | None] = []
        for record in records:
            hit = found(record[0])
            result.append(hit[1] if hit is not None and hit[0] == record[2] else None)
        return result

    def missing(self, key: _SessionKey, records: list[Any]) -> list[Any]:
        """The ids of the (id, _, stamp, ...) records `peek` would not find."""
        entries = self._sessions.get(key)
        if entries is None:
            return [record[0] for record in records]
        found = entries.get
        lost: list[Any] = []
        for record in records:
            hit = found(record[0])
            if hit is None or hit[0] != record[2]:
                lost.append(record[0])
        return lost

    def peek(self, key: _SessionKey, event_id: str, stamp: Any) -> Event | None:
        """`get` without marking the session recently used (safe from another thread)."""
        entries = self._sessions.get(key)
        hit = None if entries is None else entries.get(event_id)
        return hit[1] if hit is not None and hit[0] == stamp else None

    def touch(self, key: _SessionKey) -> None:
        """Marks the session recently used."""
        if key in self._sessions:
            self._sessions.move_to_end(key)

    def put(self, key: _SessionKey, event_id: str, stamp: Any, event: Event) -> None:
        entries = self._sessions.setdefault(key, {})
        self._sessions.move_to_end(key)
        if event_id not in entries:
            self._count += 1
        entries[event_id] = (stamp, event)
        while self._count > self._max and len(self._sessions) > 1:
            _, evicted = self._sessions.popitem(last=False)
            self._count -= len(evicted)

    def drop(self, key: _SessionKey) -> None:
        self._count -= len(self._sessions.pop(key, {}))

    def drop_user(self, app_name: str, user_id: str) -> None:
        for key in [k for k in self._sessions if k[0] == app_name and k[1] == user_id]:
            self.drop(key)


def _expiry_key(app_name: str, user_id: str, session_id: str) -> tuple[Any, ...]:
    return (
        session_expiry.c.app_name == app_name,
        session_expiry.c.user_id == user_id,
        session_expiry.c.session_id == session_id,
    )


def _live(now: datetime.datetime) -> Any:
    """Sessions that have not expired (no expiry row, or one in the future)."""
    return ~(
        select(session_expiry.c.session_id)
        .where(
            session_expiry.c.app_name == sessions.c.app_name,
            session_expiry.c.user_id == sessions.c.user_id,
            session_expiry.c.session_id == sessions.c.id,
            session_expiry.c.expire_time <= now,
        )
        .exists()
    )


def _next_time(requested: float, last: datetime.datetime) -> tuple[float, datetime.datetime]:
    """The event's timestamp and stored time: ``requested``, or one microsecond after ``last``.

    Stored times have microsecond precision, and each write to a session must get a later one:
    it orders the events and is the session's revision marker.
    """
    try:
        stamp = datetime.datetime.fromtimestamp(requested, tz=_UTC)
        floor = last + _ONE_MICROSECOND
    except (OverflowError, ValueError, OSError) as error:
        raise ValueError(
            f"event.timestamp {requested!r} is not a time a database can store ({error}); "
            f"give Unix seconds within the years 1-9999."
        ) from None
    if stamp >= floor:
        return requested, stamp
    return floor.timestamp(), floor


def _session_key(app_name: str, user_id: str, session_id: str) -> dict[str, str]:
    return {"app_name": app_name, "user_id": user_id, "id": session_id}


def _row_name(table: str, key: dict[str, str]) -> str:
    shown = ", ".join(f"{name}={value!r}" for name, value in key.items())
    return f"the {table} row ({shown})"


def _decode_states(app_name: str, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The states of (user_id, id, state, ...) session rows, decoded in one ``json.loads``.

    Any row that is not a JSON object text on its own (checked one by one only then) is
    decoded alone, so a corrupt one is named.
    """
    texts = [row[2] for row in rows]
    if texts and all(type(text) is str and text[:1] == "{" and text[-1:] == "}" for text in texts):
        try:
            decoded = json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            decoded = None
        if (
            isinstance(decoded, list)
            and len(decoded) == len(texts)
            and all(type(state) is dict for state in decoded)
        ):
            return decoded
    return [
        _decode_state(row[2], "sessions", _session_key(app_name, row[0], row[1])) for row in rows
    ]


def _stamp_fields(value: Any) -> tuple[float, str]:
    """A stored update time as (Unix seconds, revision marker), fast for the usual forms."""
    if value.__class__ is str and len(value) == 26 and value[10] == " ":
        # SQLAlchemy's SQLite text form: the marker is the ISO form with a "T".
        return (_from_iso(value) - _EPOCH_NAIVE).total_seconds(), value[:10] + "T" + value[11:]
    if value.__class__ is datetime.datetime and value.tzinfo is None:
        # Naive UTC; the difference is what `timestamp()` of the aware time computes, cheaper.
        return (value - _EPOCH_NAIVE).total_seconds(), value.isoformat(timespec="microseconds")
    stamp = from_db_time(value)
    return _epoch(stamp), _marker(stamp)


def _text_marker(text: Any, stamp: datetime.datetime) -> str:
    """`_marker` of ``stamp``, read off ``text``, its stored form, when that is SQLAlchemy's."""
    if text.__class__ is str and len(text) == 26 and text[10] == " ":
        return text[:10] + "T" + text[11:]
    return _marker(stamp)


def _prefixed(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + name: value for name, value in state.items()}


_from_iso = datetime.datetime.fromisoformat
_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)


def _decode_state(value: Any, table: str, key: dict[str, str]) -> dict[str, Any]:
    """A stored state (JSON text, or decoded by the driver) as a dict.

    Raises:
        CorruptDataError: The row holds something else (written by another tool, or edited by
            hand), naming the table and the row's key; the parse error is the cause.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise CorruptDataError(
                f"Cannot read {_row_name(table, key)}: its state is not valid JSON ({error}). "
                f"Fix or delete the row.",
                table=table,
                key=key,
            ) from error
    if isinstance(value, dict):
        return value
    kind = _JSON_KINDS.get(type(value), type(value).__name__)
    cause = TypeError(f"state is a JSON {kind}, not an object")
    raise CorruptDataError(
        f"Cannot read {_row_name(table, key)}: its state is a JSON {kind}, not an object. "
        f"Fix or delete the row.",
        table=table,
        key=key,
    ) from cause


_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _decode_scopes(
    app_value: Any, user_value: Any, app_name: str, user_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The app's and the user's stored state (None when there is no row) as dicts."""
    app_state = (
        {} if app_value is None else _decode_state(app_value, "app_states", {"app_name": app_name})
    )
    user_key = {"app_name": app_name, "user_id": user_id}
    user_state = {} if user_value is None else _decode_state(user_value, "user_states", user_key)
    return app_state, user_state


def _rows_to_events(rows: Sequence[Any], key: _SessionKey) -> list[Event]:
    """Parses stored events in one pass; the id and invocation id columns win, as in google-adk.

    Raises:
        CorruptDataError: A row's ``event_data`` is not a valid event (written by another tool, or
            edited by hand), naming the row; the parse error is the cause.
    """
    if not rows:
        return []
    text = "[" + ",".join(row.data if row.data else "{}" for row in rows) + "]"
    try:
        parsed = _EVENT_LIST.validate_json(text)
        if len(parsed) != len(rows):
            raise ValueError("the rows' JSON does not split into one event per row")
    except ValueError:
        # Find the bad row (rare, so parsed again one by one) to name it.
        parsed = [_row_to_event(row, key) for row in rows]
    for row, event in zip(rows, parsed, strict=True):
        if event.id != row.id:
            event.id = row.id
        if event.invocation_id != row.invocation_id:
            event.invocation_id = row.invocation_id
        if "timestamp" not in event.model_fields_set:
            event.timestamp = from_db_time(row.timestamp).timestamp()
    return parsed


def _row_to_event(row: Any, key: _SessionKey) -> Event:
    app_name, user_id, session_id = key
    try:
        return Event.model_validate_json(row.data or "{}")
    except ValueError as error:
        row_key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
        row_key["id"] = row.id
        detail = str(error).splitlines()
        shown = "; ".join(line.strip() for line in detail[:3]) if detail else repr(error)
        raise CorruptDataError(
            f"Cannot read {_row_name('events', row_key)}: its event_data is not a valid event "
            f"({shown}). Fix or delete the row.",
            table="events",
            key=row_key,
        ) from error


def _check_layout(sync_conn: Any) -> None:
    """Refuses databases in a layout this service cannot use, before anything is created."""
    inspector = inspect(sync_conn)
    tables = set(inspector.get_table_names())
    if "adk_internal_metadata" in tables or "events" not in tables:
        return
    columns = {c["name"]: c for c in inspector.get_columns("events")}
    if "actions" in columns and "event_data" not in columns:
        raise ValueError(
            "This database uses google-adk's V0 (pickle) session schema. openadk uses the V1 "
            "schema; upgrade it in place with `openadk db upgrade` (or auto_upgrade=True)."
        )
    if "sessions" in tables:
        update_type = {c["name"]: c for c in inspector.get_columns("sessions")}.get("update_time")
        if update_type is not None and str(update_type["type"]).upper() in ("REAL", "FLOAT"):
            raise ValueError(
                "This SQLite file was written by google-adk's SqliteSessionService, whose layout "
                "differs from google-adk's DatabaseSessionService schema that openadk uses. Copy "
                "it into a database openadk uses (it only reads the file): openadk migrate-from "
                "sqlite:///PATH/TO/session.db sqlite:///sessions.db"
            )
