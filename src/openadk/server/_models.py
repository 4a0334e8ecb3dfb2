"""The JSON bodies of the Agent Engine Sessions REST API, as pydantic models.

They validate requests and make the published OpenAPI schema.

Request models refuse unknown fields and wrong types (strict mode, as a proto-JSON parser does) and
accept camelCase or snake_case names. Response models document what the server sends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from openadk.server._patterns import EVENT_TIME, KEY, RFC3339, STATE_SCHEMA, TTL
from openadk.sessions._vertex import parse_time

__all__ = [
    "ENGINE_PATTERN",
    "NEW_SESSION_ID_PATTERN",
    "OPERATION_PATTERN",
    "SESSION_PATTERN",
    "EventActionsBody",
    "EventMetadataBody",
    "ForkBody",
    "ListSessionEventsOut",
    "ListSessionsOut",
    "OperationOut",
    "SessionBody",
    "SessionEventBody",
    "SessionEventOut",
    "SessionOut",
    "SessionPatchBody",
    "UserStateOut",
    "model_components",
]

ENGINE_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Reasoning engine ids (= app names), projects and locations in paths."""
SESSION_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Session ids in paths: google-adk's rule, so sessions made by the Python API are reachable."""
NEW_SESSION_ID_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"
"""``sessionId`` of a create request: the API's rule (up to 63 of ``[a-z0-9-]``, alphanumeric
first and last); empty means none, as in proto3."""
OPERATION_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"

_TTL = r"^[0-9]{1,12}(\.[0-9]{1,9})?s$"
# Event timestamps the server accepts: from the Unix epoch to the end of year 9998.
_MIN_EVENT_TIME = 0.0
_MAX_EVENT_TIME = 253370764800.0


class _In(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True
    )


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


def _state_schema(schema: dict[str, Any]) -> None:
    """Describes a state object's values (no NUL anywhere) in an optional field's schema."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "object":
            branch.update(STATE_SCHEMA)


COMPONENTS = "#/components/schemas/adk.{model}"
"""Where the schemas of google-genai's and openadk's own models go in the OpenAPI document."""


def _model_schema(model: str) -> Callable[[dict[str, Any]], None]:
    """Describes an optional object field as the named model (see `model_components`)."""

    def update(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "object":
                branch.clear()
                branch["$ref"] = COMPONENTS.format(model=model)

    return update


def model_components() -> dict[str, Any]:
    """The schema components `_model_schema` refers to: an Event and a Content, with theirs."""
    from google.genai import types

    from openadk.events import Event

    components: dict[str, Any] = {}
    for model in (Event, types.Content):
        schema = model.model_json_schema(by_alias=True, ref_template=COMPONENTS)
        for name, definition in schema.pop("$defs", {}).items():
            components[f"adk.{name}"] = definition
        components[f"adk.{model.__name__}"] = schema
    return components


def _rfc3339(value: str | None) -> str | None:
    if value is not None:
        parse_time(value)
    return value


_TITLE = "The session's title (openadk stores it; up to 256 characters)."
_LABELS = (
    "At most 64 labels; keys 1-63 lowercase letters, digits, '-' or '_' starting with a letter; "
    "values 0-63 of the same."
)
_LABELS_SCHEMA: JsonDict = {
    "maxProperties": 64,
    "propertyNames": {"pattern": "^[a-z][a-z0-9_-]{0,62}$"},
    "additionalProperties": {"type": "string", "pattern": "^[a-z0-9_-]{0,63}$"},
}


class ForkBody(_In):
    """openadk: the body of a ``:fork`` request."""

    new_session_id: str | None = Field(
        default=None, pattern=NEW_SESSION_ID_PATTERN, description="The fork's id (generated)."
    )
    up_to_invocation_id: str | None = Field(
        default=None, max_length=256, description="The last invocation to copy (all when absent)."
    )


class SessionPatchBody(_In):
    """The ``Session`` of a PATCH request: the fields it may change (others are refused)."""

    name: str | None = Field(default=None, max_length=1024, description="Ignored on input.")
    display_name: str | None = Field(default=None, max_length=256, description=_TITLE)
    labels: dict[str, str] | None = Field(
        default=None, description=_LABELS, json_schema_extra=_LABELS_SCHEMA
    )


class SessionBody(_In):
    """The ``Session`` of a create request."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "description": "At most one of ttl and expireTime.",
                "required": ["ttl", "expireTime"],
                "properties": {"ttl": {"type": "string"}, "expireTime": {"type": "string"}},
            }
        }
    )

    name: str | None = Field(default=None, max_length=1024, description="Ignored on input.")
    user_id: str = Field(
        min_length=1,
        max_length=128,
        description="Required. Immutable.",
        json_schema_extra={"pattern": KEY},
    )
    session_state: dict[str, Any] | None = Field(
        default=None,
        description="The initial state (app:, user: and temp: prefixes apply).",
        json_schema_extra=_state_schema,
    )
    display_name: str | None = Field(default=None, max_length=256, description=_TITLE)
    labels: dict[str, str] | None = Field(
        default=None, description=_LABELS, json_schema_extra=_LABELS_SCHEMA
    )
    ttl: str | None = Field(
        default=None,
        pattern=_TTL,
        # The schema says what the service accepts (positive); the check itself says why not.
        json_schema_extra={"pattern": TTL},
        description="Input only, e.g. '7200s': the session expires that long after creation.",
    )
    expire_time: str | None = Field(
        default=None,
        json_schema_extra={"pattern": RFC3339},
        description="RFC 3339, in the future: when the session expires (input only).",
    )
    create_time: str | None = Field(
        default=None, json_schema_extra={"pattern": RFC3339}, description="Output only; ignored."
    )
    update_time: str | None = Field(
        default=None, json_schema_extra={"pattern": RFC3339}, description="Output only; ignored."
    )

    _check_times = field_validator("expire_time", "create_time", "update_time")(_rfc3339)

    @model_validator(mode="after")
    def _ttl_or_expire(self) -> SessionBody:
        if self.ttl is not None and self.expire_time is not None:
            raise ValueError("Specify at most one of ttl and expireTime.")
        return self


