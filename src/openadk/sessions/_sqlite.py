"""The SQLite engine of `DatabaseSessionService`: each operation is one hop to a dedicated thread.

An append through aiosqlite and SQLAlchemy costs fifteen hops into aiosqlite's worker thread,
each a wake-up of the event loop; SQLite itself does the whole transaction in a fraction of that.
Here each operation is one callable, run on a stdlib `sqlite3` connection owned by its own thread:
one writer (``BEGIN IMMEDIATE``, the whole transaction, ``COMMIT``) and one reader on its own WAL
connection, so reads never wait for a write. The statements are fixed strings, which `sqlite3`
keeps prepared in its statement cache.

The tables, the stored formats (JSON text, SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff`` times) and
every behaviour are those of the SQLAlchemy path, which keeps serving the other operations on the
same file (SQLite's locks and the busy timeout order the two).

Connections are opened with the engine's connect arguments and get its ``connect`` listeners
(the service's pragmas, and any the caller added); its ``before_cursor_execute`` listeners see
every statement run here; disposing of the engine closes these connections too.

WAL checkpoints run on a third thread with its own connection. SQLite otherwise checkpoints in
the commit that takes the log past ``wal_autocheckpoint`` pages: with an append writing some
fifteen pages (the event, its indexes, the session row, the search index), one append in
seventy paid for copying the log into the database and two fsyncs, which was most of the mean
append time. The writer asks for a passive checkpoint every `CHECKPOINT_EVERY` write
transactions and keeps its own automatic checkpoint, at four times the configured size, only as
a backstop. With ``wal_autocheckpoint`` set to 0 by a connect listener (the caller checkpoints)
or outside WAL mode, nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["CUSTOM_CONNECTIONS", "SqliteThreads", "Worker", "db_text_time", "fast_path_allowed"]

_T = TypeVar("_T")
IDLE_SECONDS = 0.05
"""How long a worker waits for a job before running its idle job (see `Worker.when_idle`)."""

logger = logging.getLogger("openadk.sessions")

CHECKPOINT_EVERY = 64
"""Write transactions between two background checkpoints (about SQLite's default 1,000 pages
of log at fifteen pages an append)."""

# Engine arguments that change how connections are made: the service then uses SQLAlchemy alone.
CUSTOM_CONNECTIONS = {"creator", "async_creator", "module", "poolclass", "pool", "connect_args"}


def fast_path_allowed(engine: AsyncEngine, engine_kwargs: dict[str, Any]) -> bool:
    """Whether the dedicated-thread path can serve this engine: a SQLite file through aiosqlite."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.get_driver_name() != "aiosqlite":
        return False
    if url.database in (None, "", ":memory:") or "mode=memory" in str(url.database):
        return False
    return not (CUSTOM_CONNECTIONS & set(engine_kwargs))


def db_text_time(value: datetime.datetime) -> str:
    """A naive UTC time as SQLAlchemy stores it on SQLite."""
    return value.isoformat(sep=" ", timespec="microseconds")


class EventRow(NamedTuple):
    """A stored event as `_rows_to_events` reads it."""

    id: str
    invocation_id: str
    timestamp: Any
    data: str | None


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Connection:
    """A `sqlite3` connection that reports statements to the engine's listeners."""

    def __init__(self, raw: sqlite3.Connection, dispatch: Any) -> None:
        self.raw = raw
        self._dispatch = dispatch

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        trace = self._dispatch.before_cursor_execute
        if trace:
            trace(None, None, sql, params, None, False)
        return self.raw.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()


class Worker:
    """A thread owning one connection, running one callable per operation on it."""

    def __init__(self, name: str, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False
        self._start_lock = threading.Lock()
        # Touched on the worker's own thread only.
        self._idle: Callable[[Connection], Any] | None = None

    def _next_job(self) -> Any:
        idle = self._idle
        if idle is None:
            return self._jobs.get()
        try:
            return self._jobs.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            self._idle = None
            return (idle, None, None)

    def _main(self) -> None:
        conn: Connection | None = None
        while True:
            job = self._next_job()
            if job is None:
                break
            fn, loop, future = job
            if fn is _RESET:
                if conn is not None:
                    conn.raw.close()
                    conn = None
                continue
            try:
                if conn is None:
                    conn = self._connect()
                result = fn(conn)
            except BaseException as error:  # handed to the awaiting task
                if loop is None:
                    # A background job (`submit`, `when_idle`): no one waits for it.
                    logger.warning(
                        "%s: background job failed: %s: %s",
                        self._thread.name,
                        type(error).__name__,
                        error,
                    )
                    continue
                # A closed loop (RuntimeError) has no one waiting.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_deliver, future, False, error)
            else:
                if loop is None:
                    continue
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_deliver, future, True, result)
        if conn is not None:
            conn.raw.close()

    def _start(self) -> None:
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._thread.start()
                    self._started = True

    async def run(self, fn: Callable[[Connection], _T]) -> _T:
        """Runs ``fn`` with the connection in the thread; one hop there and back."""
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((fn, loop, future))
        return await future

    def submit(self, fn: Callable[[Connection], Any]) -> None:
        """Queues ``fn`` behind the jobs already queued; no one waits for it (errors are logged)."""
        self._start()
        self._jobs.put((fn, None, None))

    def when_idle(self, fn: Callable[[Connection], Any]) -> None:
        """On the worker's thread (inside a job): runs ``fn`` once no job comes for a moment.

        Replaces the idle job set before, if it has not run yet.
        """
        self._idle = fn

    def reset(self) -> None:
        """Closes the connection; the next operation opens a new one."""
        self._jobs.put((_RESET, None, None))

    def stop(self) -> threading.Thread | None:
        """Closes the connection and ends the thread; returns it to join, if it ran."""
        self._jobs.put(None)
        return self._thread if self._started else None


