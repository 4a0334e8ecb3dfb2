"""The connection pool of the raw-driver engines (asyncpg on PostgreSQL, aiomysql on MariaDB).

SQLAlchemy's pool pings a connection on every checkout (three round trips on PostgreSQL) and
resets it on every return. These engines need neither: a connection found dropped when used is
thrown away with the other idle ones (a server restart or network cut took them too) and the
operation is rerun on a new one, which is safe because every operation is idempotent (an append
by its event id). What differs per driver (how to connect, what a drop looks like, how a failed
statement leaves the connection) is the subclass's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["LifoPool"]

_T = TypeVar("_T")
_C = TypeVar("_C")

_ATTEMPTS = 3


class LifoPool(Generic[_C]):
    """Idle connections reused last-in first-out; at most ``size`` in use at once.

    The most recently used connection is the warmest (its prepared statements, its server-side
    caches), and a burst that needs fewer connections lets the others sit idle.
    """

    def __init__(self, connect_kwargs: dict[str, Any], size: int, trace: Any = None) -> None:
        self._kwargs = connect_kwargs
        self._trace = trace
        self._size = size
        self._idle: list[_C] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    # What each driver says --------------------------------------------------------------

    async def _connect(self) -> _C:
        raise NotImplementedError

    def dropped(self, error: BaseException) -> bool:
        """Whether ``error`` says the connection went away (the operation may be rerun)."""
        raise NotImplementedError

    async def _call(self, conn: _C, body: Callable[[Any], Awaitable[_T]], traced: bool) -> _T:
        """Runs ``body`` on what the driver hands it (a connection, a cursor)."""
        raise NotImplementedError

    async def _still_usable(self, conn: _C, error: BaseException) -> bool:
        """After ``body`` raised ``error`` (not a drop): whether ``conn`` may be reused."""
        raise NotImplementedError

    def _is_closed(self, conn: _C) -> bool:
        raise NotImplementedError

    def _discard(self, conn: _C) -> None:
        """Drops a connection at once (no goodbye to the server)."""
        raise NotImplementedError

    async def _close(self, conn: _C) -> None:
        """Closes an idle connection when the pool closes."""
        self._discard(conn)

    # The pool --------------------------------------------------------------------------

    async def run(self, body: Callable[[Any], Awaitable[_T]]) -> _T:
        """Runs ``body`` on a connection; a dropped one is replaced and ``body`` rerun.

        ``body`` ends its own transaction (the statements it sends commit or roll back).
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        traced = self._trace is not None and bool(self._trace.before_cursor_execute)
        async with self._slots:
            for attempt in range(_ATTEMPTS):
                conn = self._idle.pop() if self._idle else await self._connect()
                keep = False
                try:
                    result = await self._call(conn, body, traced)
                    keep = True
                    return result
                except BaseException as error:
                    if self.dropped(error):
                        idle, self._idle = self._idle, []
                        for other in idle:
                            self._discard(other)
                        if attempt < _ATTEMPTS - 1:
                            continue
                        raise
                    keep = await self._still_usable(conn, error)
                    raise
                finally:
                    if keep and not self._closed and not self._is_closed(conn):
                        self._idle.append(conn)
                    else:
                        self._discard(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Closes the idle connections; connections in use are discarded when returned."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._close(conn)
