"""Operating a session database: copying it, exporting and importing JSON Lines, pruning.

Rows are copied as they are (times, ids, JSON), so a copy is exact: nothing is re-appended, no
timestamp moves. Copies are resumable: a row whose key already exists in the destination is
skipped, so an interrupted copy can simply be run again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, and_, func, or_, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from openadk.events import Event
from openadk.sessions import _metadata_sql, _search
from openadk.sessions._base import (
    MAX_EVENT_DEPTH,
    MAX_KEY_LENGTH,
    AppendPlan,
    BaseSessionService,
    check_key,
)
from openadk.sessions._database import DatabaseSessionService
from openadk.sessions._json import check_storable
from openadk.sessions._metadata import SessionMetadata, check_display_name, check_labels
from openadk.sessions._schema import (
    app_states,
    events,
    from_db_time,
    session_expiry,
    session_labels,
    session_metadata,
    sessions,
    to_db_time,
    user_states,
)
from openadk.sessions._session import Session
from openadk.sessions._state import State

__all__ = [
    "AppSummary",
    "Conflict",
    "CopyReport",
    "ImportReport",
    "copy_database",
    "export_sessions",
    "import_sessions",
    "list_apps",
    "prune_sessions",
    "require_existing",
    "same_database",
    "sqlite_file",
]

# Parents before children, so foreign keys hold at every step.
TABLES: list[Table] = [app_states, user_states, sessions, session_expiry, events]
METADATA = session_metadata.name
"""The report's name for titles and labels: one row per titled or labelled session.

``openadk_session_labels`` is not copied as such: its rows are the labels of the metadata row,
written with it in DEST.
"""


@dataclass(frozen=True)
class Conflict:
    """A row DEST already holds with other content than SOURCE's.

    Nothing is changed for it: two histories are never interleaved. With
    ``rename_conflicts=True`` a conflicting session is copied under ``renamed_to`` instead.
    """

    table: str
    key: tuple[str, ...]
    """(app,) for app state, (app, user) for user state, (app, user, session) for a session."""
    reason: str
    renamed_to: str | None = None

    def describe(self) -> str:
        """One line for the operator."""
        what = {
            "app_states": "app state of",
            "user_states": "user state of",
            "sessions": "session",
            METADATA: "title and labels of session",
        }.get(self.table, self.table)
        where = "/".join(self.key)
        if self.renamed_to is not None:
            return f"{what} {where}: {self.reason}; copied as session id {self.renamed_to}"
        return f"{what} {where}: {self.reason}; DEST left as it was"


@dataclass
class CopyReport:
    """Rows per table: in the source, copied now, already present, held back by a conflict."""

    source: dict[str, int] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)
    """Rows written (for sessions, also DEST rows brought up to date from an earlier copy)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows DEST already held with the same content (a resumed copy)."""
    conflicted: dict[str, int] = field(default_factory=dict)
    """Rows not copied because they, or their session, conflict with DEST's."""
    missing: dict[str, int] = field(default_factory=dict)
    """Source rows that should be in the destination and are not (0 everywhere when verified)."""
    conflicts: list[Conflict] = field(default_factory=list)
    indexed: int = 0
    """Copied events added to DEST's search index (rebuilt there from their text)."""
    not_carried: list[str] = field(default_factory=list)
    """What DEST cannot hold and was left out, one line each (titles and labels in Redis)."""

    def start_table(self, table: str) -> None:
        """Sets every count of ``table`` to 0 (so a table with no rows still shows)."""
        for counter in (self.source, self.copied, self.skipped, self.conflicted, self.missing):
            counter[table] = 0

    @property
    def verified(self) -> bool:
        """Every source row that was not held back by a conflict is in the destination."""
        return not any(self.missing.values())

    @property
    def unresolved(self) -> list[Conflict]:
        """Conflicts that left something of SOURCE behind."""
        return [c for c in self.conflicts if c.renamed_to is None]


def _is_redis(service: object) -> bool:
    # By name: importing the Redis module would import redis-py.
    return type(service).__name__ == "RedisSessionService" or any(
        cls.__name__ == "RedisSessionService" for cls in type(service).__mro__
    )


def _engine(service: DatabaseSessionService) -> AsyncEngine:
    engine = service.engine
    if not isinstance(engine, AsyncEngine):
        raise ValueError(
            f"{service!r} uses a synchronous driver; copying is supported between databases "
            f"with async drivers (SQLite, PostgreSQL, MySQL/MariaDB)."
        )
    return engine


