"""A session or event from the server that openadk cannot parse is a CorruptDataError naming it.

The answers come from a scripted transport standing in for a server other than openadk's own
(openadk's refuses such data on the way in, so it never sends it).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from openadk.errors import CorruptDataError, StorageError
from openadk.sessions import VertexAiSessionService

pytestmark = pytest.mark.asyncio

_ENGINE = "projects/p/locations/l/reasoningEngines/app1"
_GOOD_EVENT = {
    "name": f"{_ENGINE}/sessions/s1/events/e-good",
    "author": "user",
    "invocationId": "i-1",
    "timestamp": "2024-01-02T03:04:05Z",
}


def _service(session_state: Any, events: list[Any]) -> VertexAiSessionService:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/sessions/s1"):
            return httpx.Response(
                200,
                json={
                    "name": f"{_ENGINE}/sessions/s1",
                    "userId": "u",
                    "sessionState": session_state,
                    "updateTime": "2024-01-02T03:04:06Z",
                },
            )
        if path.endswith("/sessions/s1/events"):
            return httpx.Response(200, json={"sessionEvents": events})
        return httpx.Response(404, json={"error": {"code": 404, "message": "no"}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return VertexAiSessionService(api_endpoint="http://server.test", http_client=http)


@pytest.mark.parametrize(
    "bad",
    [
        {**_GOOD_EVENT, "name": f"{_ENGINE}/sessions/s1/events/e-bad", "rawEvent": {"branch": 5}},
        {
            **_GOOD_EVENT,
            "name": f"{_ENGINE}/sessions/s1/events/e-bad",
            "rawEvent": {"timestamp": 10**400},
        },
        {**_GOOD_EVENT, "name": f"{_ENGINE}/sessions/s1/events/e-bad", "content": "text"},
    ],
    ids=["wrong-type", "huge-timestamp", "content-string"],
)
async def test_an_event_that_does_not_parse_is_named(bad: dict[str, Any]) -> None:
    async with _service({"k": 1}, [_GOOD_EVENT, bad]) as service:
        with pytest.raises(CorruptDataError) as caught:
            await service.get_session(app_name="app1", user_id="u", session_id="s1")
        with pytest.raises(CorruptDataError) as listed:
            await service.list_events(app_name="app1", user_id="u", session_id="s1")
    for error in (caught.value, listed.value):
        assert isinstance(error, StorageError)
        assert error.table == "sessionEvents"
        assert error.key == {"name": f"{_ENGINE}/sessions/s1/events/e-bad"}
        assert "e-bad" in str(error) and error.__cause__ is not None


async def test_a_session_state_that_is_not_an_object_is_named() -> None:
    async with _service([1, 2], [_GOOD_EVENT]) as service:
        with pytest.raises(CorruptDataError, match="sessionState is a list") as caught:
            await service.get_session(app_name="app1", user_id="u", session_id="s1")
    assert caught.value.key == {"name": f"{_ENGINE}/sessions/s1"}
