"""`BaseSessionService`: the contract every session backend implements, and its shared semantics."""

from __future__ import annotations

import abc
import base64
import datetime
import json
import math
import re
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, SchemaSerializer
from typing_extensions import Self

from openadk.events import Event, EventActions
from openadk.sessions._json import (
    MAX_INT_DIGITS,
    check_storable,
    copy_json,
    copy_model,
    dumps_keeping_floats,
    keep_floats,
    to_json_value,
)
from openadk.sessions._metadata import (
    UNSET,
    SessionMetadata,
    Unset,
    check_display_name,
    check_labels,
    check_time_bound,
)
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    SearchEventsResponse,
    Session,
)
from openadk.sessions._state import State

__all__ = [
    "AppendOutcome",
    "AppendPlan",
    "BaseSessionService",
    "Capability",
    "EventKey",
    "OnStale",
    "PageKey",
    "ScopedDelta",
    "SessionFilter",
]

Capability = Literal["metadata", "search", "fork"]
"""What a backend offers beyond google-adk's contract: ``metadata`` (titles, labels, label and
time filters on `list_sessions`, `update_session`), ``search`` (`search_events`) and ``fork``
(`fork_session`)."""


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions `list_sessions` returns besides app and user: all given must hold."""

    labels: dict[str, str] = field(default_factory=dict)
    """Labels the session must have, each with exactly this value."""
    updated_after: float | None = None
    """Only sessions whose last update is at or after this (Unix seconds)."""
    updated_before: float | None = None
    """Only sessions whose last update is before this (Unix seconds)."""

    def __bool__(self) -> bool:
        return (
            bool(self.labels) or self.updated_after is not None or (self.updated_before is not None)
        )

    def matches(self, labels: Mapping[str, str], last_update_time: float) -> bool:
        """Whether a session with these labels and update time passes (for in-memory use)."""
        if self.updated_after is not None and last_update_time < self.updated_after:
            return False
        if self.updated_before is not None and last_update_time >= self.updated_before:
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())


OnStale = Literal["error", "merge"]
"""What `append_event` does with a stale handle: raise `StaleSessionError`, or append on top."""

MAX_KEY_LENGTH = 128
"""Longest app name, user id, session id or event id: the width of the database key columns."""

MAX_INVOCATION_ID_LENGTH = 256
"""Longest invocation id: the width of the ``events.invocation_id`` column."""

MAX_EVENT_DEPTH = 190
"""How deeply an event may nest: pydantic's JSON parser reads 200 levels, stored events are
parsed inside a list, and an event deeper than that would be stored but never read again."""


@dataclass
class ScopedDelta:
    """A state change split by scope, with prefixes removed from app and user keys."""

    app: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def split(cls, state: Mapping[str, Any], where: str) -> ScopedDelta:
        """Splits a state dict by key prefix, dropping ``temp:`` keys and converting to JSON.

        Raises:
            TypeError: A key is not a string or a value cannot be stored as JSON.
            ValueError: A value is a non-finite float, an integer too long for JSON, or text
                with a lone surrogate.
        """
        kept = {key: value for key, value in state.items() if not _is_temp(key)}
        # to_json_value checks the keys too (strings, no NUL) and copies every value.
        converted = to_json_value(kept, where)
        check_storable(converted, where, MAX_EVENT_DEPTH)
        return cls.partition(converted)

    @classmethod
    def partition(cls, delta: Mapping[str, Any]) -> ScopedDelta:
        """Splits an already converted delta without ``temp:`` keys by prefix (values shared)."""
        result = cls()
        for key, value in delta.items():
            if key.startswith(State.APP_PREFIX):
                result.app[key[len(State.APP_PREFIX) :]] = value
            elif key.startswith(State.USER_PREFIX):
                result.user[key[len(State.USER_PREFIX) :]] = value
            else:
                result.session[key] = value
        return result

    def __bool__(self) -> bool:
        return bool(self.app or self.user or self.session)


@dataclass
class AppendPlan:
    """What one `append_event` will change, computed and checked before storage is touched.

    Attributes:
        delta: The event's state delta as it is stored: ``temp:`` keys removed, values JSON.
        temp: The ``temp:`` keys, applied to the live session only.
        scoped: ``delta`` split by scope.
        text: The event as stored, as JSON text (``model_dump_json(exclude_none=True)`` with
            ``delta`` as its state delta and every float in plain decimal notation), checked to
            parse back into an `Event`. `text_at` gives it with another timestamp.
        timestamp: The timestamp ``text`` holds.
    """

    delta: dict[str, Any]
    temp: dict[str, Any]
    scoped: ScopedDelta
    text: str = "{}"
    timestamp: float = 0.0

    @property
    def data(self) -> dict[str, Any]:
        """The event as stored, as a fresh JSON object (``text`` parsed)."""
        return json.loads(self.text)  # type: ignore[no-any-return]

    def text_at(self, timestamp: float) -> str:
        """``text`` with ``timestamp`` as the event's timestamp (a backend moved it)."""
        if timestamp == self.timestamp:
            return self.text
        data = self.data
        data["timestamp"] = timestamp
        return dumps_keeping_floats(data)

    @classmethod
    def for_event(cls, event: Event) -> AppendPlan:
        """Builds the plan for ``event``; raises before anything changes if it is not storable.

        Raises:
            TypeError: A field holds a value of the wrong type (fields are not checked when
                assigned) or one that has no JSON form.
            ValueError: A value JSON cannot carry exactly (NaN, infinity, an integer of
                thousands of digits, a lone surrogate), an event nested too deeply, a time
                that is not finite, or an id too long for its column.
        """
        _check_shape(event)
        if not math.isfinite(event.timestamp):
            raise ValueError(
                f"event.timestamp is {event.timestamp!r}; give a time in Unix seconds."
            )
        if len(event.id) > MAX_KEY_LENGTH:
            raise ValueError(
                f"event.id is {len(event.id)} characters long; the limit is {MAX_KEY_LENGTH}."
            )
        if len(event.invocation_id) > MAX_INVOCATION_ID_LENGTH:
            raise ValueError(
                f"event.invocation_id is {len(event.invocation_id)} characters long; the limit "
                f"is {MAX_INVOCATION_ID_LENGTH}."
            )
        raw = event.actions.state_delta
        temp = {k: v for k, v in raw.items() if _is_temp(k)}
        kept = {k: v for k, v in raw.items() if not _is_temp(k)} if temp else raw
        # to_json_value also refuses keys that are not strings (a dict edited after validation).
        delta = to_json_value(kept, "event.actions.state_delta")
        text = None
        if not temp and delta == raw:
            # The common case: a delta of plain JSON values, which pydantic writes as they are
            # stored. One serializer pass gives the text; cheap scans of it stand in for the
            # structure walk, which runs only when one of them finds something to look at.
            text = _fast_event_text(event)
        if text is None:
            data = _event_json(event, without_state_delta=bool(temp))
            data["actions"]["state_delta"] = delta
            check_storable(data, "event", MAX_EVENT_DEPTH, original=event)
            text = dumps_keeping_floats(data)
        if temp:
            # temp: values are never stored, but the in-memory service copies the event and
            # every backend hands them to the live session: one too deep to copy is refused.
            copy_model(temp)
        return cls(
            delta=delta,
            temp=temp,
            scoped=ScopedDelta.partition(delta),
            text=text,
            timestamp=event.timestamp,
        )

    def stored_event(self, event: Event, timestamp: float) -> Event:
        """Returns a private deep copy of ``event`` as storage keeps it."""
        stored: Event = copy_model(event)
        stored.actions.state_delta = copy_json(self.delta)
        stored.timestamp = timestamp
        return stored


