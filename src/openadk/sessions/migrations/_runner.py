"""Running openadk's Alembic migrations programmatically, without an alembic.ini."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shlex
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from openadk.errors import StorageError
from openadk.sessions import _dialects
from openadk.sessions._schema import MYSQL_FAMILY
from openadk.sessions._v0 import TimeRule
from openadk.sessions.migrations._convert import (
    BadRow,
    ConversionOptions,
    ConversionReport,
    UpgradeError,
)
from openadk.sessions.migrations._layout import NEW_EVENTS, Layout, inspect_layout

__all__ = [
    "HEAD",
    "REVISIONS",
    "SchemaStatus",
    "UpgradeReport",
    "refusal",
    "stamp",
    "status",
    "upgrade",
    "upgrade_command",
]

logger = logging.getLogger("openadk.migrations")

_HERE = Path(__file__).resolve().parent
ADK_V1 = "0001_adk_v1"
EXACT_KEYS = "0002_exact_keys"
SESSION_METADATA = "0003_session_metadata"
EVENT_SEARCH = "0004_event_search"
SEARCH_PENDING = "0005_search_pending"
HEAD = SEARCH_PENDING
"""The newest revision (a test checks it against the migration scripts)."""
REVISIONS: tuple[str, ...] = (ADK_V1, EXACT_KEYS, SESSION_METADATA, EVENT_SEARCH, SEARCH_PENDING)
_ADDITIVE = frozenset({SESSION_METADATA, EVENT_SEARCH, SEARCH_PENDING})
"""Revisions that only add openadk's own tables and indexes: the service creates the tables
itself, so a database that has not had them applied yet is still used."""
"""Every revision, oldest first."""
_RECORD_ONLY = "record it (ids already compare exactly here: nothing to change)"
_PG_LOCK_KEY = 0x6F70656E61646B  # "openadk"
_MYSQL_LOCK = "openadk_schema_upgrade"
_LOCK_WAIT_SECONDS = 600


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands against openadk's migrations."""

    url: str
    """The database URL, password redacted."""
    layout: Layout | None
    """What was found; None when the SQLite file does not exist."""
    current: str | None
    """The revision the database is at: recorded, or implied by a V1 layout; None if none."""
    recorded: bool
    """Whether ``current`` is recorded in ``openadk_schema_version``."""
    pending: tuple[tuple[str, str], ...]
    """Revisions ``upgrade`` would apply, each with what it would do here."""
    problem: str | None = None
    """Why the database cannot be upgraded at all, if it cannot."""

    head: str = HEAD

    @property
    def behind(self) -> bool:
        """Revisions are pending (or the database cannot be used as it is)."""
        return bool(self.pending) or self.problem is not None

    @property
    def blocks_use(self) -> bool:
        """The session service must not use the database before ``upgrade`` runs.

        An empty database is created on first use and an unrecorded V1 layout is used as it
        is; a V0 layout, an unfinished upgrade or a recorded older (or unknown) revision must
        be dealt with first. Layouts openadk cannot use at all are reported by the service.
        """
        if self.layout is None or self.layout.kind in ("sqlite_service", "unknown_version"):
            return False
        if self.problem is not None or self.layout.needs_conversion or self.layout.keys:
            return True
        return self.recorded and any(
            what != _RECORD_ONLY and revision not in _ADDITIVE for revision, what in self.pending
        )

    def found(self) -> str:
        """What is in the database, as a phrase: ``google-adk's V0 (pickle) schema``."""
        if self.layout is None:
            return "no database file"
        if self.layout.keys and not self.layout.needs_conversion:
            return f"{self.layout.describe()} with {self.layout.keys.describe()}"
        if self.recorded and self.pending and not self.layout.needs_conversion:
            return f"openadk schema revision {self.current}, older than {HEAD}"
        return self.layout.describe()

    def describe(self) -> str:
        """One line: the revision and what was found."""
        found = self.found()
        if self.current is None:
            where = "no revision"
        elif self.recorded:
            where = f"revision {self.current}"
        else:
            where = f"revision {self.current} (implied by the layout, not recorded)"
        head = " (head)" if self.current == HEAD else ""
        return f"{where}{head}: {found}"


