"""`openadk migrate-from` when Redis is on either side, or the source is google-adk's Redis layout.

Sources: a `RedisSessionService`, a `DatabaseSessionService`, or google-adk 2.13's
``google.adk.integrations.redis.RedisSessionService`` key layout (read directly: one JSON string
per session under ``adk:session:{app}:{user}:{id}``, and ``adk:session:app_state:{app}`` /
``adk:session:user_state:{app}:{user}`` JSON strings). Destinations: a `RedisSessionService` or a
`DatabaseSessionService`.

The copy is conflict-safe in the same way as the database-to-database path: a session DEST
already holds with the same events and state is skipped (so a copy can be run again); one whose
events are a prefix of SOURCE's (an earlier copy) is brought up to date; any other is a
`Conflict`, left as it was (or copied under `renamed_session_id`). App and user state are
merged key by key; a key DEST holds with another value is a conflict and DEST keeps its value.
Expiry is copied (sessions already expired are not).

Titles and labels: openadk's Redis service holds none, so a database SOURCE's are not carried
into Redis; the report's ``not_carried`` says how many sessions had some. A database DEST gets
its search index filled from the events copied into it, in the transaction that writes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from openadk.events import Event
from openadk.sessions._admin import Conflict, CopyReport, renamed_session_id
from openadk.sessions._base import BaseSessionService
from openadk.sessions._metadata import SessionMetadata
from openadk.sessions._redis import RedisSessionService, _unescape
from openadk.sessions._session import Session

__all__ = ["ADK_REDIS_SCHEMES", "AdkRedisSource", "Record", "copy_with_redis", "is_adk_redis_url"]

ADK_REDIS_SCHEMES = ("google-adk+redis", "google-adk+rediss")
"""``google-adk+redis://host:port/db[?key_prefix=adk:session:]``: google-adk's Redis layout."""

_TABLES = ("app_states", "user_states", "sessions", "events")


def is_adk_redis_url(url: str) -> bool:
    """Whether ``url`` names a google-adk RedisSessionService store (``google-adk+redis://``)."""
    scheme, sep, _ = url.strip().partition("://")
    return bool(sep) and scheme.lower() in ADK_REDIS_SCHEMES


@dataclass
class Record:
    """One session with its own (unprefixed) state, times, expiry and events."""

    app_name: str
    user_id: str
    id: str
    state: dict[str, Any]
    create_time: float
    update_time: float
    expire_time: float | None
    events: list[Event] = field(default_factory=list)
    display_name: str | None = None
    """The title (a database SOURCE's; Redis holds none)."""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class _Source:
    app_states: dict[str, dict[str, Any]]
    user_states: dict[tuple[str, str], dict[str, Any]]
    sessions: Callable[[], AsyncIterator[Record]]


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _tag(key: str, prefix: str) -> str | None:
    rest = key[len(prefix) :]
    if not rest.startswith("{") or "}" not in rest:
        return None
    return rest[1 : rest.index("}")]


# Sources ---------------------------------------------------------------------------------------


async def _redis_source(service: RedisSessionService) -> _Source:
    client, prefix = service.client, service.key_prefix
    app_states: dict[str, dict[str, Any]] = {}
    user_states: dict[tuple[str, str], dict[str, Any]] = {}
    apps: set[str] = set()
    async for raw in client.scan_iter(match=_glob(prefix) + "{*}:*", count=1000):
        key = raw.decode()
        tag = _tag(key, prefix)
        if tag is None:
            continue
        suffix = key[len(prefix) + len(tag) + 2 :]
        if ":" not in tag and suffix in (":app", ":idx"):
            app = _unescape(tag)
            apps.add(app)
            if suffix == ":app":
                app_states[app] = await service._get_app_state(app)
        elif ":" in tag and suffix == ":user":
            app_part, _, user_part = tag.partition(":")
            app, user = _unescape(app_part), _unescape(user_part)
            user_states[(app, user)] = await service.get_user_state(app_name=app, user_id=user)

    async def sessions() -> AsyncIterator[Record]:
        for app in sorted(apps):
            index = service._keys(app, "-").aidx
            for member in await client.zrange(index, 0, -1):
                user, _, sid = member.decode().partition("\x00")
                record = await service._record(app, user, sid)
                if record is not None:
                    yield record

    return _Source(app_states, user_states, sessions)