# What sends an event's JSON text to the full check: NaN or infinity (written as constants in
# free-form values, as null in float fields: None fields are left out, so null is otherwise a
# None inside a free-form value), U+FFFD (what pydantic makes of a key with a lone surrogate),
# an integer too long to read back. Substring tests run in C, with no regular expression.
_SUSPECT_WORDS = ("null", "NaN", "Infinity", "\ufffd")
_LONG_DIGITS = re.compile(r"\d{" + str(MAX_INT_DIGITS + 1) + "}")


def _fast_event_text(event: Event) -> str | None:
    """The event's stored JSON in one serializer pass, or None when the full path must decide."""
    try:
        text = _STORING.to_json(event, exclude_none=True, warnings="error").decode()
    except (PydanticSerializationError, ValueError, RecursionError):
        return None  # the full path explains it (a wrong type, a lone surrogate, too deep)
    # Nesting is at most the number of opening brackets.
    if text.count("{") + text.count("[") > MAX_EVENT_DEPTH:
        return None
    for word in _SUSPECT_WORDS:
        if word in text:
            return None
    if len(text) > MAX_INT_DIGITS and _LONG_DIGITS.search(text):
        return None
    return keep_floats(text)


def _not_nullable(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose type does not admit None."""
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if annotation is Any or type(None) in typing.get_args(annotation):
            continue
        names.append(name)
    return tuple(names)


_EVENT_NOT_NULL = _not_nullable(Event)
_ACTIONS_NOT_NULL = _not_nullable(EventActions)
# Event's own serializer, except that NaN and infinity stay floats: pydantic's JSON mode turns
# them into None inside free-form (Any) values, which would store null while the caller holds
# NaN. Kept as floats, `check_storable` refuses them.
_STORING = SchemaSerializer(Event.__pydantic_core_schema__, {"ser_json_inf_nan": "constants"})
# The state delta is stored as `AppendPlan.delta` (temp: keys, which may hold anything, dropped).
_WITHOUT_STATE_DELTA = {"actions": {"state_delta"}}


def _check_shape(event: Event) -> None:
    """Refuses None where the model has no None (pydantic does not check assignments)."""
    actions = event.actions
    if not isinstance(actions, EventActions):
        raise TypeError(
            f"event.actions must be an EventActions, got {type(actions).__name__}; assign "
            f"EventActions() for an event without actions."
        )
    if not isinstance(actions.state_delta, dict):
        raise TypeError(
            f"event.actions.state_delta must be a dict, got {type(actions.state_delta).__name__}."
        )
    for model, names, prefix in (
        (event, _EVENT_NOT_NULL, "event"),
        (actions, _ACTIONS_NOT_NULL, "event.actions"),
    ):
        for name in names:
            if getattr(model, name) is None:
                raise TypeError(f"{prefix}.{name} must not be None.")


def _event_json(event: Event, without_state_delta: bool) -> dict[str, Any]:
    """The event as JSON, refusing any field whose value does not have the field's type.

    Pydantic reports such a value while serializing; made an error here, it costs nothing on
    the common path, and a field that serializes cleanly validates back into the same type.
    ``without_state_delta`` leaves the delta out (its ``temp:`` values may have no JSON form).
    """
    try:
        data: dict[str, Any] = _STORING.to_python(
            event,
            mode="json",
            exclude_none=True,
            exclude=_WITHOUT_STATE_DELTA if without_state_delta else None,
            warnings="error",
        )
    except PydanticSerializationError as error:
        raise _explain(event, error) from None
    except (ValueError, RecursionError) as error:  # "Maximum serialization depth exceeded"
        raise ValueError(
            f"The event cannot be written as JSON ({error}); is a value (a temp: one too) "
            f"nested too deeply?"
        ) from None
    return data


def _explain(event: Event, error: PydanticSerializationError) -> TypeError:
    """A TypeError naming the field behind a serialization failure (the slow, failing path)."""
    try:
        text = event.model_dump_json(
            exclude_none=True, exclude=_WITHOUT_STATE_DELTA, warnings=False
        )
    except (PydanticSerializationError, ValueError) as unknown:
        # A value with no JSON form at all; find the field that holds it.
        for name in type(event).model_fields:
            try:
                event.model_dump(mode="json", include={name}, warnings=False)
            except (PydanticSerializationError, ValueError):
                return TypeError(
                    f"event.{name} cannot be stored as JSON ({unknown}). Use str, int, float, "
                    f"bool, None, or lists and dicts of them."
                )
        return TypeError(f"The event cannot be stored as JSON ({unknown}).")
    try:
        Event.model_validate_json(text)
    except ValidationError as invalid:
        first = invalid.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return TypeError(
            f"event.{where}: {first['msg']} (it holds {type(first.get('input')).__name__} "
            f"{shown}); an event read back could not hold it. Assign a value of the field's "
            f"type (fields are not checked when assigned)."
        )
    # It would read back (pydantic's lax parsing turns 1 into True), but it is not what the
    # field holds: refused all the same, named from pydantic's warning.
    found = _WARNING.search(str(error))
    if found is not None:
        expected, field_name, value, kind = found.groups()
        return TypeError(
            f"event field {field_name!r} holds {kind} {value}, not {expected}. Assign a value "
            f"of the field's type (fields are not checked when assigned)."
        )
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    return TypeError(
        "A field of the event holds a value of the wrong type (fields are not checked when "
        f"assigned): {'; '.join(lines) or error}"
    )


_WARNING = re.compile(
    r"Expected `([^`]+)`.*?field_name='([^']*)', input_value=(.{0,60}?), input_type=(\w+)\]"
)


@dataclass(frozen=True)
class AppendOutcome:
    """What a backend reports after storing an event.

    Attributes:
        timestamp: The event's stored timestamp (moved past the previous event if needed).
        last_update_time: The session's new ``last_update_time``.
        marker: The session's new revision marker.
        duplicate: The same event was already stored; nothing changed.
    """

    timestamp: float
    last_update_time: float
    marker: str | None
    duplicate: bool = False


def expiry_time(
    ttl: float | datetime.timedelta | None,
    expire_time: float | datetime.datetime | None,
    now: float,
) -> float | None:
    """The Unix time a session expires at, from a ``ttl`` or an ``expire_time``, or None.

    ``now`` is the service's clock reading: a ttl counts from it, an expire_time must be after it.

    Raises:
        ValueError: Both are given, the ttl is not positive, or the time is naive or past.
        TypeError: A value of another type.
    """
    if ttl is not None and expire_time is not None:
        raise ValueError("Cannot specify both 'ttl' and 'expire_time' simultaneously.")
    if ttl is not None:
        seconds = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else ttl
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"ttl must be seconds or a timedelta, got {type(ttl).__name__}.")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}.")
        return now + seconds
    if expire_time is None:
        return None
    if isinstance(expire_time, datetime.datetime):
        if expire_time.tzinfo is None:
            raise ValueError("expire_time must be timezone-aware (e.g. in UTC).")
        stamp = expire_time.timestamp()
    elif isinstance(expire_time, (int, float)) and not isinstance(expire_time, bool):
        stamp = float(expire_time)
    else:
        raise TypeError(
            f"expire_time must be Unix seconds or an aware datetime, not "
            f"{type(expire_time).__name__}."
        )
    if not math.isfinite(stamp) or stamp <= now:
        raise ValueError(f"expire_time must be in the future, got {expire_time!r}.")
    return stamp


def _is_temp(key: object) -> bool:
    return isinstance(key, str) and key.startswith(State.TEMP_PREFIX)


def first_kept_index(invocation_ids: list[str], keep_last_events: int) -> int:
    """Index of the first event to keep so the last N stay and no invocation is split."""
    start = max(0, len(invocation_ids) - keep_last_events)
    if start == 0 or start >= len(invocation_ids):
        return start
    invocation = invocation_ids[start]
    while invocation and start > 0 and invocation_ids[start - 1] == invocation:
        start -= 1
    return start


def check_key(value: object, name: str) -> str:
    """Checks an app name, user id or session id.

    Raises:
        TypeError: ``value`` is not a string.
        ValueError: ``value`` is blank, too long, or holds a NUL character.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}.")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    if len(value) > MAX_KEY_LENGTH:
        raise ValueError(
            f"{name} is {len(value)} characters long; the limit is {MAX_KEY_LENGTH} "
            f"(the width of the database key columns)."
        )
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters.")
    return value


