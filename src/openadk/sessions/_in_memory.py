"""`InMemorySessionService`: sessions in process memory, for development and tests."""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from openadk.errors import AlreadyExistsError, SessionNotFoundError, StaleSessionError
from openadk.events import Event
from openadk.sessions._base import (
    AppendOutcome,
    AppendPlan,
    BaseSessionService,
    EventKey,
    OnStale,
    PageKey,
    ScopedDelta,
    SessionFilter,
    encode_page_token,
    first_kept_index,
    fold_session_state,
    fork_length,
    merge_state,
    next_timestamp,
)
from openadk.sessions._json import copy_json
from openadk.sessions._metadata import SessionMetadata, Unset, fork_labels
from openadk.sessions._search_text import MemoryIndex, event_text, snippet
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    SearchEventsResponse,
    SearchHit,
    Session,
)

__all__ = ["InMemorySessionService"]

logger = logging.getLogger("openadk.sessions")

_T = TypeVar("_T")

_DEPRECATED = "Deprecated. Please migrate to the async method."
"""google-adk's log message for its synchronous twins, word for word."""


def _run_now(call: Coroutine[Any, Any, _T]) -> _T:
    """Runs a coroutine that never suspends (the in-memory service never waits) to its end.

    Works with or without a running event loop, as google-adk's synchronous methods do.
    """
    try:
        call.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    call.close()
    raise RuntimeError("The in-memory session service unexpectedly waited.")  # pragma: no cover


@dataclass
class _Stored:
    """One session as stored: its own state, its events, and a revision counter.

    Stored events are private copies and are never mutated, so reads share them.
    """

    id: str
    app_name: str
    user_id: str
    state: dict[str, Any]
    last_update_time: float
    revision: int = 0
    events: list[Event] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    by_id: dict[str, Event] = field(default_factory=dict)
    expire_time: float | None = None
    display_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def set_metadata(self, metadata: SessionMetadata | None) -> None:
        if metadata is None:
            return
        if not isinstance(metadata.display_name, Unset):
            self.display_name = metadata.display_name
        if not isinstance(metadata.labels, Unset):
            self.labels = dict(metadata.labels)

    @property
    def marker(self) -> str:
        return str(self.revision)


def _expired(stored: _Stored, now: float) -> bool:
    return stored.expire_time is not None and stored.expire_time <= now


