"""`EventActions` and the small models it holds, in google-adk 2.13's JSON shape."""

from __future__ import annotations

from typing import Any

from google.genai import types
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["EventActions", "EventCompaction", "ToolConfirmation", "UiWidget"]

_CAMEL_FORBID = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

RouteValue = bool | int | str | list[bool | int | str]


class ToolConfirmation(BaseModel):
    """A tool's request for, or the user's answer to, a confirmation."""

    model_config = _CAMEL_FORBID

    hint: str = ""
    """Text shown to the user explaining what is being confirmed."""
    confirmed: bool = False
    """Whether the user confirmed."""
    payload: Any | None = None
    """Free-form data the user sends back with the confirmation."""


class EventCompaction(BaseModel):
    """A summary that replaces the events between two timestamps."""

    model_config = _CAMEL_FORBID

    start_timestamp: float
    end_timestamp: float
    compacted_content: types.Content


class UiWidget(BaseModel):
    """A UI widget an agent asks the client to render."""

    model_config = _CAMEL_FORBID

    id: str
    provider: str
    payload: dict[str, Any] = Field(default_factory=dict)


class EventActions(BaseModel):
    """What an event does besides carrying content: state changes, transfers, requests.

    Field order and defaults follow google-adk 2.13, so dumps of the two libraries are equal.
    """

    model_config = _CAMEL_FORBID

    skip_summarization: bool | None = None
    """Do not send a function response back to the model for summarization."""
    state_delta: dict[str, Any] = Field(default_factory=dict)
    """State changes made by this event; ``app:``/``user:`` keys change the shared scopes."""
    artifact_delta: dict[str, int] = Field(default_factory=dict)
    """Artifact filename to the version this event wrote."""
    transfer_to_agent: str | None = None
    """Name of the agent to hand the conversation to."""
    transfer_reason: str | None = None
    escalate: bool | None = None
    """Hand control back to a parent agent."""
    requested_auth_configs: dict[str, Any] = Field(default_factory=dict)
    """Authentication requests, keyed by function-call id."""
    requested_tool_confirmations: dict[str, ToolConfirmation] = Field(default_factory=dict)
    """Tool confirmation requests, keyed by function-call id."""
    compaction: EventCompaction | None = None
    end_of_agent: bool | None = None
    agent_state: dict[str, Any] | None = None
    rewind_before_invocation_id: str | None = None
    route: RouteValue | None = None
    render_ui_widgets: list[UiWidget] | None = None
    set_model_response: Any | None = None
