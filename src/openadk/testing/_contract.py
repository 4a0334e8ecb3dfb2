"""The contract every `BaseSessionService` must meet (google-adk 2.13 semantics plus openadk's)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest
import pytest_asyncio
from google.genai import types

from openadk.errors import AlreadyExistsError, SessionNotFoundError, StaleSessionError
from openadk.events import Event, EventActions, EventCompaction, ToolConfirmation
from openadk.sessions import BaseSessionService, GetSessionConfig, Session
from openadk.testing._contract_meta import MetadataContract, SearchForkContract

__all__ = ["ServiceFactory", "SessionServiceContract"]


class ServiceFactory(Protocol):
    """Makes a fresh service on the backend under test; keyword arguments go to its constructor.

    The suite passes ``on_stale="merge"`` and ``clock=`` (a function returning Unix seconds that
    the service must measure session expiry with, so the expiry test can move time).
    """

    def __call__(self, **kwargs: Any) -> Awaitable[BaseSessionService]: ...


class ManualClock:
    """A clock that stands still until `advance` moves it; starts at the real time.

    The expiry test gives one to the service (``make_service(clock=...)``) so that it can move
    time forward instead of sleeping.
    """

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Moves the clock ``seconds`` forward."""
        self.now += seconds


def _ids() -> tuple[str, str]:
    return f"app-{uuid.uuid4().hex[:12]}", f"user-{uuid.uuid4().hex[:12]}"


def _text_event(text: str, author: str = "user", **kwargs: Any) -> Event:
    role = "user" if author == "user" else "model"
    kwargs.setdefault("invocation_id", f"e-{uuid.uuid4()}")
    return Event(
        author=author,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **kwargs,
    )


def _delta_event(delta: dict[str, Any], **kwargs: Any) -> Event:
    return _text_event(
        "state change", author="agent", actions=EventActions(state_delta=delta), **kwargs
    )


def full_event() -> Event:
    """An event with every kind of field a backend must store and give back unchanged."""
    return Event(
        invocation_id="e-full",
        author="agent",
        model_version="gemini-test-001",
        branch="root.child",
        content=types.Content(
            role="model",
            parts=[
                types.Part(text="hello"),
                types.Part(
                    inline_data=types.Blob(
                        mime_type="application/octet-stream", data=b"\xfb\xff\xfe\x00"
                    )
                ),
                types.Part(
                    function_call=types.FunctionCall(id="fc-1", name="lookup", args={"q": "x"})
                ),
                types.Part(
                    function_response=types.FunctionResponse(
                        id="fc-1", name="lookup", response={"result": [1, 2.5, None]}
                    )
                ),
            ],
        ),
        grounding_metadata=types.GroundingMetadata(web_search_queries=["weather paris"]),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=12, candidates_token_count=5, total_token_count=17
        ),
        citation_metadata=types.CitationMetadata(
            citations=[types.Citation(start_index=0, end_index=5, uri="https://example.invalid/")]
        ),
        input_transcription=types.Transcription(text="hello", finished=True),
        output_transcription=types.Transcription(text="hi there", finished=False),
        finish_reason=types.FinishReason.STOP,
        long_running_tool_ids={"fc-3", "fc-1", "fc-2"},
        error_code="SAFETY",
        error_message="blocked, partly",
        interrupted=False,
        turn_complete=True,
        avg_logprobs=-0.25,
        custom_metadata={"someKey": {"nested_key": [1, "two", None]}, "flag": True},
        actions=EventActions(
            skip_summarization=True,
            state_delta={"plain": "v", "app:shared": 1, "user:pref": {"theme": "dark"}},
            artifact_delta={"report.pdf": 3},
            transfer_to_agent="helper",
            escalate=True,
            requested_auth_configs={
                "fc-9": {
                    "auth_scheme": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                    "credential_key": "k",
                }
            },
            requested_tool_confirmations={
                "fc-2": ToolConfirmation(hint="really?", confirmed=True, payload={"n": 1})
            },
            compaction=EventCompaction(
                start_timestamp=1.0,
                end_timestamp=2.0,
                compacted_content=types.Content(role="model", parts=[types.Part(text="summary")]),
            ),
            end_of_agent=True,
            agent_state={"step": 2},
            route=["a", 1, True],
        ),
    )


def _set(path: str, value: Any) -> Callable[[Event], None]:
    """A mutation assigning ``value`` to the dotted attribute ``path`` of an event."""

    def mutate(event: Event) -> None:
        *parents, last = path.split(".")
        target: Any = event
        for name in parents:
            target = target.parts[0] if name == "parts[0]" else getattr(target, name)
        setattr(target, last, value)

    return mutate


