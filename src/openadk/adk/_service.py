"""`AdkSessionService`: any openadk session service, as a google-adk session service."""

from __future__ import annotations

import contextlib
import datetime
import functools
import weakref
from collections.abc import Iterator
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


@contextlib.contextmanager
def _adk_errors() -> Iterator[None]:
    """Re-raises openadk's errors as google-adk's classes (same messages), chained."""
    try:
        yield
    except AlreadyExistsError as error:
        raise AdkAlreadyExistsError(error.message) from error
    except SessionNotFoundError as error:
        raise AdkSessionNotFoundError(error.message) from error
    except StaleSessionError as error:
        raise AdkStaleSessionError(str(error)) from error


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

    def __init__(self, service: BaseSessionService, *, owns_service: bool = False) -> None:
        """Wraps ``service``.

        Args:
            service: Any openadk session service (memory, database, Vertex client, ...).
            owns_service: Close ``service`` when this adapter is closed.

        Raises:
            TypeError: ``service`` is not an openadk session service.
        """
        if not isinstance(service, BaseSessionService):
            raise TypeError(
                f"AdkSessionService wraps an openadk session service (openadk.sessions), got "
                f"{type(service).__name__}."
            )
        self._service = service
        self._owns_service = owns_service
        # id(stored openadk event) -> (weak reference to it, its google-adk twin). The entry
        # goes when the stored event is freed, so a reused id() never returns a stale twin.
        self._twins: dict[int, tuple[weakref.ref[Event], AdkEvent]] = {}

    @property
    def service(self) -> BaseSessionService:
        """The wrapped openadk service."""
        return self._service

    # Conversion ------------------------------------------------------------------------------

    def _forget(self, key: int, ref: weakref.ref[Event]) -> None:
        entry = self._twins.get(key)
        if entry is not None and entry[0] is ref:
            del self._twins[key]

    def _adk_events(self, events: list[Event]) -> list[AdkEvent]:
        twins = self._twins
        result: list[AdkEvent] = []
        append = result.append
        for event in events:
            key = id(event)
            entry = twins.get(key)
            if entry is not None and entry[0]() is event:
                append(entry[1])
                continue
            twin = to_adk_event(event)
            twins[key] = (weakref.ref(event, functools.partial(self._forget, key)), twin)
            append(twin)
        return result

    def _adk_session(self, session: Session) -> AdkSession:
        return to_adk_session(session, self._adk_events(session.events))

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
        with _adk_errors():
            session = await self._service.create_session(
                app_name=app_name,
                user_id=user_id,
                state=state,
                session_id=session_id,
                exist_ok=False,
                ttl=ttl,
                expire_time=expire_time,
            )
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
        with _adk_errors():
            session = await self._service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=ours
            )
        return None if session is None else self._adk_session(session)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> AdkListSessionsResponse:
        """Lists sessions (merged state, no events), oldest update first."""
        with _adk_errors():
            listed = await self._service.list_sessions(app_name=app_name, user_id=user_id)
        return AdkListSessionsResponse(
            sessions=[to_adk_session(session, []) for session in listed.sessions]
        )

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes a session and its events; a no-op when missing."""
        with _adk_errors():
            await self._service.delete_session(
                app_name=app_name, user_id=user_id, session_id=session_id
            )

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Returns the user's state without the ``user:`` prefix, ``{}`` when there is none."""
        with _adk_errors():
            return await self._service.get_user_state(app_name=app_name, user_id=user_id)

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
        with _adk_errors():
            await self._service.append_event(shadow, ours)
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