@dataclass
class UpgradeReport:
    """What ``upgrade`` did."""

    url: str
    before: str | None
    after: str | None
    action: str
    """``nothing``, ``created``, ``adopted``, ``converted`` or ``finished``."""
    backup: str | None = None
    """The SQLite backup copy made before converting V0 events."""
    v0_events: int = 0
    converted: int = 0
    sessions_retimed: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    """Rows skipped with ``skip_bad_rows`` (each with its reason)."""
    orphans: list[BadRow] = field(default_factory=list)
    """V0 events of sessions that no longer exist (left behind by an old SQLite writer)."""
    kept_table: str | None = None
    """Where the V0 events are kept when some were not carried over."""
    keys_made_exact: list[str] = field(default_factory=list)
    """Key columns (``table.column``) given the exact collation (MySQL/MariaDB)."""
    events_indexed: int = 0
    """Events with text put in the search index (revision 0004)."""

    def summary(self) -> list[str]:
        """Lines for a person."""
        at = f"at revision {self.after}"
        lines = {
            "nothing": [f"Already {at} (head): nothing to do."],
            "created": [f"Created google-adk's V1 tables; {at}."],
            "adopted": [
                f"Adopted the existing google-adk V1 schema (no table changed); recorded {at}."
            ],
            "converted": [
                f"Converted {self.converted} of {self.v0_events} V0 events to V1 in place; {at}."
            ],
            "finished": [f"Finished an interrupted V0 upgrade; {at}."],
            "keys": [f"Key columns now compare exactly; {at}."],
            "recorded": [f"Recorded {at} (ids already compared exactly: no table changed)."],
            "metadata": [f"Added openadk's session title and label tables; {at}."],
            "search": [f"Indexed {self.events_indexed} event(s) for full-text search; {at}."],
            "search_pending": [f"Added the search index's pending list (SQLite); {at}."],
        }.get(self.action, [f"{self.action}; {at}."])
        if self.action == "adopted" and self.keys_made_exact:
            lines = [f"Adopted the existing google-adk V1 schema; {at}."]
        if self.backup:
            lines.append(f"Backup of the V0 database: {self.backup}")
        if self.sessions_retimed:
            lines.append(
                f"{self.sessions_retimed} session(s) now show their last event's time as "
                "their update time."
            )
        for row in self.bad_rows:
            lines.append(f"skipped {row}")
        for row in self.orphans:
            lines.append(f"not carried over: {row}")
        if self.keys_made_exact:
            lines.append(
                f"{len(self.keys_made_exact)} key column(s) now compare ids exactly (case, "
                f"accents and trailing spaces count): {', '.join(self.keys_made_exact)}"
            )
        if self.kept_table:
            lines.append(
                f"The original V0 events are kept in table {self.kept_table}; drop it when done."
            )
        return lines


def upgrade_command(url: str) -> str:
    """The shell command that upgrades the database at ``url`` (password redacted)."""
    return f"openadk db upgrade --db {shlex.quote(_dialects.redact_url(url))}"


def refusal(url: str, found: SchemaStatus) -> str:
    """Why the session service will not use the database, and the command that fixes it."""
    if found.problem:
        return found.problem
    command = upgrade_command(url)
    lines = [
        f"The database at {_dialects.redact_url(url)} uses {found.found()}; openadk needs it "
        "upgraded first. Upgrade it in place (on SQLite a backup copy is made first) with:",
        f"    {command}",
    ]
    if "***" in command or "REDACTED" in command:
        lines.append("(fill in the password and query values hidden as *** and REDACTED)")
    lines.append("or create the service with auto_upgrade=True.")
    return "\n".join(lines)


# Engines and connections ----------------------------------------------------------------------


def _sqlite_file(url: Any) -> str | None:
    parsed = _dialects.normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(database)


def _async_engine(url: str) -> AsyncEngine | Engine:
    engine = _dialects.build_engine(url, {})
    if isinstance(engine, AsyncEngine) and engine.dialect.name == "sqlite":
        # The service's setup: explicit BEGIN, so DDL is transactional on SQLite.
        _dialects.configure_sqlite(
            engine, wal=True, synchronous="NORMAL", busy_ms=_LOCK_WAIT_SECONDS * 1000
        )
    return engine


@contextlib.asynccontextmanager
async def _opened(
    db: str | AsyncEngine | Engine, *, write: bool
) -> AsyncIterator[AsyncEngine | Engine]:
    """An engine for ``db``; a SQLite file written to gets its own, set up for transactional DDL."""
    if isinstance(db, str):
        url = db
    elif write and _sqlite_file(db.url) is not None:
        url = db.url.render_as_string(hide_password=False)
    else:
        yield db
        return
    engine = _async_engine(url)
    try:
        yield engine
    finally:
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        else:
            await asyncio.to_thread(engine.dispose)


