"""A posted ``rawEvent`` that could not be stored and read back exactly is a 400 naming the field.

The bodies are written as JSON text, because Python's JSON parser (which the server uses)
accepts ``NaN``, ``Infinity`` and numbers of any length that strict JSON encoders never write.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from openadk.server import create_app
from openadk.sessions import BaseSessionService, DatabaseSessionService, InMemorySessionService
from openadk.sessions._vertex import format_time
from tests.server.conftest import API_KEY, BASE, PARENT

pytestmark = pytest.mark.asyncio

_HUGE = "1" * 400


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BaseSessionService]:
    made: BaseSessionService
    if request.param == "memory":
        made = InMemorySessionService()
    else:
        made = DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path}/raw.db")
    yield made
    await made.close()


@pytest_asyncio.fixture
async def client(store: BaseSessionService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, api_key=API_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"x-goog-api-key": API_KEY}
    ) as http:
        yield http


def _body(raw_event: str) -> bytes:
    stamp = format_time(time.time())
    return (
        f'{{"author": "user", "invocationId": "e-1", "timestamp": "{stamp}", '
        f'"rawEvent": {raw_event}}}'
    ).encode()


@pytest.mark.parametrize(
    ("raw_event", "field"),
    [
        ('{"branch": 5}', "branch"),
        ('{"content": "hello"}', "content"),
        ('{"customMetadata": "x"}', "customMetadata"),
        ('{"actions": {"transferToAgent": 3}}', "transferToAgent"),
        ('{"actions": {"artifactDelta": {"f.txt": "v1"}}}', "artifactDelta"),
        ('{"actions": null}', "actions"),
        ('{"actions": {"stateDelta": null}}', "stateDelta"),
        ('{"avgLogprobs": NaN}', "avg_logprobs"),
        ('{"avgLogprobs": Infinity}', "avg_logprobs"),
        ('{"avgLogprobs": 1e999}', "avg_logprobs"),
        ('{"customMetadata": {"x": NaN}}', "custom_metadata"),
        (
            '{"content": {"role": "model", "parts": [{"functionCall": '
            '{"name": "f", "args": {"x": -Infinity}}}]}}',
            "args",
        ),
        ('{"actions": {"stateDelta": {"k": NaN}}}', "state_delta"),
        (f'{{"timestamp": {_HUGE}}}', "timestamp"),
        (f'{{"timestamp": -{_HUGE}}}', "timestamp"),
        ('{"timestamp": NaN}', "timestamp"),
    ],
)
async def test_bad_raw_event_is_a_400_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, store: BaseSessionService, raw_event: str, field: str
) -> None:
    await store.create_session(app_name="app1", user_id="u1", session_id="s1")
    response = await client.post(
        f"{PARENT}/sessions/s1:appendEvent",
        content=_body(raw_event),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert field.lower().replace("_", "") in error["message"].lower().replace("_", ""), error[
        "message"
    ]
    got = await store.get_session(app_name="app1", user_id="u1", session_id="s1")
    assert got is not None and got.events == [] and got.state == {}
    # The session still takes a good event.
    good = await client.post(
        f"{PARENT}/sessions/s1:appendEvent",
        content=_body('{"customMetadata": {"x": 1.5}}'),
        headers={"content-type": "application/json"},
    )
    assert good.status_code == 200, good.text
