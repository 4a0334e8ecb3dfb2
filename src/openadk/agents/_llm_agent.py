"""`LlmAgent` (exported as `Agent`): an agent that answers with a model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from openadk.agents._instructions import fill_instruction
from openadk.agents._tools import FunctionTool, ToolContext
from openadk.events import Event, EventActions
from openadk.events._rewind import live_events
from openadk.models import BaseLlm, LlmRequest, ModelError, resolve_model
from openadk.sessions._state import State

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
    """Python functions (or `FunctionTool`s) the model may call."""
    max_tool_rounds: int = 10
    """How many rounds of tool calls one turn may take before the agent stops."""

    _tools: dict[str, FunctionTool] = PrivateAttr(default_factory=dict)
    _model: BaseLlm | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        wrapped = [t if isinstance(t, FunctionTool) else FunctionTool(t) for t in self.tools]
        self._tools = {tool.name: tool for tool in wrapped}
        if len(self._tools) != len(wrapped):
            raise ValueError(f"Agent {self.name!r} has two tools with the same name.")

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
        """Returns the model object this agent calls (``$OPENADK_MODEL`` wins over ``model``).

        It is resolved once and kept, so its connections are reused and closed once.
        """
        if self._model is None:
            self._model = resolve_model(self.model or "gemini-2.0-flash")
        return self._model

    def render_instruction(self, state: Mapping[str, Any]) -> str:
        """Returns the instruction with its ``{key}`` placeholders filled from ``state``.

        Raises:
            KeyError: A required key is missing: "Context variable not found: `key` in agent
                'name'." (google-adk's message).
        """
        if not self.instruction:
            return ""
        return fill_instruction(self.instruction, state, self.name)

    def _build_request(self, ctx: InvocationContext, model: BaseLlm) -> LlmRequest:
        contents: list[types.Content] = []
        # Rewound invocations are not part of the conversation the model sees.
        for event in live_events(ctx.session.events):
            if event.content is None or not event.content.parts:
                continue
            role = event.content.role or ("user" if event.author == "user" else "model")
            contents.append(types.Content(role=role, parts=list(event.content.parts)))
        instruction = self.render_instruction(ctx.session.state)
        return LlmRequest(
            model=model.model,
            contents=contents,
            system_instruction=instruction or None,
            tools=[tool.declaration for tool in self._tools.values()],
        )

    async def run_async(self, ctx: InvocationContext) -> AsyncIterator[Event]:
        """Runs one turn: calls the model, runs the tools it asks for, and yields the events.

        The runner stores each complete event before the next model call, so the model sees
        its function calls and their responses. A failed model call yields one event with
        ``error_code``/``error_message`` set, so the session records the outcome of the turn.
        """
        model = self.canonical_model()
        for _ in range(self.max_tool_rounds):
            last: Event | None = None
            try:
                async for response in model.generate_content_async(self._build_request(ctx, model)):
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
                    if not event.partial:
                        last = event
                    yield event
            except ModelError as exc:
                yield Event(
                    invocation_id=ctx.invocation_id,
                    author=self.name,
                    error_code="MODEL_ERROR",
                    error_message=str(exc),
                )
                return
            calls = last.get_function_calls() if last is not None else []
            if not calls:
                return
            yield await self._call_tools(ctx, calls)
        yield Event(
            invocation_id=ctx.invocation_id,
            author=self.name,
            error_code="MAX_TOOL_ROUNDS",
            error_message=f"Stopped after {self.max_tool_rounds} rounds of tool calls.",
        )

    async def _call_tools(self, ctx: InvocationContext, calls: list[types.FunctionCall]) -> Event:
        """Runs the called tools; a failing or unknown tool answers with an error."""
        actions = EventActions()
        parts: list[types.Part] = []
        for call in calls:
            name = call.name or ""
            tool = self._tools.get(name)
            context = ToolContext(
                state=State(ctx.session.state, actions.state_delta),
                function_call_id=call.id,
                invocation_id=ctx.invocation_id,
                agent_name=self.name,
                session=ctx.session,
            )
            if tool is None:
                result: dict[str, Any] = {"error": f"Unknown tool {name!r}."}
            else:
                try:
                    result = await tool.run(dict(call.args or {}), context)
                except Exception as exc:  # the model is told, and the turn goes on
                    result = {"error": f"{type(exc).__name__}: {exc}"}
            parts.append(
                types.Part(
                    function_response=types.FunctionResponse(id=call.id, name=name, response=result)
                )
            )
        return Event(
            invocation_id=ctx.invocation_id,
            author=self.name,
            content=types.Content(role="user", parts=parts),
            actions=actions,
        )

    def _save_output(self, event: Event) -> None:
        if not self.output_key or event.partial or not event.is_final_response():
            return
        if event.content is None or not event.content.parts:
            return
        text = "".join(p.text for p in event.content.parts if p.text and not p.thought)
        if text:
            event.actions.state_delta[self.output_key] = text