def merge_state(
    session_state: Mapping[str, Any],
    app_state: Mapping[str, Any],
    user_state: Mapping[str, Any],
) -> dict[str, Any]:
    """Returns a fresh dict of session keys, then ``app:`` keys, then ``user:`` keys."""
    merged = copy_json(dict(session_state))
    for key, value in app_state.items():
        merged[State.APP_PREFIX + key] = copy_json(value)
    for key, value in user_state.items():
        merged[State.USER_PREFIX + key] = copy_json(value)
    return merged  # type: ignore[no-any-return]


def next_timestamp(requested: float, last: float | None) -> float:
    """Returns ``requested``, or a time just after ``last`` when it is not after it.

    Stored order is commit order: an event whose clock is behind the session's last event is
    moved just past it, so ordering by timestamp never reorders history a reader has seen.
    """
    if last is None or requested > last:
        return requested
    return max(last + 1e-6, math.nextafter(last, math.inf))


def fork_length(invocation_ids: Sequence[str], up_to_invocation_id: str | None) -> int:
    """How many of a session's events (oldest first) a fork up to that invocation copies.

    Raises:
        ValueError: ``up_to_invocation_id`` is not among ``invocation_ids``.
    """
    if up_to_invocation_id is None:
        return len(invocation_ids)
    for index in range(len(invocation_ids) - 1, -1, -1):
        if invocation_ids[index] == up_to_invocation_id:
            return index + 1
    raise ValueError(
        f"Invocation {up_to_invocation_id} is not in the session; pass the invocation_id of "
        "one of its events (or None to copy them all)."
    )


