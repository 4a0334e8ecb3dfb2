"""Conversion between google-adk's and openadk's events and sessions, without a JSON round trip.

The two libraries declare the same fields with the same types, and the nested values that are
not their own models (``Content``, ``GroundingMetadata``, usage metadata, ...) are google-genai
objects in both. So an event is converted by building the other library's model around the same
field values: no validation (the values were validated when the source model was built, and
openadk checks every field again when it serializes an event to store it) and no copy (openadk
stores a private copy of each appended event; events read back are shared, read-only, as
openadk's own services hand them out).

Only the few models each library defines itself are rebuilt: ``EventActions``, ``NodeInfo``,
``CacheMetadata``, ``EventCompaction``, ``ToolConfirmation``, ``UiWidget``; and
``requested_auth_configs``, which google-adk holds as its ``AuthConfig`` model and openadk as
JSON (dumped by alias, so it validates back into the same security scheme).
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.adk.auth.auth_tool import AuthConfig as _AUTH_CONFIG
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import Session as AdkSession
from pydantic import BaseModel

from openadk.events import Event, EventActions
from openadk.sessions import Session

__all__ = ["UnknownFieldError", "to_adk_event", "to_adk_session", "to_openadk_event"]

_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__


class UnknownFieldError(ValueError):
    """A google-adk event holds a field that google-adk 2.13 (and so openadk) does not define."""


def _rebuild(cls: type[_M], source: BaseModel, values: dict[str, Any]) -> _M:
    """An instance of ``cls`` holding ``values``, built without validation.

    pydantic's ``model_construct`` would do the same at several times the cost.
    """
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(source.__pydantic_fields_set__))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _convert_nested(value: Any, target: type[_M]) -> _M:
    """Rebuilds one of the small models (all fields plain values or genai objects)."""
    return _rebuild(target, value, dict(value.__dict__))


def _actions(source: BaseModel, target: type[_M], *, to_adk: bool) -> _M:
    values = dict(source.__dict__)
    confirmations = values["requested_tool_confirmations"]
    if confirmations:
        kind = _ADK_CONFIRMATION if to_adk else _OPENADK_CONFIRMATION
        values["requested_tool_confirmations"] = {
            key: _convert_nested(value, kind) for key, value in confirmations.items()
        }
    auth = values["requested_auth_configs"]
    if auth:
        if to_adk:
            values["requested_auth_configs"] = {
                key: _AUTH_CONFIG.model_validate(value) for key, value in auth.items()
            }
        else:
            values["requested_auth_configs"] = {
                # By alias: fastapi's security schemes read back only from their aliases
                # ("in", not "in_"); google-adk's own dump loses the scheme's type.
                key: value.model_dump(mode="json", exclude_none=True, by_alias=True)
                if isinstance(value, BaseModel)
                else value
                for key, value in auth.items()
            }
    compaction = values["compaction"]
    if compaction is not None:
        values["compaction"] = _convert_nested(
            compaction, _ADK_COMPACTION if to_adk else _OPENADK_COMPACTION
        )
    widgets = values["render_ui_widgets"]
    if widgets:
        kind_w = _ADK_WIDGET if to_adk else _OPENADK_WIDGET
        values["render_ui_widgets"] = [_convert_nested(widget, kind_w) for widget in widgets]
    return _rebuild(target, source, values)


def _check_known(event: AdkEvent) -> None:
    """Refuses a google-adk event (or actions) carrying a field google-adk 2.13 lacks.

    openadk stores events in google-adk 2.13's shape; such a field would be dropped, so the event
    is refused instead of silently stored without it.
    """
    for model, known, where in (
        (event, _EVENT_FIELDS, "event"),
        (event.actions, _ACTIONS_FIELDS, "event.actions"),
    ):
        extra = [
            name
            for name in type(model).model_fields
            if name not in known and getattr(model, name, None) is not None
        ]
        if model.__pydantic_extra__:
            extra.extend(model.__pydantic_extra__)
        if extra:
            raise UnknownFieldError(
                f"{where} has field(s) {', '.join(map(repr, sorted(extra)))} that google-adk "
                f"2.13 does not define; openadk stores events in google-adk 2.13's shape and "
                f"would lose them, so the event is refused. Leave the field(s) unset (None), or "
                f"use a session service that stores this google-adk version's events."
            )


def to_openadk_event(event: AdkEvent) -> Event:
    """The openadk twin of a google-adk event, sharing its field values.

    Raises:
        UnknownFieldError: The event (a subclass, or a newer google-adk's) has a field google-adk
            2.13 does not define, holding a value.
        TypeError: ``event`` is not a google-adk Event.
    """
    if _SAME_SHAPE and type(event) is AdkEvent and type(event.actions) is AdkEventActions:
        values = dict(event.__dict__)
    else:
        if not isinstance(event, AdkEvent):
            raise TypeError(
                f"append_event() needs a google.adk.events.Event, got {type(event).__name__}."
            )
        _check_known(event)
        if not _SAME_SHAPE:
            # Another google-adk version, whose models have other fields: through JSON.
            return Event.model_validate_json(event.model_dump_json(exclude_none=True))
        fields = event.__dict__
        values = {name: fields[name] for name in _EVENT_FIELDS}
    actions = values["actions"]
    if isinstance(actions, BaseModel):
        values["actions"] = _actions(actions, EventActions, to_adk=False)
    node_info = values["node_info"]
    if isinstance(node_info, BaseModel):
        values["node_info"] = _convert_nested(node_info, _OPENADK_NODE_INFO)
    cache = values["cache_metadata"]
    if cache is not None:
        values["cache_metadata"] = _convert_nested(cache, _OPENADK_CACHE)
    return _rebuild(Event, event, values)


def to_adk_event(event: Event) -> AdkEvent:
    """The google-adk twin of an openadk event, sharing its field values."""
    if not _SAME_SHAPE:
        # Another google-adk version, whose models have other fields: through JSON.
        return AdkEvent.model_validate_json(event.model_dump_json(exclude_none=True))
    values = dict(event.__dict__)
    values["actions"] = _actions(values["actions"], AdkEventActions, to_adk=True)
    values["node_info"] = _convert_nested(values["node_info"], _ADK_NODE_INFO)
    cache = values["cache_metadata"]
    if cache is not None:
        values["cache_metadata"] = _convert_nested(cache, _ADK_CACHE)
    return _rebuild(AdkEvent, event, values)


def to_adk_session(session: Session, events: list[AdkEvent]) -> AdkSession:
    """A google-adk Session of ``session``'s fields and ``events``.

    Takes over ``session``'s field and private dicts (the two models declare the same fields
    and the same private marker): ``session`` must not be used afterwards.
    """
    if not _SAME_SHAPE:
        built = AdkSession.model_construct(
            id=session.id,
            app_name=session.app_name,
            user_id=session.user_id,
            state=session.state,
            events=events,
            last_update_time=session.last_update_time,
        )
        built._storage_update_marker = session._storage_update_marker
        return built
    values = session.__dict__
    values["events"] = events
    for name in OPENADK_ONLY_SESSION_FIELDS:  # a title and labels: google-adk has neither
        values.pop(name, None)
    model = AdkSession.__new__(AdkSession)
    _set(model, "__dict__", values)
    # Shared: every field is in it, so pydantic's add() on assignment never changes it.
    _set(model, "__pydantic_fields_set__", _SESSION_FIELDS_SET)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", session.__pydantic_private__)
    return model


def _field_type(model: type[BaseModel], *path: str) -> Any:
    """The model class of a (possibly nested, Optional or dict-valued) field."""
    import typing

    current: Any = model
    for name in path:
        annotation = current.model_fields[name].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        for candidate in list(candidates):
            candidates.extend(typing.get_args(candidate))
        current = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return current


_EVENT_FIELDS = tuple(Event.model_fields)
_ACTIONS_FIELDS = frozenset(EventActions.model_fields)
_SESSION_FIELDS_SET = set(AdkSession.model_fields)
# openadk's Session fields that google-adk's lacks (titles and labels), left out of its twin.
OPENADK_ONLY_SESSION_FIELDS = ("display_name", "labels")

_ADK_NODE_INFO = _field_type(AdkEvent, "node_info")
_OPENADK_NODE_INFO = _field_type(Event, "node_info")
_ADK_CACHE = _field_type(AdkEvent, "cache_metadata")
_OPENADK_CACHE = _field_type(Event, "cache_metadata")
_ADK_COMPACTION = _field_type(AdkEventActions, "compaction")
_OPENADK_COMPACTION = _field_type(EventActions, "compaction")
_ADK_CONFIRMATION = _field_type(AdkEventActions, "requested_tool_confirmations")
_OPENADK_CONFIRMATION = _field_type(EventActions, "requested_tool_confirmations")
_ADK_WIDGET = _field_type(AdkEventActions, "render_ui_widgets")
_OPENADK_WIDGET = _field_type(EventActions, "render_ui_widgets")

# google-adk 2.13's models declare exactly openadk's fields; another version may not, and then
# events are converted through JSON and checked for fields openadk would drop.
_SAME_SHAPE = (
    set(AdkEvent.model_fields) == set(_EVENT_FIELDS)
    and set(AdkEventActions.model_fields) == _ACTIONS_FIELDS
    and set(_ADK_NODE_INFO.model_fields) == set(_OPENADK_NODE_INFO.model_fields)
    and set(_ADK_CACHE.model_fields) == set(_OPENADK_CACHE.model_fields)
    and set(AdkSession.model_fields) == set(Session.model_fields) - set(OPENADK_ONLY_SESSION_FIELDS)
)
