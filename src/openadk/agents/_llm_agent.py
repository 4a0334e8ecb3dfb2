"""`LlmAgent` (exported as `Agent`): an agent that answers with a model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, field_validator

from openadk.agents._instructions import fill_instruction
from openadk.events import Event
from openadk.models import BaseLlm, LlmRequest, ModelError, resolve_model

if TYPE_CHECKING:
    from openadk.sessions import BaseSessionService, Session

__all__ = ["InvocationContext", "LlmAgent"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class InvocationContext:
    """What an agent gets for one invocation: the live session and where it came from."""

    invocation_id: str
    session: Session
    session_service: BaseSessionService
    user_content: types.Content | None = None


class LlmAgent(BaseModel):
    """An agent that sends the session's conversation to a model and answers with its reply.

    The model sees every earlier turn of the session as its conversation, so a later turn
    remembers an earlier one. ``instruction`` may use ``{key}`` / ``{key?}`` placeholders filled
    from session state. With ``output_key``, the final reply's text is also saved to that state
    key, in the same event.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    name: str
    """A Python identifier; it is the ``author`` of the agent's events."""
    description: str = ""
    model: str | BaseLlm = ""
    """A model string (``"gemini-2.0-flash"``, ``"offline"``, ...) or a model object."""
    instruction: str = ""
    output_key: str | None = None
    tools: list[Any] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                f"Agent name {value!r} must be a Python identifier (letters, digits, underscores)."
            )
        if value == "user":
            raise ValueError("Agent name 'user' is reserved for the end user's events.")
        return value

    def canonical_model(self) -> BaseLlm:
        """Returns the model object this agent calls (``$OPENADK_MODEL`` wins over ``model``)."""
        return resolve_model(self.model or "gemini-2.0-flash")

    def _build_request(self, ctx: InvocationContext, model: BaseLlm) -> LlmRequest:
        contents: list[types.Content] = []
        for event in ctx.session.events:
            if event.content is None or not event.content.parts:
                continue
            role = "user" if event.author == "user" else "model"
            contents.append(types.Content(role=role, parts=list(event.content.parts)))
        instruction = fill_instruction(
            self.instruction, MappingProxyType(ctx.session.state), self.name
        )
        return LlmRequest(
            model=model.model, contents=contents, system_instruction=instruction or None
        )

    async def run_async(self, ctx: InvocationContext) -> AsyncIterator[Event]:
        """Runs one turn: calls the model and yields the agent's events.

        A failed model call yields one event with ``error_code``/``error_message`` set, so the
        session records the outcome of the turn.
        """
        model = self.canonical_model()
        request = self._build_request(ctx, model)
        try:
            async for response in model.generate_content_async(request):
                event = Event(
                    invocation_id=ctx.invocation_id,
                    author=self.name,
                    content=response.content,
                    partial=response.partial,
                    finish_reason=response.finish_reason,
                    error_code=response.error_code,
                    error_message=response.error_message,
                    usage_metadata=response.usage_metadata,
                    model_version=response.model_version,
                    custom_metadata=response.custom_metadata,
                )
                self._save_output(event)
                yield event
        except ModelError as exc:
            yield Event(
                invocation_id=ctx.invocation_id,
                author=self.name,
                error_code="MODEL_ERROR",
                error_message=str(exc),
            )

    def _save_output(self, event: Event) -> None:
        if not self.output_key or event.partial or not event.is_final_response():
            return
        if event.content is None or not event.content.parts:
            return
        text = "".join(p.text for p in event.content.parts if p.text and not p.thought)
        if text:
            event.actions.state_delta[self.output_key] = text
