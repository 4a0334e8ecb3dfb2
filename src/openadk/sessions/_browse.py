"""Read-only queries the session browser (``openadk serve``'s pages) needs beyond the service API.

Apps with their counts and last activity, an app's sessions newest first with their event
counts, and a session's events before a position. On a database each is one indexed statement
over the session tables (google-adk's schema, which every version of openadk keeps); on any
other service the same answers come from the public `BaseSessionService` methods, at a cost
linear in what the service holds (fine for the in-memory service and small REST stores).

Events themselves are always read through the service (`get_session`, `list_events`), so what
the page shows is what an agent reads back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openadk.events import Event
from openadk.sessions._base import BaseSessionService, decode_page_token, encode_page_token
from openadk.sessions._session import Session

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "AppRow",
    "SessionPage",
    "SessionRow",
    "app_rows",
    "count_events",
    "events_before",
    "first_user_text",
    "newest_sessions",
]

_FIRST_EVENTS = 5
"""How many of a session's first events are read to find its first user message."""


@dataclass(frozen=True)
class AppRow:
    """One app of the store: its live sessions, distinct users and last update (Unix seconds)."""

    app_name: str
    sessions: int
    users: int
    last_update_time: float | None


@dataclass(frozen=True)
class SessionRow:
    """One line of an app's session list."""

    app_name: str
    user_id: str
    id: str
    last_update_time: float
    event_count: int
    first_message: str | None = None
    display_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionPage:
    """A page of `newest_sessions` and the cursor of the next (older) page, if any."""

    rows: list[SessionRow]
    next_cursor: str | None


def _engine_of(service: BaseSessionService) -> AsyncEngine | None:
    """The async engine of a database service (None for other services or sync drivers)."""
    try:
        from sqlalchemy.ext.asyncio import AsyncEngine

        from openadk.sessions._database import DatabaseSessionService
    except ImportError:  # pragma: no cover - SQLAlchemy missing: no database service either
        return None
    if not isinstance(service, DatabaseSessionService):
        return None
    engine = service.engine
    return engine if isinstance(engine, AsyncEngine) else None


def _metadata(session: Session) -> tuple[str | None, dict[str, str]]:
    """A session's display name and labels, when the service keeps them."""
    name = getattr(session, "display_name", None)
    labels = getattr(session, "labels", None)
    return (
        name if isinstance(name, str) and name else None,
        dict(labels) if isinstance(labels, Mapping) else {},
    )


def first_user_text(events: Sequence[Event]) -> str | None:
    """The text of the first event written by the user, if one of ``events`` is."""
    for event in events:
        if event.author != "user" or event.content is None:
            continue
        texts = [p.text for p in event.content.parts or () if p.text and not p.thought]
        if texts:
            return " ".join(texts)
    return None


# Apps ---------------------------------------------------------------------------------------


async def app_rows(service: BaseSessionService) -> list[AppRow]:
    """Every app that has live sessions, by name, with counts and the last update time.

    Raises:
        ValueError: A service that cannot list apps (the REST client: its API has no call).
    """
    engine = _engine_of(service)
    if engine is None:
        return await _app_rows_scanned(service)
    from sqlalchemy import func, select

    from openadk.sessions._schema import from_db_time, sessions, to_db_time

    await service.prepare_tables()  # type: ignore[attr-defined]
    query = (
        select(
            sessions.c.app_name,
            func.count(),
            func.count(sessions.c.user_id.distinct()),
            func.max(sessions.c.update_time),
        )
        .where(_live(to_db_time(time.time())))
        .group_by(sessions.c.app_name)
        .order_by(sessions.c.app_name)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        AppRow(
            app,
            int(count),
            int(users),
            None if last is None else from_db_time(last).timestamp(),
        )
        for app, count, users, last in rows
    ]


def _live(now: Any) -> Any:
    """Sessions that have not expired (no expiry row, or one in the future)."""
    from sqlalchemy import select

    from openadk.sessions._schema import session_expiry, sessions

    expired = (
        select(session_expiry.c.session_id)
        .where(
            session_expiry.c.app_name == sessions.c.app_name,
            session_expiry.c.user_id == sessions.c.user_id,
            session_expiry.c.session_id == sessions.c.id,
            session_expiry.c.expire_time <= now,
        )
        .exists()
    )
    return ~expired