def _nan_args(event: Event) -> None:
    assert event.content is not None and event.content.parts
    event.content.parts[0].function_call = types.FunctionCall(name="f", args={"x": float("nan")})


# Events that pydantic accepts (assignments are not validated) but that could not be read back
# from storage: each must be refused with the error and a message naming the field.
UNREADABLE_EVENTS: list[tuple[str, Callable[[Event], None], type[Exception], str]] = [
    ("author-int", _set("author", 123), TypeError, "author"),
    ("content-str", _set("content", "hello"), TypeError, "content"),
    ("branch-int", _set("branch", 5), TypeError, "branch"),
    ("custom-metadata-str", _set("custom_metadata", "x"), TypeError, "custom_metadata"),
    ("transfer-int", _set("actions.transfer_to_agent", 3), TypeError, "transfer_to_agent"),
    ("artifact-str", _set("actions.artifact_delta", {"f.txt": "v1"}), TypeError, "artifact"),
    ("text-int", _set("content.parts[0].text", 5), TypeError, "text"),
    ("partial-int", _set("turn_complete", 1), TypeError, "turn_complete"),
    ("actions-none", _set("actions", None), TypeError, "actions"),
    ("state-delta-none", _set("actions.state_delta", None), TypeError, "state_delta"),
    ("author-none", _set("author", None), TypeError, "author"),
    ("logprobs-nan", _set("avg_logprobs", float("nan")), ValueError, "avg_logprobs"),
    ("logprobs-inf", _set("avg_logprobs", float("-inf")), ValueError, "avg_logprobs"),
    ("metadata-nan", _set("custom_metadata", {"x": [float("nan")]}), ValueError, "custom_meta"),
    ("args-nan", _nan_args, ValueError, "args"),
    ("metadata-huge-int", _set("custom_metadata", {"n": 10**5000}), ValueError, "digits"),
    ("state-huge-int", _set("actions.state_delta", {"n": -(10**5000)}), ValueError, "digits"),
    ("state-nan", _set("actions.state_delta", {"user:n": float("nan")}), ValueError, "NaN"),
]