async def _database_source(service: Any) -> _Source:
    from sqlalchemy import select

    from openadk.sessions import _metadata_sql
    from openadk.sessions._admin import _engine, _session_keys, list_apps
    from openadk.sessions._schema import (
        app_states,
        from_db_time,
        session_expiry,
        sessions,
        user_states,
    )

    engine = _engine(service)
    await service.prepare_tables()

    def loads(value: Any) -> dict[str, Any]:
        return json.loads(value) if isinstance(value, (str, bytes)) else dict(value or {})

    async with engine.connect() as conn:
        apps_rows = (await conn.execute(select(app_states.c.app_name, app_states.c.state))).all()
        user_rows = (
            await conn.execute(
                select(user_states.c.app_name, user_states.c.user_id, user_states.c.state)
            )
        ).all()
    app_state = {row[0]: loads(row[1]) for row in apps_rows}
    user_state = {(row[0], row[1]): loads(row[2]) for row in user_rows}
    apps = [summary.app_name for summary in await list_apps(service)]
    now = time.time()

    async def records() -> AsyncIterator[Record]:
        for app in apps:
            async for user, sid in _session_keys(service, app, None):
                key = (sessions.c.app_name == app, sessions.c.user_id == user, sessions.c.id == sid)
                async with engine.connect() as conn:
                    row = (
                        await conn.execute(
                            select(
                                sessions.c.state, sessions.c.create_time, sessions.c.update_time
                            ).where(*key)
                        )
                    ).first()
                    expiry = (
                        await conn.execute(
                            select(session_expiry.c.expire_time).where(
                                session_expiry.c.app_name == app,
                                session_expiry.c.user_id == user,
                                session_expiry.c.session_id == sid,
                            )
                        )
                    ).scalar()
                    display_name, labels = await _metadata_sql.read_metadata(
                        conn, engine.dialect.name, app, user, sid
                    )
                if row is None:
                    continue
                expire = None if expiry is None else from_db_time(expiry).timestamp()
                if expire is not None and expire <= now:
                    continue
                events: list[Event] = []
                token = None
                while True:
                    page = await service.list_events(
                        app_name=app, user_id=user, session_id=sid, limit=1000, page_token=token
                    )
                    events += page.events
                    token = page.next_page_token
                    if token is None:
                        break
                yield Record(
                    app,
                    user,
                    sid,
                    loads(row.state),
                    from_db_time(row.create_time).timestamp(),
                    from_db_time(row.update_time).timestamp(),
                    expire,
                    events,
                    display_name,
                    labels,
                )

    return _Source(app_state, user_state, records)


