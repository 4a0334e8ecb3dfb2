"""``openadk sessions search/label/rename/fork`` end to end on a SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from google.genai import types

from openadk.events import Event
from openadk.sessions import DatabaseSessionService
from tests.cli.test_admin import cli


async def _fill(url: str) -> None:
    async with DatabaseSessionService(url) as service:
        session = await service.create_session(app_name="shop", user_id="ann", session_id="s1")
        for n, text in enumerate(["Where is my parcel?", "Your parcel left on Monday."]):
            await service.append_event(
                session,
                Event(
                    author="user" if n == 0 else "agent",
                    invocation_id=f"inv-{n}",
                    content=types.Content(role="user", parts=[types.Part(text=text)]),
                ),
            )


def test_label_rename_fork_search(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(_fill(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"))
    done = cli(
        "sessions", "label", "--db", url, "--user", "ann", "s1", "team=a", "vip=yes", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "team=a, vip=yes" in done.stdout
    done = cli(
        "sessions", "label", "--db", url, "--user", "ann", "s1", "--remove", "vip", cwd=tmp_path
    )
    assert "team=a" in done.stdout and "vip" not in done.stdout
    bad = cli("sessions", "label", "--db", url, "--user", "ann", "s1", "Team=a", cwd=tmp_path)
    assert bad.returncode != 0 and "Invalid label key 'Team'" in bad.stderr
    done = cli("sessions", "rename", "--db", url, "--user", "ann", "s1", "Parcel", cwd=tmp_path)
    assert done.returncode == 0 and "Parcel" in done.stdout
    done = cli(
        "sessions",
        "fork",
        "--db",
        url,
        "--user",
        "ann",
        "s1",
        "--new-id",
        "s2",
        "--up-to",
        "inv-0",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "s2"
    missing = cli("sessions", "fork", "--db", url, "--user", "ann", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "No session nope" in missing.stderr
    done = cli("sessions", "search", "--db", url, "parcel", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [(r[2], r[4]) for r in rows] == [("s1", "agent"), ("s2", "user"), ("s1", "user")]
    assert "**parcel**" in rows[0][5]
    done = cli("sessions", "search", "--db", url, "--json", '"monday*', cwd=tmp_path)
    hits = json.loads(done.stdout)["hits"]
    assert [h["session_id"] for h in hits] == ["s1"]
    empty = cli("sessions", "search", "--db", url, "()", cwd=tmp_path)
    assert empty.returncode != 0 and "no word to look for" in empty.stderr
    shown = cli("sessions", "show", "--db", url, "--json", "--user", "ann", "s2", cwd=tmp_path)
    data = json.loads(shown.stdout)
    assert data["displayName"] == "Parcel"
    assert data["labels"] == {"team": "a", "forked-from": "s1"}