def _RESET(_conn: Connection) -> None:
    raise AssertionError("never run")


class SqliteThreads:
    """The writer and reader threads of one SQLite file."""

    def __init__(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine
        args, kwargs = sync_engine.dialect.create_connect_args(engine.url)
        kwargs = dict(kwargs)
        kwargs["check_same_thread"] = False
        kwargs["isolation_level"] = None
        kwargs.setdefault("cached_statements", 256)
        self._args = list(args)
        self._kwargs = kwargs
        self._pool_dispatch = sync_engine.pool.dispatch
        self._engine_dispatch = sync_engine.dispatch
        self.writer = Worker("openadk-sqlite-writer", self._open_writer)
        self.reader = Worker("openadk-sqlite-reader", self._open)
        self.checkpointer = Worker("openadk-sqlite-checkpointer", self._open)
        # Written on the writer's thread only (`_checkpoint_queued` also by the checkpointer's).
        self._background_checkpoints = False
        self._writes = 0
        self._checkpoint_queued = False
        self.checkpoints = 0
        """Background checkpoints run so far."""
        self.last_checkpoint: tuple[int, int, int] | None = None
        """The last one's (busy, pages in the log, pages copied into the database)."""
        sa_event.listen(sync_engine, "engine_disposed", self._on_dispose)
        self._engine = sync_engine

    def _open(self) -> Connection:
        raw = sqlite3.connect(*self._args, **self._kwargs)  # type: ignore[call-overload]
        # The engine's connect listeners: the service's pragmas (WAL, foreign keys, busy
        # timeout, synchronous) and any the caller added.
        self._pool_dispatch.connect(raw, None)
        raw.isolation_level = None
        return Connection(raw, self._engine_dispatch)

    def _open_writer(self) -> Connection:
        conn = self._open()
        raw = conn.raw
        pages = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        wal = str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        self._background_checkpoints = wal and pages > 0
        if self._background_checkpoints:
            # A backstop only: the checkpointer thread keeps the log well below it.
            raw.execute(f"PRAGMA wal_autocheckpoint={pages * 4}")
        return conn

    def wrote(self) -> None:
        """Notes a committed write transaction (on the writer's thread); may queue a checkpoint."""
        self._writes += 1
        if self._writes < CHECKPOINT_EVERY or not self._background_checkpoints:
            return
        self._writes = 0
        if not self._checkpoint_queued:
            self._checkpoint_queued = True
            self.checkpointer.submit(self._checkpoint)

    def _checkpoint(self, conn: Connection) -> None:
        # Cleared first: writes committed while this runs queue the next one.
        self._checkpoint_queued = False
        # PASSIVE: copies what no reader still needs and never waits for (or blocks) a writer.
        busy, log_pages, copied = conn.raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.last_checkpoint = (busy, log_pages, copied)
        self.checkpoints += 1

    def _on_dispose(self, _engine: Any) -> None:
        self.writer.reset()
        self.reader.reset()
        self.checkpointer.reset()

    async def close(self) -> None:
        sa_event.remove(self._engine, "engine_disposed", self._on_dispose)
        workers = (self.writer, self.reader, self.checkpointer)
        threads = [t for t in (worker.stop() for worker in workers) if t is not None]
        for thread in threads:
            await asyncio.to_thread(thread.join)


def transaction(conn: Connection, write: bool, body: Callable[[Connection], _T]) -> _T:
    """Runs ``body`` in one transaction (``BEGIN IMMEDIATE`` for a write)."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = body(conn)
    except BaseException:
        if conn.raw.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def dumps(value: Any) -> str:
    """A state as the SQLAlchemy path stores it (``json.dumps``)."""
    return json.dumps(value)
