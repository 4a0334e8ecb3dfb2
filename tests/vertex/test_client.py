"""VertexAiSessionService's own behaviour: names, ids, auth, retries, operations, errors."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from typing import Any

import google.auth
import google.auth.credentials
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openadk.errors import AlreadyExistsError, StorageError
from openadk.events import Event, EventActions, EventCompaction
from openadk.server import create_app
from openadk.sessions import InMemorySessionService, VertexAiSessionService
from openadk.sessions._vertex import event_from_api, event_to_api, format_time, parse_time

Handler = Callable[[httpx.Request], httpx.Response]
SESSION = {
    "name": "projects/p/locations/l/reasoningEngines/123/sessions/s1",
    "userId": "u1",
    "sessionState": {"k": 1},
    "updateTime": "2024-01-02T03:04:05.5Z",
}


class Recorder:
    """An httpx.MockTransport handler that records requests and answers from a script."""

    def __init__(self, *responses: httpx.Response | Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.responses:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.responses.pop(0)
        return answer(request) if callable(answer) else answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def error(code: int, status: str, message: str = "nope") -> httpx.Response:
    return httpx.Response(
        code, json={"error": {"code": code, "status": status, "message": message}}
    )


class FakeCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"


@pytest.fixture(autouse=True)
def no_adc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach Google: ADC is replaced, and must be asked for only when expected."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Application Default Credentials were looked up")

    monkeypatch.setattr(google.auth, "default", refuse)
    for name in (
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "OPENADK_VERTEX_API_ENDPOINT",
        "OPENADK_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


# names and ids -------------------------------------------------------------------------------


def test_app_name_to_engine_id() -> None:
    google_svc = VertexAiSessionService("p", "l")
    assert google_svc._engine_id("123") == "123"
    assert google_svc._engine_id("projects/p/locations/l/reasoningEngines/456") == "456"
    for bad in ("my_app", "projects/p/locations/l/reasoningEngines/abc", "\uff11\uff12\uff13"):
        with pytest.raises(ValueError, match=r"App name .* is not valid\. It should either be"):
            google_svc._engine_id(bad)
    assert VertexAiSessionService("p", "l", "789")._engine_id("anything") == "789"
    hosted = VertexAiSessionService(api_endpoint="http://x")
    assert hosted._engine_id("my_app-1") == "my_app-1"
    with pytest.raises(ValueError, match="is not valid"):
        hosted._engine_id("has space")


def test_session_id_rules() -> None:
    short = VertexAiSessionService._short_id
    assert short("projects/p/locations/l/reasoningEngines/123/sessions/s1", "123") == "s1"
    assert short("reasoningEngines/123/sessions/s-2", "123") == "s-2"
    with pytest.raises(
        ValueError,
        match=r"Session resource name mismatch: session belongs to reasoningEngine '9', but "
        r"service is configured for '123'\.",
    ):
        short("projects/p/locations/l/reasoningEngines/9/sessions/s1", "123")
    with pytest.raises(ValueError, match=r"Invalid session_id 'a\.b': must match"):
        short("a.b", "123")


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="Cannot specify project or location and express_mode"):
        VertexAiSessionService("p", express_mode_api_key="k")
    with pytest.raises(ValueError, match="project or project_id"):
        VertexAiSessionService("p", project_id="q")
    with pytest.raises(ValueError, match="api_version"):
        VertexAiSessionService(api_version="v2")
    with pytest.raises(ValueError, match="on_stale"):
        VertexAiSessionService(on_stale="ignore")  # type: ignore[arg-type]
    assert VertexAiSessionService(project_id="doc-project")._project == "doc-project"


# auth and endpoints --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_adc_is_used_when_talking_to_google(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = FakeCredentials()
    calls: list[Any] = []

    def fake_default(*args: Any, **kwargs: Any) -> tuple[Any, str]:
        calls.append(kwargs)
        return credentials, "adc-project"

    monkeypatch.setattr(google.auth, "default", fake_default)
    monkeypatch.setattr("openadk.sessions._vertex._refresh", lambda c: c.refresh(None))
    recorder = Recorder(error(404, "NOT_FOUND"))
    async with recorder.client() as http:
        svc = VertexAiSessionService(location="us-central1", http_client=http)
        assert await svc.get_session(app_name="123", user_id="u1", session_id="s1") is None
    (request,) = recorder.requests
    assert str(request.url) == (
        "https://us-central1-aiplatform.googleapis.com/v1beta1/projects/adc-project/"
        "locations/us-central1/reasoningEngines/123/sessions/s1"
    )
    assert request.headers["authorization"] == "Bearer token-1"
    assert "x-openadk-user-id" not in request.headers
    assert calls == [{"scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]


@pytest.mark.asyncio
async def test_api_endpoint_never_looks_up_adc() -> None:
    recorder = Recorder(error(404, "NOT_FOUND"))
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            project_id="p", location="l", api_endpoint="http://127.0.0.1:9/", http_client=http
        )
        assert await svc.get_session(app_name="7", user_id="u 1", session_id="s1") is None
    (request,) = recorder.requests
    assert str(request.url) == (
        "http://127.0.0.1:9/v1beta1/projects/p/locations/l/reasoningEngines/7/sessions/s1"
    )
    assert "authorization" not in request.headers
    assert request.headers["x-openadk-user-id"] == "u%201"


@pytest.mark.asyncio
async def test_explicit_credentials_with_an_endpoint() -> None:
    credentials = FakeCredentials()
    credentials.token = "given"
    recorder = Recorder(error(404, "NOT_FOUND"))
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            api_endpoint="http://h", credentials=credentials, http_client=http
        )
        await svc.get_session(app_name="a", user_id="u", session_id="s")
    assert recorder.requests[0].headers["authorization"] == "Bearer given"
    assert credentials.refreshes == 0


@pytest.mark.asyncio
async def test_express_mode_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    recorder = Recorder(error(404, "NOT_FOUND"))
    async with recorder.client() as http:
        svc = VertexAiSessionService(http_client=http)
        await svc.get_session(app_name="123", user_id="u", session_id="s")
    request = recorder.requests[0]
    assert str(request.url) == (
        "https://aiplatform.googleapis.com/v1beta1/reasoningEngines/123/sessions/s"
    )
    assert request.headers["x-goog-api-key"] == "env-key"


@pytest.mark.asyncio
async def test_google_needs_a_location() -> None:
    svc = VertexAiSessionService(project="p")
    with pytest.raises(ValueError, match="needs a location"):
        await svc.get_session(app_name="1", user_id="u", session_id="s")


# retries and operations ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_and_503_are_retried_with_backoff() -> None:
    recorder = Recorder(
        error(429, "RESOURCE_EXHAUSTED"),
        httpx.Response(503, headers={"retry-after": "0"}),
        ok(SESSION),
        ok({"sessionEvents": []}),
    )
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            "p", "l", express_mode_api_key=None, http_client=http, retry_backoff=0.001
        )
        svc._credentials = FakeCredentials()
        svc._credentials.token = "t"
        got = await svc.get_session(app_name="123", user_id="u1", session_id="s1")
    assert got is not None and got.state == {"k": 1}
    assert got.last_update_time == parse_time("2024-01-02T03:04:05.5Z")
    assert len(recorder.requests) == 4


@pytest.mark.asyncio
async def test_retries_give_up_with_a_storage_error() -> None:
    recorder = Recorder(*(error(503, "UNAVAILABLE", "down") for _ in range(3)))
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            api_endpoint="http://h", http_client=http, max_retries=2, retry_backoff=0.001
        )
        with pytest.raises(StorageError, match="HTTP 503 UNAVAILABLE: down"):
            await svc.get_session(app_name="a", user_id="u", session_id="s")
    assert len(recorder.requests) == 3


@pytest.mark.asyncio
async def test_connection_failures_are_retried_then_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    recorder = Recorder(refuse, refuse)
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            api_endpoint="http://h", http_client=http, max_retries=1, retry_backoff=0.001
        )
        with pytest.raises(StorageError, match="ConnectError"):
            await svc.list_sessions(app_name="a")


@pytest.mark.asyncio
async def test_create_polls_the_operation_then_reads_the_session() -> None:
    op = "projects/p/locations/l/reasoningEngines/123/sessions/s1/operations/o1"
    recorder = Recorder(
        ok({"name": op, "done": False}),
        ok({"name": op, "done": False}),
        ok({"name": op, "done": True, "response": {"name": SESSION["name"]}}),
        ok(SESSION),
    )
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http)
        session = await svc.create_session(
            app_name="123", user_id="u1", state={"k": 1}, ttl="7200s"
        )
    assert session.id == "s1" and session.state == {"k": 1}
    create, poll1, _, get = recorder.requests
    assert json.loads(create.content) == {
        "userId": "u1",
        "sessionState": {"k": 1},
        "ttl": "7200s",
    }
    assert str(poll1.url) == f"https://h/v1beta1/{op}"
    assert str(get.url).endswith("/sessions/s1")


@pytest.mark.asyncio
async def test_operation_polling_is_bounded() -> None:
    op = {"name": "reasoningEngines/1/sessions/s/operations/o", "done": False}
    recorder = Recorder(*(ok(op) for _ in range(20)))
    async with recorder.client() as http:
        svc = VertexAiSessionService(
            api_endpoint="https://h", http_client=http, operation_timeout=0.3
        )
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.3 s"):
            await svc.create_session(app_name="1", user_id="u")


@pytest.mark.asyncio
async def test_failed_operation_raises() -> None:
    op = {"name": "o", "done": True, "error": {"code": 13, "message": "disk on fire"}}
    recorder = Recorder(ok(op))
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http)
        with pytest.raises(StorageError, match="disk on fire"):
            await svc.create_session(app_name="1", user_id="u")


def test_create_options() -> None:
    svc = VertexAiSessionService(api_endpoint="https://h")

    async def run(**kwargs: Any) -> None:
        await svc.create_session(app_name="1", user_id="u", **kwargs)

    import asyncio

    with pytest.raises(
        ValueError, match=r"Cannot specify both 'ttl' and 'expire_time' simultaneously\."
    ):
        asyncio.run(run(ttl="7200s", expire_time="2030-01-01T00:00:00Z"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        asyncio.run(run(colour="red"))
    with pytest.raises(ValueError, match="timezone-aware"):
        asyncio.run(run(expire_time=datetime.datetime(2030, 1, 1)))


@pytest.mark.asyncio
async def test_expire_time_and_labels_are_sent() -> None:
    op = {"name": "o", "done": True, "response": SESSION}
    recorder = Recorder(ok(op, **{"x-openadk-revision": "3"}))
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http)
        when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
        session = await svc.create_session(
            app_name="123", user_id="u1", expire_time=when, display_name="d", labels={"a": "b"}
        )
    assert session._storage_update_marker == "3"
    assert json.loads(recorder.requests[0].content) == {
        "userId": "u1",
        "expireTime": "2030-01-01T00:00:00Z",
        "displayName": "d",
        "labels": {"a": "b"},
    }


# answers --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_not_found_and_other_users() -> None:
    other = {**SESSION, "userId": "someone-else"}
    recorder = Recorder(error(404, "NOT_FOUND"), ok(other), error(404, "NOT_FOUND"), ok(other))
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http)
        assert await svc.get_session(app_name="123", user_id="u1", session_id="s1") is None
        with pytest.raises(ValueError, match=r"^Session s1 does not belong to user u1\.$"):
            await svc.get_session(app_name="123", user_id="u1", session_id="s1")
        await svc.delete_session(app_name="123", user_id="u1", session_id="s1")
        with pytest.raises(ValueError, match="does not belong"):
            await svc.delete_session(app_name="123", user_id="u1", session_id="s1")
    assert [r.method for r in recorder.requests] == ["GET", "GET", "GET", "GET"]


@pytest.mark.asyncio
async def test_get_user_state_is_not_supported_by_google() -> None:
    svc = VertexAiSessionService("p", "l")
    with pytest.raises(NotImplementedError, match="does not support get_user_state"):
        await svc.get_user_state(app_name="1", user_id="u")


@pytest.mark.asyncio
async def test_partial_events_are_never_sent() -> None:
    recorder = Recorder()
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http)
        from openadk.sessions import Session

        session = Session(id="s", app_name="1", user_id="u")
        event = Event(author="a", partial=True, actions=EventActions(state_delta={"k": 1}))
        assert await svc.append_event(session, event) is event
    assert recorder.requests == [] and session.events == []


@pytest.mark.asyncio
async def test_merge_mode_sends_no_precondition() -> None:
    recorder = Recorder(ok({}))
    async with recorder.client() as http:
        svc = VertexAiSessionService(api_endpoint="https://h", http_client=http, on_stale="merge")
        from openadk.sessions import Session

        session = Session(id="s", app_name="1", user_id="u")
        session._storage_update_marker = "5"
        await svc.append_event(session, Event(author="a"))
    headers = recorder.requests[0].headers
    assert "x-openadk-if-revision" not in headers
    assert "x-openadk-last-event-id" not in headers


# a server without openadk's extensions (as Vertex AI is) ---------------------------------------


def plain_server(app: Any) -> httpx.AsyncClient:
    """An httpx client of ``app`` with openadk's extension headers removed both ways."""
    inner = httpx.ASGITransport(app=app)

    class Plain(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            for name in list(request.headers):
                if name.startswith("x-openadk-"):
                    del request.headers[name]
            if request.url.path.endswith("/userState"):
                return error(404, "NOT_FOUND")
            response = await inner.handle_async_request(request)
            headers = [(k, v) for k, v in response.headers.raw if not k.startswith(b"x-openadk-")]
            return httpx.Response(response.status_code, headers=headers, stream=response.stream)

    return httpx.AsyncClient(transport=Plain())


@pytest.mark.asyncio
async def test_against_a_plain_server() -> None:
    store = InMemorySessionService()
    async with plain_server(create_app(store)) as http:
        svc = VertexAiSessionService(api_endpoint="http://127.0.0.1:8080", http_client=http)
        first = await svc.create_session(
            app_name="app", user_id="u", session_id="s1", state={"a": 1}
        )
        assert first._storage_update_marker is None
        with pytest.raises(AlreadyExistsError, match=r"Session with id s1 already exists\."):
            await svc.create_session(app_name="app", user_id="u", session_id="s1", exist_ok=False)
        # Resuming with state records the merge as an event, through the standard API.
        resumed = await svc.create_session(
            app_name="app", user_id="u", session_id="s1", state={"b": 2}
        )
        assert resumed.state == {"a": 1, "b": 2}
        assert [e.actions.state_delta for e in resumed.events] == [{"b": 2}]
        with pytest.raises(AlreadyExistsError, match="belongs to another user"):
            await svc.create_session(app_name="app", user_id="other", session_id="s1")
        for i in range(3):
            await svc.create_session(app_name="app", user_id="u", session_id=f"p{i}")
            await svc.append_event(resumed, Event(author="u", invocation_id=f"i{i}"))
        page = await svc.list_sessions(app_name="app", limit=2)
        rest = await svc.list_sessions(app_name="app", page_token=page.next_page_token)
        assert len(page.sessions) == 2 and len(rest.sessions) == 2
        events = await svc.list_events(app_name="app", user_id="u", session_id="s1", limit=2)
        more = await svc.list_events(
            app_name="app", user_id="u", session_id="s1", page_token=events.next_page_token
        )
        assert len(events.events) + len(more.events) == 4
        with pytest.raises(NotImplementedError):
            await svc.get_user_state(app_name="app", user_id="u")
    assert not svc._openadk_server


# the wire format ------------------------------------------------------------------------------


@given(st.floats(min_value=2**23, max_value=2.5e11))
def test_times_round_trip_exactly(timestamp: float) -> None:
    text = format_time(timestamp)
    assert text.endswith("Z")
    assert parse_time(text) == timestamp
    assert parse_time(format_time(timestamp, floor=True)) <= timestamp


def test_time_parsing() -> None:
    assert parse_time("1970-01-01T00:00:00Z") == 0.0
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time("2024-01-02T03:04:05.123456789123z") == parse_time(
        "2024-01-02T03:04:05.123456789Z"
    )
    assert format_time(1.5) == "1970-01-01T00:00:01.500000000Z"
    assert format_time(1e300, clamp=True) == "9999-12-31T23:59:59Z"
    for bad in ("2024-01-02", "2024-13-01T00:00:00Z", "yesterday", "2024-01-02T03:04:05"):
        with pytest.raises(ValueError, match=r"RFC 3339|valid date-time"):
            parse_time(bad)
    with pytest.raises(ValueError, match="finite"):
        format_time(math.nan)


def test_events_without_raw_event_map_the_named_fields() -> None:
    event = Event(
        author="agent",
        invocation_id="inv",
        branch="a.b",
        turn_complete=True,
        custom_metadata={"mine": 1},
        long_running_tool_ids={"t1"},
        actions=EventActions(
            state_delta={"k": 1},
            transfer_to_agent="helper",
            compaction=EventCompaction(
                start_timestamp=1.0, end_timestamp=2.0, compacted_content={"parts": [{"text": "s"}]}
            ),
        ),
        timestamp=1700000000.25,
    )
    body = event_to_api(event, name="x/events/ev-9")
    assert body["actions"]["transferAgent"] == "helper"
    assert body["eventMetadata"]["customMetadata"]["_compaction"]["start_timestamp"] == 1.0
    del body["rawEvent"]
    back = event_from_api(body)
    assert back.id == "ev-9"
    assert back.actions.transfer_to_agent == "helper"
    assert back.actions.compaction == event.actions.compaction
    assert back.custom_metadata == {"mine": 1}
    assert back.long_running_tool_ids == {"t1"}
    assert back.timestamp == event.timestamp
    assert back.branch == "a.b" and back.turn_complete is True


@pytest.mark.asyncio
async def test_endpoint_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENADK_VERTEX_API_ENDPOINT", "http://from-env:1")
    monkeypatch.setenv("OPENADK_API_KEY", "env-key")
    recorder = Recorder(error(404, "NOT_FOUND"))
    async with recorder.client() as http:
        # The user's document's constructor: project_id and location, no endpoint.
        svc = VertexAiSessionService(project_id="p", location="l", http_client=http)
        assert await svc.get_session(app_name="vertex_app", user_id="u", session_id="s") is None
    request = recorder.requests[0]
    assert str(request.url) == (
        "http://from-env:1/v1beta1/projects/p/locations/l/reasoningEngines/vertex_app/sessions/s"
    )
    assert request.headers["x-goog-api-key"] == "env-key"


def test_the_service_survives_one_event_loop_per_call() -> None:
    import asyncio

    app = create_app(InMemorySessionService())

    async def step(svc: VertexAiSessionService) -> None:
        # The service's own client (no http_client), sent to the app through a patched factory.
        await svc.create_session(app_name="a", user_id="u", session_id="s1")

    original = httpx.AsyncClient

    def factory(**kwargs: Any) -> httpx.AsyncClient:
        return original(transport=httpx.ASGITransport(app=app), **kwargs)

    svc = VertexAiSessionService(api_endpoint="http://127.0.0.1:8080")
    import unittest.mock

    with unittest.mock.patch.object(httpx, "AsyncClient", factory):
        asyncio.run(step(svc))
        first = svc._client
        asyncio.run(step(svc))
        assert svc._client is not first
        asyncio.run(svc.close())
    assert svc._client is None
