"""An async face on a synchronous SQLAlchemy connection, for dialects without an async driver.

Cloud Spanner's SQLAlchemy dialect (and some others) only has a synchronous driver. The database
service talks to every engine through the few `AsyncConnection` methods below; this adapter runs
each of them in a worker thread and buffers results there, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import Connection, Engine, Row

__all__ = ["BufferedResult", "ThreadedConnection", "threaded_connection"]


class BufferedResult:
    """The rows (or row count) of one statement, fetched in the worker thread."""

    def __init__(self, rows: list[Row[Any]] | None, rowcount: int) -> None:
        self.returns_rows = rows is not None
        self.rowcount = rowcount
        self._rows = rows or []

    def all(self) -> list[Row[Any]]:
        return list(self._rows)

    def first(self) -> Row[Any] | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Row[Any]:
        if len(self._rows) != 1:
            raise LookupError(f"Expected exactly one row, got {len(self._rows)}.")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


class ThreadedConnection:
    """The subset of `AsyncConnection` the database service uses, over a sync `Connection`."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Any, parameters: Any = None) -> BufferedResult:
        def run() -> BufferedResult:
            result = self._connection.execute(statement, parameters)
            rows = list(result.all()) if result.returns_rows else None
            return BufferedResult(rows, result.rowcount)

        return await asyncio.to_thread(run)

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, self._connection, *args)

    async def execution_options(self, **options: Any) -> ThreadedConnection:
        await asyncio.to_thread(self._connection.execution_options, **options)
        return self

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[ThreadedConnection]:
        transaction = await asyncio.to_thread(self._connection.begin)
        try:
            yield self
        except BaseException:
            await asyncio.to_thread(transaction.rollback)
            raise
        await asyncio.to_thread(transaction.commit)


@contextlib.asynccontextmanager
async def threaded_connection(engine: Engine) -> AsyncIterator[ThreadedConnection]:
    """Checks a connection out of a sync engine in a worker thread, and returns it there."""
    connection = await asyncio.to_thread(engine.connect)
    try:
        yield ThreadedConnection(connection)
    finally:
        await asyncio.to_thread(connection.close)