class InMemorySessionService(BaseSessionService):
    """Keeps sessions in memory; everything is lost when the process ends.

    Reads are cheap: a returned session gets its own copy of the state and of the event list,
    while the events themselves are shared with storage. Storage keeps a private copy of each
    event taken at append time and never changes it; treat events of returned sessions as
    read-only.

    Meant for one event loop in one process; it is not thread-safe.
    """

    capabilities = frozenset({"metadata", "search", "fork"})

    def __init__(
        self, *, on_stale: OnStale = "error", clock: Callable[[], float] = time.time
    ) -> None:
        """Creates an empty store.

        Args:
            on_stale: ``"error"`` raises `StaleSessionError` for a stale handle; ``"merge"``
                appends on top of the latest state.
            clock: Returns the current Unix time; session expiry is measured with it (tests
                move it instead of sleeping).
        """
        super().__init__(on_stale=on_stale, clock=clock)
        self._sessions: dict[str, dict[str, dict[str, _Stored]]] = {}
        self._app_state: dict[str, dict[str, Any]] = {}
        self._user_state: dict[str, dict[str, dict[str, Any]]] = {}
        self._search = MemoryIndex()

    # google-adk's deprecated synchronous twins ---------------------------------------------

    def create_session_sync(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Deprecated: `create_session`, synchronously (as google-adk's, it logs a warning)."""
        logger.warning(_DEPRECATED)
        return _run_now(
            self.create_session(
                app_name=app_name, user_id=user_id, state=state, session_id=session_id
            )
        )

    def get_session_sync(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Deprecated: `get_session`, synchronously (as google-adk's, it logs a warning)."""
        logger.warning(_DEPRECATED)
        return _run_now(
            self.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=config
            )
        )

    def list_sessions_sync(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """Deprecated: `list_sessions`, synchronously (as google-adk's, it logs a warning)."""
        logger.warning(_DEPRECATED)
        return _run_now(self.list_sessions(app_name=app_name, user_id=user_id))

    def delete_session_sync(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deprecated: `delete_session`, synchronously (as google-adk's, it logs a warning)."""
        logger.warning(_DEPRECATED)
        _run_now(self.delete_session(app_name=app_name, user_id=user_id, session_id=session_id))

    def _find(self, app_name: str, user_id: str, session_id: str) -> _Stored | None:
        stored = self._sessions.get(app_name, {}).get(user_id, {}).get(session_id)
        if stored is not None and _expired(stored, self._clock()):
            # An expired session is gone: drop it on sight.
            del self._sessions[app_name][user_id][session_id]
            self._search.remove_where(app_name, user_id, session_id)
            return None
        return stored

    def _apply_shared(self, app_name: str, user_id: str, scoped: ScopedDelta) -> None:
        if scoped.app:
            self._app_state.setdefault(app_name, {}).update(copy_json(scoped.app))
        if scoped.user:
            users = self._user_state.setdefault(app_name, {})
            users.setdefault(user_id, {}).update(copy_json(scoped.user))

    def _to_session(self, stored: _Stored, events: list[Event]) -> Session:
        return Session._from_storage(
            id=stored.id,
            app_name=stored.app_name,
            user_id=stored.user_id,
            state=merge_state(
                stored.state,
                self._app_state.get(stored.app_name, {}),
                self._user_state.get(stored.app_name, {}).get(stored.user_id, {}),
            ),
            events=events,
            last_update_time=stored.last_update_time,
            marker=stored.marker,
            display_name=stored.display_name,
            labels=dict(stored.labels),
        )

    async def _create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None = None,
        metadata: SessionMetadata | None = None,
    ) -> Session:
        if session_id is None:
            session_id = str(uuid.uuid4())
        stored = self._find(app_name, user_id, session_id)
        if stored is not None and not exist_ok:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        now = time.time()
        if stored is None:
            stored = _Stored(
                id=session_id,
                app_name=app_name,
                user_id=user_id,
                state=copy_json(state.session),
                last_update_time=now,
            )
            self._sessions.setdefault(app_name, {}).setdefault(user_id, {})[session_id] = stored
        elif state:
            stored.state.update(copy_json(state.session))
            stored.revision += 1
            stored.last_update_time = max(now, stored.last_update_time)
        if expire_time is not None:
            stored.expire_time = expire_time
        stored.set_metadata(metadata)
        self._apply_shared(app_name, user_id, state)
        return self._to_session(stored, list(stored.events))

    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        stored = self._find(app_name, user_id, session_id)
        if stored is None:
            return None
        start = 0
        if config is not None:
            if config.after_timestamp is not None:
                # Timestamps strictly increase (next_timestamp), so bisect finds the cut.
                start = bisect.bisect_left(stored.timestamps, config.after_timestamp)
            if config.num_recent_events is not None:
                start = max(start, len(stored.events) - config.num_recent_events)
        return self._to_session(stored, stored.events[start:])

    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
        filters: SessionFilter | None = None,
    ) -> ListSessionsResponse:
        users = self._sessions.get(app_name, {})
        if user_id is not None:
            users = {user_id: users[user_id]} if user_id in users else {}
        now = self._clock()
        stored = sorted(
            (s for by_id in users.values() for s in by_id.values() if not _expired(s, now)),
            key=lambda s: (s.last_update_time, s.user_id, s.id),
        )
        if after is not None:
            stored = [s for s in stored if (s.last_update_time, s.user_id, s.id) > after]
        if filters:
            stored = [s for s in stored if filters.matches(s.labels, s.last_update_time)]
        token = None
        if limit is not None and len(stored) > limit:
            stored = stored[:limit]
            last = stored[-1]
            token = encode_page_token((last.last_update_time, last.user_id, last.id))
        sessions = [self._to_session(s, []) for s in stored]
        return ListSessionsResponse(sessions=sessions, next_page_token=token)

    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        stored = self._find(app_name, user_id, session_id)
        if stored is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        start = 0
        if after is not None:
            # Timestamps strictly increase, so the timestamp alone finds the position.
            start = bisect.bisect_right(stored.timestamps, after[0])
        page = stored.events[start:]
        token = None
        if limit is not None and len(page) > limit:
            page = page[:limit]
            token = encode_page_token((page[-1].timestamp, page[-1].id, ""))
        return ListEventsResponse(events=list(page), next_page_token=token)

    async def _update_session(
        self, *, app_name: str, user_id: str, session_id: str, metadata: SessionMetadata
    ) -> Session:
        stored = self._find(app_name, user_id, session_id)
        if stored is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        stored.set_metadata(metadata)
        return self._to_session(stored, [])

    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        by_id = self._sessions.get(app_name, {}).get(user_id, {})
        by_id.pop(session_id, None)
        self._search.remove_where(app_name, user_id, session_id)

    async def _trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        stored = self._find(app_name, user_id, session_id)
        if stored is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        start = first_kept_index([e.invocation_id for e in stored.events], keep_last_events)
        self._search.remove(
            (app_name, user_id, session_id, event.id) for event in stored.events[:start]
        )
        for event in stored.events[:start]:
            stored.by_id.pop(event.id, None)
        del stored.events[:start]
        del stored.timestamps[:start]
        return start

    async def _delete_user(self, *, app_name: str, user_id: str) -> int:
        removed = self._sessions.get(app_name, {}).pop(user_id, {})
        self._search.remove_where(app_name, user_id)
        self._user_state.get(app_name, {}).pop(user_id, None)
        return len(removed)

    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return copy_json(self._user_state.get(app_name, {}).get(user_id, {}))  # type: ignore[no-any-return]

    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        stored = self._find(session.app_name, session.user_id, session.id)
        if stored is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        previous = stored.by_id.get(event.id)
        if previous is not None:
            if previous != plan.stored_event(event, previous.timestamp):
                raise ValueError(
                    f"Event id {event.id} is already stored in session {session.id} with "
                    f"different content; give the new event a new id."
                )
            return AppendOutcome(
                timestamp=previous.timestamp,
                last_update_time=stored.last_update_time,
                marker=stored.marker,
                duplicate=True,
            )
        if self._is_stale(session, stored.marker, stored.events[-1].id if stored.events else None):
            raise StaleSessionError()
        timestamp = next_timestamp(event.timestamp, stored.last_update_time)
        copy = plan.stored_event(event, timestamp)
        # Nothing below can fail, so the append is all-or-nothing.
        stored.events.append(copy)
        stored.timestamps.append(timestamp)
        stored.by_id[copy.id] = copy
        stored.state.update(copy_json(plan.scoped.session))
        self._apply_shared(session.app_name, session.user_id, plan.scoped)
        stored.revision += 1
        stored.last_update_time = timestamp
        self._search.add(
            stored.app_name,
            stored.user_id,
            stored.id,
            (copy.id, copy.author, timestamp, event_text(plan.data)),
        )
        return AppendOutcome(timestamp=timestamp, last_update_time=timestamp, marker=stored.marker)

    async def _search_events(
        self,
        *,
        app_name: str,
        terms: list[str],
        user_id: str | None,
        limit: int,
        after: PageKey | None,
    ) -> SearchEventsResponse:
        found = self._search.search(app_name, terms, user_id, limit, after)
        now = self._clock()
        live = []
        for entry in found:
            stored = self._sessions.get(app_name, {}).get(entry.user_id, {}).get(entry.session_id)
            if stored is not None and not _expired(stored, now):
                live.append(entry)
        more = len(found) > limit
        page = live[:limit]
        hits = [
            SearchHit(
                session_id=e.session_id,
                user_id=e.user_id,
                event_id=e.event_id,
                author=e.author,
                timestamp=e.ts,
                snippet=snippet(e.body, terms),
            )
            for e in page
        ]
        token = None
        if more and page:
            last = page[-1]
            token = encode_page_token((last.ts, last.session_id, last.event_id))
        return SearchEventsResponse(hits=hits, next_page_token=token)

    async def _fork_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        new_session_id: str | None,
        up_to_invocation_id: str | None,
    ) -> Session:
        source = self._find(app_name, user_id, session_id)
        if source is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        new_id = new_session_id or str(uuid.uuid4())
        if self._find(app_name, user_id, new_id) is not None:
            raise AlreadyExistsError(f"Session with id {new_id} already exists.")
        count = fork_length([e.invocation_id for e in source.events], up_to_invocation_id)
        labels = fork_labels(source.labels, session_id)
        copied = source.events[:count]
        fork = _Stored(
            id=new_id,
            app_name=app_name,
            user_id=user_id,
            state=copy_json(fold_session_state(e.actions.state_delta for e in copied)),
            last_update_time=max(time.time(), copied[-1].timestamp if copied else 0.0),
            events=list(copied),
            timestamps=source.timestamps[:count],
            by_id={e.id: e for e in copied},
            display_name=source.display_name,
            labels=labels,
        )
        self._sessions.setdefault(app_name, {}).setdefault(user_id, {})[new_id] = fork
        for event in copied:
            self._search.add(
                app_name,
                user_id,
                new_id,
                (event.id, event.author, event.timestamp, _text_of(event)),
            )
        return self._to_session(fork, list(fork.events))


def _text_of(event: Event) -> str:
    if event.content is None or not event.content.parts:
        return ""
    return "\n".join(part.text for part in event.content.parts if part.text)
