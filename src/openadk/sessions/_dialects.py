"""Everything that differs between database engines: URLs, engine defaults, upserts, locks, errors.

Only SQLAlchemy's public API is used. The generic path works on any dialect; SQLite, PostgreSQL,
MySQL/MariaDB and Spanner get their better statements here.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import Engine, Insert, Select, Table, create_engine, event, exc, insert, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openadk.sessions._json import dumps_keeping_floats
from openadk.sessions._schema import MYSQL_FAMILY

__all__ = [
    "build_engine",
    "insert_if_absent",
    "is_nul_refusal",
    "is_retryable",
    "is_unencodable",
    "is_unique_violation",
    "lock_rows",
    "redact_url",
    "sqlite_read_only_hint",
]

logger = logging.getLogger("openadk.sessions")

# Async driver to use for a synchronous or driverless URL, and the package that provides it.
_ASYNC_DRIVERS = {
    "sqlite": ("aiosqlite", "aiosqlite"),
    "postgresql": ("asyncpg", "asyncpg"),
    "mysql": ("aiomysql", "aiomysql"),
    "mariadb": ("asyncmy", "asyncmy"),
}
_DRIVER_PACKAGES = {
    "aiosqlite": "aiosqlite",
    "asyncpg": "asyncpg",
    "psycopg": "'psycopg[binary]'",
    "aiomysql": "aiomysql",
    "asyncmy": "asyncmy",
    "spanner": "sqlalchemy-spanner",
    "spanner+spanner": "sqlalchemy-spanner",
    "aioodbc": "aioodbc",
    "oracledb": "oracledb",
}
_SYNC_DRIVERS = {"pysqlite", "psycopg2", "pymysql", "mysqldb", "mysqlconnector", "pyodbc"}


def redact_url(url: str | URL) -> str:
    """Renders a database URL for messages: password as ``***``, query values as ``REDACTED``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable database URL>"
    if parsed.query:
        parsed = parsed.set(query={key: "REDACTED" for key in parsed.query})
    return parsed.render_as_string(hide_password=True)


def _async_url(url: URL) -> URL:
    """Swaps a synchronous (or default) driver for the async driver of the same database."""
    backend = url.get_backend_name()
    driver = url.drivername.partition("+")[2]
    if backend in _ASYNC_DRIVERS and (not driver or driver in _SYNC_DRIVERS):
        async_driver = _ASYNC_DRIVERS[backend][0]
        new = url.set(drivername=f"{backend}+{async_driver}")
        logger.info(
            "Database URL %s names a synchronous driver; using %s instead.",
            redact_url(url),
            async_driver,
        )
        return new
    return url


def build_engine(db_url: str, engine_kwargs: dict[str, Any]) -> AsyncEngine | Engine:
    """Creates the async engine for ``db_url`` with openadk's defaults (caller values win).

    A synchronous driver (``sqlite://``, ``postgresql+psycopg2://``, ``mysql+pymysql://``) is
    replaced by the async driver of the same database, as the user's document's URLs expect.

    Raises:
        ValueError: The URL is malformed, names an unknown database, or its driver is not
            installed (the message says what to ``pip install``).
    """
    if not isinstance(db_url, str) or not db_url.strip():
        raise ValueError("db_url must be a non-empty database URL string.")
    shown = redact_url(db_url)
    try:
        url = _async_url(make_url(db_url))
    except exc.ArgumentError as error:
        raise ValueError(f"Invalid database URL format or argument '{shown}'.") from error
    kwargs = dict(engine_kwargs)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", pool.StaticPool)
            connect_args = dict(kwargs.get("connect_args") or {})
            connect_args.setdefault("check_same_thread", False)
            kwargs["connect_args"] = connect_args
    else:
        kwargs.setdefault("pool_pre_ping", True)
    if backend == "postgresql":
        kwargs.setdefault("json_serializer", dumps_keeping_floats)
    try:
        try:
            return create_async_engine(url, **kwargs)
        except exc.InvalidRequestError as error:
            if "async" not in str(error):
                raise ValueError(f"Failed to create database engine for URL '{shown}'") from error
        # No async driver exists for this database (Cloud Spanner, ...): use the synchronous
        # one, whose calls the service runs in worker threads.
        logger.info("No async driver for %s; running its driver in worker threads.", shown)
        return create_engine(url, **kwargs)
    except exc.NoSuchModuleError as error:
        raise ValueError(f"Invalid database URL format or argument '{shown}'.") from error
    except ImportError as error:
        driver = url.get_driver_name()
        package = _DRIVER_PACKAGES.get(driver, driver)
        raise ValueError(
            f"Database related module not found for URL '{shown}'. "
            f"Install the driver with: pip install {package}"
        ) from error
    except (TypeError, exc.ArgumentError) as error:
        raise ValueError(f"Invalid database URL format or argument '{shown}': {error}") from error