@pytest.mark.asyncio
class SessionServiceContract(MetadataContract, SearchForkContract):
    """Behaviour every session service must show. Subclass it and provide ``make_service``.

    The tests of openadk's additions (titles, labels, filters, search, fork) run on backends
    that declare the capability (`BaseSessionService.capabilities`) and are skipped on others.
    """

    @pytest_asyncio.fixture
    async def service(self, make_service: ServiceFactory) -> AsyncIterator[BaseSessionService]:
        svc = await make_service()
        try:
            yield svc
        finally:
            await svc.close()

    # create / get / delete -----------------------------------------------------------------

    async def test_create_generates_uuid4_id_and_get_returns_it(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        before = time.time()
        created = await service.create_session(app_name=app, user_id=user, state={"k": "v"})
        assert created.app_name == app
        assert created.user_id == user
        assert str(uuid.UUID(created.id, version=4)) == created.id
        assert created.state == {"k": "v"}
        assert created.events == []
        assert before - 1 <= created.last_update_time <= time.time() + 1e-3
        got = await service.get_session(app_name=app, user_id=user, session_id=created.id)
        assert got is not None
        assert got == created

    async def test_create_uses_given_id_verbatim(self, service: BaseSessionService) -> None:
        app, user = _ids()
        for session_id in ("session456", "with space", "ünïcødé-'quote\"-🙂", "x" * 128):
            created = await service.create_session(
                app_name=app, user_id=user, session_id=session_id
            )
            assert created.id == session_id
            got = await service.get_session(app_name=app, user_id=user, session_id=session_id)
            assert got is not None and got.id == session_id

    async def test_create_existing_id_resumes_and_merges_state(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        first = await service.create_session(
            app_name=app, user_id=user, session_id="s1", state={"a": 1, "b": 1}
        )
        await service.append_event(first, _text_event("hello"))
        resumed = await service.create_session(
            app_name=app, user_id=user, session_id="s1", state={"b": 2, "user:lang": "en"}
        )
        assert resumed.id == "s1"
        assert resumed.state == {"a": 1, "b": 2, "user:lang": "en"}
        assert [
            e.content.parts[0].text for e in resumed.events if e.content and e.content.parts
        ] == ["hello"]
        got = await service.get_session(app_name=app, user_id=user, session_id="s1")
        assert got is not None and got.state == resumed.state
        listed = await service.list_sessions(app_name=app, user_id=user)
        assert [s.id for s in listed.sessions] == ["s1"]

    async def test_create_existing_id_without_state_changes_nothing(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        first = await service.create_session(app_name=app, user_id=user, session_id="s1")
        again = await service.create_session(app_name=app, user_id=user, session_id="s1")
        assert again.state == first.state
        # The first handle is still current: resuming without state is not a write.
        await service.append_event(first, _text_event("still fresh"))

    async def test_create_existing_id_with_exist_ok_false_raises(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        await service.create_session(app_name=app, user_id=user, session_id="dup", state={"k": 1})
        with pytest.raises(AlreadyExistsError, match=r"Session with id dup already exists\."):
            await service.create_session(
                app_name=app, user_id=user, session_id="dup", state={"k": 2}, exist_ok=False
            )
        got = await service.get_session(app_name=app, user_id=user, session_id="dup")
        assert got is not None and got.state == {"k": 1}

    async def test_concurrent_creates_of_one_id_yield_one_session(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        results = await asyncio.gather(
            *(
                service.create_session(app_name=app, user_id=user, session_id="same")
                for _ in range(8)
            )
        )
        assert {s.id for s in results} == {"same"}
        listed = await service.list_sessions(app_name=app, user_id=user)
        assert [s.id for s in listed.sessions] == ["same"]

    async def test_concurrent_creates_with_exist_ok_false_one_wins(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        results = await asyncio.gather(
            *(
                service.create_session(
                    app_name=app, user_id=user, session_id="race", exist_ok=False
                )
                for _ in range(6)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Session) for r in results) == 1
        assert sum(isinstance(r, AlreadyExistsError) for r in results) == 5

    async def test_unknown_session_get_is_none_and_delete_is_silent(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        assert await service.get_session(app_name=app, user_id=user, session_id="nope") is None
        await service.delete_session(app_name=app, user_id=user, session_id="nope")
        created = await service.create_session(app_name=app, user_id=user)
        assert (
            await service.get_session(app_name=app, user_id="other", session_id=created.id) is None
        )
        assert (
            await service.get_session(app_name="other-app", user_id=user, session_id=created.id)
            is None
        )

    async def test_delete_removes_session_and_keeps_shared_state(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        await service.append_event(session, _delta_event({"app:a": 1, "user:u": 2, "s": 3}))
        await service.delete_session(app_name=app, user_id=user, session_id=session.id)
        assert await service.get_session(app_name=app, user_id=user, session_id=session.id) is None
        assert (await service.list_sessions(app_name=app)).sessions == []
        assert await service.get_user_state(app_name=app, user_id=user) == {"u": 2}
        fresh = await service.create_session(app_name=app, user_id=user)
        assert fresh.state == {"app:a": 1, "user:u": 2}
        with pytest.raises(SessionNotFoundError, match=rf"Session {session.id} not found\."):
            await service.append_event(session, _text_event("after delete"))

    async def test_delete_user_erases_sessions_events_and_user_state(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        other = f"{user}-other"
        for _ in range(3):
            session = await service.create_session(
                app_name=app, user_id=user, state={"user:email": "a@example.invalid"}
            )
            await service.append_event(session, _delta_event({"app:count": 1, "k": 1}))
        kept = await service.create_session(app_name=app, user_id=other, state={"user:x": 1})
        assert await service.delete_user(app_name=app, user_id=user) == 3
        assert (await service.list_sessions(app_name=app, user_id=user)).sessions == []
        left = await service.get_user_state(app_name=app, user_id=user)
        assert left == {}, f"delete_user left the user's state: {left}"
        assert await service.get_session(app_name=app, user_id=other, session_id=kept.id)
        fresh = await service.create_session(app_name=app, user_id=user)
        assert fresh.state == {"app:count": 1}
        assert await service.delete_user(app_name=app, user_id="nobody") == 0

    async def test_trim_events_keeps_the_last_and_never_splits_an_invocation(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        for invocation, count in (("i1", 2), ("i2", 3), ("i3", 2)):
            for n in range(count):
                event = _delta_event({f"{invocation}-{n}": n}, invocation_id=invocation)
                await service.append_event(session, event)
        ids = [e.id for e in session.events]
        deleted = await service.trim_events(
            app_name=app, user_id=user, session_id=session.id, keep_last_events=4
        )
        # The last 4 start inside i2, so all of i2 stays: only i1's 2 events go.
        assert deleted == 2
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert [e.id for e in got.events] == ids[2:]
        assert len(got.state) == 7
        await service.append_event(session, _text_event("after trim"))
        assert (
            await service.trim_events(
                app_name=app, user_id=user, session_id=session.id, keep_last_events=0
            )
            == 6
        )
        with pytest.raises(ValueError, match="keep_last_events"):
            await service.trim_events(
                app_name=app, user_id=user, session_id=session.id, keep_last_events=-1
            )
        with pytest.raises(SessionNotFoundError):
            await service.trim_events(
                app_name=app, user_id=user, session_id="missing", keep_last_events=1
            )

    async def test_expired_sessions_are_gone(self, make_service: ServiceFactory) -> None:
        # The service measures expiry with this clock: the test moves time, it never sleeps.
        clock = ManualClock()
        service = await make_service(clock=clock)
        try:
            app, user = _ids()
            short = await service.create_session(
                app_name=app, user_id=user, session_id="short", ttl=60, state={"k": 1}
            )
            long = await service.create_session(app_name=app, user_id=user, ttl=3600)
            forever = await service.create_session(app_name=app, user_id=user)
            await service.append_event(short, _text_event("before expiry"))
            clock.advance(59)
            got = await service.get_session(app_name=app, user_id=user, session_id="short")
            assert got is not None and [e.id for e in got.events] == [e.id for e in short.events]
            assert got.state == {"k": 1}
            clock.advance(2)
            assert await service.get_session(app_name=app, user_id=user, session_id="short") is None
            listed = {s.id for s in (await service.list_sessions(app_name=app)).sessions}
            assert listed == {long.id, forever.id}
            with pytest.raises(SessionNotFoundError):
                await service.append_event(short, _text_event("after expiry"))
            again = await service.create_session(app_name=app, user_id=user, session_id="short")
            assert again.events == [] and again.state == {}
            with pytest.raises(ValueError, match="both 'ttl' and 'expire_time'"):
                await service.create_session(app_name=app, user_id=user, ttl=5, expire_time=1e12)
            with pytest.raises(ValueError, match="positive"):
                await service.create_session(app_name=app, user_id=user, ttl=0)
            # Still ahead of the real time, but past for the service's clock.
            with pytest.raises(ValueError, match="future"):
                await service.create_session(app_name=app, user_id=user, expire_time=clock() - 5)
        finally:
            await service.close()

    async def test_append_to_missing_session_raises(self, service: BaseSessionService) -> None:
        app, user = _ids()
        ghost = Session(id="ghost", app_name=app, user_id=user)
        event = _delta_event({"temp:t": 1, "k": 1})
        with pytest.raises(SessionNotFoundError, match=r"Session ghost not found\."):
            await service.append_event(ghost, event)
        assert ghost.state == {} and ghost.events == []
        assert event.actions.state_delta == {"temp:t": 1, "k": 1}

    # appends and state ------------------------------------------------------------------------

    async def test_partial_events_are_neither_stored_nor_applied(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        event = _delta_event({"k": 1, "temp:t": 2}, partial=True)
        returned = await service.append_event(session, event)
        assert returned is event
        assert event.actions.state_delta == {"k": 1, "temp:t": 2}
        assert session.events == [] and session.state == {}
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None and got.events == [] and got.state == {}

    async def test_temp_keys_reach_the_live_session_only(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(
            app_name=app, user_id=user, state={"temp:init": 1, "k": 0}
        )
        assert session.state == {"k": 0}
        event = _delta_event({"temp:scratch": [1, 2], "k": 1})
        returned = await service.append_event(session, event)
        assert returned is event
        assert session.state == {"k": 1, "temp:scratch": [1, 2]}
        assert event.actions.state_delta == {"k": 1}
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert got.state == {"k": 1}
        assert got.events[0].actions.state_delta == {"k": 1}

    async def test_state_scopes(self, service: BaseSessionService) -> None:
        app, alice = _ids()
        bob = f"bob-{uuid.uuid4().hex[:8]}"
        assert await service.get_user_state(app_name=app, user_id=alice) == {}
        s1 = await service.create_session(
            app_name=app, user_id=alice, state={"app:theme": "dark", "user:name": "Alice", "x": 1}
        )
        s2 = await service.create_session(app_name=app, user_id=alice)
        s3 = await service.create_session(app_name=app, user_id=bob)
        assert s2.state == {"app:theme": "dark", "user:name": "Alice"}
        assert s3.state == {"app:theme": "dark"}
        await service.append_event(s3, _delta_event({"app:theme": "light", "user:name": "Bob"}))
        got1 = await service.get_session(app_name=app, user_id=alice, session_id=s1.id)
        assert got1 is not None
        assert got1.state == {"x": 1, "app:theme": "light", "user:name": "Alice"}
        assert await service.get_user_state(app_name=app, user_id=alice) == {"name": "Alice"}
        assert await service.get_user_state(app_name=app, user_id=bob) == {"name": "Bob"}
        assert await service.get_user_state(app_name="unknown-app", user_id=bob) == {}
        other_app = await service.create_session(app_name=f"{app}-2", user_id=alice)
        assert other_app.state == {}

    async def test_deltas_replace_values_and_keep_types_exact(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(
            app_name=app, user_id=user, state={"d": {"a": 1, "b": 2}, "gone": "x"}
        )
        values: dict[str, Any] = {
            "d": {"a": 9},
            "gone": None,
            "t": True,
            "f": False,
            "float": 0.1,
            "tiny": 5e-324,
            "whole_float": 3.0,
            "huge_float": 1e16,
            "huger_float": 1.5e300,
            "big": 2**63 + 1,
            "neg": -(2**70),
            "text": "ünïcødé 🙂 \"quoted\" 'single'",
            "nested": {"camelCase": [1, {"snake_case": None}]},
            "user:u": 0.30000000000000004,
            "app:a": [],
        }
        await service.append_event(session, _delta_event(values))
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        expected = {k: v for k, v in values.items()}
        assert got.state == expected
        assert session.state == expected
        for key, value in expected.items():
            assert type(got.state[key]) is type(value), key

    async def test_last_update_time_follows_the_event(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        event = _text_event("hi")
        event.timestamp = time.time() + 5
        await service.append_event(session, event)
        assert session.last_update_time == pytest.approx(event.timestamp, abs=1e-6)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert got.last_update_time == pytest.approx(event.timestamp, abs=1e-6)

    async def test_stored_order_is_append_order(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        now = time.time()
        # Clocks that go backwards and ties must not reorder history.
        for i, ts in enumerate([now, now - 10, now - 10, now + 0.5, now + 0.5]):
            event = _text_event(f"m{i}")
            event.timestamp = ts
            await service.append_event(session, event)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert [e.id for e in got.events] == [e.id for e in session.events]
        stamps = [e.timestamp for e in got.events]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    async def test_timestamp_moves_past_the_sessions_last_update(
        self, service: BaseSessionService
    ) -> None:
        # Not only past the previous event: past the creation, and past a later state merge.
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user, session_id="ts")
        created = session.last_update_time
        early = _text_event("before creation")
        early.timestamp = created - 100
        await service.append_event(session, early)
        assert early.timestamp > created
        merged = await service.create_session(
            app_name=app, user_id=user, session_id="ts", state={"k": 1}
        )
        merge_time = merged.last_update_time
        assert merge_time > early.timestamp
        between = _text_event("after the event, before the merge")
        between.timestamp = early.timestamp + (merge_time - early.timestamp) / 2
        await service.append_event(merged, between)
        assert between.timestamp > merge_time
        got = await service.get_session(app_name=app, user_id=user, session_id="ts")
        assert got is not None
        assert [e.timestamp for e in got.events] == pytest.approx(
            [early.timestamp, between.timestamp], abs=1e-6
        )

    async def test_full_event_round_trips(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        event = full_event()
        await service.append_event(session, event)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert len(got.events) == 1
        assert got.events[0] == event
        # Same JSON; key order inside data dicts is not kept by every store (PostgreSQL JSONB).
        assert json.loads(got.events[0].model_dump_json(by_alias=True, exclude_none=True)) == (
            json.loads(event.model_dump_json(by_alias=True, exclude_none=True))
        )

    async def test_reappending_the_same_event_is_a_no_op(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        event = _delta_event({"n": 1})
        await service.append_event(session, event)
        again = await service.append_event(session, event)
        assert again is event
        assert len(session.events) == 1
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None and [e.id for e in got.events] == [event.id]

    async def test_reusing_an_event_id_for_other_content_is_refused(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        first = _text_event("one")
        await service.append_event(session, first)
        clash = _text_event("two", id=first.id)
        with pytest.raises(ValueError, match="already stored"):
            await service.append_event(session, clash)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None and len(got.events) == 1

    # reads ---------------------------------------------------------------------------------

    async def test_get_session_config_filters(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        base = time.time()
        for i in range(6):
            event = _text_event(f"m{i}")
            event.timestamp = base + i
            await service.append_event(session, event)
        stamps = [e.timestamp for e in session.events]
        ids = [e.id for e in session.events]

        async def get(config: GetSessionConfig) -> list[str]:
            got = await service.get_session(
                app_name=app, user_id=user, session_id=session.id, config=config
            )
            assert got is not None
            return [e.id for e in got.events]

        assert await get(GetSessionConfig()) == ids
        assert await get(GetSessionConfig(num_recent_events=0)) == []
        assert await get(GetSessionConfig(num_recent_events=2)) == ids[-2:]
        assert await get(GetSessionConfig(num_recent_events=100)) == ids
        assert await get(GetSessionConfig(after_timestamp=stamps[3])) == ids[3:]
        assert await get(GetSessionConfig(after_timestamp=stamps[3] + 0.5)) == ids[4:]
        assert (
            await get(GetSessionConfig(after_timestamp=stamps[1], num_recent_events=2)) == ids[4:]
        )
        assert (
            await get(GetSessionConfig(after_timestamp=stamps[4], num_recent_events=5)) == ids[4:]
        )
        with pytest.raises(ValueError, match="greater than or equal to 0"):
            GetSessionConfig(num_recent_events=-1)

    async def test_list_sessions_order_state_and_no_events(
        self, service: BaseSessionService
    ) -> None:
        app, alice = _ids()
        bob = "bob"
        s_a1 = await service.create_session(app_name=app, user_id=alice, state={"n": 1})
        s_b = await service.create_session(app_name=app, user_id=bob, state={"user:who": "bob"})
        s_a2 = await service.create_session(app_name=app, user_id=alice)
        await service.append_event(s_a1, _delta_event({"app:v": 1, "user:who": "alice"}))
        listed = (await service.list_sessions(app_name=app)).sessions
        assert [s.id for s in listed] == [s_b.id, s_a2.id, s_a1.id]
        assert all(s.events == [] for s in listed)
        by_id = {s.id: s for s in listed}
        assert by_id[s_a1.id].state == {"n": 1, "app:v": 1, "user:who": "alice"}
        assert by_id[s_b.id].state == {"app:v": 1, "user:who": "bob"}
        times = [s.last_update_time for s in listed]
        assert times == sorted(times)
        mine = (await service.list_sessions(app_name=app, user_id=alice)).sessions
        assert [s.id for s in mine] == [s_a2.id, s_a1.id]
        assert (await service.list_sessions(app_name=app, user_id="nobody")).sessions == []
        assert (await service.list_sessions(app_name="no-such-app")).sessions == []

    async def test_list_sessions_pages(self, service: BaseSessionService) -> None:
        app, user = _ids()
        made = [
            await service.create_session(app_name=app, user_id=f"{user}-{i % 2}") for i in range(5)
        ]
        full = (await service.list_sessions(app_name=app)).sessions
        assert {s.id for s in full} == {s.id for s in made}
        pages: list[list[str]] = []
        token = None
        while True:
            page = await service.list_sessions(app_name=app, limit=2, page_token=token)
            pages.append([s.id for s in page.sessions])
            token = page.next_page_token
            if token is None:
                break
        assert pages[:2] == [[s.id for s in full[:2]], [s.id for s in full[2:4]]]
        assert [i for p in pages for i in p] == [s.id for s in full]
        assert (await service.list_sessions(app_name=app, limit=5)).next_page_token is None
        with pytest.raises(ValueError, match="page_token"):
            await service.list_sessions(app_name=app, page_token="not-a-token")
        with pytest.raises(ValueError, match="limit"):
            await service.list_sessions(app_name=app, limit=0)

    async def test_list_events_pages(self, service: BaseSessionService) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        for i in range(7):
            await service.append_event(session, _text_event(f"m{i}"))
        ids = [e.id for e in session.events]
        seen: list[str] = []
        token = None
        while True:
            page = await service.list_events(
                app_name=app, user_id=user, session_id=session.id, limit=3, page_token=token
            )
            assert len(page.events) <= 3
            seen += [e.id for e in page.events]
            token = page.next_page_token
            if token is None:
                break
        assert seen == ids
        whole = await service.list_events(app_name=app, user_id=user, session_id=session.id)
        assert whole.events == session.events
        assert whole.next_page_token is None
        with pytest.raises(SessionNotFoundError):
            await service.list_events(app_name=app, user_id=user, session_id="missing")

    async def test_returned_sessions_do_not_alias_storage(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(
            app_name=app, user_id=user, state={"d": {"x": [1]}, "app:a": {"y": 1}}
        )
        event = _delta_event({"k": {"z": 1}})
        await service.append_event(session, event)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        got.state["d"]["x"].append(2)
        got.state["app:a"]["y"] = 2
        got.state["new"] = 1
        got.events.clear()
        # The caller's own objects are theirs too: changing them later must not rewrite history.
        event.actions.state_delta["k"]["z"] = 99
        session.state["k"]["z"] = 98
        assert event.content is not None and event.content.parts
        event.content.parts[0].text = "rewritten"
        again = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert again is not None
        assert again.state == {"d": {"x": [1]}, "app:a": {"y": 1}, "k": {"z": 1}}
        assert len(again.events) == 1
        assert again.events[0].actions.state_delta == {"k": {"z": 1}}
        assert again.events[0].content is not None and again.events[0].content.parts
        assert again.events[0].content.parts[0].text == "state change"

    # concurrency ---------------------------------------------------------------------------

    async def test_stale_handle_is_refused_and_changes_nothing(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        created = await service.create_session(app_name=app, user_id=user)
        h1 = await service.get_session(app_name=app, user_id=user, session_id=created.id)
        h2 = await service.get_session(app_name=app, user_id=user, session_id=created.id)
        assert h1 is not None and h2 is not None
        await service.append_event(h1, _delta_event({"k": 1}))
        late = _delta_event({"k": 2, "temp:t": 1})
        with pytest.raises(StaleSessionError, match="modified in storage"):
            await service.append_event(h2, late)
        assert h2.events == [] and h2.state == {}
        assert late.actions.state_delta == {"k": 2, "temp:t": 1}
        got = await service.get_session(app_name=app, user_id=user, session_id=created.id)
        assert got is not None and got.state == {"k": 1} and len(got.events) == 1
        # The writer's own handle stays current.
        await service.append_event(h1, _delta_event({"k": 3}))

    async def test_two_appends_from_one_revision_one_fails(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        created = await service.create_session(app_name=app, user_id=user)
        handles = [
            await service.get_session(app_name=app, user_id=user, session_id=created.id)
            for _ in range(2)
        ]
        results = await asyncio.gather(
            *(service.append_event(h, _text_event("race")) for h in handles if h is not None),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Event) for r in results) == 1
        assert sum(isinstance(r, StaleSessionError) for r in results) == 1
        got = await service.get_session(app_name=app, user_id=user, session_id=created.id)
        assert got is not None and len(got.events) == 1

    async def test_hand_built_current_session_may_append(self, service: BaseSessionService) -> None:
        app, user = _ids()
        created = await service.create_session(app_name=app, user_id=user, session_id="hb")
        await service.append_event(created, _text_event("one"))
        by_hand = Session(
            id="hb", app_name=app, user_id=user, events=list(created.events), state={}
        )
        await service.append_event(by_hand, _text_event("two"))
        empty_by_hand = Session(id="hb", app_name=app, user_id=user)
        with pytest.raises(StaleSessionError):
            await service.append_event(empty_by_hand, _text_event("three"))

    async def test_merge_mode_appends_on_top_of_latest_state(
        self, make_service: ServiceFactory
    ) -> None:
        service = await make_service(on_stale="merge")
        async with service:
            app, user = _ids()
            created = await service.create_session(app_name=app, user_id=user)
            handles = [
                await service.get_session(app_name=app, user_id=user, session_id=created.id)
                for _ in range(4)
            ]
            await asyncio.gather(
                *(
                    service.append_event(h, _delta_event({f"k{i}": i}))
                    for i, h in enumerate(handles)
                    if h is not None
                )
            )
            got = await service.get_session(app_name=app, user_id=user, session_id=created.id)
            assert got is not None
            assert got.state == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
            assert len(got.events) == 4

    # bad input -----------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"app_name": ""}, ValueError, "app_name"),
            ({"app_name": "   "}, ValueError, "app_name"),
            ({"user_id": 5}, TypeError, "user_id"),
            ({"user_id": None}, TypeError, "user_id"),
            ({"session_id": ""}, ValueError, "session_id"),
            ({"session_id": "x" * 129}, ValueError, "session_id.*128"),
            ({"session_id": "a\x00b"}, ValueError, "NUL"),
            ({"state": ["not", "a", "dict"]}, TypeError, "state"),
            ({"state": {"k": object()}}, TypeError, r"state\['k'\]"),
            ({"state": {"k": float("nan")}}, ValueError, "NaN"),
            ({"state": {"k": {1: "int key"}}}, TypeError, "keys must be strings"),
            ({"state": {"k": ["a\ud800"]}}, ValueError, "surrogate"),
            ({"state": {"user:k\udfff": 1}}, ValueError, "surrogate"),
            ({"state": {"k": 10**5000}}, ValueError, "4300 digits"),
        ],
    )
    async def test_create_rejects_bad_input(
        self,
        service: BaseSessionService,
        kwargs: dict[str, Any],
        error: type[Exception],
        match: str,
    ) -> None:
        app, user = _ids()
        args: dict[str, Any] = {"app_name": app, "user_id": user, "session_id": "bad-input"}
        args.update(kwargs)
        with pytest.raises(error, match=match):
            await service.create_session(**args)
        assert await service.get_session(app_name=app, user_id=user, session_id="bad-input") is None
        assert (await service.list_sessions(app_name=app)).sessions == []

    async def test_append_rejects_bad_input_and_changes_nothing(
        self, service: BaseSessionService
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user, state={"k": 0})
        with pytest.raises(TypeError, match="Event"):
            await service.append_event(session, {"author": "user"})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Session"):
            await service.append_event(session.model_dump(), _text_event("x"))  # type: ignore[arg-type]
        for bad in ({"k": object(), "temp:t": 1}, {"k": 1, "app:x": float("inf")}):
            event = _delta_event(bad)
            with pytest.raises((TypeError, ValueError), match="state_delta"):
                await service.append_event(session, event)
            assert event.actions.state_delta == bad
        with pytest.raises(ValueError, match=r"event\.id is 129 characters"):
            await service.append_event(session, _delta_event({"k": 3}, id="e" * 129))
        with pytest.raises(ValueError, match="invocation_id is 257 characters"):
            await service.append_event(session, _delta_event({"k": 4}, invocation_id="i" * 257))
        for stamp in (float("inf"), float("nan")):
            with pytest.raises(ValueError, match=r"event\.timestamp"):
                await service.append_event(session, _delta_event({"k": 6}, timestamp=stamp))
        not_json = _delta_event({"k": 5})
        not_json.custom_metadata = {"handle": object()}
        with pytest.raises(TypeError, match="custom_metadata cannot be stored as JSON"):
            await service.append_event(session, not_json)
        assert session.state == {"k": 0} and session.events == []
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None and got.state == {"k": 0} and got.events == []
        # The handle is still current after the refused appends.
        await service.append_event(session, _delta_event({"k": 1}))

    @pytest.mark.parametrize(
        ("mutate", "error", "match"),
        [pytest.param(m, e, t, id=name) for name, m, e, t in UNREADABLE_EVENTS],
    )
    async def test_append_refuses_an_event_that_would_not_read_back(
        self,
        service: BaseSessionService,
        mutate: Callable[[Event], None],
        error: type[Exception],
        match: str,
    ) -> None:
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user, state={"k": 0})
        await service.append_event(session, _text_event("before"))
        event = _delta_event({"k": 1})
        mutate(event)
        with pytest.raises(error, match=match):
            await service.append_event(session, event)
        assert session.state == {"k": 0} and len(session.events) == 1
        # Nothing was stored: the session still reads, with its one good event.
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None and got.state == {"k": 0}
        assert [e.id for e in got.events] == [session.events[0].id]
        listed = await service.list_events(app_name=app, user_id=user, session_id=session.id)
        assert [e.id for e in listed.events] == [session.events[0].id]
        assert await service.get_user_state(app_name=app, user_id=user) == {}
        assert [s.id for s in (await service.list_sessions(app_name=app)).sessions] == [session.id]
        # The handle is still current.
        await service.append_event(session, _delta_event({"k": 2}))

    async def test_long_integers_up_to_the_json_limit_read_back_exactly(
        self, service: BaseSessionService
    ) -> None:
        # 4,300 digits is where Python's JSON reader stops; up to it every backend keeps them.
        app, user = _ids()
        longest = int("9" * 4299)
        values = {"n": 10**400, "m": -(2**70), "longest": longest, "user:u": -longest}
        session = await service.create_session(app_name=app, user_id=user, state={"s": 2**64})
        event = _delta_event(values)
        event.custom_metadata = {"n": -(10**400), "longest": longest}
        await service.append_event(session, event)
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert got.state == {"s": 2**64, **values}
        assert got.events[0].custom_metadata == {"n": -(10**400), "longest": longest}

    async def test_reads_reject_bad_input(self, service: BaseSessionService) -> None:
        with pytest.raises(ValueError, match="app_name"):
            await service.get_session(app_name="", user_id="u", session_id="s")
        with pytest.raises(TypeError, match="session_id"):
            await service.get_session(app_name="a", user_id="u", session_id=1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="config"):
            await service.get_session(
                app_name="a",
                user_id="u",
                session_id="s",
                config={"num_recent_events": 1},  # type: ignore[arg-type]
            )
        with pytest.raises(TypeError, match="user_id"):
            await service.list_sessions(app_name="a", user_id=3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="app_name"):
            await service.delete_session(app_name="", user_id="u", session_id="s")
        with pytest.raises(ValueError, match="user_id"):
            await service.get_user_state(app_name="a", user_id="")

    async def test_state_values_are_stored_as_json(self, service: BaseSessionService) -> None:
        import datetime

        app, user = _ids()
        when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        session = await service.create_session(
            app_name=app, user_id=user, state={"when": when, "pair": (1, 2)}
        )
        assert session.state == {"when": "2024-01-02T03:04:05Z", "pair": [1, 2]}
        await service.append_event(session, _delta_event({"raw": b"bytes"}))
        got = await service.get_session(app_name=app, user_id=user, session_id=session.id)
        assert got is not None
        assert (
            got.state
            == session.state
            == {
                "when": "2024-01-02T03:04:05Z",
                "pair": [1, 2],
                "raw": "bytes",
            }
        )