async def _with_connection(
    engine: AsyncEngine | Engine, body: Callable[[Connection], Any], *, write: bool
) -> Any:
    """Runs ``body(sync_connection)``; with ``write``, inside one locked transaction."""

    def run(conn: Connection) -> Any:
        if not write:
            try:
                return body(conn)
            finally:
                conn.rollback()
        dialect = conn.dialect.name
        locked = False
        try:
            with conn.begin():
                if dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                elif dialect in MYSQL_FAMILY:
                    got = conn.exec_driver_sql(
                        f"SELECT GET_LOCK('{_MYSQL_LOCK}', {_LOCK_WAIT_SECONDS})"
                    ).scalar()
                    if got != 1:
                        raise UpgradeError(
                            "Another upgrade of this database is running; try again later."
                        )
                    locked = True
                return body(conn)
        except BaseException:
            if locked:
                _clean_up_mysql(conn)
            raise
        finally:
            if locked:
                with contextlib.suppress(exc.DBAPIError):
                    conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{_MYSQL_LOCK}')")
                    conn.commit()

    if isinstance(engine, AsyncEngine):
        async with engine.connect() as conn:
            if write and engine.dialect.name == "sqlite":
                conn = await conn.execution_options(openadk_write=True)
            return await conn.run_sync(run)

    def threaded() -> Any:
        with engine.connect() as conn:
            return run(conn)

    return await asyncio.to_thread(threaded)


def _clean_up_mysql(conn: Connection) -> None:
    """After a failure before the swap, drops the half-built table (DDL there is not undone)."""
    with contextlib.suppress(Exception):
        conn.rollback()
        if inspect_layout(conn).kind == "v0":
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {NEW_EVENTS}")
        conn.commit()


def _translate(shown: str, action: str, error: BaseException) -> Exception:
    if isinstance(error, exc.DBAPIError):
        return StorageError(f"{action} {shown} failed: {type(error.orig).__name__}: {error.orig}")
    return StorageError(
        f"{action} {shown} failed: cannot reach the database: {type(error).__name__}: {error}"
    )


# Status ----------------------------------------------------------------------------------------


def _keys_step(layout: Layout) -> str:
    if layout.keys:
        return (
            f"give the key columns the binary collation {layout.keys.collation} in place "
            f"(found {layout.keys.describe()})"
        )
    return _RECORD_ONLY


def _pending(layout: Layout, current: str | None) -> tuple[tuple[str, str], ...]:
    steps: list[tuple[str, str]] = []
    if layout.kind == "empty":
        steps.append((ADK_V1, "create google-adk's V1 tables"))
    elif layout.interrupted:
        steps.append((ADK_V1, "finish the interrupted upgrade of the V0 events"))
    elif layout.kind == "v0":
        steps.append((ADK_V1, "convert the google-adk V0 (pickle) events to V1 in place"))
    elif current is None or current not in REVISIONS:
        return ()
    if steps or _position(current) < _position(EXACT_KEYS):
        steps.append((EXACT_KEYS, _keys_step(layout)))
    if steps or _position(current) < _position(SESSION_METADATA):
        steps.append((SESSION_METADATA, _metadata_step(layout)))
    if steps or _position(current) < _position(EVENT_SEARCH):
        steps.append(
            (
                EVENT_SEARCH,
                "create the full-text search index and index the text of the stored events "
                "(in batches)",
            )
        )
    if steps or _position(current) < _position(SEARCH_PENDING):
        steps.append((SEARCH_PENDING, _pending_list_step(layout)))
    return tuple(steps)


def _pending_list_step(layout: Layout) -> str:
    if layout.dialect != "sqlite":
        return "record it (the pending list is SQLite's: nothing to change here)"
    if layout.has_search_pending:
        return "record it (the search index's pending list exists)"
    return (
        "create the search index's pending list (appends write their index rows there; "
        "they move into the FTS5 table in batches)"
    )


def _metadata_step(layout: Layout) -> str:
    if layout.has_metadata:
        return _RECORD_ONLY_METADATA
    return (
        "add openadk's session title and label tables and the sessions listing index "
        "(google-adk's tables and columns unchanged)"
    )


_RECORD_ONLY_METADATA = "record it (the title and label tables and the listing index exist)"


