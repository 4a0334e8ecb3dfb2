"""google-adk's Runner and LlmAgent on openadk's services through `AdkSessionService`.

The same two-turn conversation (a tool writing user:, app: and temp: state, an output_key) runs
through the adapter on every backend and through google-adk's own DatabaseSessionService; what
is stored must be the same, and google-adk must read the adapter's database directly.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.adk.errors import StaleSessionError as AdkStaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError as AdkAlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError as AdkNotFound
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService as AdkBaseSessionService
from google.adk.sessions import DatabaseSessionService as AdkDatabaseSessionService
from google.adk.sessions.base_session_service import GetSessionConfig as AdkGetSessionConfig
from google.genai import types

from openadk.adk import AdkSessionService, UnknownFieldError
from openadk.sessions import (
    BaseSessionService,
    DatabaseSessionService,
    InMemorySessionService,
    RedisSessionService,
)
from tests.adk.agent_app import build_agent
from tests.contract.backends import MYSQL, POSTGRES, REDIS

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

URLS = {
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}
TURNS = ("I like tea", "I like cats")


def database_url(name: str, tmp_path: Path) -> str | None:
    if name in ("memory", "redis"):
        return None
    if name == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'adapter.db'}"
    return URLS[name]


def build_service(name: str, tmp_path: Path, on_stale: Any = "error") -> BaseSessionService:
    if name == "redis":
        # The registered openadk+redis scheme's service, on its own key prefix.
        prefix = f"adk-{uuid.uuid4().hex[:8]}:"
        return RedisSessionService(REDIS, key_prefix=prefix, on_stale=on_stale)
    url = database_url(name, tmp_path)
    if url is None:
        return InMemorySessionService(on_stale=on_stale)
    return DatabaseSessionService(url, on_stale=on_stale)


@pytest.fixture(params=["memory", "sqlite", "postgres", "mariadb", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest_asyncio.fixture
async def adapter(backend: str, tmp_path: Path) -> AsyncIterator[AdkSessionService]:
    async with AdkSessionService(build_service(backend, tmp_path), owns_service=True) as svc:
        yield svc


def user_text(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


async def converse(service: AdkBaseSessionService, app: str, session_id: str) -> list[str]:
    """Runs the two turns; returns the invocation ids."""
    runner = Runner(app_name=app, agent=build_agent(), session_service=service)
    await service.create_session(
        app_name=app, user_id="u", session_id=session_id, state={"topic": "pets"}
    )
    invocations = []
    for text in TURNS:
        async for event in runner.run_async(
            user_id="u", session_id=session_id, new_message=user_text(text)
        ):
            invocations.append(event.invocation_id)
    return list(dict.fromkeys(invocations))


def comparable(event: AdkEvent) -> dict[str, Any]:
    """The stored JSON of an event without what differs between two runs (ids, times)."""
    data: dict[str, Any] = json.loads(event.model_dump_json(exclude_none=True))
    for key in ("id", "timestamp", "invocation_id"):
        data.pop(key)
    return data


async def test_runner_stores_what_google_adk_stores(
    adapter: AdkSessionService, backend: str, tmp_path: Path
) -> None:
    app = f"runner-{uuid.uuid4().hex[:8]}"
    await converse(adapter, app, "s")
    ours = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert ours is not None

    reference_url = database_url(backend, tmp_path) or f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    reference = AdkDatabaseSessionService(db_url=reference_url)
    try:
        reference_app = app + "-adk"
        await converse(reference, reference_app, "s")
        theirs = await reference.get_session(app_name=reference_app, user_id="u", session_id="s")
        assert theirs is not None
        assert [comparable(e) for e in ours.events] == [comparable(e) for e in theirs.events]
        assert len(ours.events) == 8
        assert ours.state == theirs.state
        assert ours.state["user:last_fact"] == "I like cats"
        assert ours.state["app:facts_seen"] == 2
        assert ours.state["last_answer"] == "Noted: I like cats (turn 2)"
        assert not any(key.startswith("temp:") for key in ours.state)
        assert await adapter.get_user_state(app_name=app, user_id="u") == {
            "last_fact": "I like cats"
        }

        if backend not in ("memory", "redis"):
            # google-adk reads the database the adapter wrote, event for event.
            direct = await reference.get_session(app_name=app, user_id="u", session_id="s")
            assert direct is not None
            assert [json.loads(e.model_dump_json()) for e in direct.events] == [
                json.loads(e.model_dump_json()) for e in ours.events
            ]
            assert direct.state == ours.state
            # ... and can go on with the conversation through google-adk alone.
            runner = Runner(app_name=app, agent=build_agent(), session_service=reference)
            async for _ in runner.run_async(
                user_id="u", session_id="s", new_message=user_text("I like owls")
            ):
                pass
            after = await adapter.get_session(app_name=app, user_id="u", session_id="s")
            assert after is not None and len(after.events) == 12
            assert after.state["user:last_fact"] == "I like owls"
    finally:
        await reference.close()


async def test_session_service_api(adapter: AdkSessionService) -> None:
    app = f"api-{uuid.uuid4().hex[:8]}"
    assert isinstance(adapter, AdkBaseSessionService)
    created = await adapter.create_session(
        app_name=app, user_id="u", session_id="s1", state={"app:a": 1, "user:b": 2, "c": 3}
    )
    assert created.state == {"app:a": 1, "user:b": 2, "c": 3}
    with pytest.raises(AdkAlreadyExistsError, match="Session with id s1 already exists"):
        await adapter.create_session(app_name=app, user_id="u", session_id="s1")
    other = await adapter.create_session(app_name=app, user_id="v")
    listed = await adapter.list_sessions(app_name=app)
    assert [s.id for s in listed.sessions] == ["s1", other.id]
    assert listed.sessions[1].state == {"app:a": 1}
    assert [s.id for s in (await adapter.list_sessions(app_name=app, user_id="v")).sessions] == [
        other.id
    ]
    for n in range(3):
        event = AdkEvent(
            author="user",
            invocation_id=f"i{n}",
            content=user_text(f"m{n}"),
            actions=AdkEventActions(state_delta={"n": n, "temp:t": n}),
        )
        returned = await adapter.append_event(created, event)
        assert returned is event and event.actions.state_delta == {"n": n}
    assert created.state["temp:t"] == 2 and created.state["n"] == 2
    last_two = await adapter.get_session(
        app_name=app, user_id="u", session_id="s1", config=AdkGetSessionConfig(num_recent_events=2)
    )
    assert last_two is not None
    assert [e.invocation_id for e in last_two.events] == ["i1", "i2"]
    assert [e.model_dump() for e in last_two.events] == [e.model_dump() for e in created.events[1:]]
    assert "temp:t" not in last_two.state
    partial = AdkEvent(author="x", partial=True)
    assert await adapter.append_event(created, partial) is partial
    assert len(created.events) == 3

    # A stale handle gets google-adk's error; nothing changes.
    stale = await adapter.get_session(app_name=app, user_id="u", session_id="s1")
    assert stale is not None
    await adapter.append_event(created, AdkEvent(author="user"))
    with pytest.raises(AdkStaleSessionError):
        await adapter.append_event(stale, AdkEvent(author="user"))
    assert len(stale.events) == 3

    await adapter.delete_session(app_name=app, user_id="u", session_id="s1")
    assert await adapter.get_session(app_name=app, user_id="u", session_id="s1") is None
    with pytest.raises(AdkNotFound, match="Session s1 not found"):
        await adapter.append_event(created, AdkEvent(author="user"))
    await adapter.delete_session(app_name=app, user_id="u", session_id="s1")


async def test_reads_convert_only_new_events(adapter: AdkSessionService) -> None:
    app = f"cache-{uuid.uuid4().hex[:8]}"
    session = await adapter.create_session(app_name=app, user_id="u", session_id="s")
    for n in range(5):
        await adapter.append_event(session, AdkEvent(author="user", content=user_text(str(n))))
    first = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    second = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert first is not None and second is not None
    # The second read reused every google-adk event of the first: nothing was converted again.
    assert all(a is b for a, b in zip(first.events, second.events, strict=True))
    await adapter.append_event(second, AdkEvent(author="user", content=user_text("new")))
    third = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert third is not None and len(third.events) == 6
    assert all(a is b for a, b in zip(first.events, third.events[:5], strict=False))
    assert third.events[5] is not second.events[5]  # the caller's own object stays the caller's
    assert third.events[5].model_dump() == second.events[5].model_dump()


async def test_concurrent_runs_on_one_session_lose_nothing_when_merging(
    backend: str, tmp_path: Path
) -> None:
    app = f"merge-{uuid.uuid4().hex[:8]}"
    async with AdkSessionService(
        build_service(backend, tmp_path, on_stale="merge"), owns_service=True
    ) as service:
        runner = Runner(app_name=app, agent=build_agent(), session_service=service)
        await service.create_session(app_name=app, user_id="u", session_id="s")

        async def run(text: str) -> list[str]:
            return [
                event.id
                async for event in runner.run_async(
                    user_id="u", session_id="s", new_message=user_text(text)
                )
            ]

        first, second = await asyncio.gather(run("I like tea"), run("I like jam"))
        stored = await service.get_session(app_name=app, user_id="u", session_id="s")
        assert stored is not None
        assert len(stored.events) == 8
        assert {e.id for e in stored.events} >= set(first) | set(second)
        assert stored.state["app:facts_seen"] >= 1
        times = [e.timestamp for e in stored.events]
        assert times == sorted(times)

    # The same two runs without merging: the runs really interleave, so one of them is stale.
    async with AdkSessionService(build_service(backend, tmp_path), owns_service=True) as strict:
        runner = Runner(app_name=app, agent=build_agent(), session_service=strict)
        await strict.create_session(app_name=app, user_id="u", session_id="strict")

        async def run_strict(text: str) -> None:
            async for _ in runner.run_async(
                user_id="u", session_id="strict", new_message=user_text(text)
            ):
                pass

        outcomes = await asyncio.gather(
            run_strict("I like tea"), run_strict("I like jam"), return_exceptions=True
        )
        assert any(isinstance(o, AdkStaleSessionError) for o in outcomes), outcomes


async def test_rewind_through_the_adapter(adapter: AdkSessionService) -> None:
    app = f"rewind-{uuid.uuid4().hex[:8]}"
    invocations = await converse(adapter, app, "s")
    assert len(invocations) == 2
    runner = Runner(app_name=app, agent=build_agent(), session_service=adapter)
    await runner.rewind_async(
        user_id="u", session_id="s", rewind_before_invocation_id=invocations[1]
    )
    session = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert session is not None
    assert session.events[-1].actions.rewind_before_invocation_id == invocations[1]
    assert session.state["turns"] == 1
    assert session.state["last_answer"] == "Noted: I like tea (turn 1)"
    # user: and app: state are not rewound (google-adk's rule).
    assert session.state["user:last_fact"] == "I like cats"


class NewerEvent(AdkEvent):
    """An event of a google-adk newer than 2.13, with a field 2.13 does not have."""

    sentiment: str | None = None


async def test_an_event_with_an_unknown_field_is_refused(adapter: AdkSessionService) -> None:
    app = f"unknown-{uuid.uuid4().hex[:8]}"
    session = await adapter.create_session(app_name=app, user_id="u", session_id="s")
    event = NewerEvent(author="user", content=user_text("hi"), sentiment="happy")
    with pytest.raises(UnknownFieldError, match=r"'sentiment' that google-adk 2\.13 does not"):
        await adapter.append_event(session, event)
    assert session.events == []
    stored = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert stored is not None and stored.events == []
    # Unset, the field loses nothing: the event is stored.
    plain = NewerEvent(author="user", content=user_text("hi"))
    await adapter.append_event(session, plain)
    stored = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert stored is not None and [e.id for e in stored.events] == [plain.id]


async def test_rich_event_round_trips(adapter: AdkSessionService) -> None:
    from openadk.testing._contract import full_event

    app = f"rich-{uuid.uuid4().hex[:8]}"
    session = await adapter.create_session(app_name=app, user_id="u", session_id="s")
    ours = full_event()
    event = AdkEvent.model_validate_json(ours.model_dump_json(exclude_none=True))
    expected = json.loads(event.model_dump_json(exclude_none=True))
    await adapter.append_event(session, event)
    stored = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert stored is not None
    assert json.loads(stored.events[0].model_dump_json(exclude_none=True)) == expected
    assert stored.events[0] == event


async def test_window_reads_and_recreated_sessions_read_right(adapter: AdkSessionService) -> None:
    app = f"window-{uuid.uuid4().hex[:8]}"
    session = await adapter.create_session(app_name=app, user_id="u", session_id="s")
    for n in range(6):
        await adapter.append_event(session, AdkEvent(author="user", content=user_text(str(n))))
    full = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    window = await adapter.get_session(
        app_name=app, user_id="u", session_id="s", config=AdkGetSessionConfig(num_recent_events=3)
    )
    assert full is not None and window is not None
    assert [e.content.parts[0].text for e in window.events if e.content] == ["3", "4", "5"]
    # A window of events already seen reuses their google-adk events.
    assert all(a is b for a, b in zip(window.events, full.events[3:], strict=True))
    window.events.append(AdkEvent(author="x"))  # the caller's list is the caller's
    again = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert again is not None and len(again.events) == 6

    # Deleted and created again under the same id: the old events are not returned.
    await adapter.delete_session(app_name=app, user_id="u", session_id="s")
    fresh = await adapter.create_session(app_name=app, user_id="u", session_id="s")
    await adapter.append_event(fresh, AdkEvent(author="user", content=user_text("new")))
    reread = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert reread is not None
    assert [e.content.parts[0].text for e in reread.events if e.content] == ["new"]


async def test_a_small_cache_still_reads_right(backend: str, tmp_path: Path) -> None:
    app = f"small-{uuid.uuid4().hex[:8]}"
    async with AdkSessionService(
        build_service(backend, tmp_path), owns_service=True, event_cache_size=2
    ) as service:
        sessions = []
        for sid in ("a", "b"):
            session = await service.create_session(app_name=app, user_id="u", session_id=sid)
            for n in range(3):
                await service.append_event(session, AdkEvent(author=sid, invocation_id=str(n)))
            sessions.append(session)
        for _ in range(2):
            for session in sessions:
                read = await service.get_session(app_name=app, user_id="u", session_id=session.id)
                assert read is not None
                assert [e.id for e in read.events] == [e.id for e in session.events]


async def test_runner_on_the_vertex_client_against_openadk_serve() -> None:
    from tests.contract.backends import _memory, _vertex_over

    client = await _vertex_over(_memory)()
    app = str(uuid.uuid4().int % 10**12)  # the Sessions API's app name is an engine id
    async with AdkSessionService(client, owns_service=True) as service:
        await converse(service, app, "s1")
        ours = await service.get_session(app_name=app, user_id="u", session_id="s1")
    async with AdkSessionService(InMemorySessionService(), owns_service=True) as memory:
        await converse(memory, app, "s1")
        reference = await memory.get_session(app_name=app, user_id="u", session_id="s1")
    assert ours is not None and reference is not None
    assert [comparable(e) for e in ours.events] == [comparable(e) for e in reference.events]
    assert ours.state == reference.state


async def test_another_google_adk_shape_goes_through_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a google-adk whose models differ from 2.13's, conversion falls back to JSON."""
    from openadk.adk import _convert

    monkeypatch.setattr(_convert, "_SAME_SHAPE", False)
    app = f"shape-{uuid.uuid4().hex[:8]}"
    async with AdkSessionService(build_service("sqlite", tmp_path), owns_service=True) as service:
        await converse(service, app, "s")
        ours = await service.get_session(app_name=app, user_id="u", session_id="s")
    monkeypatch.setattr(_convert, "_SAME_SHAPE", True)
    async with AdkSessionService(InMemorySessionService(), owns_service=True) as memory:
        await converse(memory, app, "s")
        reference = await memory.get_session(app_name=app, user_id="u", session_id="s")
    assert ours is not None and reference is not None
    assert [comparable(e) for e in ours.events] == [comparable(e) for e in reference.events]
    assert ours.state == reference.state
    monkeypatch.setattr(_convert, "_SAME_SHAPE", False)
    with pytest.raises(UnknownFieldError):
        _convert.to_openadk_event(NewerEvent(author="user", sentiment="sad"))


async def test_run_config_get_session_config_reaches_the_service(
    adapter: AdkSessionService,
) -> None:
    from google.adk.agents.run_config import RunConfig

    app = f"config-{uuid.uuid4().hex[:8]}"
    await converse(adapter, app, "s")
    runner = Runner(app_name=app, agent=build_agent(), session_service=adapter)
    config = RunConfig(get_session_config=AdkGetSessionConfig(num_recent_events=2))
    events = [
        event
        async for event in runner.run_async(
            user_id="u", session_id="s", new_message=user_text("I like owls"), run_config=config
        )
    ]
    assert events[-1].content is not None
    assert events[-1].content.parts[0].text == "Noted: I like owls (turn 1)"  # saw 2 events only
    stored = await adapter.get_session(app_name=app, user_id="u", session_id="s")
    assert stored is not None and len(stored.events) == 12
