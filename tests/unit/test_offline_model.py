"""The offline demo model: what it understands, and how it keeps facts in state through tools."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from openadk import Agent, Runner
from openadk.agents import ToolContext
from openadk.sessions import InMemorySessionService


def remember(key: str, value: str, tool_context: ToolContext) -> dict[str, Any]:
    tool_context.state[key] = value
    return {"key": key, "saved": True}


def recall(key: str, tool_context: ToolContext) -> dict[str, Any]:
    return {"key": key, "value": tool_context.state.get(key)}


class Chat:
    def __init__(self, tools: list[Any] | None = None) -> None:
        self.service = InMemorySessionService()
        agent = Agent(name="helper", model="offline", tools=tools or [])
        self.runner = Runner(app_name="app", agent=agent, session_service=self.service)

    async def say(self, text: str, session_id: str = "s") -> str:
        await self.service.create_session(app_name="app", user_id="u", session_id=session_id)
        replies = [
            e
            async for e in self.runner.run_async(
                user_id="u",
                session_id=session_id,
                new_message=types.UserContent(parts=[types.Part(text=text)]),
            )
        ]
        final = replies[-1]
        assert final.content is not None and final.content.parts
        return final.content.parts[0].text or ""

    async def state(self, session_id: str = "s") -> dict[str, Any]:
        session = await self.service.get_session(app_name="app", user_id="u", session_id=session_id)
        assert session is not None
        return dict(session.state)


@pytest.mark.parametrize(
    ("said", "asked", "answer"),
    [
        (
            "My name is Ann and I live in Oslo",
            "What is my name and where do I live?",
            "Your name is Ann. You live in Oslo.",
        ),
        ("I am from Oslo", "Where am I from?", "You live in Oslo."),
        ("I'm from Bergen, Norway.", "where do i live?", "You live in Bergen."),
        (
            "My favourite colour is blue",
            "What is my favorite color?",
            "Your favorite color is blue.",
        ),
        ("My favorite color is red", "what's my favourite colour?", "Your favorite color is red."),
        ("Call me Sam", "Who am I?", "Your name is Sam."),
    ],
)
@pytest.mark.asyncio
async def test_statements_and_questions(said: str, asked: str, answer: str) -> None:
    chat = Chat()
    await chat.say(said)
    assert await chat.say(asked) == answer


@pytest.mark.asyncio
async def test_questions_and_statements_that_used_to_trip_it() -> None:
    chat = Chat()
    # A statement of the name followed by a question that is not about the user's name.
    assert await chat.say("My name is Bob, what's yours?") == (
        "Nice to meet you, Bob! I will remember that."
    )
    # Asking about a city does not state it.
    assert await chat.say("Do I live in Paris?") == "You have not told me where you live yet."
    assert await chat.say("What is my name and where do I live?") == (
        "Your name is Bob. You have not told me where you live yet."
    )


@pytest.mark.asyncio
async def test_with_remember_and_recall_tools_facts_live_in_user_state() -> None:
    chat = Chat(tools=[remember, recall])
    reply = await chat.say("My name is Ann and I live in Oslo. My favourite colour is green.")
    assert reply == (
        "Nice to meet you, Ann! I will remember that. Noted: you live in Oslo, "
        "your favorite color is green."
    )
    assert await chat.state() == {
        "user:name": "Ann",
        "user:city": "Oslo",
        "user:favorite_color": "green",
    }
    # A new session has no conversation, but the user: keys: the model recalls them.
    assert await chat.say("What is my name? What is my favourite colour?", "other") == (
        "Your name is Ann. Your favorite color is green."
    )
    session = await chat.service.get_session(app_name="app", user_id="u", session_id="other")
    assert session is not None
    calls = [c.args for e in session.events for c in e.get_function_calls()]
    assert calls == [{"key": "user:name"}, {"key": "user:favorite_color"}]
    # A fact already known from the conversation is not remembered again.
    assert (
        await chat.say("My name is Ann")
        == 'You said: "My name is Ann". (offline demo model: 2 message(s) from you so far)'
    )
