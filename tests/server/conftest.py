from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from openadk.server import create_app
from openadk.sessions import InMemorySessionService

API_KEY = "test-key"
BASE = "http://openadk.test"
LOCAL = "http://127.0.0.1:8080"
"""Where a server without a key is reached: it answers loopback Host names only."""
PARENT = "/v1beta1/projects/p/locations/us-central1/reasoningEngines/app1"


@pytest_asyncio.fixture
async def store() -> InMemorySessionService:
    return InMemorySessionService()


@pytest_asyncio.fixture
async def client(store: InMemorySessionService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, api_key=API_KEY, max_body_bytes=64 * 1024)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        headers={"x-goog-api-key": API_KEY},
    ) as http:
        yield http


@pytest_asyncio.fixture
async def open_client(store: InMemorySessionService) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server without an API key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(store)), base_url=LOCAL
    ) as http:
        yield http
