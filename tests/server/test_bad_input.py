"""Bad requests get a 4xx Google API JSON error, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from openadk.server import create_app
from openadk.sessions import InMemorySessionService
from openadk.sessions._vertex import format_time
from tests.server.conftest import API_KEY, BASE, LOCAL, PARENT

pytestmark = pytest.mark.asyncio


def assert_error(response: httpx.Response, code: int, status: str | None = None) -> str:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if status is not None:
        assert error["status"] == status
    return str(error["message"])


async def nothing_stored(store: InMemorySessionService) -> None:
    listed = await store.list_sessions(app_name="app1")
    assert listed.sessions == []


def good_event(**overrides: Any) -> dict[str, Any]:
    return {
        "author": "user",
        "invocationId": "e-1",
        "timestamp": format_time(time.time()),
        **overrides,
    }


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"userId": "u1"', "application/json"),
        (b"not json at all", "application/json"),
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b'"userId"', "application/json"),
        (b'{"userId": "u1"}', "text/plain"),
    ],
    ids=["truncated", "garbage", "empty", "array", "string", "not-json-type"],
)
async def test_malformed_create_bodies(
    client: httpx.AsyncClient, store: InMemorySessionService, body: bytes, content_type: str
) -> None:
    response = await client.post(
        f"{PARENT}/sessions", content=body, headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    await nothing_stored(store)


@pytest.mark.parametrize(
    "body",
    [
        {"userId": "u1", "unknownField": 1},
        {"userId": "u1", "sessionState": {"k": 1}, "state": {}},
        {"userId": 5},
        {"userId": None},
        {"userId": ""},
        {"userId": "   "},
        {"userId": "a\u0000b"},
        {"userId": "x" * 129},
        {"userId": "u1", "sessionState": ["not", "an", "object"]},
        {"userId": "u1", "ttl": "two hours"},
        {"userId": "u1", "ttl": 7200},
        {"userId": "u1", "expireTime": "tomorrow"},
        {"userId": "u1", "ttl": "7200s", "expireTime": "2030-01-01T00:00:00Z"},
        {"userId": "u1", "labels": {"Bad Key!": "v"}},
        {"userId": "u1", "displayName": 3},
        {"sessionState": {}},
    ],
)
async def test_create_rejects_unknown_fields_and_wrong_types(
    client: httpx.AsyncClient, store: InMemorySessionService, body: dict[str, Any]
) -> None:
    response = await client.post(f"{PARENT}/sessions", params={"sessionId": "bad"}, json=body)
    assert_error(response, 400, "INVALID_ARGUMENT")
    await nothing_stored(store)


@pytest.mark.parametrize(
    "session_id",
    ["Upper", "under_score", "-lead", "trail-", "x" * 64, "dot.ted", "sp ace", "ünï"],
)
async def test_create_rejects_ids_outside_the_api_rule(
    client: httpx.AsyncClient, store: InMemorySessionService, session_id: str
) -> None:
    response = await client.post(
        f"{PARENT}/sessions", params={"sessionId": session_id}, json={"userId": "u1"}
    )
    assert_error(response, 400, "INVALID_ARGUMENT")
    await nothing_stored(store)


async def test_create_with_an_empty_id_makes_one(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    # An empty sessionId is no id (proto3): the server makes a uuid4.
    response = await client.post(
        f"{PARENT}/sessions", params={"sessionId": ""}, json={"userId": "u1"}
    )
    assert response.status_code == 200, response.text
    made = response.json()["response"]["name"].rsplit("/", 1)[1]
    assert len(made) == 36
    listed = await store.list_sessions(app_name="app1")
    assert [s.id for s in listed.sessions] == [made]


@pytest.mark.parametrize(
    "path",
    [
        f"{PARENT}/sessions/dot.ted",
        f"{PARENT}/sessions/{'x' * 129}",
        f"{PARENT}/sessions/a%20b",
        "/v1beta1/projects/p/locations/l/reasoningEngines/bad.engine/sessions/s",
        "/v1beta1/projects/p!/locations/l/reasoningEngines/e/sessions/s",
    ],
)
async def test_paths_breaking_the_resource_name_pattern(
    client: httpx.AsyncClient, path: str
) -> None:
    assert_error(await client.get(path), 400, "INVALID_ARGUMENT")


async def test_unknown_routes_and_methods_are_json_errors(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v2/anything"), 404, "NOT_FOUND")
    assert_error(await client.put(f"{PARENT}/sessions/s"), 405)


@pytest.mark.parametrize(
    "body",
    [
        good_event(unknown=1),
        good_event(actions={"stateDelta": {}, "nope": True}),
        good_event(eventMetadata={"partial": "yes"}),
        good_event(actions={"escalate": "true"}),
        good_event(actions={"artifactDelta": {"f": "one"}}),
        good_event(content={"parts": [{"text": "x", "bogus": 1}]}),
        good_event(content={"parts": "not a list"}),
        good_event(rawEvent={"actions": {"notAnAction": 1}}),
        good_event(rawEvent={"message": "hi", "content": {"parts": [{"text": "x"}]}}),
        good_event(timestamp="yesterday"),
        good_event(timestamp="1969-12-31T23:59:59Z"),
        good_event(timestamp="2024-02-30T00:00:00Z"),
        {"invocationId": "e-1", "timestamp": format_time(time.time())},
        {"author": "user", "timestamp": format_time(time.time())},
        {"author": "user", "invocationId": "e-1"},
    ],
)
async def test_append_rejects_bad_events_and_stores_nothing(
    client: httpx.AsyncClient, store: InMemorySessionService, body: dict[str, Any]
) -> None:
    session = await store.create_session(app_name="app1", user_id="u1", session_id="s1")
    response = await client.post(f"{PARENT}/sessions/s1:appendEvent", json=body)
    assert_error(response, 400, "INVALID_ARGUMENT")
    got = await store.get_session(app_name="app1", user_id="u1", session_id=session.id)
    assert got is not None and got.events == [] and got.state == {}


@pytest.mark.parametrize(
    "number",
    [b"Infinity", b"-Infinity", b"NaN", b"1e999", b"-1e999"],
)
async def test_append_rejects_numbers_json_cannot_hold(
    client: httpx.AsyncClient, store: InMemorySessionService, number: bytes
) -> None:
    session = await store.create_session(app_name="app1", user_id="u1", session_id="s1")
    # Raw bytes: httpx refuses to encode infinities, and these are what a client could send.
    event = json.dumps(good_event()).encode()
    content = event[:-1] + b', "actions": {"stateDelta": {"k": ' + number + b"}}}"
    assert number in content
    response = await client.post(
        f"{PARENT}/sessions/s1:appendEvent",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "INVALID_ARGUMENT")
    got = await store.get_session(app_name="app1", user_id="u1", session_id=session.id)
    assert got is not None and got.events == [] and got.state == {}


async def test_append_to_missing_session_is_404(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    response = await client.post(f"{PARENT}/sessions/ghost:appendEvent", json=good_event())
    assert_error(response, 404, "NOT_FOUND")
    await nothing_stored(store)


async def test_oversized_bodies_are_413(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    big = {"userId": "u1", "sessionState": {"blob": "x" * (64 * 1024)}}
    assert_error(await client.post(f"{PARENT}/sessions", json=big), 413)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"userId": "u1", "sessionState": {"blob": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}}'

    streamed = await client.post(
        f"{PARENT}/sessions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413)
    await nothing_stored(store)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-goog-api-key": "wrong"},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {API_KEY}"},
        {"authorization": API_KEY},
    ],
    ids=["missing", "wrong-key", "wrong-bearer", "basic", "no-scheme"],
)
async def test_missing_or_wrong_credentials_are_401(
    store: InMemorySessionService, headers: dict[str, str]
) -> None:
    app = create_app(store, api_key=API_KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post(f"{PARENT}/sessions", json={"userId": "u1"}, headers=headers)
        assert_error(response, 401, "UNAUTHENTICATED")
        assert_error(await http.get(f"{PARENT}/sessions", headers=headers), 401)
    await nothing_stored(store)


@pytest.mark.parametrize(
    "auth",
    [
        {"headers": {"authorization": f"Bearer {API_KEY}"}},
        {"headers": {"x-goog-api-key": API_KEY}},
        {"params": {"key": API_KEY}},
    ],
    ids=["bearer", "x-goog-api-key", "query"],
)
async def test_right_credentials_are_accepted(
    store: InMemorySessionService, auth: dict[str, Any]
) -> None:
    app = create_app(store, api_key=API_KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post(f"{PARENT}/sessions", json={"userId": "u1"}, **auth)
        assert response.status_code == 200


async def test_another_users_session_is_refused_and_unchanged(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    await store.create_session(app_name="app1", user_id="alice", session_id="mine", state={"k": 1})
    as_bob = {"x-openadk-user-id": "bob"}
    url = f"{PARENT}/sessions/mine"
    for response in (
        await client.get(url, headers=as_bob),
        await client.get(f"{url}/events", headers=as_bob),
        await client.delete(url, headers=as_bob),
        await client.post(
            f"{url}:appendEvent",
            json=good_event(actions={"stateDelta": {"k": 2}}),
            headers=as_bob,
        ),
    ):
        assert_error(response, 403, "PERMISSION_DENIED")
        assert response.json()["error"]["details"][0]["reason"] == "SESSION_OWNER_MISMATCH"
    got = await store.get_session(app_name="app1", user_id="alice", session_id="mine")
    assert got is not None and got.state == {"k": 1} and got.events == []
    # Creating that id for another user is refused too.
    taken = await client.post(
        f"{PARENT}/sessions",
        params={"sessionId": "mine"},
        json={"userId": "bob"},
        headers={"x-openadk-exist-ok": "true"},
    )
    assert_error(taken, 409, "ALREADY_EXISTS")
    assert [s.user_id for s in (await store.list_sessions(app_name="app1")).sessions] == ["alice"]
    assert_error(await client.get(url, headers={"x-openadk-user-id": "%ff"}), 400)
    assert_error(await client.get(url, headers={"x-openadk-user-id": ""}), 400)


async def test_ambiguous_ids_need_the_user_header(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    for user in ("alice", "bob"):
        await store.create_session(app_name="app1", user_id=user, session_id="both")
    assert_error(await client.get(f"{PARENT}/sessions/both"), 400, "FAILED_PRECONDITION")
    ok = await client.get(f"{PARENT}/sessions/both", headers={"x-openadk-user-id": "bob"})
    assert ok.status_code == 200 and ok.json()["userId"] == "bob"


async def test_stale_revision_is_409_aborted_and_stores_nothing(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    session = await store.create_session(app_name="app1", user_id="u1", session_id="st")
    first = await client.post(
        f"{PARENT}/sessions/st:appendEvent",
        json=good_event(),
        headers={"x-openadk-if-revision": str(session._storage_update_marker)},
    )
    assert first.status_code == 200
    late = await client.post(
        f"{PARENT}/sessions/st:appendEvent",
        json=good_event(actions={"stateDelta": {"k": 1}}),
        headers={"x-openadk-if-revision": str(session._storage_update_marker)},
    )
    assert "modified in storage" in assert_error(late, 409, "ABORTED")
    no_events = await client.post(
        f"{PARENT}/sessions/st:appendEvent",
        json=good_event(),
        headers={"x-openadk-last-event-id": ""},
    )
    assert_error(no_events, 409, "ABORTED")
    got = await store.get_session(app_name="app1", user_id="u1", session_id="st")
    assert got is not None and len(got.events) == 1 and got.state == {}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/sessions", {"filter": 'display_name="x"'}),
        ("/sessions", {"filter": 'user_id="unterminated'}),
        ("/sessions", {"filter": 'user_id=""'}),
        ("/sessions", {"pageSize": "many"}),
        ("/sessions", {"pageToken": "not-a-token"}),
        ("/sessions", {"orderBy": "createTime desc"}),
        ("/sessions/s/events", {"filter": 'timestamp>="noon"'}),
        ("/sessions/s/events", {"filter": "author=user"}),
        ("/sessions/s/events", {"pageToken": "garbage"}),
        ("/sessions/s/events", {"orderBy": "timestamp desc"}),
        ("/userState", {}),
    ],
)
async def test_bad_query_parameters_are_400(
    client: httpx.AsyncClient,
    store: InMemorySessionService,
    path: str,
    params: dict[str, str],
) -> None:
    await store.create_session(app_name="app1", user_id="u1", session_id="s")
    assert_error(await client.get(f"{PARENT}{path}", params=params), 400, "INVALID_ARGUMENT")


async def test_too_many_requests_in_flight_is_429(store: InMemorySessionService) -> None:
    class Slow(InMemorySessionService):
        async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
            await asyncio.sleep(0.2)
            return {}

    app = create_app(Slow(), max_requests_in_flight=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
        url = f"{PARENT}/userState"
        first, second = await asyncio.gather(
            http.get(url, params={"userId": "u"}),
            http.get(url, params={"userId": "u"}),
        )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 429]
    rejected = first if first.status_code == 429 else second
    assert_error(rejected, 429, "RESOURCE_EXHAUSTED")
    assert rejected.headers["retry-after"] == "1"