class AdkRedisSource:
    """google-adk 2.13's RedisSessionService layout, read with redis-py (never written)."""

    def __init__(self, url: str) -> None:
        """Opens ``google-adk+redis://host:port/db[?key_prefix=adk:session:]``."""
        import redis.asyncio as redis_asyncio

        parts = urlsplit(url.strip())
        query = parse_qs(parts.query)
        self.prefix = query.pop("key_prefix", ["adk:session:"])[0]
        scheme = parts.scheme.lower().removeprefix("google-adk+")
        plain = urlunsplit(parts._replace(scheme=scheme, query=""))
        self.client = redis_asyncio.from_url(plain, decode_responses=False)

    async def close(self) -> None:
        """Closes the connection."""
        await self.client.aclose()

    async def source(self) -> _Source:
        prefix = self.prefix
        app_states: dict[str, dict[str, Any]] = {}
        user_raw: dict[str, dict[str, Any]] = {}
        session_keys: list[bytes] = []
        async for raw in self.client.scan_iter(match=_glob(prefix) + "*", count=1000):
            key = raw.decode()
            rest = key[len(prefix) :]
            if rest.startswith("app_state:"):
                app_states[rest[len("app_state:") :]] = _object(await self.client.get(raw))
            elif rest.startswith("user_state:"):
                user_raw[rest[len("user_state:") :]] = _object(await self.client.get(raw))
            else:
                session_keys.append(raw)
        loaded: list[tuple[Session, int]] = []
        for raw in session_keys:
            value = await self.client.get(raw)
            if value is None:
                continue
            try:
                session = Session.model_validate_json(value)
            except ValueError:
                continue  # not a session: google-adk's own reader skips these too
            ttl = await self.client.pttl(raw)
            loaded.append((session, ttl))
        # "user_state:{app}:{user}" is ambiguous when ids hold ':'; resolve it with the
        # (app, user) pairs the sessions name, then split at the first ':' for the rest.
        pairs = {(s.app_name, s.user_id) for s, _ in loaded}
        user_states: dict[tuple[str, str], dict[str, Any]] = {}
        for rest, state in user_raw.items():
            match = [p for p in pairs if f"{p[0]}:{p[1]}" == rest]
            if match:
                user_states[match[0]] = state
            else:
                app, _, user = rest.partition(":")
                user_states[(app, user)] = state
        now = time.time()

        async def records() -> AsyncIterator[Record]:
            for session, ttl in loaded:
                own = {
                    k: v
                    for k, v in session.state.items()
                    if not k.startswith(("app:", "user:", "temp:"))
                }
                first = session.events[0].timestamp if session.events else None
                yield Record(
                    session.app_name,
                    session.user_id,
                    session.id,
                    own,
                    first if first is not None else session.last_update_time,
                    session.last_update_time,
                    None if ttl < 0 else now + ttl / 1000,
                    list(session.events),
                )

        return _Source(app_states, user_states, records)


def _object(value: bytes | str | None) -> dict[str, Any]:
    if not value:
        return {}
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) else {}


# Destinations ----------------------------------------------------------------------------------