def configure_sqlite(engine: AsyncEngine, *, wal: bool, synchronous: str, busy_ms: int) -> None:
    """Sets SQLite up for concurrent use: WAL, foreign keys, a busy timeout, early write locks.

    Transactions on a connection marked ``openadk_write`` take the write lock up front. The
    driver's own transaction handling is turned off so ``BEGIN IMMEDIATE`` can be issued; readers
    get plain ``BEGIN`` (deferred), so WAL lets them run beside a writer.
    """
    memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            if wal and not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("openadk_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def insert_if_absent(dialect_name: str, table: Table, values: dict[str, Any]) -> Insert | None:
    """An INSERT that does nothing when the primary key exists, or None when the dialect has none.

    On PostgreSQL and SQLite it returns a row when it inserted (psycopg's async rowcount is -1);
    on MySQL/MariaDB its rowcount is 1 when it inserted and 0 otherwise.
    """
    marker = next(iter(table.primary_key.columns))
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(values).on_conflict_do_nothing().returning(marker)
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).values(values).on_conflict_do_nothing().returning(marker)
    if dialect_name in MYSQL_FAMILY:
        # Values are checked before they get here (lengths, JSON), so IGNORE only skips duplicates.
        return insert(table).values(values).prefix_with("IGNORE")
    return None


def lock_rows(dialect_name: str, statement: Select[Any], *, shared: bool = False) -> Select[Any]:
    """Adds ``FOR UPDATE`` (``FOR SHARE`` when ``shared``) where the dialect has row locks.

    A locking read also sees rows committed after a MySQL transaction took its snapshot.

    SQLite takes its write lock with ``BEGIN IMMEDIATE`` instead; Spanner's read-write
    transactions lock what they read.
    """
    if dialect_name in ("postgresql", *MYSQL_FAMILY):
        return statement.with_for_update(read=shared)
    return statement


def _codes(error: BaseException) -> tuple[str | None, int | None]:
    orig = getattr(error, "orig", None) or error
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    errno = None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        errno = args[0]
    return (str(sqlstate) if sqlstate else None, errno)


def is_retryable(error: BaseException) -> bool:
    """A deadlock, serialization failure or lock timeout: the transaction may simply be rerun."""
    if not isinstance(error, exc.DBAPIError):
        return False
    sqlstate, errno = _codes(error)
    if sqlstate in ("40001", "40P01"):
        return True
    if errno in (1205, 1213):
        return True
    text = str(error.orig).lower()
    if type(error.orig).__name__ == "Aborted":  # Cloud Spanner asks for the transaction again
        return True
    return "database is locked" in text or "deadlock" in text


def is_nul_refusal(error: BaseException) -> bool:
    """PostgreSQL refusing a NUL character in JSON or text."""
    sqlstate, _ = _codes(error)
    text = str(getattr(error, "orig", error)).lower()
    if sqlstate == "22021" and "0x00" in text:  # a NUL in a text column (asyncpg)
        return True
    return (
        sqlstate == "22P05"
        or "unsupported unicode escape" in text
        or "\\u0000" in text
        or "nul (0x00)" in text  # psycopg refuses it before sending
    )


def is_unencodable(error: BaseException) -> bool:
    """A driver that could not encode a parameter as UTF-8 (a lone surrogate in a string)."""
    seen: BaseException | None = getattr(error, "orig", None) or error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, UnicodeEncodeError) or "surrogates not allowed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def sqlite_read_only_hint(url: URL) -> str:
    """Advice when a SQLite file, or the directory it is in, cannot be written; else ``""``.

    SQLite writes beside a WAL-mode database (its ``-shm`` and ``-wal`` files) even to read it.
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return ""
    path = os.path.abspath(database.removeprefix("file:").split("?")[0])
    directory = os.path.dirname(path)
    writable = os.access(directory, os.W_OK) and (
        not os.path.exists(path) or os.access(path, os.W_OK)
    )
    if writable or not os.path.isdir(directory):
        return ""
    return (
        " The file or its directory is read-only, and SQLite must write beside a WAL-mode "
        "database even to read it. To only read it, open it with a URL like "
        f"sqlite+aiosqlite:///file:{path}?immutable=1&uri=true"
    )


def is_unique_violation(error: BaseException) -> bool:
    """A primary-key or unique-constraint violation."""
    if not isinstance(error, exc.IntegrityError):
        return False
    sqlstate, errno = _codes(error)
    if sqlstate == "23505" or errno == 1062:
        return True
    text = str(error.orig).lower()
    return "unique" in text or "duplicate" in text
