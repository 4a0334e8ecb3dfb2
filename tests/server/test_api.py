"""The REST API's shape: resources, operations, filters, paging, prefixes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from openadk.sessions import InMemorySessionService
from openadk.sessions._vertex import format_time, parse_time
from tests.server.conftest import PARENT

pytestmark = pytest.mark.asyncio


async def create(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    session_id: str | None = None,
    parent: str = PARENT,
) -> dict[str, Any]:
    params = {"sessionId": session_id} if session_id else {}
    response = await client.post(f"{parent}/sessions", params=params, json=body)
    assert response.status_code == 200, response.text
    operation: dict[str, Any] = response.json()
    return operation


def event_body(text: str, ts: float | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "author": "user",
        "invocationId": "e-1",
        "timestamp": format_time(time.time() if ts is None else ts),
        "content": {"role": "user", "parts": [{"text": text}]},
        **extra,
    }


async def test_create_returns_a_done_operation_that_can_be_fetched(
    client: httpx.AsyncClient,
) -> None:
    operation = await create(
        client, {"userId": "u1", "sessionState": {"k": 1}, "ttl": "7200s"}, "s-1"
    )
    assert operation["done"] is True
    assert operation["name"].startswith(f"{PARENT[len('/v1beta1/') :]}/sessions/s-1/operations/")
    session = operation["response"]
    assert session["name"] == f"{PARENT[len('/v1beta1/') :]}/sessions/s-1"
    assert session["userId"] == "u1"
    assert session["sessionState"] == {"k": 1}
    assert abs(parse_time(session["updateTime"]) - time.time()) < 60
    polled = await client.get(f"/v1beta1/{operation['name']}")
    assert polled.status_code == 200
    assert polled.json() == operation
    missing = await client.get(f"/v1beta1/{operation['name']}x")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


async def test_create_without_id_makes_a_uuid(client: httpx.AsyncClient) -> None:
    operation = await create(client, {"user_id": "u1"})
    session_id = operation["response"]["name"].rsplit("/", 1)[1]
    assert len(session_id) == 36
    got = await client.get(f"{PARENT}/sessions/{session_id}")
    assert got.status_code == 200
    assert got.json()["userId"] == "u1"


async def test_duplicate_id_is_409_already_exists(client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u1"}, "dup")
    again = await client.post(
        f"{PARENT}/sessions", params={"sessionId": "dup"}, json={"userId": "u1"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"
    other_user = await client.post(
        f"{PARENT}/sessions",
        params={"sessionId": "dup"},
        json={"userId": "u2"},
        headers={"x-openadk-exist-ok": "true"},
    )
    assert other_user.status_code == 409


async def test_exist_ok_header_resumes_and_merges_state(client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u1", "sessionState": {"a": 1}}, "res")
    response = await client.post(
        f"{PARENT}/sessions",
        params={"sessionId": "res"},
        json={"userId": "u1", "sessionState": {"b": 2}},
        headers={"x-openadk-exist-ok": "true"},
    )
    assert response.status_code == 200
    assert response.headers["x-openadk-resumed"] == "1"
    assert response.json()["response"]["sessionState"] == {"a": 1, "b": 2}


async def test_append_applies_state_delta_and_events_round_trip(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"userId": "u1"}, "s-2")
    body = event_body(
        "hello",
        actions={"stateDelta": {"k": "v", "app:a": 1, "user:u": 2, "temp:t": 3}},
        rawEvent={"id": "ev-1", "author": "user", "partial": False, "customMetadata": {"x": 1}},
    )
    response = await client.post(f"{PARENT}/sessions/s-2:appendEvent", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert response.headers["x-openadk-revision"]
    session = (await client.get(f"{PARENT}/sessions/s-2")).json()
    assert session["sessionState"] == {"k": "v", "app:a": 1, "user:u": 2}
    events = (await client.get(f"{PARENT}/sessions/s-2/events")).json()["sessionEvents"]
    assert len(events) == 1
    event = events[0]
    assert event["name"] == f"{PARENT[len('/v1beta1/') :]}/sessions/s-2/events/ev-1"
    assert event["author"] == "user"
    assert event["invocationId"] == "e-1"
    assert event["content"] == {"role": "user", "parts": [{"text": "hello"}]}
    assert event["actions"]["stateDelta"] == {"k": "v", "app:a": 1, "user:u": 2}
    assert event["eventMetadata"]["customMetadata"] == {"x": 1}
    assert event["rawEvent"]["id"] == "ev-1"
    assert event["rawEvent"]["customMetadata"] == {"x": 1}
    # The snake_case the google-genai SDK sends is accepted too.
    snake = {
        "author": "agent",
        "invocation_id": "e-2",
        "timestamp": format_time(time.time()),
        "actions": {"state_delta": {"k": "w"}, "transfer_agent": "helper"},
        "event_metadata": {"turn_complete": True},
    }
    assert (await client.post(f"{PARENT}/sessions/s-2:appendEvent", json=snake)).status_code == 200
    events = (await client.get(f"{PARENT}/sessions/s-2/events")).json()["sessionEvents"]
    assert events[1]["actions"]["transferAgent"] == "helper"
    assert events[1]["eventMetadata"]["turnComplete"] is True
    assert (await client.get(f"{PARENT}/sessions/s-2")).json()["sessionState"]["k"] == "w"


async def test_partial_events_are_accepted_and_not_stored(client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u1"}, "s-3")
    body = event_body("chunk", actions={"stateDelta": {"k": 1}}, eventMetadata={"partial": True})
    assert (await client.post(f"{PARENT}/sessions/s-3:appendEvent", json=body)).status_code == 200
    assert (await client.get(f"{PARENT}/sessions/s-3/events")).json()["sessionEvents"] == []
    assert (await client.get(f"{PARENT}/sessions/s-3")).json()["sessionState"] == {}


async def test_events_filter_and_paging(client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u1"}, "s-4")
    base = time.time()
    for i in range(7):
        body = event_body(f"m{i}", base + i, rawEvent={"id": f"e{i}"})
        assert (
            await client.post(f"{PARENT}/sessions/s-4:appendEvent", json=body)
        ).status_code == 200
    url = f"{PARENT}/sessions/s-4/events"
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"pageSize": 3}
        if token:
            params["pageToken"] = token
        page = (await client.get(url, params=params)).json()
        assert len(page["sessionEvents"]) <= 3
        seen += [e["rawEvent"]["id"] for e in page["sessionEvents"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == [f"e{i}" for i in range(7)]
    since = format_time(base + 4)
    filtered = (await client.get(url, params={"filter": f'timestamp>="{since}"'})).json()
    assert [e["rawEvent"]["id"] for e in filtered["sessionEvents"]] == ["e4", "e5", "e6"]
    strictly = (await client.get(url, params={"filter": f"timestamp > {since}"})).json()
    assert [e["rawEvent"]["id"] for e in strictly["sessionEvents"]] == ["e5", "e6"]
    offset = format_time(base + 5).replace("Z", "+00:00")
    with_offset = (await client.get(url, params={"filter": f'timestamp>="{offset}"'})).json()
    assert len(with_offset["sessionEvents"]) == 2


async def test_list_filters_by_user_and_pages(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await create(client, {"userId": 'we"ird\\user' if i % 2 else "plain"}, f"l-{i}")
    url = f"{PARENT}/sessions"
    everyone = (await client.get(url)).json()["sessions"]
    assert [s["name"].rsplit("/", 1)[1] for s in everyone] == [f"l-{i}" for i in range(5)]
    quoted = (await client.get(url, params={"filter": 'user_id="we\\"ird\\\\user"'})).json()
    assert [s["name"].rsplit("/", 1)[1] for s in quoted["sessions"]] == ["l-1", "l-3"]
    camel = (await client.get(url, params={"filter": "userId=plain"})).json()
    assert len(camel["sessions"]) == 3
    first = (await client.get(url, params={"pageSize": 2, "orderBy": "updateTime"})).json()
    assert len(first["sessions"]) == 2 and first["nextPageToken"]
    rest = (
        await client.get(url, params={"pageSize": 10, "pageToken": first["nextPageToken"]})
    ).json()
    assert len(rest["sessions"]) == 3 and "nextPageToken" not in rest


async def test_delete_returns_an_operation_and_removes_the_session(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    await create(client, {"userId": "u1", "sessionState": {"user:x": 1}}, "s-5")
    response = await client.delete(f"{PARENT}/sessions/s-5")
    assert response.status_code == 200
    assert response.json()["done"] is True
    assert (await client.get(f"{PARENT}/sessions/s-5")).status_code == 404
    assert (await client.delete(f"{PARENT}/sessions/s-5")).status_code == 404
    assert await store.get_user_state(app_name="app1", user_id="u1") == {"x": 1}


@pytest.mark.parametrize(
    "parent",
    [
        "/v1/projects/p/locations/l/reasoningEngines/app1",
        "/v1beta1/reasoningEngines/app1",
        "/v1/reasoningEngines/app1",
    ],
)
async def test_v1_and_express_prefixes_reach_the_same_app(
    client: httpx.AsyncClient, parent: str
) -> None:
    await create(client, {"userId": "u1"}, "shared")
    got = await client.get(f"{parent}/sessions/shared")
    assert got.status_code == 200
    assert got.json()["name"] == f"{parent.split('/', 2)[2]}/sessions/shared"


async def test_sessions_made_through_the_python_api_are_served(
    client: httpx.AsyncClient, store: InMemorySessionService
) -> None:
    await store.create_session(app_name="app1", user_id="py", session_id="Made_In_Python")
    got = await client.get(f"{PARENT}/sessions/Made_In_Python")
    assert got.status_code == 200
    assert got.json()["userId"] == "py"


async def test_user_state_extension(client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u1", "sessionState": {"user:lang": "en", "k": 1}}, "s-6")
    response = await client.get(f"{PARENT}/userState", params={"userId": "u1"})
    assert response.json() == {"userId": "u1", "state": {"lang": "en"}}


async def test_openapi_health_and_server_header(open_client: httpx.AsyncClient) -> None:
    schema = (await open_client.get("/openapi.json")).json()
    paths = schema["paths"]
    root = "/v1beta1/projects/{project}/locations/{location}/reasoningEngines/{engine}"
    assert f"{root}/sessions" in paths
    assert f"{root}/sessions/{{session_id}}:appendEvent" in paths
    assert f"{root}/sessions/{{session_id}}/events" in paths
    health = await open_client.get("/healthz")
    assert health.json() == {"status": "ok"}
    assert health.headers["x-openadk-server"]


async def test_browsing_page(client: httpx.AsyncClient, open_client: httpx.AsyncClient) -> None:
    await create(client, {"userId": "u<1>", "sessionState": {"k": "<b>"}}, "page-1")
    assert (await client.get("/")).status_code == 401
    signed_in = await client.post("/signin", data={"key": "test-key"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    index = await client.get("/")
    assert index.status_code == 200 and "app1" in index.text
    listing = await client.get("/ui/app", params={"app": "app1"})
    assert "page-1" in listing.text and "u&lt;1&gt;" in listing.text
    detail = await client.get("/ui/session", params={"app": "app1", "user": "u<1>", "id": "page-1"})
    assert detail.status_code == 200 and "&lt;b&gt;" in detail.text and "<b>" not in detail.text
    # The old page's links lead to the new pages.
    old = await client.get("/", params={"app": "app1", "user": "u<1>", "session": "page-1"})
    assert old.status_code == 303
    assert old.headers["location"] == "/ui/session?app=app1&user=u%3C1%3E&id=page-1"
    assert (await open_client.get("/ui/app", params={"app": "app1"})).status_code == 200
