"""The session browser's queries (`openadk.sessions._browse`) on every kind of backend.

On a database they are SQL of their own over the session tables; elsewhere they go through the
service's public methods. Both must give the same answers: newest first, keyset pages that
cover every session once, event counts, the first user message, older events in order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from google.genai import types

from openadk.events import Event
from openadk.sessions import BaseSessionService
from openadk.sessions import _browse as browse
from tests.contract.backends import BACKENDS, Backend

_NAMES = {
    "memory",
    "sqlite-file",
    "sqlite-sync-engine",
    "postgres-asyncpg",
    "mariadb-aiomysql",
    "vertex-rest-memory",
}
_CHOSEN = [b for b in BACKENDS if b.name in _NAMES]


@pytest_asyncio.fixture(params=_CHOSEN, ids=lambda b: b.name)
async def service(request: pytest.FixtureRequest) -> AsyncIterator[BaseSessionService]:
    backend: Backend = request.param
    made = await backend.make()
    try:
        yield made
    finally:
        await made.close()


def service_kind(service: BaseSessionService) -> str:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from openadk.sessions import DatabaseSessionService, VertexAiSessionService

    if isinstance(service, VertexAiSessionService):
        return "client"
    if isinstance(service, DatabaseSessionService) and not isinstance(service.engine, AsyncEngine):
        return "sync"
    return "lists apps"


def _say(author: str, text: str, stamp: float) -> Event:
    role = "user" if author == "user" else "model"
    return Event(
        author=author,
        invocation_id="inv",
        timestamp=stamp,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
    )


@pytest.mark.asyncio
async def test_newest_first_pages_cover_every_session_once(service: BaseSessionService) -> None:
    app = f"browse-{uuid.uuid4().hex[:8]}"
    base = time.time() + 10_000
    made = []
    for n in range(7):
        user = "ann" if n % 3 else "ben"
        session = await service.create_session(app_name=app, user_id=user, session_id=f"s{n}")
        for k in range(2 if n == 4 else n % 3):
            author = "agent" if k == 0 and n == 4 else "user"
            await service.append_event(session, _say(author, f"hello {n}.{k}", base + n * 10 + k))
        made.append(session)
    expected = sorted(made, key=lambda s: (s.last_update_time, s.user_id, s.id), reverse=True)

    seen = []
    cursor = None
    pages = 0
    while True:
        page = await browse.newest_sessions(service, app_name=app, cursor=cursor, limit=3)
        seen.extend(page.rows)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert [(r.user_id, r.id) for r in seen] == [(s.user_id, s.id) for s in expected]
    by_id = {r.id: r for r in seen}
    assert by_id["s2"].event_count == 2 and by_id["s2"].first_message == "hello 2.0"
    assert by_id["s3"].event_count == 0 and by_id["s3"].first_message is None
    # s4's first event is the agent's: the first user message is the next one.
    assert by_id["s4"].first_message == "hello 4.1"
    assert by_id["s5"].last_update_time == pytest.approx(base + 51, abs=1e-3)

    bens = await browse.newest_sessions(service, app_name=app, user_id="ben", limit=10)
    assert [r.id for r in bens.rows] == ["s6", "s3", "s0"] and bens.next_cursor is None
    with pytest.raises(ValueError, match="page_token"):
        await browse.newest_sessions(service, app_name=app, cursor="not-a-cursor")


@pytest.mark.asyncio
async def test_events_before_walks_back_through_the_history(service: BaseSessionService) -> None:
    app = f"browse-{uuid.uuid4().hex[:8]}"
    session = await service.create_session(app_name=app, user_id="u", session_id="long")
    base = time.time() + 10_000
    for n in range(23):
        await service.append_event(session, _say("user", f"m{n}", base + n))
    count = await browse.count_events(service, app_name=app, user_id="u", session_id="long")
    assert count == 23
    newest = session.events[-1]
    before = (newest.timestamp, newest.id)
    walked: list[str] = []
    rounds = 0
    while True:
        found, more = await browse.events_before(
            service, app_name=app, user_id="u", session_id="long", before=before, limit=5
        )
        rounds += 1
        walked = [e.content.parts[0].text for e in found if e.content] + walked  # type: ignore[misc]
        if not more:
            break
        before = (found[0].timestamp, found[0].id)
    assert walked == [f"m{n}" for n in range(22)]
    assert rounds == 5


@pytest.mark.asyncio
async def test_app_rows_count_sessions_users_and_last_activity(
    service: BaseSessionService,
) -> None:
    app = f"browse-{uuid.uuid4().hex[:8]}"
    for n, user in enumerate(["a", "a", "b"]):
        session = await service.create_session(app_name=app, user_id=user, session_id=f"s{n}")
        await service.append_event(session, _say("user", "hi", 1_800_000_000.0 + n))
    if service_kind(service) != "lists apps":
        # The REST client (its API has no call), a synchronous driver.
        with pytest.raises(ValueError, match=r"cannot list apps|synchronous driver"):
            await browse.app_rows(service)
        return
    rows = await browse.app_rows(service)
    (row,) = [r for r in rows if r.app_name == app]
    assert (row.sessions, row.users) == (3, 2)
    assert row.last_update_time == pytest.approx(1_800_000_002.0, abs=1e-3)
