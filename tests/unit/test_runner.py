from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.genai import types

from openadk import Agent, Runner
from openadk.agents import FunctionTool, ToolContext, fill_instruction
from openadk.errors import SessionNotFoundError
from openadk.events import Event
from openadk.models import BaseLlm, LlmRequest, LlmResponse, ModelError, resolve_model
from openadk.models._offline import OfflineModel
from openadk.sessions import InMemorySessionService


def user_text(text: str) -> types.Content:
    return types.UserContent(parts=[types.Part(text=text)])


class RecordingModel(BaseLlm):
    """Records requests; streams a partial chunk, then the final reply (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__("recording")
        self.requests: list[LlmRequest] = []
        self.fail = fail

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        self.requests.append(request)
        if self.fail:
            raise ModelError("endpoint down: connection refused")
        yield LlmResponse(content=types.ModelContent("par"), partial=True)
        yield LlmResponse(content=types.ModelContent(f"reply {len(self.requests)}"))


def make(model: BaseLlm | str, **agent_kwargs: object) -> tuple[Runner, InMemorySessionService]:
    service = InMemorySessionService()
    agent = Agent(name="helper", model=model, **agent_kwargs)  # type: ignore[arg-type]
    return Runner(app_name="app", agent=agent, session_service=service), service


async def run(runner: Runner, text: str, session_id: str = "s") -> list[Event]:
    return [
        e
        async for e in runner.run_async(
            user_id="u", session_id=session_id, new_message=user_text(text)
        )
    ]


@pytest.mark.asyncio
async def test_second_turn_remembers_the_first_with_the_offline_model() -> None:
    runner, service = make("offline")
    await service.create_session(app_name="app", user_id="u", session_id="s")
    first = await run(runner, "My name is Alice")
    second = await run(runner, "What's my name?")
    assert first[-1].content is not None and second[-1].content is not None
    assert first[-1].content.parts and second[-1].content.parts
    assert "Alice" in (first[-1].content.parts[0].text or "")
    assert second[-1].content.parts[0].text == "Your name is Alice."
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    assert [e.author for e in session.events] == ["user", "helper", "user", "helper"]
    assert len({e.invocation_id for e in session.events}) == 2


@pytest.mark.asyncio
async def test_model_sees_history_instruction_and_partials_are_not_stored() -> None:
    model = RecordingModel()
    runner, service = make(model, instruction="Help {user:name}. Mood: {mood?}.", output_key="last")
    await service.create_session(
        app_name="app", user_id="u", session_id="s", state={"user:name": "Ada"}
    )
    events = await run(runner, "one")
    assert [e.partial for e in events] == [True, None]
    await run(runner, "two")
    request = model.requests[-1]
    assert request.system_instruction == "Help Ada. Mood: ."
    assert [(c.role, c.parts[0].text) for c in request.contents if c.parts] == [
        ("user", "one"),
        ("model", "reply 1"),
        ("user", "two"),
    ]
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    assert len(session.events) == 4
    assert session.state["last"] == "reply 2"
    assert session.events[-1].actions.state_delta == {"last": "reply 2"}


@pytest.mark.asyncio
async def test_model_failure_is_recorded_as_an_error_event() -> None:
    runner, service = make(RecordingModel(fail=True))
    await service.create_session(app_name="app", user_id="u", session_id="s")
    events = await run(runner, "hello")
    assert events[-1].error_code == "MODEL_ERROR"
    assert "connection refused" in (events[-1].error_message or "")
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    assert [e.author for e in session.events] == ["user", "helper"]


@pytest.mark.asyncio
async def test_missing_session_and_auto_create() -> None:
    runner, service = make("offline")
    with pytest.raises(SessionNotFoundError, match="Session not found: nope"):
        await run(runner, "hi", session_id="nope")
    auto = Runner(
        app_name="app", agent=runner.agent, session_service=service, auto_create_session=True
    )
    events = await run(auto, "hi", session_id="fresh")
    assert events
    assert await service.get_session(app_name="app", user_id="u", session_id="fresh")


@pytest.mark.asyncio
async def test_bad_messages_are_refused_before_anything_is_stored() -> None:
    runner, service = make("offline")
    await service.create_session(app_name="app", user_id="u", session_id="s")
    bad_messages: list[tuple[object, type[Exception], str]] = [
        (types.Content(role="user", parts=[]), ValueError, r"No parts in the new_message\."),
        (
            types.UserContent(parts=[types.Part(function_call=types.FunctionCall(name="f"))]),
            ValueError,
            r"User message cannot contain function calls\.",
        ),
        ("plain string", TypeError, "must be a google.genai.types.Content"),
    ]
    for message, error, match in bad_messages:
        with pytest.raises(error, match=match):
            async for _ in runner.run_async(user_id="u", session_id="s", new_message=message):  # type: ignore[arg-type]
                pass
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None and session.events == []


def test_sync_run_wrapper() -> None:
    runner, service = make("offline")
    import asyncio

    asyncio.run(service.create_session(app_name="app", user_id="u", session_id="s"))
    events = list(runner.run(user_id="u", session_id="s", new_message=user_text("I live in Paris")))
    assert events[-1].content is not None and events[-1].content.parts
    assert "Paris" in (events[-1].content.parts[0].text or "")
    with pytest.raises(SessionNotFoundError):
        list(runner.run(user_id="u", session_id="missing", new_message=user_text("x")))


def test_runner_and_agent_arguments_are_checked() -> None:
    service = InMemorySessionService()
    agent = Agent(name="a", model="offline")
    with pytest.raises(ValueError, match="app_name is required"):
        Runner(agent=agent, session_service=service)
    with pytest.raises(TypeError, match="BaseSessionService"):
        Runner(app_name="x", agent=agent, session_service=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        Agent(name="not valid")
    with pytest.raises(ValueError, match="reserved"):
        Agent(name="user")


def test_model_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENADK_MODEL", raising=False)
    assert isinstance(resolve_model("offline"), OfflineModel)
    with pytest.raises(ValueError, match=r"Unknown model 'nonsense-model'.*OPENADK_MODEL=offline"):
        resolve_model("nonsense-model")
    monkeypatch.setenv("OPENADK_MODEL", "offline")
    assert isinstance(resolve_model("nonsense-model"), OfflineModel)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {name}, opt={missing?}, user={user:lang}", "Hi Ada, opt=, user=en"),
        ("{ name } and {{name}}", "Ada and Ada"),
        ("${name} and \\{name}", "${name} and \\{name}"),
        ("{a-b} {x:y} {}", "{a-b} {x:y} {}"),
        ("none={nothing}", "none="),
        ("{app:v}{temp:t?}", "3"),
    ],
)
def test_instruction_templating(template: str, expected: str) -> None:
    state = {"name": "Ada", "user:lang": "en", "nothing": None, "app:v": 3}
    assert fill_instruction(template, state, "agent") == expected


def test_instruction_missing_key() -> None:
    with pytest.raises(KeyError, match=r"Context variable not found: `name` in agent 'bot'\."):
        fill_instruction("Hi {name}", {}, "bot")


class ToolCallingModel(BaseLlm):
    """Asks for the given function calls on its first call, then answers with text."""

    def __init__(self, calls: list[types.FunctionCall]) -> None:
        super().__init__("tool-caller")
        self.calls = calls
        self.requests: list[LlmRequest] = []

    async def generate_content_async(self, request: LlmRequest) -> AsyncIterator[LlmResponse]:
        self.requests.append(request)
        if len(self.requests) == 1:
            parts = [types.Part(function_call=call) for call in self.calls]
            yield LlmResponse(content=types.Content(role="model", parts=parts))
        else:
            yield LlmResponse(content=types.ModelContent("done"))


def get_weather(
    city: str, days: int = 1, tool_context: ToolContext | None = None
) -> dict[str, object]:
    """Looks up the weather.

    Args:
        city: The city to look up.
        days: How many days ahead.
    """
    assert tool_context is not None
    tool_context.state["last_city"] = city
    tool_context.state["temp:scratch"] = 1
    return {"city": city, "days": days, "sky": "sunny"}


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


def test_function_tool_schema_from_hints_and_docstring() -> None:
    tool = FunctionTool(get_weather)
    declaration = tool.declaration
    assert declaration.name == "get_weather"
    assert declaration.description == "Looks up the weather."
    schema = declaration.parameters_json_schema
    assert isinstance(schema, dict)
    assert schema["required"] == ["city"]
    assert schema["properties"]["city"] == {"type": "string", "description": "The city to look up."}
    assert schema["properties"]["days"]["type"] == "integer"
    assert "tool_context" not in schema["properties"]

    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="type hint"):
        FunctionTool(untyped)


@pytest.mark.asyncio
async def test_tools_are_called_and_their_events_stored() -> None:
    model = ToolCallingModel(
        [
            types.FunctionCall(id="c1", name="get_weather", args={"city": "Paris", "days": 2}),
            types.FunctionCall(id="c2", name="explode", args={"reason": "test"}),
            types.FunctionCall(id="c3", name="missing_tool", args={}),
            types.FunctionCall(id="c4", name="get_weather", args={"days": "not a number"}),
        ]
    )
    service = InMemorySessionService()
    agent = Agent(name="helper", model=model, tools=[get_weather, explode])
    runner = Runner(app_name="app", agent=agent, session_service=service)
    await service.create_session(app_name="app", user_id="u", session_id="s")
    events = await run(runner, "weather?")
    assert [bool(e.get_function_calls()) for e in events] == [True, False, False]
    responses = {r.id: r.response for r in events[1].get_function_responses()}
    assert responses["c1"] == {"city": "Paris", "days": 2, "sky": "sunny"}
    assert responses["c2"] == {"error": "RuntimeError: boom: test"}
    assert responses["c3"] == {"error": "Unknown tool 'missing_tool'."}
    assert "Invalid arguments" in str(responses["c4"]["error"])
    # The second model call saw the call and its responses, in order.
    roles = [
        (c.role, bool(c.parts and c.parts[0].function_response)) for c in model.requests[1].contents
    ]
    assert roles == [("user", False), ("model", False), ("user", True)]
    assert [d.name for d in model.requests[0].tools] == ["get_weather", "explode"]
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None
    assert len(session.events) == 4
    assert session.state == {"last_city": "Paris"}
    assert session.events[2].actions.state_delta == {"last_city": "Paris"}


@pytest.mark.asyncio
async def test_an_instruction_needing_a_missing_key_is_refused_before_the_message_is_stored() -> (
    None
):
    model = RecordingModel()
    runner, service = make(model, instruction="You help {user:name}.")
    await service.create_session(app_name="app", user_id="u", session_id="s")
    # google-adk's KeyError message, raised before anything is stored.
    with pytest.raises(
        KeyError, match=r"Context variable not found: `user:name` in agent 'helper'\."
    ):
        await run(runner, "hello")
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None and session.events == []
    assert model.requests == []
    # The run's own state_delta counts: it is stored with the message.
    events = [
        e
        async for e in runner.run_async(
            user_id="u",
            session_id="s",
            new_message=user_text("hello"),
            state_delta={"user:name": "Ada"},
        )
    ]
    assert events[-1].content is not None
    assert model.requests[-1].system_instruction == "You help Ada."


@pytest.mark.asyncio
async def test_a_model_error_is_logged_as_well_as_stored(caplog: pytest.LogCaptureFixture) -> None:
    runner, service = make(RecordingModel(fail=True))
    await service.create_session(app_name="app", user_id="u", session_id="s")
    with caplog.at_level("WARNING", logger="openadk.runners"):
        await run(runner, "hello")
    [record] = [r for r in caplog.records if r.name.startswith("openadk.runners")]
    assert record.levelname == "WARNING"
    assert "'helper'" in record.getMessage()
    assert "MODEL_ERROR" in record.getMessage()
    assert "endpoint down: connection refused" in record.getMessage()
