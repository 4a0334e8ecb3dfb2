"""google-adk's real ``adk api_server``, its sessions in openadk through ``services.py``.

The server runs as a subprocess with the canned model of `tests.adk.agent_app` (no network);
the session service comes from ``--session_service_uri openadk+sqlite+aiosqlite:///x.db``,
registered by a one-line ``services.py`` in the agents directory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openadk.sessions import DatabaseSessionService

ROOT = Path(__file__).resolve().parents[2]
ADK = Path(sys.executable).with_name("adk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    agents = tmp_path / "agents"
    (agents / "memo").mkdir(parents=True)
    (agents / "memo" / "__init__.py").write_text("from . import agent\n")
    (agents / "memo" / "agent.py").write_text("from tests.adk.agent_app import root_agent\n")
    # The one line docs/google-adk.md tells users to write.
    (agents / "services.py").write_text("import openadk.adk; openadk.adk.register()\n")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "GOOGLE_GENAI_USE_VERTEXAI": "0",
        "ADK_DISABLE_TELEMETRY": "1",
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(ADK),
            "api_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--session_service_uri",
            "openadk+sqlite+aiosqlite:///x.db",
            "--artifact_service_uri",
            "memory://",
            str(agents),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"adk api_server exited:\n{(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{base}/list-apps", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"adk api_server did not start:\n{(tmp_path / 'server.log').read_text()}"
                )
            time.sleep(0.2)
        yield base, tmp_path / "x.db"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_adk_api_server_stores_sessions_in_openadk(api_server: tuple[str, Path]) -> None:
    base, db_file = api_server
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post(
            "/apps/memo/users/u/sessions", json={"session_id": "s1", "state": {"topic": "pets"}}
        )
        assert created.status_code == 200, created.text
        assert created.json()["id"] == "s1"
        ran = client.post(
            "/run",
            json={
                "app_name": "memo",
                "user_id": "u",
                "session_id": "s1",
                "new_message": {"role": "user", "parts": [{"text": "I like tea"}]},
            },
        )
        assert ran.status_code == 200, ran.text
        assert ran.json()[-1]["content"]["parts"][0]["text"] == "Noted: I like tea (turn 1)"
        read = client.get("/apps/memo/users/u/sessions/s1")
        assert read.status_code == 200, read.text
        body = read.json()
        assert len(body["events"]) == 4
        assert body["state"]["user:last_fact"] == "I like tea"
        listed = client.get("/apps/memo/users/u/sessions").json()
        assert [s["id"] for s in listed] == ["s1"]

    # The file is openadk's (google-adk's V1 schema plus openadk's own tables, which only
    # openadk creates), in the server's working directory.
    with sqlite3.connect(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sessions", "events", "openadk_session_expiry"} <= tables

    async def read_back() -> None:
        async with DatabaseSessionService(f"sqlite+aiosqlite:///{db_file}") as service:
            session = await service.get_session(app_name="memo", user_id="u", session_id="s1")
            assert session is not None
            assert [e.id for e in session.events] == [e["id"] for e in body["events"]]
            assert session.state["last_answer"] == "Noted: I like tea (turn 1)"
            assert session.state["app:facts_seen"] == 1

    asyncio.run(read_back())
