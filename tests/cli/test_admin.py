"""``openadk sessions ...`` and ``openadk migrate-from`` end to end, on real databases."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService
from openadk.sessions._admin import copy_database, import_sessions
from tests.contract.backends import MYSQL, POSTGRES


def cli(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "openadk", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )


async def fill(url: str, app: str, sessions: int = 3, events: int = 4) -> None:
    async with DatabaseSessionService(url) as service:
        for s in range(sessions):
            session = await service.create_session(
                app_name=app,
                user_id=f"user{s % 2}",
                session_id=f"s{s}",
                state={"app:plan": "pro", "user:lang": f"l{s % 2}", "n": s},
            )
            for e in range(events):
                await service.append_event(
                    session,
                    Event(
                        author="user" if e % 2 == 0 else "agent",
                        invocation_id=f"inv-{e // 2}",
                        content=types.Content(parts=[types.Part(text=f"message {e}")]),
                        actions=EventActions(state_delta={"count": e, "temp:t": 1}),
                    ),
                )


async def snapshot(url: str, app: str) -> list[Any]:
    async with DatabaseSessionService(url) as service:
        listed = await service.list_sessions(app_name=app)
        result = []
        for item in listed.sessions:
            session = await service.get_session(
                app_name=app, user_id=item.user_id, session_id=item.id
            )
            assert session is not None
            result.append(
                (
                    session.id,
                    session.user_id,
                    session.state,
                    session.last_update_time,
                    [json.loads(e.model_dump_json()) for e in session.events],
                )
            )
        return result


@pytest.mark.parametrize(
    "dest", [f"postgresql+asyncpg://{POSTGRES}", f"mysql+aiomysql://{MYSQL}?charset=utf8mb4"]
)
def test_migrate_from_sqlite_to_a_server_is_exact_resumable_and_verified(
    tmp_path: Path, dest: str
) -> None:
    app = f"mig-{uuid.uuid4().hex[:8]}"
    source = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    asyncio.run(fill(source, app))
    first = cli("migrate-from", source, dest, "--batch-size", "5", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verified: every source row is in DEST" in first.stdout
    assert asyncio.run(snapshot(dest, app)) == asyncio.run(snapshot(source, app))
    again = cli("migrate-from", source, dest, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "verified: every source row is in DEST" in again.stdout


def test_an_interrupted_copy_completes_when_run_again(tmp_path: Path) -> None:
    app = f"int-{uuid.uuid4().hex[:8]}"
    source = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    dest = f"sqlite+aiosqlite:///{tmp_path / 'dst.db'}"
    asyncio.run(fill(source, app, sessions=4, events=6))

    class Interrupted(Exception):
        pass

    def stop_after_first_event_batch(table: str, done: int, total: int) -> None:
        if table == "events" and done < total:
            raise Interrupted

    async def run(progress: Any) -> Any:
        src, dst = DatabaseSessionService(source), DatabaseSessionService(dest)
        try:
            return await copy_database(src, dst, batch_size=5, progress=progress)
        finally:
            await src.close()
            await dst.close()

    with pytest.raises(Interrupted):
        asyncio.run(run(stop_after_first_event_batch))
    report = asyncio.run(run(None))
    assert report.verified
    assert report.copied["events"] == 24 - 5
    assert report.skipped["events"] == 5
    assert asyncio.run(snapshot(dest, app)) == asyncio.run(snapshot(source, app))


def test_migrate_from_refuses_the_same_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    out = cli("migrate-from", url, url, cwd=tmp_path)
    assert out.returncode == 2
    assert "same database" in out.stderr


def test_export_then_import_round_trips_exactly(tmp_path: Path) -> None:
    app = f"exp-{uuid.uuid4().hex[:8]}"
    source = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    dest = f"sqlite+aiosqlite:///{tmp_path / 'dst.db'}"
    asyncio.run(fill(source, app))
    out = cli("sessions", "export", "--db", source, "--app", app, "-o", "dump.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "dump.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["appName"] == app  # google-adk's camelCase JSON
    imported = cli("sessions", "import", "dump.jsonl", "--db", dest, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "imported 3, replaced 0, skipped 0" in imported.stdout
    assert asyncio.run(snapshot(dest, app)) == asyncio.run(snapshot(source, app))
    again = cli("sessions", "import", "dump.jsonl", "--db", dest, cwd=tmp_path)
    assert "imported 0, replaced 0, skipped 3" in again.stdout


def test_import_reports_malformed_lines_and_keeps_the_good_ones(tmp_path: Path) -> None:
    dest = f"sqlite+aiosqlite:///{tmp_path / 'dst.db'}"
    good = json.dumps({"id": "ok", "appName": "a", "userId": "u", "state": {"k": 1}})
    lines = "\n".join(["{not json", good, json.dumps({"id": "", "appName": "a", "userId": "u"})])
    out = cli("sessions", "import", "-", "--db", dest, cwd=tmp_path, stdin=lines)
    assert out.returncode == 1
    assert "line 1: not JSON" in out.stderr and "line 3: field id:" in out.stderr
    assert "imported 1" in out.stdout

    async def check() -> None:
        async with DatabaseSessionService(dest) as service:
            listed = await service.list_sessions(app_name="a")
            assert [s.id for s in listed.sessions] == ["ok"]

    asyncio.run(check())


def test_list_show_delete_and_prune(tmp_path: Path) -> None:
    app = f"ops-{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    asyncio.run(fill(url, app))
    env = {"DATABASE_URL": url}
    listed = cli("sessions", "list", "--app", app, "--limit", "2", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 2 and "next page: --page-token" in listed.stderr
    shown = cli("sessions", "show", "--app", app, "--user", "user0", "s0", cwd=tmp_path, env=env)
    assert "user> message 0" in shown.stdout and "agent> message 1" in shown.stdout
    assert '"app:plan": "pro"' in shown.stdout
    missing = cli(
        "sessions", "show", "--app", app, "--user", "user0", "nope", cwd=tmp_path, env=env
    )
    assert missing.returncode == 1
    deleted = cli(
        "sessions", "delete", "--app", app, "--user", "user0", "s0", cwd=tmp_path, env=env
    )
    assert deleted.returncode == 0 and "deleted session s0" in deleted.stdout
    time.sleep(1.1)
    dry = cli(
        "sessions", "prune", "--older-than", "1s", "--app", app, "--dry-run", cwd=tmp_path, env=env
    )
    assert "would delete 2 session(s)" in dry.stderr and len(dry.stdout.splitlines()) == 2
    pruned = cli("sessions", "prune", "--older-than", "1s", "--app", app, cwd=tmp_path, env=env)
    assert "deleted 2 session(s)" in pruned.stderr
    bad = cli("sessions", "prune", "--older-than", "soon", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "30d" in bad.stderr

    async def left() -> int:
        async with DatabaseSessionService(url) as service:
            return len((await service.list_sessions(app_name=app)).sessions)

    assert asyncio.run(left()) == 0


def test_import_api_refuses_bad_sessions_without_writing(tmp_path: Path) -> None:
    async def run() -> Any:
        async with DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 'i.db'}") as service:
            return await import_sessions(service, ['{"id": "x" }', ""])

    report = asyncio.run(run())
    assert report.imported == 0
    assert report.errors and report.errors[0].startswith("line 1:")


def test_trim_and_delete_user(tmp_path: Path) -> None:
    app = f"trim-{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'trim.db'}"
    asyncio.run(fill(url, app, sessions=2, events=6))
    env = {"DATABASE_URL": url}
    # Events come in invocations of two; keeping 3 keeps the whole invocation of the third.
    out = cli(
        "sessions",
        "trim",
        "--app",
        app,
        "--user",
        "user0",
        "s0",
        "--keep-last",
        "3",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "deleted 2 event(s)" in out.stdout
    missing = cli(
        "sessions",
        "trim",
        "--app",
        app,
        "--user",
        "user0",
        "nope",
        "--keep-last",
        "1",
        cwd=tmp_path,
        env=env,
    )
    assert missing.returncode == 1 and "No session nope for user user0" in missing.stderr
    erased = cli("sessions", "delete-user", "--app", app, "--user", "user1", cwd=tmp_path, env=env)
    assert "erased user user1: 1 session(s)" in erased.stdout

    async def check() -> tuple[int, dict[str, Any]]:
        async with DatabaseSessionService(url) as service:
            session = await service.get_session(app_name=app, user_id="user0", session_id="s0")
            assert session is not None
            return len(session.events), await service.get_user_state(app_name=app, user_id="user1")

    assert asyncio.run(check()) == (4, {})


def test_prune_expired_and_copy_keeps_expiry(tmp_path: Path) -> None:
    app = f"ttl-{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'ttl.db'}"
    copy = f"sqlite+aiosqlite:///{tmp_path / 'ttl-copy.db'}"

    async def make() -> None:
        async with DatabaseSessionService(url) as service:
            await service.create_session(app_name=app, user_id="u", session_id="brief", ttl=1)
            await service.create_session(app_name=app, user_id="u", session_id="day", ttl=86400)
            await service.create_session(app_name=app, user_id="u", session_id="always")

    asyncio.run(make())
    copied = cli("migrate-from", url, copy, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    time.sleep(1.2)
    env = {"DATABASE_URL": url}
    none = cli("sessions", "prune", cwd=tmp_path, env=env)
    assert none.returncode == 2 and "--expired" in none.stderr
    out = cli("sessions", "prune", "--expired", cwd=tmp_path, env=env)
    assert "deleted 1 session(s)" in out.stderr and "brief" in out.stdout

    async def remaining(database: str) -> set[str]:
        async with DatabaseSessionService(database) as service:
            return {s.id for s in (await service.list_sessions(app_name=app)).sessions}

    assert asyncio.run(remaining(url)) == {"day", "always"}
    # The copy kept the expiry: the brief session has expired there too.
    assert asyncio.run(remaining(copy)) == {"day", "always"}
