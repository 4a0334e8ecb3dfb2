"""``openadk migrate-from`` with Redis: database -> Redis -> database, and google-adk's layout."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, RedisSessionService

pytestmark = pytest.mark.asyncio

REDIS_DB = os.environ.get("OPENADK_TEST_REDIS_MIGRATE", "redis://127.0.0.1:6379/5")
ADK_DB = os.environ.get("OPENADK_TEST_REDIS_ADK", "redis://127.0.0.1:6379/6")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "openadk", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _event(text: str, **delta: Any) -> Event:
    from google.genai import types

    return Event(
        author="user",
        invocation_id="inv",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )


async def test_database_to_redis_to_database(tmp_path: Path) -> None:
    app = f"mig-{uuid.uuid4().hex[:8]}"
    first = f"sqlite+aiosqlite:///{tmp_path}/first.db"
    second = f"sqlite+aiosqlite:///{tmp_path}/second.db"
    async with DatabaseSessionService(first) as db:
        one = await db.create_session(
            app_name=app, user_id="u:1", session_id="s{1}", state={"k": 1, "app:a": "A"}
        )
        for i in range(5):
            await db.append_event(one, _event(f"m{i}", n=i, **{"user:seen": i}))
        await db.create_session(
            app_name=app, user_id="u2", session_id="later", expire_time=time.time() + 3600
        )
    done = await asyncio.to_thread(_cli, "migrate-from", first, REDIS_DB)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout
    async with RedisSessionService(REDIS_DB) as redis:
        got = await redis.get_session(app_name=app, user_id="u:1", session_id="s{1}")
        assert got is not None
        assert [e.id for e in got.events] == [e.id for e in one.events]
        assert got.state == {"k": 1, "n": 4, "app:a": "A", "user:seen": 4}
        later = redis._keys(app, "u2").session("later")[0]
        assert 3_000_000 < await redis.client.pttl(later) <= 3_600_000  # expiry copied
    # Run again: everything is already there.
    again = await asyncio.to_thread(_cli, "migrate-from", first, REDIS_DB)
    assert again.returncode == 0, again.stdout + again.stderr
    # The source goes on; the copy brings DEST up to date.
    async with DatabaseSessionService(first) as db:
        one = await db.get_session(app_name=app, user_id="u:1", session_id="s{1}")  # type: ignore[assignment]
        await db.append_event(one, _event("more", n=99))
    more = await asyncio.to_thread(_cli, "migrate-from", first, REDIS_DB)
    assert more.returncode == 0, more.stdout + more.stderr
    back = await asyncio.to_thread(_cli, "migrate-from", REDIS_DB, second)
    assert back.returncode == 0, back.stdout + back.stderr
    async with DatabaseSessionService(second) as db:
        got = await db.get_session(app_name=app, user_id="u:1", session_id="s{1}")
        assert got is not None and len(got.events) == 6
        assert got.state == {"k": 1, "n": 99, "app:a": "A", "user:seen": 4}
    async with RedisSessionService(REDIS_DB) as redis:
        # A conflicting history in DEST is left alone and reported.
        other = await redis.get_session(app_name=app, user_id="u:1", session_id="s{1}")
        assert other is not None
        await redis.delete_session(app_name=app, user_id="u:1", session_id="s{1}")
        fresh = await redis.create_session(app_name=app, user_id="u:1", session_id="s{1}")
        await redis.append_event(fresh, _event("another conversation"))
    clash = await asyncio.to_thread(_cli, "migrate-from", first, REDIS_DB)
    assert clash.returncode != 0
    assert "DEST holds another session" in clash.stderr
    async with RedisSessionService(REDIS_DB) as redis:
        kept = await redis.get_session(app_name=app, user_id="u:1", session_id="s{1}")
        assert kept is not None and [e.id for e in kept.events] == [e.id for e in fresh.events]
        for user in ("u:1", "u2"):
            await redis.delete_user(app_name=app, user_id=user)


async def test_from_google_adks_redis_layout() -> None:
    from google.adk.events import Event as AdkEvent
    from google.adk.events import EventActions as AdkActions
    from google.adk.integrations.redis import RedisSessionService as AdkRedis
    from google.adk.integrations.redis import RedisSessionServiceConfig

    prefix = f"adk{uuid.uuid4().hex[:6]}:session:"
    adk = AdkRedis(RedisSessionServiceConfig(uri=ADK_DB, key_prefix=prefix, ttl_seconds=3600))
    app = "adk:app"  # a ':' in the app name: the layout's keys are ambiguous, the values are not
    session = await adk.create_session(
        app_name=app, user_id="u:x", session_id="s1", state={"k": "v", "app:a": 1, "user:u": 2}
    )
    for i in range(3):
        await adk.append_event(
            session,
            AdkEvent(author="user", invocation_id="i", actions=AdkActions(state_delta={"n": i})),
        )
    await adk._get_redis().aclose()
    source = f"google-adk+{ADK_DB}?key_prefix={prefix}"
    done = await asyncio.to_thread(_cli, "migrate-from", source, REDIS_DB)
    assert done.returncode == 0, done.stdout + done.stderr
    async with RedisSessionService(REDIS_DB) as redis:
        got = await redis.get_session(app_name=app, user_id="u:x", session_id="s1")
        assert got is not None
        assert [e.id for e in got.events] == [e.id for e in session.events]
        assert got.state == {"k": "v", "n": 2, "app:a": 1, "user:u": 2}
        key = redis._keys(app, "u:x").session("s1")[0]
        assert 0 < await redis.client.pttl(key) <= 3_600_000  # google-adk's TTL carried over
        await redis.delete_user(app_name=app, user_id="u:x")
