"""`AdkSessionService`: any openadk session service, as a google-adk session service."""

from __future__ import annotations

import datetime
from collections import OrderedDict
from types import TracebackType
from typing import Any

from google.adk.errors import StaleSessionError as AdkStaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError as AdkAlreadyExistsError
from google.adk.errors.session_not_found_error import (
    SessionNotFoundError as AdkSessionNotFoundError,
)
from google.adk.events import Event as AdkEvent
from google.adk.sessions import BaseSessionService as AdkBaseSessionService
from google.adk.sessions import Session as AdkSession
from google.adk.sessions.base_session_service import GetSessionConfig as AdkGetSessionConfig
from google.adk.sessions.base_session_service import (
    ListSessionsResponse as AdkListSessionsResponse,
)
from typing_extensions import Self

from openadk.adk._convert import to_adk_event, to_adk_session, to_openadk_event
from openadk.errors import AlreadyExistsError, SessionNotFoundError, StaleSessionError
from openadk.events import Event
from openadk.sessions import BaseSessionService, GetSessionConfig, Session

__all__ = ["AdkSessionService"]


_OPENADK_ERRORS = (AlreadyExistsError, SessionNotFoundError, StaleSessionError)


def _adk_error(error: Exception) -> Exception:
    """google-adk's class for one of openadk's errors (same message)."""
    if isinstance(error, AlreadyExistsError):
        return AdkAlreadyExistsError(error.message)
    if isinstance(error, SessionNotFoundError):
        return AdkSessionNotFoundError(error.message)
    return AdkStaleSessionError(str(error))


class AdkSessionService(AdkBaseSessionService):
    """An openadk session service seen as a google-adk ``BaseSessionService``.

    Takes and returns google-adk's own ``Session`` and ``Event`` objects, so a google-adk
    ``Runner`` (and ``adk web`` / ``adk api_server`` through `register`) stores its sessions in
    any openadk backend::

        from google.adk.runners import Runner
        from openadk.adk import AdkSessionService
        from openadk.sessions import DatabaseSessionService

        runner = Runner(
            app_name="app",
            agent=agent,
            session_service=AdkSessionService(DatabaseSessionService("sqlite:///s.db")),
        )

    Behaviour is google-adk's where the two differ: ``create_session`` of an existing id raises
    google-adk's ``AlreadyExistsError``; errors are google-adk's ``SessionNotFoundError`` and
    ``StaleSessionError``. Everything else (stale detection or merging, atomic appends, ``temp:``
    keys, scopes) is the wrapped service's.

    Costs: an append converts only the new event and updates the caller's Session in place; a
    read converts each stored event once (later reads reuse the google-adk event for as long as
    the service keeps returning the same stored event object). Events of returned sessions are
    shared between reads: treat them as read-only, as with openadk's own services.

    Events carrying a field google-adk 2.13 does not define are refused (`UnknownFieldError`, a
    ``ValueError``) rather than stored without it.
    """

    def __init__(
        self,
        service: BaseSessionService,
        *,
        owns_service: bool = False,
        event_cache_size: int = 50_000,
    ) -> None:
        """Wraps ``service``.

        Args:
            service: Any openadk session service (memory, database, Vertex client, ...).
            owns_service: Close ``service`` when this adapter is closed.
            event_cache_size: How many converted events to keep for later reads (the least
                recently read sessions' go first; 0 turns the cache off).

        Raises:
            TypeError: ``service`` is not an openadk session service.
        """
        if not isinstance(service, BaseSessionService):
            raise TypeError(
                f"AdkSessionService wraps an openadk session service (openadk.sessions), got "
                f"{type(service).__name__}."
            )
        if not isinstance(event_cache_size, int) or event_cache_size < 0:
            raise ValueError(f"event_cache_size must be an int >= 0, got {event_cache_size!r}.")
        self._service = service
        self._owns_service = owns_service
        self._twins = _TwinCache(event_cache_size)

    @property
    def service(self) -> BaseSessionService:
        """The wrapped openadk service."""
        return self._service

    def _adk_session(self, session: Session) -> AdkSession:
        key = (session.app_name, session.user_id, session.id)
        return to_adk_session(session, self._twins.convert(key, session.events))

    # google-adk's BaseSessionService ---------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: float | datetime.timedelta | None = None,
        expire_time: float | datetime.datetime | None = None,
    ) -> AdkSession:
        """Creates a session (google-adk's behaviour: an existing id is an error).

        Args:
            app_name: The application's name.
            user_id: The user's id.
            state: Initial state; ``app:``/``user:`` keys update the shared scopes.
            session_id: The id to use; a uuid4 string when None.
            ttl: Seconds (or a timedelta) after which the session expires (openadk's option;
                ``adk api_server`` passes a create request's ``options`` here).
            expire_time: The same as an absolute time (Unix seconds or an aware datetime).

        Raises:
            google.adk.errors.already_exists_error.AlreadyExistsError: The id is taken.
        """
        try:
            session = await self._service.create_session(
                app_name=app_name,
                user_id=user_id,
                state=state,
                session_id=session_id,
                exist_ok=False,
                ttl=ttl,
                expire_time=expire_time,
            )
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error
        return self._adk_session(session)

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: AdkGetSessionConfig | None = None,
    ) -> AdkSession | None:
        """Returns the session with merged state and its events, or None when missing."""
        ours = None
        if config is not None:
            ours = GetSessionConfig.model_construct(
                num_recent_events=config.num_recent_events,
                after_timestamp=config.after_timestamp,
            )
        try:
            session = await self._service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=ours
            )
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error
        return None if session is None else self._adk_session(session)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> AdkListSessionsResponse:
        """Lists sessions (merged state, no events), oldest update first."""
        try:
            listed = await self._service.list_sessions(app_name=app_name, user_id=user_id)
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error
        return AdkListSessionsResponse.model_construct(
            sessions=[to_adk_session(session, []) for session in listed.sessions]
        )

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes a session and its events; a no-op when missing."""
        try:
            await self._service.delete_session(
                app_name=app_name, user_id=user_id, session_id=session_id
            )
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error
        self._twins.drop((app_name, user_id, session_id))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Returns the user's state without the ``user:`` prefix, ``{}`` when there is none."""
        try:
            return await self._service.get_user_state(app_name=app_name, user_id=user_id)
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error

    async def append_event(self, session: AdkSession, event: AdkEvent) -> AdkEvent:
        """Stores ``event`` and applies it to ``session``, as google-adk's services do.

        Partial events are returned unchanged. Otherwise the wrapped service stores the event
        atomically; then ``temp:`` keys are applied to ``session.state`` and removed from
        ``event.actions.state_delta``, the rest of the delta is applied to ``session.state``,
        ``event`` is appended to ``session.events`` and ``session.last_update_time`` follows.
        When the append fails, neither ``session`` nor ``event`` has changed.

        Raises:
            google.adk.errors.session_not_found_error.SessionNotFoundError: No such session.
            google.adk.errors.StaleSessionError: ``session`` is older than storage (and the
                service does not merge).
            UnknownFieldError: The event has a field google-adk 2.13 does not define.
        """
        if event.partial:
            return event
        if not isinstance(session, AdkSession):
            raise TypeError(
                f"append_event() needs a google.adk.sessions.Session, got {type(session).__name__}."
            )
        ours = to_openadk_event(event)
        marker = session._storage_update_marker
        shadow = Session._from_storage(
            id=session.id,
            app_name=session.app_name,
            user_id=session.user_id,
            state={},
            events=[],
            last_update_time=session.last_update_time,
            marker=marker,
        )
        if marker is None and session.events:
            # A handle without a revision marker is checked against its last event's id.
            shadow.events.append(to_openadk_event(session.events[-1]))
            count = 1
        else:
            count = 0
        try:
            await self._service.append_event(shadow, ours)
        except _OPENADK_ERRORS as error:
            raise _adk_error(error) from error
        if len(shadow.events) == count:
            return event  # already stored: nothing changed
        event.actions.state_delta = ours.actions.state_delta
        event.timestamp = ours.timestamp
        session.state.update(shadow.state)
        session.events.append(event)
        session.last_update_time = shadow.last_update_time
        session._storage_update_marker = shadow._storage_update_marker
        return event

    async def flush(self) -> None:
        """Flushes the wrapped service."""
        await self._service.flush()

    async def close(self) -> None:
        """Closes the wrapped service when this adapter owns it (``owns_service=True``)."""
        if self._owns_service:
            await self._service.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