class EventActionsBody(_In):
    """``SessionEvent.actions``."""

    skip_summarization: bool | None = None
    state_delta: dict[str, Any] | None = Field(default=None, json_schema_extra=_state_schema)
    artifact_delta: dict[str, int] | None = None
    transfer_agent: str | None = None
    escalate: bool | None = None
    requested_auth_configs: dict[str, Any] | None = None


class EventMetadataBody(_In):
    """``SessionEvent.eventMetadata``."""

    partial: bool | None = None
    turn_complete: bool | None = None
    interrupted: bool | None = None
    branch: str | None = None
    custom_metadata: dict[str, Any] | None = None
    long_running_tool_ids: list[str] | None = None
    grounding_metadata: dict[str, Any] | None = Field(
        default=None, json_schema_extra=_model_schema("GroundingMetadata")
    )
    input_transcription: dict[str, Any] | None = Field(
        default=None, json_schema_extra=_model_schema("Transcription")
    )
    output_transcription: dict[str, Any] | None = Field(
        default=None, json_schema_extra=_model_schema("Transcription")
    )


class SessionEventBody(_In):
    """The ``SessionEvent`` of an appendEvent request."""

    name: str | None = Field(default=None, max_length=2048, description="Ignored on input.")
    author: str = Field(max_length=1024, description="Required: 'user' or an agent name.")
    invocation_id: str = Field(max_length=1024, description="Required.")
    timestamp: str = Field(
        json_schema_extra={"pattern": EVENT_TIME},
        description="Required. RFC 3339, from 1970 to 9998.",
    )
    content: dict[str, Any] | None = Field(
        default=None,
        description="A google.genai Content.",
        json_schema_extra=_model_schema("Content"),
    )
    actions: EventActionsBody | None = None
    error_code: str | None = None
    error_message: str | None = None
    event_metadata: EventMetadataBody | None = None
    raw_event: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=_model_schema("Event"),
        description="The whole event (google-adk's camelCase Event JSON); kept so events "
        "round-trip with every field.",
    )

    @field_validator("timestamp")
    @classmethod
    def _check_timestamp(cls, value: str) -> str:
        seconds = parse_time(value)
        if not _MIN_EVENT_TIME <= seconds < _MAX_EVENT_TIME:
            raise ValueError("timestamp must be between 1970 and 9998.")
        return value


class SessionOut(_Out):
    """A ``Session`` resource."""

    name: str
    user_id: str
    session_state: dict[str, Any] = Field(default_factory=dict)
    update_time: str
    display_name: str | None = Field(default=None, description="Only when the session has one.")
    labels: dict[str, str] | None = Field(default=None, description="Only when it has some.")


class OperationOut(_Out):
    """A long-running ``Operation``; openadk's are done when returned."""

    name: str
    done: bool
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class ListSessionsOut(_Out):
    """The response of a list-sessions request."""

    sessions: list[SessionOut] = Field(default_factory=list)
    next_page_token: str | None = None


class SessionEventOut(_Out):
    """A ``SessionEvent`` resource."""

    name: str
    author: str
    invocation_id: str
    timestamp: str
    raw_event: dict[str, Any]


class ListSessionEventsOut(_Out):
    """The response of a list-events request."""

    session_events: list[SessionEventOut] = Field(default_factory=list)
    next_page_token: str | None = None


class UserStateOut(_Out):
    """openadk's extension: a user's state in an app, keys without the ``user:`` prefix."""

    user_id: str
    state: dict[str, Any] = Field(default_factory=dict)