def _status_of(url: str, layout: Layout) -> SchemaStatus:
    recorded = bool(layout.stamped)
    current: str | None = layout.stamped[-1] if recorded else None
    problem = None
    if layout.kind == "sqlite_service":
        problem = (
            f"The database holds {layout.describe()} (adk web's .adk/session.db), which openadk "
            f"does not use in place; copy it into a database openadk uses with `openadk "
            f"migrate-from {_dialects.redact_url(url)} DEST_URL` (it only reads the file)."
        )
    elif layout.kind == "unknown_version":
        problem = f"The database holds {layout.describe()}, which openadk cannot upgrade."
    elif current is not None and current not in REVISIONS:
        problem = (
            f"The database is at revision {current!r}, unknown to this openadk (newest: "
            f"{HEAD}); it was upgraded by a newer openadk. Upgrade openadk."
        )
    elif recorded and layout.needs_conversion:
        problem = (
            f"openadk_schema_version says {current} but the events table still has the V0 "
            "layout (was it stamped by hand?). Run `openadk db stamp base`, then "
            "`openadk db upgrade`."
        )
    elif current == HEAD and layout.keys:
        problem = (
            f"openadk_schema_version says {HEAD} but the database has {layout.keys.describe()} "
            f"(was it stamped by hand?). Run `openadk db stamp {ADK_V1}`, then "
            "`openadk db upgrade`."
        )
    if current is None and layout.kind == "v1" and not layout.interrupted:
        # google-adk's V1 layout is revision 0001, recorded or not; with exact keys, 0002;
        # with openadk's metadata tables and listing index too, 0003.
        current = EXACT_KEYS
        if layout.keys:
            current = ADK_V1
        elif layout.has_metadata:
            current = SESSION_METADATA
            if layout.has_search:
                current = EVENT_SEARCH
                if layout.has_search_pending or layout.dialect != "sqlite":
                    current = SEARCH_PENDING
    return SchemaStatus(
        url=url,
        layout=layout,
        current=current,
        recorded=recorded,
        pending=() if problem else _pending(layout, current),
        problem=problem,
    )


async def status(db: str | AsyncEngine | Engine) -> SchemaStatus:
    """Where ``db`` (a URL or an engine) stands; changes nothing, never creates a SQLite file.

    Raises:
        StorageError: The database cannot be reached or read.
    """
    url = db if isinstance(db, str) else db.url
    shown = _dialects.redact_url(url)
    path = _sqlite_file(url)
    if path is not None and not await asyncio.to_thread(os.path.exists, path):
        return SchemaStatus(
            url=shown,
            layout=None,
            current=None,
            recorded=False,
            pending=((HEAD, f"create the SQLite file {path} with google-adk's V1 tables"),),
        )
    try:
        async with _opened(db, write=False) as engine:
            layout = await _with_connection(engine, inspect_layout, write=False)
    except (exc.DBAPIError, OSError, asyncio.TimeoutError) as error:
        raise _translate(shown, "Reading the schema of", error) from error
    return _status_of(shown, layout)


# Alembic ---------------------------------------------------------------------------------------


def _alembic_config(attributes: dict[str, Any]) -> Any:
    try:
        from alembic.config import Config
    except ImportError as error:  # pragma: no cover - the database extras install it
        raise UpgradeError(
            "Schema migrations need Alembic: pip install 'openadk[sqlite]' (or [postgres], "
            "[mysql])."
        ) from error

    config = Config()
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    config.attributes.update(attributes)
    return config


