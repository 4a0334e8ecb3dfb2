"""Everything that differs between database engines: URLs, engine defaults, upserts, locks, errors.

Only SQLAlchemy's public API is used. The generic path works on any dialect; SQLite, PostgreSQL,
MySQL/MariaDB and Spanner get their better statements here.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import ssl
from typing import Any

from sqlalchemy import Engine, Insert, Select, Table, create_engine, event, exc, insert, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openadk.sessions._json import dumps_keeping_floats
from openadk.sessions._schema import MYSQL_FAMILY

__all__ = [
    "asyncpg_ssl",
    "build_engine",
    "insert_if_absent",
    "is_nul_refusal",
    "is_retryable",
    "is_unencodable",
    "is_unique_violation",
    "lock_rows",
    "normalize_url",
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
# Databases whose SQLAlchemy dialect ships in a separate package: the openadk extra to install.
_DIALECT_EXTRAS = {"spanner": "openadk[spanner]"}
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_URL_EXAMPLES = (
    "a URL like sqlite+aiosqlite:///./sessions.db, postgresql+asyncpg://user:pw@host/db or "
    "mysql+aiomysql://user:pw@host/db, or a SQLite file path ending in .db or .sqlite"
)
# libpq's TLS parameters, which asyncpg takes only as one `ssl` argument.
_LIBPQ_SSL = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl")
_LIBPQ_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# What pysqlite takes from the query string (the rest of a `uri=true` URL goes to SQLite).
_SQLITE_PARAMS = {
    "timeout",
    "isolation_level",
    "detect_types",
    "check_same_thread",
    "cached_statements",
    "uri",
    "mode",
    "cache",
    "immutable",
    "nolock",
    "vfs",
    "psow",
    "modeof",
}
# Keys SQLAlchemy's asyncpg adapter takes out before calling asyncpg.connect().
_ASYNCPG_ADAPTER_PARAMS = {
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_creator_fn",
}


def _redact_text(text: str) -> str:
    """What was typed, for a message, with a ``user:password@`` password hidden."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", text.strip())


def normalize_url(db_url: str | URL) -> URL:
    """The one place a database URL, as a person typed it, becomes the URL openadk uses.

    Accepts what the service and every ``--db`` option take: any SQLAlchemy URL; a bare path
    ending in ``.db``, ``.sqlite`` or ``.sqlite3`` (``sessions.db``, ``./first.db``), which is a
    SQLite file; and Heroku's ``postgres://`` scheme, which is ``postgresql://``. The driver is
    left as given (`build_engine` picks the async one).

    Raises:
        ValueError: Empty, or not a URL; the message shows what was typed (password hidden)
            and what a URL looks like.
    """
    if isinstance(db_url, URL):
        return db_url
    if not isinstance(db_url, str) or not db_url.strip():
        raise ValueError("db_url must be a non-empty database URL string.")
    text = db_url.strip()
    from openadk.sessions._urls import is_redis_url

    if is_redis_url(text):
        raise ValueError(
            f"{_redact_text(text)} is a Redis URL: use RedisSessionService (or open_service), "
            "not DatabaseSessionService."
        )
    if "://" not in text and text.lower().endswith(_SQLITE_SUFFIXES):
        return URL.create("sqlite+aiosqlite", database=text)
    scheme, sep, rest = text.partition("://")
    if sep and (scheme == "postgres" or scheme.startswith("postgres+")):
        text = f"postgresql{scheme[len('postgres') :]}://{rest}"
    try:
        return make_url(text)
    except exc.ArgumentError as error:
        raise ValueError(
            f"Invalid database URL format or argument '{_redact_text(db_url)}': expected "
            f"{_URL_EXAMPLES}."
        ) from error


def redact_url(url: str | URL) -> str:
    """Renders a database URL for messages: password as ``***``, query values as ``REDACTED``."""
    try:
        parsed = normalize_url(url)
    except ValueError:
        return _redact_text(url) if isinstance(url, str) else "<unparseable database URL>"
    if parsed.query:
        parsed = parsed.set(query={key: "REDACTED" for key in parsed.query})
    return parsed.render_as_string(hide_password=True)


def _asyncpg_ssl(url: URL, shown: str) -> tuple[URL, Any]:
    """Takes libpq's ``sslmode``/``sslrootcert``/... out of an asyncpg URL as its ``ssl`` value.

    Returns the URL without them and the value for asyncpg's ``ssl`` argument (None when there
    were none). A mode alone is passed as its name, which asyncpg reads as libpq does; with
    certificate files an `ssl.SSLContext` is built: ``verify-full`` checks the host name,
    ``verify-ca`` (and ``require`` with a root certificate, as in libpq) the chain only, and
    ``require`` without one encrypts without verifying. With certificates, ``prefer`` and
    ``allow`` insist on TLS (asyncpg has no fallback for a context).
    """
    given = {key: url.query[key] for key in _LIBPQ_SSL if key in url.query}
    if not given:
        return url, None
    values: dict[str, str] = {}
    for key, value in given.items():
        if not isinstance(value, str):
            raise ValueError(f"Database URL '{shown}' gives {key} more than once.")
        values[key] = value
    url = url.difference_update_query(list(given))
    mode = values.get("sslmode", "prefer")
    if mode not in _LIBPQ_SSLMODES:
        raise ValueError(
            f"Database URL '{shown}': sslmode must be one of {', '.join(_LIBPQ_SSLMODES)}, "
            f"got {mode!r}."
        )
    files = {
        key: values[key] for key in ("sslrootcert", "sslcert", "sslkey", "sslcrl") if key in values
    }
    if not files or mode == "disable":
        return url, False if mode == "disable" else mode
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and "sslrootcert" in files)
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    try:
        if verify:
            if "sslrootcert" in files:
                context.load_verify_locations(cafile=files["sslrootcert"])
            else:
                context.load_default_certs()
        if "sslcrl" in files:
            context.load_verify_locations(cafile=files["sslcrl"])
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        if "sslcert" in files:
            password = values.get("sslpassword")
            context.load_cert_chain(
                files["sslcert"], keyfile=files.get("sslkey"), password=password
            )
        elif "sslkey" in files:
            raise ValueError(f"Database URL '{shown}' gives sslkey without sslcert.")
    except (OSError, ssl.SSLError) as error:
        raise ValueError(
            f"Database URL '{shown}': cannot load the TLS files "
            f"({', '.join(f'{k}={v}' for k, v in files.items())}): {error}"
        ) from error
    return url, context