def _merge(dest: dict[str, Any], source: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keys to add to DEST, and the keys DEST holds with another value."""
    missing = {k: v for k, v in source.items() if k not in dest}
    differing = sorted(k for k, v in source.items() if k in dest and dest[k] != v)
    return missing, differing


def _outcome(dest: Record | None, source: Record) -> str:  # "new", "same", "update" or "conflict"
    if dest is None:
        return "new"
    ids, theirs = [e.id for e in source.events], [e.id for e in dest.events]
    if ids == theirs and dest.state == source.state:
        return "same"
    if ids[: len(theirs)] == theirs and len(ids) > len(theirs):
        return "update"
    return "conflict"


class _RedisDest:
    def __init__(self, service: RedisSessionService) -> None:
        self.service = service

    async def app_state(self, app: str) -> dict[str, Any]:
        return await self.service._get_app_state(app)

    async def user_state(self, app: str, user: str) -> dict[str, Any]:
        return await self.service.get_user_state(app_name=app, user_id=user)

    async def add_state(self, app: str, user: str | None, delta: dict[str, Any]) -> None:
        await self.service._put_scope(app, user, delta)

    async def get(self, app: str, user: str, sid: str) -> Record | None:
        record: Record | None = await self.service._record(app, user, sid)
        return record

    async def put(self, record: Record, expected: Record | None) -> bool:
        return await self.service._put_record(record, expected)


class _DatabaseDest:
    def __init__(self, service: Any) -> None:
        self.service = service

    async def _scope(self, table: Any, key: dict[str, str]) -> dict[str, Any]:
        from sqlalchemy import select

        from openadk.sessions._admin import _engine

        where = [table.c[name] == value for name, value in key.items()]
        async with _engine(self.service).connect() as conn:
            row = (await conn.execute(select(table.c.state).where(*where))).first()
        if row is None:
            return {}
        value = row.state
        return json.loads(value) if isinstance(value, (str, bytes)) else dict(value)

    async def app_state(self, app: str) -> dict[str, Any]:
        from openadk.sessions._schema import app_states

        return await self._scope(app_states, {"app_name": app})

    async def user_state(self, app: str, user: str) -> dict[str, Any]:
        from openadk.sessions._schema import user_states

        return await self._scope(user_states, {"app_name": app, "user_id": user})

    async def add_state(self, app: str, user: str | None, delta: dict[str, Any]) -> None:
        from openadk.sessions._admin import _engine, _merge_scope
        from openadk.sessions._schema import app_states, to_db_time, user_states

        async with _engine(self.service).begin() as conn:
            if user is None:
                await _merge_scope(
                    conn, app_states, {"app_name": app}, delta, to_db_time(time.time())
                )
            else:
                await _merge_scope(
                    conn,
                    user_states,
                    {"app_name": app, "user_id": user},
                    delta,
                    to_db_time(time.time()),
                )

    async def get(self, app: str, user: str, sid: str) -> Record | None:
        from sqlalchemy import select

        from openadk.sessions._admin import _engine
        from openadk.sessions._schema import from_db_time, sessions

        key = (sessions.c.app_name == app, sessions.c.user_id == user, sessions.c.id == sid)
        async with _engine(self.service).connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.state, sessions.c.create_time, sessions.c.update_time).where(
                        *key
                    )
                )
            ).first()
        if row is None:
            return None
        page = await self.service.list_events(app_name=app, user_id=user, session_id=sid)
        state = row.state if isinstance(row.state, dict) else json.loads(row.state or "{}")
        return Record(
            app,
            user,
            sid,
            state,
            from_db_time(row.create_time).timestamp(),
            from_db_time(row.update_time).timestamp(),
            None,
            list(page.events),
        )

    async def put(self, record: Record, expected: Record | None) -> bool:
        from sqlalchemy import and_, select

        from openadk.sessions import _metadata_sql, _search
        from openadk.sessions._admin import _engine, _event_row
        from openadk.sessions._schema import events, session_expiry, sessions, to_db_time

        key = and_(
            sessions.c.app_name == record.app_name,
            sessions.c.user_id == record.user_id,
            sessions.c.id == record.id,
        )
        handle = Session(
            id=record.id, app_name=record.app_name, user_id=record.user_id, events=record.events
        )
        await self.service.prepare_tables()
        async with _engine(self.service).begin() as conn:
            count = (
                await conn.execute(
                    select(events.c.id).where(
                        events.c.app_name == record.app_name,
                        events.c.user_id == record.user_id,
                        events.c.session_id == record.id,
                    )
                )
            ).all()
            exists = (await conn.execute(select(sessions.c.id).where(key))).first() is not None
            if exists != (expected is not None) or (
                expected is not None and len(count) != len(expected.events)
            ):
                return False  # DEST changed since it was read: the caller reads again
            values = {
                "state": record.state,
                "update_time": to_db_time(record.update_time),
            }
            if not exists:
                await conn.execute(
                    sessions.insert().values(
                        app_name=record.app_name,
                        user_id=record.user_id,
                        id=record.id,
                        create_time=to_db_time(record.create_time),
                        **values,
                    )
                )
            else:
                await conn.execute(sessions.update().where(key).values(**values))
            new = record.events[len(count) :]
            if new:
                rows = [_event_row(handle, e) for e in new]
                await conn.execute(events.insert(), rows)
                if "search" in self.service.capabilities:
                    # search: DEST's index, filled with the events as they are written.
                    await _search.index_stored_events(conn, conn.dialect.name, rows)
            if not exists and (record.display_name is not None or record.labels):
                await _metadata_sql.write_metadata(
                    conn,
                    conn.dialect.name,
                    record.app_name,
                    record.user_id,
                    record.id,
                    SessionMetadata(display_name=record.display_name, labels=record.labels),
                )
            if record.expire_time is not None and not exists:
                await conn.execute(
                    session_expiry.insert().values(
                        app_name=record.app_name,
                        user_id=record.user_id,
                        session_id=record.id,
                        expire_time=to_db_time(record.expire_time),
                    )
                )
        return True


# The copy --------------------------------------------------------------------------------------


async def copy_with_redis(
    source: BaseSessionService | AdkRedisSource,
    destination: BaseSessionService,
    *,
    rename_conflicts: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> CopyReport:
    """Copies app/user state and sessions from ``source`` to ``destination`` (see the module).

    Raises:
        ValueError: A service this copy cannot read or write.
    """
    if isinstance(source, AdkRedisSource):
        src = await source.source()
    elif isinstance(source, RedisSessionService):
        src = await _redis_source(source)
    elif type(source).__name__ == "DatabaseSessionService":
        src = await _database_source(source)
    else:
        raise ValueError(f"migrate-from cannot read a {type(source).__name__}.")
    dest: _RedisDest | _DatabaseDest
    if isinstance(destination, RedisSessionService):
        dest = _RedisDest(destination)
    elif type(destination).__name__ == "DatabaseSessionService":
        dest = _DatabaseDest(destination)
        await destination.prepare_tables()  # type: ignore[attr-defined]
    else:
        raise ValueError(f"migrate-from cannot write a {type(destination).__name__}.")
    report = CopyReport()
    for table in _TABLES:
        report.start_table(table)

    async def scope(table: str, key: tuple[str, ...], state: dict[str, Any]) -> None:
        app, user = key[0], (key[1] if len(key) > 1 else None)
        report.source[table] += 1
        current = await (dest.app_state(app) if user is None else dest.user_state(app, user))
        missing, differing = _merge(current, state)
        if missing:
            await dest.add_state(app, user, missing)
        if differing:
            report.conflicted[table] += 1
            report.conflicts.append(
                Conflict(table, key, f"DEST holds other values for {', '.join(differing)}")
            )
        elif missing:
            report.copied[table] += 1
        else:
            report.skipped[table] += 1

    for app, state in sorted(src.app_states.items()):
        await scope("app_states", (app,), state)
    for (app, user), state in sorted(src.user_states.items()):
        await scope("user_states", (app, user), state)
    done = 0
    untitled = 0  # sessions whose title and labels DEST cannot hold
    async for record in src.sessions():
        if isinstance(dest, _RedisDest) and (record.display_name is not None or record.labels):
            untitled += 1
        report.source["sessions"] += 1
        report.source["events"] += len(record.events)
        key = (record.app_name, record.user_id, record.id)
        for _ in range(5):
            current = await dest.get(*key)
            outcome = _outcome(current, record)
            if outcome == "same":
                report.skipped["sessions"] += 1
                report.skipped["events"] += len(record.events)
                break
            if outcome == "conflict":
                reason = "DEST holds another session under this id"
                if not rename_conflicts:
                    report.conflicted["sessions"] += 1
                    report.conflicted["events"] += len(record.events)
                    report.conflicts.append(Conflict("sessions", key, reason))
                    break
                new_id = renamed_session_id(*key, record.create_time)
                record = Record(**{**record.__dict__, "id": new_id})
                report.conflicts.append(Conflict("sessions", key, reason, renamed_to=new_id))
                key = (record.app_name, record.user_id, new_id)
                continue
            if await dest.put(record, current):
                already = 0 if current is None else len(current.events)
                report.copied["sessions"] += 1
                report.copied["events"] += len(record.events) - already
                report.skipped["events"] += already
                break
        done += 1
        if progress is not None:
            progress("sessions", done, done)
    if untitled:
        report.not_carried.append(
            f"titles and labels of {untitled} session(s): openadk's Redis service holds "
            "none (their events and state were copied; search and label filters need a "
            "database DEST)"
        )
    # Verify: every session copied or skipped is in DEST with at least SOURCE's events.
    async for record in src.sessions():
        key = (record.app_name, record.user_id, record.id)
        if any(c.key == key and c.renamed_to is None for c in report.conflicts):
            continue
        renamed = [c.renamed_to for c in report.conflicts if c.key == key and c.renamed_to]
        got = await dest.get(record.app_name, record.user_id, renamed[0] if renamed else record.id)
        if got is None or [e.id for e in got.events][: len(record.events)] != [
            e.id for e in record.events
        ]:
            report.missing["sessions"] += 1
    return report
