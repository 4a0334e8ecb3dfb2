"""`Session`, `GetSessionConfig` and `ListSessionsResponse`."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from pydantic.alias_generators import to_camel

from openadk.events import Event

__all__ = [
    "GetSessionConfig",
    "ListEventsResponse",
    "ListSessionsResponse",
    "SearchEventsResponse",
    "SearchHit",
    "Session",
]


_S = TypeVar("_S", bound="Session")


def _is_none(value: object) -> bool:
    return value is None


def _is_empty(value: object) -> bool:
    return not value


class Session(BaseModel):
    """A conversation between a user and an agent: its state and its events.

    Sessions are data; create, read and change them through a session service. ``state`` holds
    the session's own keys merged with the app's (``app:``-prefixed) and the user's (``user:``)
    keys; ``events`` are oldest first.
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    id: str
    """The session id, unique within (app_name, user_id)."""
    app_name: str
    user_id: str
    state: dict[str, Any] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)
    last_update_time: float = 0.0
    """Unix seconds of the last change: the last event's timestamp, or the creation time."""
    display_name: str | None = Field(default=None, exclude_if=_is_none)
    """openadk: the session's title (None: untitled). Left out of the JSON when None, so a
    session's JSON stays google-adk's."""
    labels: dict[str, str] = Field(default_factory=dict, exclude_if=_is_empty)
    """openadk: the session's labels (Agent Engine's rules). Left out of the JSON when empty."""

    # The stored revision this handle was read at; `append_event` compares it to detect stale
    # handles. Private, as in google-adk, so it never appears in JSON.
    _storage_update_marker: str | None = PrivateAttr(default=None)

    @classmethod
    def _from_storage(
        cls,
        *,
        id: str,
        app_name: str,
        user_id: str,
        state: dict[str, Any],
        events: list[Event],
        last_update_time: float,
        marker: str | None,
        display_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Builds a session from values a backend has already checked, without validation.

        The same result as the constructor, for the thousands of sessions a listing returns:
        pydantic's ``model_construct`` costs several times more per instance.
        """
        return stored_session(
            cls,
            id,
            app_name,
            user_id,
            state,
            events,
            last_update_time,
            marker,
            display_name,
            labels,
        )


def stored_session(
    cls: type[_S],
    id: str,
    app_name: str,
    user_id: str,
    state: dict[str, Any],
    events: list[Event],
    last_update_time: float,
    marker: str | None,
    display_name: str | None,
    labels: dict[str, str] | None,
) -> _S:
    """`Session._from_storage` with positional arguments, for a listing's loop.

    pydantic's slots are filled through their descriptors: ``object.__setattr__`` by name, or
    keyword arguments, cost as much again per session.
    """
    session = _new(cls)
    _set_dict(
        session,
        {
            "id": id,
            "app_name": app_name,
            "user_id": user_id,
            "state": state,
            "events": events,
            "last_update_time": last_update_time,
            "display_name": display_name,
            "labels": {} if labels is None else labels,
        },
    )
    fields_set = _SESSION_FIELDS.copy()
    if display_name is not None:
        fields_set.add("display_name")
    if labels:
        fields_set.add("labels")
    _set_fields_set(session, fields_set)
    _set_extra(session, None)
    _set_private(session, {"_storage_update_marker": marker})
    return session


_SESSION_FIELDS = {"id", "app_name", "user_id", "state", "events", "last_update_time"}
# display_name and labels are not in the set fields unless given, as with the constructor.

_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class GetSessionConfig(BaseModel):
    """Which events `get_session` returns.

    ``num_recent_events=None`` returns every event, ``0`` none, ``N`` the last N.
    ``after_timestamp`` keeps events whose timestamp is at or after it. Both together return the
    last N of the events at or after the timestamp.
    """

    num_recent_events: int | None = None
    after_timestamp: float | None = None

    @field_validator("num_recent_events")
    @classmethod
    def _non_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("num_recent_events must be greater than or equal to 0.")
        return value


class ListSessionsResponse(BaseModel):
    """The result of `list_sessions`: sessions with merged state and no events."""

    sessions: list[Session] = Field(default_factory=list)
    next_page_token: str | None = None
    """Pass to the next `list_sessions` call to get the following page; None on the last page."""


class ListEventsResponse(BaseModel):
    """The result of `list_events`: one page of a session's events, oldest first."""

    events: list[Event] = Field(default_factory=list)
    next_page_token: str | None = None
    """Pass to the next `list_events` call to get the following page; None on the last page."""


class SearchHit(BaseModel):
    """openadk: one event found by `search_events`."""

    session_id: str
    user_id: str
    event_id: str
    author: str
    timestamp: float
    """The event's timestamp (Unix seconds)."""
    snippet: str
    """Up to a dozen words around the first match, each matched word wrapped in ``**``."""


class SearchEventsResponse(BaseModel):
    """openadk: the result of `search_events`, newest event first."""

    hits: list[SearchHit] = Field(default_factory=list)
    next_page_token: str | None = None
    """Pass to the next `search_events` call (same query) for the following page."""