async def _app_rows_scanned(service: BaseSessionService) -> list[AppRow]:
    from openadk.sessions._admin import list_apps

    found = []
    for app in await list_apps(service):
        last = None
        token = None
        while True:
            page = await service.list_sessions(app_name=app.app_name, limit=1000, page_token=token)
            if page.sessions:
                last = page.sessions[-1].last_update_time
            token = page.next_page_token
            if token is None:
                break
        found.append(AppRow(app.app_name, app.sessions, app.users, last))
    return found


# Sessions -----------------------------------------------------------------------------------


async def newest_sessions(
    service: BaseSessionService,
    *,
    app_name: str,
    user_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """An app's sessions, most recently updated first, ``limit`` at a time.

    Args:
        service: The session service.
        app_name: The app.
        user_id: Only this user's sessions.
        labels: Only sessions holding every one of these labels (services that keep labels).
        cursor: The ``next_cursor`` of the previous page.
        limit: Sessions per page.

    Raises:
        ValueError: ``cursor`` is not one this function made.
    """
    after = None if cursor is None else decode_page_token(cursor)
    engine = _engine_of(service)
    from openadk.sessions import _schema

    titles = getattr(_schema, "session_metadata", None)
    tags = getattr(_schema, "session_labels", None)
    if engine is None or (labels and tags is None):
        return await _newest_listed(service, app_name, user_id, labels or {}, after, limit)
    from sqlalchemy import and_, func, or_, select

    from openadk.sessions._schema import events, from_db_time, sessions, to_db_time

    await service.prepare_tables()  # type: ignore[attr-defined]
    count = (
        select(func.count())
        .where(
            events.c.app_name == sessions.c.app_name,
            events.c.user_id == sessions.c.user_id,
            events.c.session_id == sessions.c.id,
        )
        .scalar_subquery()
    )
    columns = [sessions.c.user_id, sessions.c.id, sessions.c.update_time, count.label("events")]
    source: Any = sessions
    if titles is not None:
        # openadk's titles and labels (revision 0003), when this version keeps them.
        columns += [titles.c.display_name, titles.c.labels]
        source = sessions.outerjoin(
            titles,
            and_(
                titles.c.app_name == sessions.c.app_name,
                titles.c.user_id == sessions.c.user_id,
                titles.c.session_id == sessions.c.id,
            ),
        )
    query = (
        select(*columns)
        .select_from(source)
        .where(sessions.c.app_name == app_name, _live(to_db_time(time.time())))
    )
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    for name, value in (labels or {}).items():
        assert tags is not None
        query = query.where(
            select(tags.c.key)
            .where(
                tags.c.app_name == sessions.c.app_name,
                tags.c.user_id == sessions.c.user_id,
                tags.c.session_id == sessions.c.id,
                tags.c.key == name,
                tags.c.value == value,
            )
            .exists()
        )
    if after is not None:
        at = to_db_time(after[0])
        # Spelled out rather than a row-value comparison, so every database uses the index's
        # range on update_time.
        query = query.where(
            sessions.c.update_time <= at,
            or_(
                sessions.c.update_time < at,
                sessions.c.user_id < after[1],
                and_(sessions.c.user_id == after[1], sessions.c.id < after[2]),
            ),
        )
    query = query.order_by(
        sessions.c.update_time.desc(), sessions.c.user_id.desc(), sessions.c.id.desc()
    ).limit(limit + 1)
    async with engine.connect() as conn:
        found = (await conn.execute(query)).all()
    more = len(found) > limit
    rows = []
    for row in found[:limit]:
        user, session_id, updated, n = row[:4]
        title = row[4] if titles is not None else None
        tagged = row[5] if titles is not None else None
        first = None
        if n and not title:
            head = await service.list_events(
                app_name=app_name, user_id=user, session_id=session_id, limit=_FIRST_EVENTS
            )
            first = first_user_text(head.events)
        rows.append(
            SessionRow(
                app_name,
                user,
                session_id,
                from_db_time(updated).timestamp(),
                int(n),
                first,
                title or None,
                dict(tagged) if isinstance(tagged, Mapping) else {},
            )
        )
    return SessionPage(rows, _cursor(rows[-1]) if more else None)


def _cursor(row: SessionRow) -> str:
    return encode_page_token((row.last_update_time, row.user_id, row.id))


async def _newest_listed(
    service: BaseSessionService,
    app_name: str,
    user_id: str | None,
    labels: Mapping[str, str],
    after: tuple[float, str, str] | None,
    limit: int,
) -> SessionPage:
    """`newest_sessions` through `list_sessions` (oldest first, so the whole app is listed)."""
    listed: list[Session] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"labels": dict(labels)} if labels else {}
        page = await service.list_sessions(
            app_name=app_name, user_id=user_id, limit=1000, page_token=token, **kwargs
        )
        listed.extend(page.sessions)
        token = page.next_page_token
        if token is None:
            break
    listed.sort(key=lambda s: (s.last_update_time, s.user_id, s.id), reverse=True)
    if after is not None:
        listed = [s for s in listed if (s.last_update_time, s.user_id, s.id) < after]
    more = len(listed) > limit
    rows = []
    for listed_session in listed[:limit]:
        full = await service.get_session(
            app_name=app_name, user_id=listed_session.user_id, session_id=listed_session.id
        )
        if full is None:  # deleted since it was listed
            continue
        name, tags = _metadata(full)
        rows.append(
            SessionRow(
                app_name,
                full.user_id,
                full.id,
                full.last_update_time,
                len(full.events),
                first_user_text(full.events[:_FIRST_EVENTS]),
                name,
                tags,
            )
        )
    return SessionPage(rows, _cursor(rows[-1]) if more and rows else None)


