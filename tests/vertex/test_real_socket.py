"""`openadk serve` over TCP: three client processes share a session stored in PostgreSQL."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update

from openadk.errors import SessionNotFoundError
from openadk.events import Event
from openadk.sessions import DatabaseSessionService, VertexAiSessionService
from openadk.sessions._schema import session_expiry, to_db_time
from tests.vertex.serving import POSTGRES_URL, Served, free_port, start_server

API_KEY = "socket-test-key"

CLIENT = r"""
import asyncio, json, os, sys
from google.genai import types
from openadk.events import Event, EventActions
from openadk.sessions import VertexAiSessionService

async def main(step, url, key, app, session_id):
    async with VertexAiSessionService(api_endpoint=url, express_mode_api_key=key) as service:
        def say(text, delta):
            return Event(
                author="user",
                invocation_id=f"e-{os.getpid()}",
                content=types.Content(role="user", parts=[types.Part(text=text)]),
                actions=EventActions(state_delta=delta),
            )
        if step == "create":
            session = await service.create_session(
                app_name=app, user_id="u1", session_id=session_id, state={"step": 1},
                exist_ok=False,
            )
            await service.append_event(session, say("from the creator", {"creator": os.getpid()}))
        elif step == "append":
            session = await service.get_session(app_name=app, user_id="u1", session_id=session_id)
            await service.append_event(
                session, say("from the appender", {"step": 2, "appender": os.getpid(),
                                                   "user:seen": True})
            )
        else:
            session = await service.get_session(app_name=app, user_id="u1", session_id=session_id)
            print(json.dumps({
                "pid": os.getpid(),
                "state": session.state,
                "texts": [e.content.parts[0].text for e in session.events],
            }))

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = start_server(POSTGRES_URL, api_key=API_KEY)
    try:
        yield served
    finally:
        served.stop()


def run_client(step: str, served: Served, app: str, session_id: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, step, served.url, API_KEY, app, session_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{step} failed:\n{done.stderr}\nserver log:\n{served.log()}"
    return done.stdout


@pytest.mark.asyncio
async def test_three_processes_share_a_session_through_postgres(server: Served) -> None:
    app, session_id = f"app-{uuid.uuid4().hex[:10]}", f"s-{uuid.uuid4().hex[:10]}"
    run_client("create", server, app, session_id)
    run_client("append", server, app, session_id)
    seen = json.loads(run_client("read", server, app, session_id))
    assert seen["texts"] == ["from the creator", "from the appender"]
    state = seen["state"]
    assert state["step"] == 2 and state["user:seen"] is True
    assert len({state["creator"], state["appender"], seen["pid"]}) == 3
    # The rows are in PostgreSQL, readable without the server.
    async with DatabaseSessionService(POSTGRES_URL) as database:
        stored = await database.get_session(app_name=app, user_id="u1", session_id=session_id)
    assert stored is not None
    assert stored.state == state
    assert [e.content.parts[0].text for e in stored.events if e.content and e.content.parts] == [
        "from the creator",
        "from the appender",
    ]


@pytest.mark.asyncio
async def test_expiry_over_a_socket(server: Served) -> None:
    # The server is another process, so its clock cannot be moved (the contract's expiry test
    # moves the clock of in-process servers): the stored expiry is moved into the past instead.
    app = f"app-{uuid.uuid4().hex[:10]}"
    short, long = f"short-{uuid.uuid4().hex[:10]}", f"long-{uuid.uuid4().hex[:10]}"
    async with (
        VertexAiSessionService(api_endpoint=server.url, express_mode_api_key=API_KEY) as client,
        DatabaseSessionService(POSTGRES_URL) as database,
    ):
        before = time.time()
        created = await client.create_session(
            app_name=app, user_id="u1", session_id=short, ttl=3600, state={"k": 1}
        )
        await client.create_session(app_name=app, user_id="u1", session_id=long, ttl=7200)
        await client.append_event(created, Event(author="user", invocation_id="e-1"))
        key = (session_expiry.c.app_name == app, session_expiry.c.session_id == short)
        async with database.engine.connect() as conn:  # type: ignore[union-attr]
            stored = (await conn.execute(select(session_expiry.c.expire_time).where(*key))).one()
            # The ttl reached the server: it expires an hour after the create (a wide margin,
            # not a timing check: the create took well under 10 minutes).
            expires = stored.expire_time.replace(tzinfo=datetime.timezone.utc).timestamp()
            assert before + 3600 <= expires <= time.time() + 3600 + 1
            assert await client.get_session(app_name=app, user_id="u1", session_id=short)
            await conn.execute(
                update(session_expiry).where(*key).values(expire_time=to_db_time(before - 60))
            )
            await conn.commit()
        assert await client.get_session(app_name=app, user_id="u1", session_id=short) is None
        listed = await client.list_sessions(app_name=app, user_id="u1")
        assert [s.id for s in listed.sessions] == [long]
        with pytest.raises(SessionNotFoundError):
            await client.append_event(created, Event(author="user", invocation_id="e-2"))
        again = await client.create_session(app_name=app, user_id="u1", session_id=short)
        assert again.events == [] and again.state == {}


def test_requests_without_the_key_are_refused(server: Served) -> None:
    url = f"{server.url}/v1beta1/reasoningEngines/a/sessions"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert (
        httpx.get(url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=10).status_code
        == 200
    )


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:  # pragma: no cover
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_without_a_key_it_binds_to_loopback_only_and_says_so() -> None:
    served = start_server("memory", extra=("--host", "0.0.0.0"))
    try:
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
        port = int(served.url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        served.stop()
    log = served.log()
    assert "no API key configured, so listening on 127.0.0.1 only (not 0.0.0.0)" in log


def test_serve_reports_a_bad_database_url() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openadk",
            "serve",
            "--db",
            "nosuchdb://x",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "openadk serve:" in done.stderr and "nosuchdb" in done.stderr