def _key_columns(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _row_key(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in _key_columns(table))


async def _keys(conn: AsyncConnection, table: Table, keys: list[tuple[Any, ...]]) -> set[Any]:
    if not keys:
        return set()
    columns = _key_columns(table)
    rows = await conn.execute(select(*columns).where(tuple_(*columns).in_(keys)))
    return {tuple(r) for r in rows}


async def _rows(
    conn: AsyncConnection, table: Table, keys: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    if not keys:
        return {}
    columns = _key_columns(table)
    found = await conn.execute(select(table).where(tuple_(*columns).in_(keys)))
    return {_row_key(table, row): row for row in (dict(m) for m in found.mappings())}


async def _batches(
    conn: AsyncConnection, table: Table, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    order = _key_columns(table)
    result = await conn.stream(select(table).order_by(*order))
    async for partition in result.mappings().partitions(size):
        yield [dict(row) for row in partition]


def _differing_keys(ours: Any, theirs: Any) -> list[str]:
    ours, theirs = ours or {}, theirs or {}
    return sorted(
        k for k in set(ours) | set(theirs) if ours.get(k, _ABSENT) != theirs.get(k, _ABSENT)
    )


_ABSENT = object()


def _same_time(a: Any, b: Any) -> bool:
    return from_db_time(a) == from_db_time(b)


def _session_difference(source: Mapping[str, Any], dest: Mapping[str, Any]) -> str | None:
    """Why DEST's row for a session is not SOURCE's, or None when it is the same session."""
    reasons = []
    if not _same_time(source["create_time"], dest["create_time"]):
        reasons.append("created at another time")
    if not _same_time(source["update_time"], dest["update_time"]):
        reasons.append("last updated at another time (other events)")
    keys = _differing_keys(source["state"], dest["state"])
    if keys:
        reasons.append(f"state differs in {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    if not reasons:
        return None
    return "DEST already has a different session with this id: " + ", ".join(reasons)


def renamed_session_id(app_name: str, user_id: str, session_id: str, create_time: Any) -> str:
    """The id a conflicting session is copied under: the same for every run of the copy."""
    seed = f"{app_name}\0{user_id}\0{session_id}\0{from_db_time(create_time).isoformat()}"
    suffix = "-" + hashlib.sha256(seed.encode()).hexdigest()[:8]
    return session_id[: MAX_KEY_LENGTH - len(suffix)] + suffix


async def copy_database(
    source: DatabaseSessionService,
    destination: DatabaseSessionService,
    *,
    batch_size: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
    rename_conflicts: bool = False,
) -> CopyReport:
    """Copies every app/user state, session and event from ``source`` to ``destination``.

    Each batch is one transaction in the destination. A row already there with the same
    content is skipped, so the copy can be interrupted and run again; a session DEST holds
    an earlier copy of (SOURCE went on since) is brought up to date. A session DEST already
    holds with other content (another conversation under the same app/user/id), or app/user
    state holding other values, is a `Conflict`: it is reported and nothing is written for it
    (with ``rename_conflicts`` a conflicting session is copied under `renamed_session_id`).

    Sessions' titles and labels are copied with them (a session DEST already holds with
    another title or labels is a conflict: DEST keeps its own). DEST's search index is not
    copied but rebuilt: each batch of events is indexed from its text in the transaction
    that writes it, so the index is DEST's engine's own and never holds an event twice (an
    event DEST already holds, from a copy made before copies indexed, is indexed if it is
    not yet).

    At the end every source key that was copied or skipped is looked up in the destination
    (titles and labels compared too) and the report says how many are missing.

    Args:
        source: Where to read.
        destination: Where to write (tables are created if needed).
        batch_size: Rows per transaction.
        progress: Called as ``progress(table, done, total)`` after each batch.
        rename_conflicts: Copy a conflicting session under a new id instead of leaving it.
    """
    src, dst = _engine(source), _engine(destination)
    readable = await _source_tables(source, src)
    await destination.prepare_tables()
    dest_dialect = dst.dialect.name
    # search: DEST's index is filled from the events copied into it.
    search = "search" in destination.capabilities
    report = CopyReport()
    # Session key -> the session id it is copied under in DEST, or None: held back.
    moved: dict[tuple[Any, ...], str | None] = {}
    held_states: set[tuple[str, tuple[Any, ...]]] = set()

    def target(table: Table, row: dict[str, Any]) -> dict[str, Any] | None:
        """The row as DEST gets it (its session renamed), or None when it is held back."""
        if table is app_states or table is user_states:
            return None if (table.name, _row_key(table, row)) in held_states else row
        if table is sessions:
            key = (row["app_name"], row["user_id"], row["id"])
            column = "id"
        else:
            key = (row["app_name"], row["user_id"], row["session_id"])
            column = "session_id"
        if key not in moved:
            return row
        new_id = moved[key]
        return None if new_id is None else {**row, column: new_id}

    async with src.connect() as read:
        for table in TABLES:
            report.start_table(table.name)
            if table not in readable:  # openadk's own table, in a database google-adk made
                continue
            total = (await read.execute(select(func.count()).select_from(table))).scalar_one()
            report.source[table.name] = total
            done = 0
            async for rows in _batches(read, table, batch_size):
                async with dst.begin() as write:
                    updated = 0
                    if table is sessions:
                        async with src.connect() as lookup:
                            wanted, updated = await _sessions_to_copy(
                                lookup, write, rows, report, moved, rename_conflicts
                            )
                    elif table is app_states or table is user_states:
                        wanted = await _states_to_copy(write, table, rows, report, held_states)
                    else:
                        wanted = [t for t in (target(table, row) for row in rows) if t is not None]
                    report.conflicted[table.name] += len(rows) - len(wanted)
                    keys = [_row_key(table, row) for row in wanted]
                    present = await _keys(write, table, keys)
                    fresh = [r for r, key in zip(wanted, keys, strict=True) if key not in present]
                    if fresh:
                        await write.execute(table.insert(), fresh)
                    if table is events and search:
                        old = [r for r, key in zip(wanted, keys, strict=True) if key in present]
                        report.indexed += await _index_copied(write, dest_dialect, fresh, old)
                report.copied[table.name] += len(fresh) + updated
                report.skipped[table.name] += len(wanted) - len(fresh) - updated
                done += len(rows)
                if progress is not None:
                    progress(table.name, done, total)
        report.start_table(METADATA)
        held_metadata: set[tuple[Any, ...]] = set()

        def metadata_target(row: dict[str, Any]) -> dict[str, Any] | None:
            found = target(session_metadata, row)
            if found is None or _row_key(session_metadata, found) in held_metadata:
                return None
            return found

        if session_metadata in readable:
            await _copy_metadata(
                read, dst, batch_size, report, metadata_target, held_metadata, progress
            )
        # Verify: every source row that was not held back is in the destination.
        for table in readable:
            if table is session_metadata:
                report.missing[METADATA] = await _missing_metadata(
                    read, dst, batch_size, metadata_target
                )
                continue
            missing = 0
            async for rows in _batches(read, table, batch_size):
                keys = [
                    _row_key(table, t) for t in (target(table, r) for r in rows) if t is not None
                ]
                async with dst.connect() as check:
                    missing += len(keys) - len(await _keys(check, table, keys))
            report.missing[table.name] = missing
    return report


async def _index_copied(
    conn: AsyncConnection,
    dialect: str,
    fresh: list[dict[str, Any]],
    present: list[dict[str, Any]],
) -> int:
    """Indexes the events just copied, and those DEST held that its index lacks; how many."""
    pending = list(fresh)
    by_session: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in present:
        by_session.setdefault((row["app_name"], row["user_id"], row["session_id"]), []).append(row)
    for (app, user, session_id), rows in by_session.items():
        done = await _search.indexed_event_ids(
            conn, dialect, app, user, session_id, [r["id"] for r in rows]
        )
        pending += [r for r in rows if r["id"] not in done]
    return await _search.index_stored_events(conn, dialect, pending)


def _metadata_key(row: Mapping[str, Any]) -> dict[str, str]:
    return {"app_name": row["app_name"], "user_id": row["user_id"], "id": row["session_id"]}


def _metadata_pair(row: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    return row["display_name"], _metadata_sql.decode_labels(row["labels"], _metadata_key(row))


async def _stored_metadata(
    conn: AsyncConnection, keys: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[str | None, dict[str, str], dict[str, str]]]:
    """DEST's titles and labels of these sessions: (title, labels, labels of the label rows).

    The label rows are what a label-filtered listing reads; they must agree with the labels.
    """
    found = await _rows(conn, session_metadata, keys)
    if not found:
        return {}
    label_key = tuple_(
        session_labels.c.app_name, session_labels.c.user_id, session_labels.c.session_id
    )
    rows = await conn.execute(
        select(
            session_labels.c.app_name,
            session_labels.c.user_id,
            session_labels.c.session_id,
            session_labels.c.key,
            session_labels.c.value,
        ).where(label_key.in_(list(found)))
    )
    listed: dict[tuple[Any, ...], dict[str, str]] = {}
    for app, user, session_id, key, value in rows:
        listed.setdefault((app, user, session_id), {})[key] = value
    return {key: (*_metadata_pair(row), listed.get(key, {})) for key, row in found.items()}


async def _copy_metadata(
    read: AsyncConnection,
    dst: AsyncEngine,
    batch_size: int,
    report: CopyReport,
    target: Callable[[dict[str, Any]], dict[str, Any] | None],
    held: set[tuple[Any, ...]],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Copies titles and labels: each metadata row with its label rows.

    One transaction per batch. A session DEST holds with another title or labels is a
    conflict; DEST keeps its own.
    """
    name = METADATA
    total = (await read.execute(select(func.count()).select_from(session_metadata))).scalar_one()
    report.source[name] = total
    done = 0
    async for rows in _batches(read, session_metadata, batch_size):
        wanted = [t for t in (target(row) for row in rows) if t is not None]
        report.conflicted[name] += len(rows) - len(wanted)
        fresh: list[dict[str, Any]] = []
        labels: list[dict[str, Any]] = []
        async with dst.begin() as write:
            existing = await _stored_metadata(
                write, [_row_key(session_metadata, row) for row in wanted]
            )
            for row in wanted:
                key = _row_key(session_metadata, row)
                ours = _metadata_pair(row)
                theirs = existing.get(key)
                if theirs == (*ours, ours[1]):
                    report.skipped[name] += 1
                    continue
                if theirs is not None:
                    held.add(key)
                    report.conflicted[name] += 1
                    report.conflicts.append(
                        Conflict(name, key, "DEST holds another title or other labels")
                    )
                    continue
                fresh.append({**row, "labels": ours[1]})
                labels += [
                    {
                        "app_name": row["app_name"],
                        "user_id": row["user_id"],
                        "session_id": row["session_id"],
                        "key": label,
                        "value": value,
                    }
                    for label, value in ours[1].items()
                ]
            if fresh:
                await write.execute(session_metadata.insert(), fresh)
            if labels:
                await write.execute(session_labels.insert(), labels)
        report.copied[name] += len(fresh)
        done += len(rows)
        if progress is not None:
            progress(name, done, total)


async def _missing_metadata(
    read: AsyncConnection,
    dst: AsyncEngine,
    batch_size: int,
    target: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> int:
    """How many sessions DEST lacks SOURCE's title and labels of (held-back ones aside)."""
    missing = 0
    async for rows in _batches(read, session_metadata, batch_size):
        wanted = [t for t in (target(row) for row in rows) if t is not None]
        async with dst.connect() as check:
            stored = await _stored_metadata(
                check, [_row_key(session_metadata, row) for row in wanted]
            )
        for row in wanted:
            display_name, labels = _metadata_pair(row)
            if stored.get(_row_key(session_metadata, row)) != (display_name, labels, labels):
                missing += 1
    return missing


async def _source_tables(source: DatabaseSessionService, engine: AsyncEngine) -> list[Table]:
    """The tables to copy from SOURCE, which is read and never changed (no table created).

    Raises:
        ValueError: SOURCE has no session tables, or an old schema (the message says to run
            ``openadk db upgrade`` on it first).
    """
    from sqlalchemy import inspect

    from openadk.sessions import migrations
    from openadk.sessions._dialects import redact_url

    shown = redact_url(engine.url)
    found = await migrations.status(engine)
    if found.blocks_use:
        raise ValueError(migrations.refusal(shown, found))
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    if sessions.name not in names:
        raise ValueError(
            f"SOURCE {shown} has no sessions table, so nothing to copy; is it the right database?"
        )
    return [table for table in [*TABLES, session_metadata] if table.name in names]


async def _states_to_copy(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]],
    report: CopyReport,
    held: set[tuple[str, tuple[Any, ...]]],
) -> list[dict[str, Any]]:
    """App/user state rows to write: a row DEST holds with other values is a conflict."""
    existing = await _rows(conn, table, [_row_key(table, row) for row in rows])
    wanted = []
    for row in rows:
        key = _row_key(table, row)
        theirs = existing.get(key)
        if theirs is not None:
            keys = _differing_keys(row["state"], theirs["state"])
            if keys:
                shown = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
                report.conflicts.append(
                    Conflict(table.name, key, f"SOURCE and DEST hold other values for {shown}")
                )
                held.add((table.name, key))
                continue
        wanted.append(row)
    return wanted


async def _event_ids(conn: AsyncConnection, key: tuple[Any, ...]) -> set[str]:
    found = await conn.execute(
        select(events.c.id).where(
            events.c.app_name == key[0], events.c.user_id == key[1], events.c.session_id == key[2]
        )
    )
    return set(found.scalars())


async def _is_older_copy(
    source: AsyncConnection, dest: AsyncConnection, row: dict[str, Any], theirs: dict[str, Any]
) -> bool:
    """Whether DEST holds an earlier copy of this very session (SOURCE went on since).

    The same creation time, an update no later than SOURCE's, and every event DEST has is
    one of SOURCE's: bringing it up to date appends SOURCE's newer events to the same history.
    """
    if not _same_time(row["create_time"], theirs["create_time"]):
        return False
    if from_db_time(theirs["update_time"]) > from_db_time(row["update_time"]):
        return False
    key = _row_key(sessions, row)
    return await _event_ids(dest, key) <= await _event_ids(source, key)


async def _sessions_to_copy(
    source: AsyncConnection,
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    report: CopyReport,
    moved: dict[tuple[Any, ...], str | None],
    rename: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Session rows to write, and how many DEST rows were brought up to date.

    A session DEST holds with other content is a conflict, unless DEST's is an earlier copy
    of SOURCE's (see `_is_older_copy`): then its row is updated and the events pass adds the
    events it lacks.
    """
    existing = await _rows(conn, sessions, [_row_key(sessions, row) for row in rows])
    renames: dict[tuple[Any, ...], tuple[dict[str, Any], str]] = {}
    wanted = []
    updated = 0
    for row in rows:
        key = _row_key(sessions, row)
        theirs = existing.get(key)
        reason = None if theirs is None else _session_difference(row, theirs)
        if reason is None:
            wanted.append(row)
            continue
        if theirs is not None and await _is_older_copy(source, conn, row, theirs):
            await conn.execute(
                sessions.update()
                .where(
                    sessions.c.app_name == key[0],
                    sessions.c.user_id == key[1],
                    sessions.c.id == key[2],
                )
                .values(state=row["state"], update_time=row["update_time"])
            )
            wanted.append(row)
            updated += 1
            continue
        if not rename:
            moved[key] = None
            report.conflicts.append(Conflict("sessions", key, reason))
            continue
        new_id = renamed_session_id(row["app_name"], row["user_id"], row["id"], row["create_time"])
        renames[(row["app_name"], row["user_id"], new_id)] = (row, reason)
    taken = await _rows(conn, sessions, list(renames))
    for new_key, (row, reason) in renames.items():
        key = _row_key(sessions, row)
        renamed = {**row, "id": new_key[2]}
        theirs = taken.get(new_key)
        if theirs is not None and _session_difference(renamed, theirs) is not None:
            moved[key] = None
            report.conflicts.append(
                Conflict("sessions", key, f"{reason}, and id {new_key[2]} is taken too")
            )
            continue
        moved[key] = new_key[2]
        report.conflicts.append(Conflict("sessions", key, reason, renamed_to=new_key[2]))
        wanted.append(renamed)
    return wanted, updated


SessionKey = tuple[str, str, str]
"""(app name, user id, session id)."""


async def export_sessions(
    service: DatabaseSessionService,
    *,
    app_name: str,
    user_id: str | None = None,
    on_error: Callable[[SessionKey, Exception], None] | None = None,
) -> AsyncIterator[str]:
    """Yields one JSON line per session (google-adk's camelCase JSON, events included).

    Args:
        service: Where to read.
        app_name: The app whose sessions to export.
        user_id: Only this user's sessions.
        on_error: Called with the session's key and the error when a session cannot be read
            (a corrupt row); the export goes on with the next session. Without it the error
            is raised.
    """
    from openadk.errors import StorageError

    async for user, session_id in _session_keys(service, app_name, user_id):
        try:
            session = await service.get_session(
                app_name=app_name, user_id=user, session_id=session_id
            )
        except (ValueError, StorageError) as error:
            if on_error is None:
                raise
            on_error((app_name, user, session_id), error)
            continue
        if session is not None:  # deleted or expired since it was listed
            yield session.model_dump_json(by_alias=True, exclude_none=True)


async def _session_keys(
    service: DatabaseSessionService, app_name: str, user_id: str | None, page: int = 1000
) -> AsyncIterator[tuple[str, str]]:
    """(user, session id) of every session of an app, oldest update first, a page at a time.

    Only the key columns are read, so a session whose stored state is corrupt is still
    listed (and then reported by whoever reads it), where ``list_sessions`` would fail on it.
    """
    if _is_redis(service):
        async for key in service._session_keys(app_name, user_id):  # type: ignore[attr-defined]
            yield key
        return
    await service.prepare_tables()
    order = (sessions.c.update_time, sessions.c.user_id, sessions.c.id)
    query = select(*order).where(sessions.c.app_name == app_name)
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    query = query.order_by(*order).limit(page)
    after: tuple[Any, ...] | None = None
    while True:
        paged = query if after is None else query.where(tuple_(*order) > tuple_(*after))
        async with _engine(service).connect() as conn:
            rows = (await conn.execute(paged)).all()
        for row in rows:
            yield row[1], row[2]
        if len(rows) < page:
            return
        after = tuple(rows[-1])


@dataclass(frozen=True)
class AppSummary:
    """One app of a session store: how many sessions and distinct users it has."""

    app_name: str
    sessions: int
    users: int


async def list_apps(service: BaseSessionService) -> list[AppSummary]:
    """The apps that have sessions, by name, with their session and user counts.

    One ``GROUP BY`` statement on a database (expired sessions left out); a scan of the
    in-memory store.

    Raises:
        ValueError: A service that cannot list apps (the REST client: its API has no call).
    """
    from openadk.sessions._in_memory import InMemorySessionService

    if isinstance(service, InMemorySessionService):
        now = time.time()
        found = []
        for app, users in sorted(service._sessions.items()):
            live = {
                user: sum(
                    1 for s in stored.values() if s.expire_time is None or s.expire_time > now
                )
                for user, stored in users.items()
            }
            count = sum(live.values())
            if count:
                found.append(AppSummary(app, count, sum(1 for n in live.values() if n)))
        return found
    if _is_redis(service):
        return [
            AppSummary(app, count, users)
            for app, count, users in await service._list_apps()  # type: ignore[attr-defined]
        ]
    if not isinstance(service, DatabaseSessionService):
        raise ValueError(f"{type(service).__name__} cannot list apps.")
    await service.prepare_tables()
    joined = sessions.outerjoin(
        session_expiry,
        and_(
            session_expiry.c.app_name == sessions.c.app_name,
            session_expiry.c.user_id == sessions.c.user_id,
            session_expiry.c.session_id == sessions.c.id,
        ),
    )
    query = (
        select(sessions.c.app_name, func.count(), func.count(sessions.c.user_id.distinct()))
        .select_from(joined)
        .where(
            or_(
                session_expiry.c.expire_time.is_(None),
                session_expiry.c.expire_time > to_db_time(time.time()),
            )
        )
        .group_by(sessions.c.app_name)
        .order_by(sessions.c.app_name)
    )
    async with _engine(service).connect() as conn:
        rows = (await conn.execute(query)).all()
    return [AppSummary(app, int(count), int(users)) for app, count, users in rows]


def sqlite_file(db_url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database or an in-memory one.

    Relative paths are relative to the working directory, as SQLite opens them.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


def require_existing(db_url: str, what: str = "database") -> None:
    """Refuses a SQLite URL whose file does not exist (opening it would create it).

    Raises:
        FileNotFoundError: Naming the path.
    """
    path = sqlite_file(db_url)
    if path is not None and not path.exists():
        raise FileNotFoundError(
            2,
            f"No such {what} (nothing was created; check the path, or use an absolute one)",
            str(path.absolute()),
        )


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name one database: SQLite files compared by their real paths."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    a, b = sqlite_file(first), sqlite_file(second)
    if a is not None or b is not None:
        if a is None or b is None:
            return False
        try:
            return a.exists() and b.exists() and a.samefile(b)
        except OSError:
            return a.resolve() == b.resolve()
    try:
        x, y = make_url(first), make_url(second)
    except ArgumentError:
        return first == second
    return (x.get_backend_name(), x.host, x.port, x.database) == (
        y.get_backend_name(),
        y.host,
        y.port,
        y.database,
    )


@dataclass
class ImportReport:
    """What `import_sessions` did; ``errors`` are one line each, naming the line number."""

    imported: int = 0
    """Sessions written that were not there."""
    replaced: int = 0
    """Sessions written over an existing one (``replace=True``)."""
    skipped: int = 0
    """Sessions already there, left alone."""
    errors: list[str] = field(default_factory=list)
    indexed: int = 0
    """Imported events added to the search index."""
    not_carried: int = 0
    """Sessions written without their title and labels: the service cannot hold them (Redis)."""


def _split(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    own: dict[str, Any] = {}
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(State.APP_PREFIX):
            app[key[len(State.APP_PREFIX) :]] = value
        elif key.startswith(State.USER_PREFIX):
            user[key[len(State.USER_PREFIX) :]] = value
        elif not key.startswith(State.TEMP_PREFIX):
            own[key] = value
    return own, app, user


async def import_sessions(
    service: DatabaseSessionService, lines: Iterable[str], *, replace: bool = False
) -> ImportReport:
    """Imports sessions from JSON Lines as written by `export_sessions` (or google-adk).

    Each session is one transaction: its row, its events exactly as exported (ids, times), its
    title and labels (``displayName``, ``labels``), its events' search index rows, and its
    ``app:``/``user:`` keys merged into the shared state. A session that already exists is
    skipped (or replaced with ``replace=True``: its old events, index rows, title and labels
    go). A malformed line is reported with its number and skipped; nothing of it is written.
    A service without titles and labels (Redis) imports the rest and counts the sessions in
    ``not_carried``.
    """
    report = ImportReport()
    if _is_redis(service):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                session = _parse_line(line)
                outcome = await service._import_session(session, replace)  # type: ignore[attr-defined]
            except (ValueError, TypeError) as exc:
                report.errors.append(f"line {number}: {exc}")
                continue
            if outcome != "skipped" and (session.display_name is not None or session.labels):
                report.not_carried += 1
            if outcome == "skipped":
                report.skipped += 1
            elif outcome == "replaced":
                report.replaced += 1
            else:
                report.imported += 1
        return report
    await service.prepare_tables()
    engine = _engine(service)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            session = _parse_line(line)
        except ValueError as exc:
            report.errors.append(f"line {number}: {exc}")
            continue
        try:
            outcome, indexed = await _write_session(service, engine, session, replace)
        except (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError) as error:
            # The transaction was rolled back: nothing of this line is stored.
            reason = str(getattr(error, "orig", None) or error).splitlines()[0][:200]
            report.errors.append(
                f"line {number}: session {session.id!r} cannot be stored "
                f"({type(error).__name__}: {reason})"
            )
            continue
        report.indexed += indexed
        if outcome == "skipped":
            report.skipped += 1
        elif outcome == "replaced":
            report.replaced += 1
        else:
            report.imported += 1
    return report


async def _write_session(
    service: DatabaseSessionService, engine: AsyncEngine, session: Session, replace: bool
) -> tuple[str, int]:
    """One session in one transaction.

    Returns "imported", "replaced" or "skipped", and how many of its events were indexed.
    """
    own, app, user = _split(session.state)
    key = and_(
        sessions.c.app_name == session.app_name,
        sessions.c.user_id == session.user_id,
        sessions.c.id == session.id,
    )
    dialect = engine.dialect.name
    search = "search" in service.capabilities
    names = (session.app_name, session.user_id, session.id)
    async with engine.begin() as conn:
        exists = (await conn.execute(select(sessions.c.id).where(key))).first()
        if exists is not None and not replace:
            return "skipped", 0
        if exists is not None:
            # The old session's title, labels and index rows go with it.
            await _metadata_sql.delete_session_metadata(conn, *names)
            if search:
                await _search.unindex_session(conn, dialect, *names)
            await conn.execute(
                events.delete().where(
                    events.c.app_name == session.app_name,
                    events.c.user_id == session.user_id,
                    events.c.session_id == session.id,
                )
            )
            await conn.execute(sessions.delete().where(key))
        stamp = to_db_time(session.last_update_time)
        await _merge_scope(conn, app_states, {"app_name": session.app_name}, app, stamp)
        await _merge_scope(
            conn,
            user_states,
            {"app_name": session.app_name, "user_id": session.user_id},
            user,
            stamp,
        )
        await conn.execute(
            sessions.insert().values(
                app_name=session.app_name,
                user_id=session.user_id,
                id=session.id,
                state=own,
                create_time=to_db_time(
                    session.events[0].timestamp if session.events else session.last_update_time
                ),
                update_time=stamp,
            )
        )
        indexed = 0
        if session.events:
            rows = [_event_row(session, event) for event in session.events]
            await conn.execute(events.insert(), rows)
            if search:
                indexed = await _search.index_stored_events(conn, dialect, rows)
        if session.display_name is not None or session.labels:
            await _metadata_sql.write_metadata(
                conn,
                dialect,
                *names,
                SessionMetadata(display_name=session.display_name, labels=dict(session.labels)),
            )
    return ("imported" if exists is None else "replaced"), indexed


def _parse_line(line: str) -> Session:
    """One JSON line as a Session; the ValueError names the field and the reason."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise ValueError("not JSON openadk can read: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a session: a JSON {type(data).__name__}, not an object")
    try:
        session = Session.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the session"
        more = error.error_count() - 1
        also = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        raise ValueError(f"field {where}: {first.get('msg')}{also}") from None
    for name, shown in (("app_name", "appName"), ("user_id", "userId"), ("id", "id")):
        try:
            check_key(getattr(session, name), name)
        except ValueError as error:
            raise ValueError(f"field {shown}: {error}") from None
    # What the database service refuses to store, import refuses too: a stored session must
    # read back.
    check_storable(session.state, "field state", MAX_EVENT_DEPTH)
    try:
        check_display_name(session.display_name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"field displayName: {error}") from None
    try:
        check_labels(session.labels)
    except (TypeError, ValueError) as error:
        raise ValueError(f"field labels: {error}") from None
    seen: set[str] = set()
    for index, event in enumerate(session.events):
        if len(event.id) > MAX_KEY_LENGTH:
            raise ValueError(f"field events.{index}.id: longer than {MAX_KEY_LENGTH} characters")
        if event.id in seen:
            raise ValueError(f"field events.{index}.id: event id {event.id!r} appears twice")
        seen.add(event.id)
        try:
            AppendPlan.for_event(event)  # the same check append_event makes
        except (TypeError, ValueError) as error:
            raise ValueError(f"field events.{index}: {error}") from None
    return session


def _event_row(session: Session, event: Event) -> dict[str, Any]:
    data = event.model_dump(mode="json", exclude_none=True)
    return {
        "id": event.id,
        "app_name": session.app_name,
        "user_id": session.user_id,
        "session_id": session.id,
        "invocation_id": event.invocation_id,
        "timestamp": to_db_time(event.timestamp),
        "event_data": data,
    }


async def _merge_scope(
    conn: AsyncConnection, table: Table, key: dict[str, str], delta: dict[str, Any], stamp: Any
) -> None:
    where = [table.c[name] == value for name, value in key.items()]
    current = (await conn.execute(select(table.c.state).where(*where))).first()
    if current is None:
        await conn.execute(table.insert().values(**key, state=delta, update_time=stamp))
    elif delta:
        await conn.execute(
            table.update().where(*where).values(state={**current.state, **delta}, update_time=stamp)
        )


async def prune_sessions(
    service: DatabaseSessionService,
    *,
    older_than: datetime.timedelta | None = None,
    expired: bool = False,
    app_name: str | None = None,
    dry_run: bool = False,
) -> list[tuple[str, str, str]]:
    """Deletes sessions (and their events) not updated for ``older_than``, or expired.

    App and user state stay. Returns the (app, user, session) keys deleted, or that would be
    with ``dry_run``.

    Raises:
        ValueError: Neither ``older_than`` nor ``expired`` was asked for.
    """
    if older_than is None and not expired:
        raise ValueError("Say what to prune: --older-than AGE, --expired, or both.")
    if _is_redis(service):
        # Redis expires sessions itself: --expired finds only those the service's clock has
        # passed and Redis has not removed yet.
        return await service._prune(  # type: ignore[attr-defined, no-any-return]
            older_than=None if older_than is None else older_than.total_seconds(),
            expired=expired,
            app_name=app_name,
            dry_run=dry_run,
        )
    await service.prepare_tables()
    engine = _engine(service)
    now = time.time()
    conditions = []
    if older_than is not None:
        conditions.append(sessions.c.update_time < to_db_time(now - older_than.total_seconds()))
    if expired:
        conditions.append(
            select(session_expiry.c.session_id)
            .where(
                session_expiry.c.app_name == sessions.c.app_name,
                session_expiry.c.user_id == sessions.c.user_id,
                session_expiry.c.session_id == sessions.c.id,
                session_expiry.c.expire_time <= to_db_time(now),
            )
            .exists()
        )
    query = select(sessions.c.app_name, sessions.c.user_id, sessions.c.id).where(or_(*conditions))
    if app_name is not None:
        query = query.where(sessions.c.app_name == app_name)
    async with engine.connect() as conn:
        keys = [tuple(row) for row in (await conn.execute(query)).all()]
    if dry_run:
        return keys
    for app, user, session_id in keys:
        await service.delete_session(app_name=app, user_id=user, session_id=session_id)
    return keys


def parse_age(text: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` as a duration.

    Raises:
        ValueError: The text is not a number followed by one of those units.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value, unit = text[:-1], text[-1:].lower()
    if unit not in units or not value.isascii() or not value.isdigit():
        raise ValueError(f"Age {text!r} must be a number and a unit, e.g. 30d, 12h, 45m, 2w.")
    try:
        return datetime.timedelta(seconds=int(value) * units[unit])
    except OverflowError:
        raise ValueError(f"Age {text!r} is longer than any time a session can be kept.") from None


def describe_time(value: Any) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return from_db_time(value).strftime("%Y-%m-%d %H:%M:%S")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