# Events -------------------------------------------------------------------------------------


async def count_events(
    service: BaseSessionService, *, app_name: str, user_id: str, session_id: str
) -> int:
    """How many events the session holds (0 when it does not exist)."""
    engine = _engine_of(service)
    if engine is None:
        session = await service.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id
        )
        return 0 if session is None else len(session.events)
    from sqlalchemy import func, select

    from openadk.sessions._schema import events

    query = select(func.count()).where(
        events.c.app_name == app_name,
        events.c.user_id == user_id,
        events.c.session_id == session_id,
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def events_before(
    service: BaseSessionService,
    *,
    app_name: str,
    user_id: str,
    session_id: str,
    before: tuple[float, str],
    limit: int,
) -> tuple[list[Event], bool]:
    """The ``limit`` events just before ``before`` (a (timestamp, id) position), oldest first.

    Returns the events and whether older ones remain.

    Raises:
        SessionNotFoundError: The session does not exist.
    """
    engine = _engine_of(service)
    if engine is None:
        every = await service.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
        if every is None:
            from openadk.errors import SessionNotFoundError

            raise SessionNotFoundError(f"Session {session_id} not found.")
        older = [e for e in every.events if (e.timestamp, e.id) < before]
        return older[-limit:], len(older) > limit
    from sqlalchemy import or_, select

    from openadk.sessions._schema import events, from_db_time, to_db_time

    at = to_db_time(before[0])
    keys = (
        select(events.c.timestamp, events.c.id)
        .where(
            events.c.app_name == app_name,
            events.c.user_id == user_id,
            events.c.session_id == session_id,
            events.c.timestamp <= at,
            or_(events.c.timestamp < at, events.c.id < before[1]),
        )
        .order_by(events.c.timestamp.desc(), events.c.id.desc())
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(keys)).all()
    if not found:
        return [], False
    more = len(found) > limit
    # The events are read through the service: from just after the one older than the page.
    token = None
    if more:
        stamp, event_id = found[limit]
        token = encode_page_token((from_db_time(stamp).timestamp(), event_id, ""))
    page = await service.list_events(
        app_name=app_name,
        user_id=user_id,
        session_id=session_id,
        limit=min(limit, len(found)),
        page_token=token,
    )
    return [e for e in page.events if (e.timestamp, e.id) < before], more


def dumps(value: Any) -> str:
    """JSON for people: indented, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
