"""Operating a session database: copying it, exporting and importing JSON Lines, pruning.

Rows are copied as they are (times, ids, JSON), so a copy is exact: nothing is re-appended, no
timestamp moves. Copies are resumable: a row whose key already exists in the destination is
skipped, so an interrupted copy can simply be run again.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from openadk.events import Event
from openadk.sessions._base import MAX_KEY_LENGTH, check_key
from openadk.sessions._database import DatabaseSessionService
from openadk.sessions._schema import (
    app_states,
    events,
    from_db_time,
    session_expiry,
    sessions,
    to_db_time,
    user_states,
)
from openadk.sessions._session import Session
from openadk.sessions._state import State

__all__ = [
    "CopyReport",
    "ImportReport",
    "copy_database",
    "export_sessions",
    "import_sessions",
    "prune_sessions",
]

# Parents before children, so foreign keys hold at every step.
TABLES: list[Table] = [app_states, user_states, sessions, session_expiry, events]


@dataclass
class CopyReport:
    """Rows per table: in the source, copied now, already present in the destination."""

    source: dict[str, int] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    """Source rows absent from the destination after the copy (0 everywhere when verified)."""

    @property
    def verified(self) -> bool:
        return not any(self.missing.values())


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


async def _keys(conn: AsyncConnection, table: Table, keys: list[tuple[Any, ...]]) -> set[Any]:
    if not keys:
        return set()
    columns = _key_columns(table)
    rows = await conn.execute(select(*columns).where(tuple_(*columns).in_(keys)))
    return {tuple(r) for r in rows}


async def _batches(
    conn: AsyncConnection, table: Table, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    order = _key_columns(table)
    result = await conn.stream(select(table).order_by(*order))
    async for partition in result.mappings().partitions(size):
        yield [dict(row) for row in partition]


async def copy_database(
    source: DatabaseSessionService,
    destination: DatabaseSessionService,
    *,
    batch_size: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
) -> CopyReport:
    """Copies every app/user state, session and event from ``source`` to ``destination``.

    Each batch is one transaction in the destination; rows already there are skipped, so the
    copy can be interrupted and run again. At the end every source key is looked up in the
    destination and the report says how many are missing.

    Args:
        source: Where to read.
        destination: Where to write (tables are created if needed).
        batch_size: Rows per transaction.
        progress: Called as ``progress(table, done, total)`` after each batch.
    """
    await source.prepare_tables()
    await destination.prepare_tables()
    src, dst = _engine(source), _engine(destination)
    report = CopyReport()
    async with src.connect() as read:
        for table in TABLES:
            total = (await read.execute(select(func.count()).select_from(table))).scalar_one()
            report.source[table.name] = total
            report.copied[table.name] = report.skipped[table.name] = 0
            done = 0
            async for rows in _batches(read, table, batch_size):
                keys = [tuple(row[c.name] for c in _key_columns(table)) for row in rows]
                async with dst.begin() as write:
                    present = await _keys(write, table, keys)
                    fresh = [row for row, key in zip(rows, keys, strict=True) if key not in present]
                    if fresh:
                        await write.execute(table.insert(), fresh)
                report.copied[table.name] += len(fresh)
                report.skipped[table.name] += len(rows) - len(fresh)
                done += len(rows)
                if progress is not None:
                    progress(table.name, done, total)
        # Verify: every source key is in the destination.
        for table in TABLES:
            missing = 0
            async for rows in _batches(read, table, batch_size):
                keys = [tuple(row[c.name] for c in _key_columns(table)) for row in rows]
                async with dst.connect() as check:
                    missing += len(keys) - len(await _keys(check, table, keys))
            report.missing[table.name] = missing
    return report


async def export_sessions(
    service: DatabaseSessionService, *, app_name: str, user_id: str | None = None
) -> AsyncIterator[str]:
    """Yields one JSON line per session (google-adk's camelCase JSON, events included)."""
    token = None
    while True:
        page = await service.list_sessions(
            app_name=app_name, user_id=user_id, limit=100, page_token=token
        )
        for listed in page.sessions:
            session = await service.get_session(
                app_name=app_name, user_id=listed.user_id, session_id=listed.id
            )
            if session is not None:
                yield session.model_dump_json(by_alias=True, exclude_none=True)
        token = page.next_page_token
        if token is None:
            return


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


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

    Each session is one transaction: its row, its events exactly as exported (ids, times), and
    its ``app:``/``user:`` keys merged into the shared state. A session that already exists is
    skipped (or replaced with ``replace=True``). A malformed line is reported with its number
    and skipped; nothing of it is written.
    """
    await service.prepare_tables()
    engine = _engine(service)
    report = ImportReport()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            session = Session.model_validate_json(line)
            for name in ("app_name", "user_id", "id"):
                check_key(getattr(session, name), name)
            for event in session.events:
                if len(event.id) > MAX_KEY_LENGTH:
                    raise ValueError(f"event id {event.id[:20]}... is too long")
        except ValueError as exc:
            report.errors.append(f"line {number}: {str(exc).splitlines()[0]}")
            continue
        own, app, user = _split(session.state)
        key = and_(
            sessions.c.app_name == session.app_name,
            sessions.c.user_id == session.user_id,
            sessions.c.id == session.id,
        )
        async with engine.begin() as conn:
            exists = (await conn.execute(select(sessions.c.id).where(key))).first()
            if exists is not None and not replace:
                report.skipped += 1
                continue
            if exists is not None:
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
            if session.events:
                await conn.execute(
                    events.insert(),
                    [_event_row(session, event) for event in session.events],
                )
        report.imported += 1
    return report


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
    if unit not in units or not value.isdigit():
        raise ValueError(f"Age {text!r} must be a number and a unit, e.g. 30d, 12h, 45m, 2w.")
    return datetime.timedelta(seconds=int(value) * units[unit])


def describe_time(value: Any) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return from_db_time(value).strftime("%Y-%m-%d %H:%M:%S")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