def asyncpg_ssl(db_url: str) -> Any:
    """The ``ssl`` argument an asyncpg URL's libpq TLS parameters make (None: there are none)."""
    url = normalize_url(db_url)
    return _asyncpg_ssl(url, redact_url(url))[1]


def _missing_extra(backend: str, shown: str) -> ValueError:
    return ValueError(
        f"Database URL '{shown}' needs the {backend} dialect, which is not installed. "
        f'Install it with: pip install "{_DIALECT_EXTRAS[backend]}"'
    )


def _accepted_params(driver: str) -> set[str] | None:
    """The keyword arguments the driver's connect() takes, or None when not known."""
    try:
        if driver == "asyncpg":
            import asyncpg  # type: ignore[import-untyped]

            return set(inspect.signature(asyncpg.connect).parameters) | _ASYNCPG_ADAPTER_PARAMS
        if driver == "aiomysql":
            import aiomysql  # type: ignore[import-untyped]

            return set(inspect.signature(aiomysql.connect).parameters)
        if driver == "asyncmy":
            import asyncmy

            return set(inspect.signature(asyncmy.connect).parameters)
        if driver == "psycopg":
            import psycopg

            keywords = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}
            return keywords | set(inspect.signature(psycopg.AsyncConnection.connect).parameters)
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    return None


def _check_query(engine: AsyncEngine | Engine | None, url: URL, shown: str) -> None:
    """Refuses a URL query parameter the driver would not take, naming it.

    Without this a typo or a libpq-only option reaches the driver at the first connection and
    ends in a long traceback (``connect() got an unexpected keyword argument``).
    """
    if not url.query:
        return
    driver = url.get_driver_name()
    if url.get_backend_name() == "sqlite":
        unknown = sorted(set(url.query) - _SQLITE_PARAMS)
    elif engine is None:
        return
    else:
        accepted = _accepted_params(driver)
        if accepted is None:
            return
        # Parameters SQLAlchemy translates (MySQL's ssl_ca, ...) do not reach the driver as
        # they are written.
        _, params = engine.dialect.create_connect_args(url)
        unknown = sorted(key for key in url.query if key in params and key not in accepted)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        hint = (
            " (openadk translates libpq's sslmode, sslrootcert, sslcert, sslkey, sslpassword "
            "and sslcrl for it)"
            if driver == "asyncpg"
            else ""
        )
        raise ValueError(
            f"Unknown query parameter {names} in database URL '{shown}': the {driver} driver "
            f"does not take it{hint}. Remove it, or pass driver options as "
            "connect_args={...}."
        )


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
    url = _async_url(normalize_url(db_url))
    shown = redact_url(url)
    kwargs = dict(engine_kwargs)
    backend = url.get_backend_name()
    if url.drivername == "postgresql+asyncpg":
        url, ssl_value = _asyncpg_ssl(url, shown)
        if ssl_value is not None:
            connect_args = dict(kwargs.get("connect_args") or {})
            connect_args.setdefault("ssl", ssl_value)
            kwargs["connect_args"] = connect_args
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", pool.StaticPool)
            connect_args = dict(kwargs.get("connect_args") or {})
            connect_args.setdefault("check_same_thread", False)
            kwargs["connect_args"] = connect_args
    elif backend == "postgresql":
        # With asyncpg the service's common operations bypass this engine (its own pool pings
        # nothing); the engine, also handed to callers as `engine`, keeps checking connections.
        kwargs.setdefault("pool_pre_ping", True)
    # Elsewhere no pool_pre_ping (a round trip on every checkout): the service detects a
    # dropped connection when it uses it and reruns the operation on a new one.
    if backend == "postgresql":
        kwargs.setdefault("json_serializer", dumps_keeping_floats)
    if backend == "sqlite":
        _check_query(None, url, shown)  # before SQLAlchemy's own warning about the query
    try:
        engine: AsyncEngine | Engine
        try:
            engine = create_async_engine(url, **kwargs)
        except exc.InvalidRequestError as error:
            if "async" not in str(error):
                raise ValueError(f"Failed to create database engine for URL '{shown}'") from error
            # No async driver exists for this database (Cloud Spanner, ...): use the
            # synchronous one, whose calls the service runs in worker threads.
            logger.info("No async driver for %s; running its driver in worker threads.", shown)
            engine = create_engine(url, **kwargs)
        if backend != "sqlite":
            _check_query(engine, url, shown)
        return engine
    except exc.NoSuchModuleError as error:
        if backend in _DIALECT_EXTRAS:
            raise _missing_extra(backend, shown) from error
        raise ValueError(
            f"Invalid database URL format or argument '{shown}': SQLAlchemy has no database "
            f"'{url.drivername}'; expected {_URL_EXAMPLES}."
        ) from error
    except ImportError as error:
        if backend in _DIALECT_EXTRAS:
            raise _missing_extra(backend, shown) from error
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
