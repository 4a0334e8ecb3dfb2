"""A google-adk agent with a canned model: no network, the same events on every run.

Each user turn is answered in two model calls: a call of the ``remember`` tool (which writes
``user:``, ``app:`` and ``temp:`` state and a session key), then a text answer that
``output_key`` stores in state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models._capabilities import LlmCapabilities
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.tool_context import ToolContext
from google.genai import types


class CannedLlm(BaseLlm):
    """Calls ``remember`` with the user's last words, then answers from the tool's result."""

    model: str = "canned"

    @property
    def capabilities(self) -> LlmCapabilities:
        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        await asyncio.sleep(0)  # a real model call suspends: concurrent runs interleave here
        last = llm_request.contents[-1]
        parts = last.parts or []
        response = next((p.function_response for p in parts if p.function_response), None)
        if response is not None:
            text = f"Noted: {response.response.get('noted')} (turn {response.response.get('turn')})"
            content = types.Content(role="model", parts=[types.Part(text=text)])
        else:
            said = " ".join(p.text for p in parts if p.text)
            turns = sum(
                1
                for c in llm_request.contents
                if c.role == "user" and any(p.text for p in c.parts or [])
            )
            call = types.FunctionCall(
                id=f"call-{turns}", name="remember", args={"fact": said, "turn": turns}
            )
            content = types.Content(role="model", parts=[types.Part(function_call=call)])
        yield LlmResponse(content=content)


def remember(fact: str, turn: int, tool_context: ToolContext) -> dict[str, Any]:
    """Remembers a fact in every state scope."""
    state = tool_context.state
    state["user:last_fact"] = fact
    state["app:facts_seen"] = int(state.get("app:facts_seen", 0)) + 1
    state["temp:scratch"] = f"thinking about {fact}"
    state["turns"] = turn
    return {"noted": fact, "turn": turn}


def build_agent() -> LlmAgent:
    return LlmAgent(
        name="memo",
        model=CannedLlm(),
        instruction="Remember what the user says. Last fact: {user:last_fact?}",
        tools=[remember],
        output_key="last_answer",
    )


root_agent = build_agent()