def script_head() -> str | None:
    """The head revision according to the migration scripts (for tests and ``db check``)."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_alembic_config({})).get_current_head()
    return head


def _resolve(revision: str) -> str:
    if revision == "head":
        return HEAD
    if revision in REVISIONS or revision == "base":
        return revision
    matches = [r for r in REVISIONS if r.startswith(revision)]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"Unknown revision {revision!r}; known: {', '.join(REVISIONS)} (or 'head', 'base')."
    )


def _position(revision: str | None) -> int:
    if revision is None or revision == "base":
        return -1
    return REVISIONS.index(revision)


async def upgrade(
    db: str | AsyncEngine | Engine,
    *,
    revision: str = "head",
    v0_times: str = "local",
    skip_bad_rows: bool = False,
    allow_unsafe_unpickling: bool = False,
    backup: bool = True,
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> UpgradeReport:
    """Upgrades ``db`` (a URL or an engine) in place to ``revision`` (default: the newest).

    An empty database gets google-adk's V1 tables; a google-adk V1 database is adopted without
    change; a google-adk V0 database has its pickled events converted to V1 in place (on SQLite
    a backup copy of the file is made first). A database already at ``revision`` is left alone.

    Args:
        db: Database URL or engine.
        revision: Target revision; older than the current one is refused.
        v0_times: How V0 event times are read: ``local`` (this machine's zone, as google-adk
            1.19-1.21 wrote them and its own migration reads them), ``utc``, or a zone name.
        skip_bad_rows: Leave V0 rows that cannot be converted behind (reported, and kept in
            the ``openadk_v0_events`` table) instead of stopping without change.
        allow_unsafe_unpickling: Let V0 pickles load any Python type. Only for a database whose
            contents you trust: unpickling can run arbitrary code.
        backup: On SQLite, copy the file before converting V0 events.
        batch_size: V0 rows converted per batch, and events indexed per batch (0004).
        progress: Called with (events indexed so far, events in all) after each batch of
            revision 0004, e.g. to draw a progress bar.

    Returns:
        What was done.

    Raises:
        ValueError: An unknown revision or time rule.
        UpgradeError: A downgrade, a database openadk cannot upgrade, or V0 rows that cannot
            be converted (`BadRowsError`, listing them); the database is unchanged.
        StorageError: The database failed (unreachable, no permission, ...).
    """
    times = TimeRule.parse(v0_times)
    target = _resolve(revision)
    url = db if isinstance(db, str) else db.url
    shown = _dialects.redact_url(url)
    before = await status(db)
    if before.problem:
        raise UpgradeError(before.problem)
    if target == "base" and before.current is None:
        raise ValueError("'base' is not an upgrade target (did you mean `openadk db stamp base`?).")
    if _position(target) < _position(before.current):
        raise UpgradeError(
            f"Refusing to downgrade {shown} from {before.current} to {target}: openadk never "
            "turns a database back into an older schema. Restore a backup instead."
        )
    if before.recorded and before.current == target and not before.pending:
        return UpgradeReport(url=shown, before=before.current, after=target, action="nothing")
    copy = None
    path = _sqlite_file(url)
    if backup and path and before.layout is not None and before.layout.kind == "v0":
        copy = await asyncio.to_thread(_backup_sqlite, path)
    options = ConversionOptions(
        times=times,
        skip_bad_rows=skip_bad_rows,
        allow_unsafe_unpickling=allow_unsafe_unpickling,
        batch_size=batch_size,
    )
    report = ConversionReport()

    def run(conn: Connection) -> None:
        config = _alembic_config(
            {
                "connection": conn,
                "openadk_options": options,
                "openadk_report": report,
                "openadk_progress": progress,
            }
        )
        from alembic import command

        command.upgrade(config, target)

    try:
        async with _opened(db, write=True) as engine:
            await _with_connection(engine, run, write=True)
    except (exc.DBAPIError, OSError, asyncio.TimeoutError) as error:
        raise _translate(shown, "Upgrading", error) from error
    after = await status(db)
    return UpgradeReport(
        url=shown,
        before=before.current if before.recorded else None,
        after=after.current,
        action=report.action,
        backup=copy,
        v0_events=report.v0_events,
        converted=report.converted,
        sessions_retimed=report.sessions_retimed,
        bad_rows=report.bad_rows,
        orphans=report.orphans,
        kept_table=report.kept_table,
        keys_made_exact=report.keys_made_exact,
        events_indexed=report.events_indexed,
    )


async def stamp(db: str | AsyncEngine | Engine, revision: str) -> SchemaStatus:
    """Records ``revision`` in ``openadk_schema_version`` without changing any table.

    ``base`` clears the record. Stamping a revision on a V0 database is refused: its events
    must be converted by ``upgrade``.

    Raises:
        ValueError: An unknown revision.
        UpgradeError: A V0 database stamped with a revision.
        StorageError: The database failed.
    """
    target = _resolve(revision)
    url = db if isinstance(db, str) else db.url
    shown = _dialects.redact_url(url)
    before = await status(db)
    if before.layout is None:
        raise UpgradeError(f"There is no database at {shown} to stamp.")
    if target != "base" and before.layout.kind == "empty":
        raise UpgradeError(
            f"{shown} has no session tables to stamp; `openadk db upgrade` creates them."
        )
    if target != "base" and before.layout.needs_conversion:
        raise UpgradeError(
            f"{shown} holds {before.layout.describe()}: stamping it {target} would hide "
            "events that still need converting. Run `openadk db upgrade` instead."
        )

    def run(conn: Connection) -> None:
        config = _alembic_config({"connection": conn})
        from alembic import command

        command.stamp(config, target, purge=True)

    try:
        async with _opened(db, write=True) as engine:
            await _with_connection(engine, run, write=True)
    except (exc.DBAPIError, OSError, asyncio.TimeoutError) as error:
        raise _translate(shown, "Stamping", error) from error
    return await status(db)


def _backup_sqlite(path: str) -> str:
    """Copies a SQLite database (WAL included) next to it; returns the copy's path."""
    stamp_text = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = f"{path}.v0-backup-{stamp_text}"
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = f"{path}.v0-backup-{stamp_text}-{suffix}"
    source = sqlite3.connect(path)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    logger.info("Backed up %s to %s", path, target)
    return target
