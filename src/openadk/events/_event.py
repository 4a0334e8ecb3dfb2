"""`Event`: one entry in a session's history, JSON-compatible with google-adk 2.13."""

from __future__ import annotations

import time
import uuid
from typing import Any

from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator
from pydantic.alias_generators import to_camel

from openadk.events._event_actions import EventActions

__all__ = ["CacheMetadata", "Event", "NodeInfo"]


class CacheMetadata(BaseModel):
    """Context-cache bookkeeping attached to a model response."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cache_name: str | None = None
    expire_time: float | None = None
    fingerprint: str
    invocations_used: int | None = None
    contents_count: int
    created_at: float | None = None


class NodeInfo(BaseModel):
    """Where in a workflow an event came from."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    path: str = ""
    output_for: list[str] | None = None
    message_as_output: bool | None = None


def _new_event_id() -> str:
    return str(uuid.uuid4())


# Input-only shortcuts accepted by google-adk's Event; never written back out.
_SHORTCUT_KEYS = ("message", "state", "route", "node_path")


class Event(BaseModel):
    """One entry of a session's history: a message, a model response, a tool call or result.

    Unknown top-level keys are ignored (a newer writer may add some); ``id`` is a uuid4 string
    and ``timestamp`` float Unix seconds, both filled in when not given.
    """

    model_config = ConfigDict(
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    # Fields of a model response (google-adk's LlmResponse), in its order.
    model_version: str | None = None
    content: types.Content | None = None
    grounding_metadata: types.GroundingMetadata | None = None
    partial: bool | None = None
    """True for a streamed chunk; partial events are never stored."""
    turn_complete: bool | None = None
    turn_complete_reason: types.TurnCompleteReason | None = None
    interaction_status: types.InteractionStatus | None = None
    finish_reason: types.FinishReason | None = None
    error_code: str | None = None
    error_message: str | None = None
    interrupted: bool | None = None
    custom_metadata: dict[str, Any] | None = None
    usage_metadata: types.GenerateContentResponseUsageMetadata | None = None
    live_session_resumption_update: types.LiveServerSessionResumptionUpdate | None = None
    live_session_id: str | None = None
    go_away: types.LiveServerGoAway | None = None
    voice_activity: types.VoiceActivity | None = None
    input_transcription: types.Transcription | None = None
    output_transcription: types.Transcription | None = None
    avg_logprobs: float | None = None
    logprobs_result: types.LogprobsResult | None = None
    cache_metadata: CacheMetadata | None = None
    citation_metadata: types.CitationMetadata | None = None
    interaction_id: str | None = None
    environment_id: str | None = None

    # Fields of the event itself.
    invocation_id: str = ""
    """The invocation (one user turn and everything it caused) this event belongs to."""
    author: str = ""
    """``'user'`` or the name of the agent that produced the event."""
    actions: EventActions = Field(default_factory=EventActions)
    output: Any | None = None
    node_info: NodeInfo = Field(default_factory=NodeInfo)
    long_running_tool_ids: set[str] | None = None
    branch: str | None = None
    """Dot-joined path of agents, for sub-agents that must not see their peers' turns."""
    isolation_scope: str | None = None
    id: str = ""
    """Unique id; a uuid4 string is generated when empty."""
    timestamp: float = Field(default_factory=time.time)
    """Unix seconds."""

    @model_validator(mode="before")
    @classmethod
    def _route_shortcuts(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _SHORTCUT_KEYS):
            return data
        data = dict(data)
        message = data.pop("message", None)
        state = data.pop("state", None)
        route = data.pop("route", None)
        node_path = data.pop("node_path", None)
        if message is not None:
            if data.get("content") is not None:
                raise ValueError(
                    "'message' and 'content' are mutually exclusive. Use one or the other."
                )
            data["content"] = _to_content(message)
        if state is not None or route is not None:
            actions = data.get("actions")
            if isinstance(actions, EventActions):
                actions = actions.model_dump(exclude_unset=True)
            if actions is None or isinstance(actions, dict):
                actions = dict(actions or {})
                if state is not None:
                    actions["state_delta"] = state
                if route is not None:
                    actions["route"] = route
                data["actions"] = actions
        if node_path is not None:
            node_info = data.get("node_info")
            if isinstance(node_info, NodeInfo):
                node_info = node_info.model_dump(exclude_unset=True)
            if node_info is None or isinstance(node_info, dict):
                data["node_info"] = {**(node_info or {}), "path": node_path}
        return data

    def model_post_init(self, context: Any, /) -> None:
        if not self.id:
            self.id = _new_event_id()

    @field_serializer("long_running_tool_ids")
    def _sorted_tool_ids(self, value: set[str] | None) -> list[str] | None:
        # Sets iterate in hash order, which changes per process; sorted output keeps dumps stable.
        return None if value is None else sorted(value)

    @staticmethod
    def new_id() -> str:
        """Returns a new event id (a uuid4 string)."""
        return _new_event_id()

    @property
    def message(self) -> types.Content | None:
        """The event's content (an alias of `content`)."""
        return self.content

    def get_function_calls(self) -> list[types.FunctionCall]:
        """Returns the function calls in the event's content, in order."""
        parts = self.content.parts if self.content and self.content.parts else []
        return [part.function_call for part in parts if part.function_call]

    def get_function_responses(self) -> list[types.FunctionResponse]:
        """Returns the function responses in the event's content, in order."""
        parts = self.content.parts if self.content and self.content.parts else []
        return [part.function_response for part in parts if part.function_response]

    def has_trailing_code_execution_result(self) -> bool:
        """Returns whether the content's last part is a code execution result."""
        parts = self.content.parts if self.content and self.content.parts else []
        return bool(parts) and parts[-1].code_execution_result is not None

    def is_final_response(self) -> bool:
        """Returns whether this event is an agent's complete, user-facing answer.

        True when summarization is skipped or tools run long; for an error that is not partial and
        calls no function; otherwise when it is not partial and holds no function call, function
        response or trailing code result.
        """
        if self.actions.skip_summarization or self.long_running_tool_ids:
            return True
        if self.error_code and not self.partial and not self.get_function_calls():
            return True
        return not (
            self.get_function_calls()
            or self.get_function_responses()
            or self.partial
            or self.has_trailing_code_execution_result()
        )


def _to_content(message: Any) -> types.Content:
    """Turns the ``message`` shortcut (Content, Part, str, or a list of them) into Content."""
    if isinstance(message, types.Content):
        return message
    if isinstance(message, dict):
        return types.Content.model_validate(message)
    items = message if isinstance(message, list) else [message]
    parts: list[types.Part] = []
    for item in items:
        if isinstance(item, types.Part):
            parts.append(item)
        elif isinstance(item, str):
            parts.append(types.Part(text=item))
        elif isinstance(item, dict):
            parts.append(types.Part.model_validate(item))
        else:
            raise TypeError(
                f"Event(message=...) takes Content, Part, str or a list of them, "
                f"not {type(item).__name__}."
            )
    return types.Content(role="user", parts=parts)