_Key = tuple[str, str, str]


class _Seen:
    """The stored events of one session last seen, their twins, and each one's position."""

    __slots__ = ("events", "position", "twins")

    def __init__(self, events: list[Event], twins: list[AdkEvent]) -> None:
        self.events = events
        self.twins = twins
        self.position = {id(event): index for index, event in enumerate(events)}

    def extend(self, events: list[Event], twins: list[AdkEvent]) -> None:
        start = len(self.events)
        self.events.extend(events)
        self.twins.extend(twins)
        for offset, event in enumerate(events):
            self.position[id(event)] = start + offset


class _TwinCache:
    """google-adk twins of stored openadk events, so a read converts only events not seen yet.

    openadk's services return the same stored event objects for unchanged events (they are
    never modified). A read whose events are a run of the ones seen last time (a full read, a
    window of the last N, after a trim), possibly followed by new ones, reuses the twins of
    that run (checked object by object, in C) and converts only the new events. Anything else
    converts every event and starts over. Holding the stored events keeps their ids unique.
    """

    def __init__(self, max_events: int) -> None:
        self._max = max_events
        self._count = 0
        self._sessions: OrderedDict[_Key, _Seen] = OrderedDict()

    def convert(self, key: _Key, events: list[Event]) -> list[AdkEvent]:
        if not events:
            return []
        seen = self._sessions.get(key)
        if seen is not None:
            old = seen.events
            if (
                len(events) == len(old)
                and events[0] is old[0]
                and events[-1] is old[-1]
                and events == old
            ):
                # The common case, a full read of an unchanged session: one comparison in C
                # (identity first, so nothing else is compared when the objects are the same).
                self._sessions.move_to_end(key)
                return seen.twins.copy()
            start = seen.position.get(id(events[0]))
            if start is not None and old[start] is events[0]:
                run = min(len(events), len(old) - start)
                end = start + run
                if events[run - 1] is old[end - 1] and events[:run] == old[start:end]:
                    twins = seen.twins[start:end]
                    self._sessions.move_to_end(key)
                    if run < len(events):
                        fresh = events[run:]
                        new = [to_adk_event(event) for event in fresh]
                        twins.extend(new)
                        if end == len(old):
                            seen.extend(fresh, new)
                            self._count += len(fresh)
                            self._evict()
                    return twins
        twins = [to_adk_event(event) for event in events]
        if self._max:
            self.drop(key)
            self._sessions[key] = _Seen(list(events), list(twins))
            self._count += len(events)
            self._evict()
        return twins

    def drop(self, key: _Key) -> None:
        seen = self._sessions.pop(key, None)
        if seen is not None:
            self._count -= len(seen.events)

    def _evict(self) -> None:
        while self._count > self._max and self._sessions:
            _, seen = self._sessions.popitem(last=False)
            self._count -= len(seen.events)