def fold_session_state(deltas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The session-scoped state that stored deltas (oldest first) build, as a fork starts with.

    ``app:`` and ``user:`` keys are left out (those scopes are shared, not copied); stored
    deltas hold no ``temp:`` keys.
    """
    state: dict[str, Any] = {}
    for delta in deltas:
        state.update(ScopedDelta.partition(delta).session)
    return state


PageKey = tuple[float, str, str]
"""A position in `list_sessions` order: (last_update_time, user_id, id)."""

EventKey = tuple[float, str]
"""A position in `list_events` order: (timestamp, event id)."""


def _check_limit(limit: object) -> None:
    if limit is None:
        return
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"limit must be an int or None, got {type(limit).__name__}.")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")


def sort_key(session: Session) -> PageKey:
    """The order of `list_sessions`: last update time, then user id, then id."""
    return (session.last_update_time, session.user_id, session.id)


def encode_page_token(key: PageKey) -> str:
    """An opaque token for the position after ``key``."""
    raw = json.dumps([key[0], key[1], key[2]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> PageKey:
    """The position a `encode_page_token` token stands for.

    Raises:
        ValueError: ``token`` was not made by `encode_page_token`.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        stamp, user_id, session_id = json.loads(raw)
        if not (
            isinstance(stamp, (int, float))
            and isinstance(user_id, str)
            and isinstance(session_id, str)
        ):
            raise ValueError(token)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "page_token is not valid; pass the next_page_token of a previous list_sessions call."
        ) from exc
    return (float(stamp), user_id, session_id)


