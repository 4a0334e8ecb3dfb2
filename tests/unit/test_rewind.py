"""Runner.rewind_async with google-adk 2.13's semantics, and events google-adk's rewind wrote."""

from __future__ import annotations

import pytest
from google.genai import types

from openadk import Agent
from openadk.errors import InvocationNotFoundError
from openadk.events import Event, EventActions
from openadk.events._rewind import live_events
from openadk.runners import Runner
from openadk.sessions import InMemorySessionService

pytestmark = pytest.mark.asyncio


async def _session(service: InMemorySessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="s")
    for invocation, delta in [
        ("inv-1", {"a": 1}),
        ("inv-2", {"a": 2, "b": 1, "app:x": 1, "user:y": 1}),
        ("inv-3", {"c": 1}),
    ]:
        await service.append_event(
            session,
            Event(
                author="user",
                invocation_id=invocation,
                content=types.Content(role="user", parts=[types.Part(text=invocation)]),
                actions=EventActions(state_delta=delta),
            ),
        )


async def test_rewind_appends_one_event_restoring_session_keys() -> None:
    service = InMemorySessionService()
    await _session(service)
    runner = Runner(app_name="app", agent=Agent(name="a", model="offline"), session_service=service)
    await runner.rewind_async(user_id="u", session_id="s", rewind_before_invocation_id="inv-2")
    session = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert session is not None and len(session.events) == 4
    rewind = session.events[-1]
    assert rewind.author == "user"
    assert rewind.actions.rewind_before_invocation_id == "inv-2"
    assert rewind.actions.state_delta == {"a": 1, "b": None, "c": None}
    assert session.state["a"] == 1 and session.state["app:x"] == 1 and session.state["user:y"] == 1
    assert [e.invocation_id for e in live_events(session.events)] == ["inv-1"]
    # Rewinding again, further back, removes the rest.
    await runner.rewind_async(user_id="u", session_id="s", rewind_before_invocation_id="inv-1")
    again = await service.get_session(app_name="app", user_id="u", session_id="s")
    assert again is not None and live_events(again.events) == []
    # Keys set to None by the first rewind are still keys (as in google-adk).
    assert again.events[-1].actions.state_delta == {"a": None, "b": None, "c": None}
    with pytest.raises(InvocationNotFoundError, match="Invocation ID not found: inv-9"):
        await runner.rewind_async(user_id="u", session_id="s", rewind_before_invocation_id="inv-9")
    assert isinstance(InvocationNotFoundError("x"), ValueError)


async def test_events_of_google_adks_rewind_read_the_same() -> None:
    from google.adk.events import Event as AdkEvent
    from google.adk.events import EventActions as AdkActions
    from google.adk.events._rewind_events import _apply_rewinds

    adk_events = [
        AdkEvent(author="user", invocation_id=f"inv-{n}", actions=AdkActions()) for n in (1, 2, 3)
    ]
    adk_events.append(
        AdkEvent(
            author="user",
            invocation_id="e-r",
            actions=AdkActions(rewind_before_invocation_id="inv-2"),
        )
    )
    adk_events.append(AdkEvent(author="user", invocation_id="inv-4", actions=AdkActions()))
    ours = [Event.model_validate_json(e.model_dump_json()) for e in adk_events]
    expected = [e.invocation_id for e in _apply_rewinds(adk_events)]
    assert [e.invocation_id for e in live_events(ours)] == expected == ["inv-1", "inv-4"]