class BaseSessionService(abc.ABC):
    """The interface of every session service, and the behaviour they share.

    The public methods check their arguments, keep google-adk's keyword-only signatures, and
    delegate to the protected hooks a backend implements. The shared semantics live here once:
    partial events are ignored, ``temp:`` keys reach the live session but never storage, a state
    delta is split into app, user and session parts, and scopes are merged on read.

    Every service is an async context manager; leaving the block calls `close`.
    """

    def __init__(
        self, *, on_stale: OnStale = "error", clock: Callable[[], float] = time.time
    ) -> None:
        """Initializes shared settings.

        Args:
            on_stale: ``"error"`` (default) raises `StaleSessionError` when a handle is older than
                storage; ``"merge"`` appends the event on top of the latest stored state.
            clock: Returns the current Unix time in seconds. Session expiry (``ttl``,
                ``expire_time``) is measured with it; event and update timestamps are not. Tests
                pass a clock they can move forward instead of sleeping.

        Raises:
            ValueError: ``on_stale`` is not one of the two values.
            TypeError: ``clock`` is not callable.
        """
        if on_stale not in ("error", "merge"):
            raise ValueError(f"on_stale must be 'error' or 'merge', got {on_stale!r}.")
        if not callable(clock):
            raise TypeError(f"clock must be a function returning Unix seconds, got {clock!r}.")
        self._on_stale: OnStale = on_stale
        self._clock = clock

    # Public API --------------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        exist_ok: bool = True,
        ttl: float | datetime.timedelta | None = None,
        expire_time: float | datetime.datetime | None = None,
        display_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Creates a session, or resumes the one with ``session_id``.

        Args:
            app_name: The application's name.
            user_id: The user's id.
            state: Initial state. ``app:`` and ``user:`` keys update the shared scopes;
                ``temp:`` keys are dropped. When the session exists, these keys are merged into
                its stored state.
            session_id: The id to use; a uuid4 string when None.
            exist_ok: When False, an existing ``session_id`` raises `AlreadyExistsError`
                (google-adk's behaviour) instead of resuming it.
            ttl: Seconds (or a timedelta) after which the session expires: it is then gone
                for every read and append, and ``openadk sessions prune --expired`` deletes it.
                Given when resuming, it sets a new expiry.
            expire_time: The same as an absolute time (Unix seconds or an aware datetime).
            display_name: openadk: a title for the session (up to 256 characters). Given
                when resuming, it replaces the stored one.
            labels: openadk: labels (Agent Engine's rules: at most 64; keys and values up to 63
                lowercase letters, digits, ``-`` or ``_``, keys starting with a letter). Given
                when resuming, they replace the stored ones.

        Returns:
            The session with merged state (and, when resumed, its events).

        Raises:
            AlreadyExistsError: ``session_id`` exists and ``exist_ok`` is False.
            TypeError: An argument has the wrong type or a state value cannot be stored as JSON.
            ValueError: An id is blank or too long, or a title or label breaks the rules.
            NotImplementedError: A title or labels given to a backend that cannot store them.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        if session_id is not None:
            check_key(session_id, "session_id")
        if state is not None and not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict or None, got {type(state).__name__}.")
        expires = expiry_time(ttl, expire_time, self._clock())
        scoped = ScopedDelta.split(state or {}, "state")
        metadata = SessionMetadata(
            display_name=UNSET if display_name is None else check_display_name(display_name),
            labels=UNSET if labels is None else check_labels(labels),
        )
        extra: dict[str, Any] = {}
        if not metadata.empty:
            self._require("metadata", "store titles or labels")
            extra["metadata"] = metadata
        return await self._create_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            state=scoped,
            exist_ok=exist_ok,
            expire_time=expires,
            **extra,
        )

    async def update_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        display_name: str | Unset | None = UNSET,
        labels: dict[str, str] | Unset | None = UNSET,
    ) -> Session:
        """openadk: changes a session's title and labels; what is not given stays.

        State, events, the update time and the revision marker do not change, so a handle read
        before stays current (an agent in the middle of a turn is not made stale by a rename).

        Args:
            app_name: The application's name.
            user_id: The user's id.
            session_id: The session's id.
            display_name: The new title; None removes it.
            labels: The new labels, replacing all of them; None or ``{}`` removes them.

        Returns:
            The session with its new title and labels, without events.

        Raises:
            SessionNotFoundError: The session does not exist.
            ValueError: A title or label breaks the rules (nothing changed).
            NotImplementedError: The backend cannot store titles or labels.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        metadata = SessionMetadata(
            display_name=(
                display_name
                if isinstance(display_name, Unset)
                else check_display_name(display_name)
            ),
            labels=labels if isinstance(labels, Unset) else check_labels(labels),
        )
        self._require("metadata", "store titles or labels")
        return await self._update_session(
            app_name=app_name, user_id=user_id, session_id=session_id, metadata=metadata
        )

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Returns a session with merged state and its events, oldest first.

        Args:
            app_name: The application's name.
            user_id: The user's id.
            session_id: The session's id.
            config: Which events to return (all when None).

        Returns:
            The session, or None when it does not exist.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        if config is not None and not isinstance(config, GetSessionConfig):
            raise TypeError(f"config must be a GetSessionConfig, got {type(config).__name__}.")
        return await self._get_session(
            app_name=app_name, user_id=user_id, session_id=session_id, config=config
        )

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
        labels: dict[str, str] | None = None,
        updated_after: float | datetime.datetime | None = None,
        updated_before: float | datetime.datetime | None = None,
    ) -> ListSessionsResponse:
        """Lists sessions without their events, oldest update first.

        Args:
            app_name: The application's name.
            user_id: Only this user's sessions; every user's when None.
            limit: At most this many sessions; all when None.
            page_token: The ``next_page_token`` of the previous page (pass the same filters).
            labels: openadk: only sessions having every one of these labels with this value.
            updated_after: openadk: only sessions last updated at or after this time (Unix
                seconds or an aware datetime).
            updated_before: openadk: only sessions last updated before this time.

        Returns:
            Sessions with merged state, ordered by (last_update_time, user_id, id), and a
            ``next_page_token`` when ``limit`` cut the list short.

        Raises:
            ValueError: ``limit`` is not positive, or ``page_token`` is not one this service made.
        """
        check_key(app_name, "app_name")
        if user_id is not None:
            check_key(user_id, "user_id")
        _check_limit(limit)
        after = None if page_token is None else decode_page_token(page_token)
        filters = SessionFilter(
            labels=check_labels(labels),
            updated_after=check_time_bound(updated_after, "updated_after"),
            updated_before=check_time_bound(updated_before, "updated_before"),
        )
        extra: dict[str, Any] = {}
        if filters:
            self._require("metadata", "filter sessions by labels or update time")
            extra["filters"] = filters
        return await self._list_sessions(
            app_name=app_name, user_id=user_id, limit=limit, after=after, **extra
        )

    async def search_events(
        self,
        *,
        app_name: str,
        query: str,
        user_id: str | None = None,
        limit: int = 20,
        page_token: str | None = None,
    ) -> SearchEventsResponse:
        """openadk: finds events whose text holds every word of ``query``, newest first.

        Words are runs of letters and digits, compared without case; anything else in the
        query (quotes, ``*``, ``-``, parentheses, ``NEAR``) is plain text, never search syntax.
        Only the text parts of events are searched. The index is kept in the append's own
        transaction, so every acknowledged event is found and no deleted or trimmed one is.

        Args:
            app_name: The application's name.
            query: The words to look for.
            user_id: Only this user's sessions; every user's when None.
            limit: At most this many hits (1-1000).
            page_token: The ``next_page_token`` of the previous page.

        Returns:
            Hits (session id, user id, event id, author, timestamp, snippet), newest first.

        Raises:
            ValueError: A query without any word, a bad limit or page token.
            NotImplementedError: The backend has no search.
        """
        from openadk.sessions._search_text import parse_query

        check_key(app_name, "app_name")
        if user_id is not None:
            check_key(user_id, "user_id")
        terms = parse_query(query)
        _check_limit(limit)
        if limit > 1000:
            raise ValueError(f"limit must be at most 1000, got {limit}.")
        after = None if page_token is None else decode_page_token(page_token)
        self._require("search", "search events")
        return await self._search_events(
            app_name=app_name, terms=terms, user_id=user_id, limit=limit, after=after
        )

    async def _search_events(
        self,
        *,
        app_name: str,
        terms: list[str],
        user_id: str | None,
        limit: int,
        after: PageKey | None,
    ) -> SearchEventsResponse:
        """Searches as `search_events` describes; ``after`` is (timestamp, session, event)."""
        raise NotImplementedError(f"{type(self).__name__} cannot search events.")

    async def fork_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        new_session_id: str | None = None,
        up_to_invocation_id: str | None = None,
    ) -> Session:
        """openadk: copies a session into a new one, to branch the conversation.

        The fork holds copies of the source's events up to and including the last event of
        ``up_to_invocation_id`` (all of them when None), in the same order with the same ids;
        its session state is what those events' deltas built (app and user state are shared
        and stay as they are); its title is the source's, its labels the source's plus
        ``forked-from=<source id>``. The source does not change. One transaction: on failure
        nothing is written.

        Args:
            app_name: The application's name.
            user_id: The user's id (the fork belongs to the same user).
            session_id: The session to fork.
            new_session_id: The fork's id; a uuid4 string when None.
            up_to_invocation_id: The last invocation to copy.

        Returns:
            The fork, with its events.

        Raises:
            SessionNotFoundError: The source does not exist.
            AlreadyExistsError: ``new_session_id`` is taken.
            ValueError: ``up_to_invocation_id`` is not an invocation of the source.
            NotImplementedError: The backend cannot fork.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        if new_session_id is not None:
            check_key(new_session_id, "new_session_id")
        if up_to_invocation_id is not None and not isinstance(up_to_invocation_id, str):
            raise TypeError("up_to_invocation_id must be a str or None.")
        self._require("fork", "fork sessions")
        return await self._fork_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            new_session_id=new_session_id,
            up_to_invocation_id=up_to_invocation_id,
        )

    async def _fork_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        new_session_id: str | None,
        up_to_invocation_id: str | None,
    ) -> Session:
        """Forks as `fork_session` describes; arguments are already checked."""
        raise NotImplementedError(f"{type(self).__name__} cannot fork sessions.")

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes a session and its events; app and user state stay. A no-op when missing."""
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        await self._delete_session(app_name=app_name, user_id=user_id, session_id=session_id)

    async def delete_user(self, *, app_name: str, user_id: str) -> int:
        """Erases a user from an app: every session, every event and the user's state.

        For privacy requests. App state stays. Returns the number of sessions deleted.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        return await self._delete_user(app_name=app_name, user_id=user_id)

    async def _delete_user(self, *, app_name: str, user_id: str) -> int:
        """Deletes the user's sessions one by one; backends with user state override this."""
        deleted = 0
        while True:
            page = await self._list_sessions(
                app_name=app_name, user_id=user_id, limit=100, after=None
            )
            for session in page.sessions:
                await self._delete_session(
                    app_name=app_name, user_id=user_id, session_id=session.id
                )
                deleted += 1
            if page.next_page_token is None:
                return deleted

    async def trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        """Deletes a session's old events, keeping the last ``keep_last_events`` of them.

        An invocation is never split: when the oldest kept event belongs to an invocation that
        started earlier, that invocation's earlier events are kept too. State is unchanged (it
        already holds the effect of every delta). Returns the number of events deleted.

        Raises:
            SessionNotFoundError: The session does not exist.
            ValueError: ``keep_last_events`` is negative.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        if not isinstance(keep_last_events, int) or isinstance(keep_last_events, bool):
            raise TypeError("keep_last_events must be an int.")
        if keep_last_events < 0:
            raise ValueError(f"keep_last_events must be >= 0, got {keep_last_events}.")
        return await self._trim_events(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            keep_last_events=keep_last_events,
        )

    async def _trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        """Deletes old events as `trim_events` describes; backends that can delete override it."""
        raise NotImplementedError(f"{type(self).__name__} does not support trimming events.")

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Returns the user's state (keys without the ``user:`` prefix), or ``{}``."""
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        return await self._get_user_state(app_name=app_name, user_id=user_id)

    async def list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ListEventsResponse:
        """Lists a session's events, oldest first, a page at a time.

        Args:
            app_name: The application's name.
            user_id: The user's id.
            session_id: The session's id.
            limit: At most this many events; all when None.
            page_token: The ``next_page_token`` of the previous page.

        Returns:
            The events, and a ``next_page_token`` when ``limit`` cut the list short.

        Raises:
            SessionNotFoundError: The session does not exist.
            ValueError: ``limit`` is not positive, or ``page_token`` is not valid.
        """
        check_key(app_name, "app_name")
        check_key(user_id, "user_id")
        check_key(session_id, "session_id")
        _check_limit(limit)
        after = None if page_token is None else decode_page_token(page_token)
        return await self._list_events(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            limit=limit,
            after=None if after is None else (after[0], after[1]),
        )

    async def append_event(self, session: Session, event: Event) -> Event:
        """Appends an event to a session and applies its state delta.

        Partial events are returned unchanged. Otherwise the event is stored, ``temp:`` keys are
        applied to the live ``session`` and removed from ``event.actions.state_delta``, the rest
        of the delta is written to storage and to ``session.state``, and the event is appended to
        ``session.events``. When the append fails, neither storage, ``session`` nor ``event``
        has changed.

        Args:
            session: The handle to append to, as returned by this service.
            event: The event.

        Returns:
            ``event`` (the same object).

        Raises:
            SessionNotFoundError: The session does not exist.
            StaleSessionError: ``session`` is older than storage and ``on_stale`` is "error".
            TypeError: ``session`` or ``event`` has the wrong type, or a state value cannot be
                stored as JSON.
        """
        if not isinstance(session, Session):
            raise TypeError(
                f"append_event() needs an openadk Session, got {type(session).__name__}."
            )
        if not isinstance(event, Event):
            raise TypeError(f"append_event() needs an openadk Event, got {type(event).__name__}.")
        if event.partial:
            return event
        plan = AppendPlan.for_event(event)
        outcome = await self._append_event(session, event, plan)
        if outcome.duplicate:
            return event
        event.actions.state_delta = plan.delta
        event.timestamp = outcome.timestamp
        session.state.update(plan.temp)
        session.state.update(copy_json(plan.delta))
        session.events.append(event)
        session.last_update_time = outcome.last_update_time
        session._storage_update_marker = outcome.marker
        return event

    async def flush(self) -> None:  # noqa: B027 - a no-op unless a backend buffers
        """Writes out anything buffered; a no-op for services that buffer nothing."""

    async def close(self) -> None:  # noqa: B027 - a no-op unless a backend holds resources
        """Releases the service's resources. Calling it twice is harmless."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Helpers for backends ----------------------------------------------------------------------

    capabilities: frozenset[Capability] = frozenset()
    """What this backend offers beyond google-adk's contract (see `Capability`); the contract
    suite skips the tests of what a backend does not declare."""

    def _require(self, capability: Capability, what: str) -> None:
        if capability not in self.capabilities:
            raise NotImplementedError(f"{type(self).__name__} cannot {what}.")

    async def _update_session(
        self, *, app_name: str, user_id: str, session_id: str, metadata: SessionMetadata
    ) -> Session:
        """Stores the given title and labels (`UNSET` fields stay); see `update_session`."""
        raise NotImplementedError(f"{type(self).__name__} cannot store titles or labels.")

    def _is_stale(
        self, session: Session, stored_marker: str | None, stored_last_event_id: str | None
    ) -> bool:
        """Returns whether ``session`` is older than storage (always False when merging).

        A handle from this service carries the revision marker it was read at, compared exactly.
        A handle built by hand has none; it is stale when storage holds an event newer than its
        own last one.
        """
        if self._on_stale == "merge":
            return False
        marker = session._storage_update_marker
        if marker is not None:
            return marker != stored_marker
        local_last = session.events[-1].id if session.events else None
        return stored_last_event_id is not None and stored_last_event_id != local_last

    # Hooks -------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None = None,
    ) -> Session:
        """Creates or resumes a session; arguments are already checked.

        ``session_id=None`` means generate a uuid4 string. When the id exists: with ``exist_ok``
        merge ``state`` into it (a new revision only if ``state`` is non-empty) and return it with
        its events; without, raise ``AlreadyExistsError(f"Session with id {id} already
        exists.")``. App and user parts of ``state`` update the shared scopes either way. Two
        concurrent creates of one id yield one session. ``expire_time`` (Unix seconds), when
        given, is the session's new expiry; an expired session counts as missing everywhere and
        creating its id again starts a new session.
        """

    @abc.abstractmethod
    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        """Returns the session, or None when missing.

        State is merged (`merge_state`); events are oldest first, filtered by ``config``
        (``after_timestamp`` inclusive, then the last ``num_recent_events``). The returned
        Session shares nothing mutable with storage and carries the current revision marker.
        """

    @abc.abstractmethod
    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
    ) -> ListSessionsResponse:
        """Returns sessions (all users when ``user_id`` is None) in `sort_key` order.

        Each has merged state (its own user's) and no events. Unknown app or user: empty. Only
        sessions whose `sort_key` is greater than ``after`` are returned, at most ``limit`` of
        them, with ``next_page_token=encode_page_token(sort_key(last))`` when more remain.
        """

    @abc.abstractmethod
    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        """Returns the session's events after ``after`` in (timestamp, id) order.

        At most ``limit`` of them, with ``next_page_token=encode_page_token((ts, id, ""))`` of
        the last one when more remain. A missing session raises `SessionNotFoundError`.
        """

    @abc.abstractmethod
    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes the session and its events; app and user state stay. A no-op when missing."""

    @abc.abstractmethod
    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Returns a copy of the user's state without prefixes, ``{}`` when there is none."""

    @abc.abstractmethod
    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        """Stores ``event`` atomically, or raises and changes nothing.

        In order: a missing session raises ``SessionNotFoundError(f"Session {id} not found.")``;
        an event whose id is already stored with the same content is a duplicate (report it,
        change nothing; a different event under the same id raises ValueError); a stale handle
        raises `StaleSessionError` when `_is_stale` says so; the timestamp is moved past the
        session's last update with `next_timestamp`; then the event (`AppendPlan.stored_event`)
        and ``plan.scoped`` are written together and a new revision marker is made. Must not
        modify ``session`` or ``event``: the base class updates them after success.
        """
