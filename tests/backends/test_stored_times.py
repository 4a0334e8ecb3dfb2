"""Times other writers leave in a SQLite database: a REAL Unix epoch instead of datetime text."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from openadk.events import Event
from openadk.sessions import DatabaseSessionService, GetSessionConfig

pytestmark = pytest.mark.asyncio


async def test_real_epoch_times_written_by_other_tools_are_read(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    url = f"sqlite+aiosqlite:///{path}"
    service = DatabaseSessionService(url)
    await service.create_session(app_name="app", user_id="u", session_id="s")
    await service.close()

    # Some google-adk versions and tools store the times as REAL epochs (SQLite keeps any type).
    raw = sqlite3.connect(path)
    for event_id, stamp in (("e1", 1_700_000_000.25), ("e2", 1_700_000_000)):
        data = {"id": event_id, "author": "user", "invocation_id": "i", "timestamp": stamp}
        raw.execute(
            "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, timestamp, "
            "event_data) VALUES (?, 'app', 'u', 's', 'i', ?, ?)",
            (event_id, stamp, json.dumps(data)),
        )
    raw.execute("UPDATE sessions SET create_time = 1699999999, update_time = 1700000000.5")
    raw.commit()
    assert raw.execute("SELECT typeof(timestamp) FROM events ORDER BY id").fetchall() == [
        ("real",),
        ("integer",),
    ]
    assert raw.execute("SELECT typeof(update_time) FROM sessions").fetchone() == ("real",)
    raw.close()

    service = DatabaseSessionService(url)
    try:
        session = await service.get_session(app_name="app", user_id="u", session_id="s")
        assert session is not None
        assert session.last_update_time == 1_700_000_000.5
        assert [(e.id, e.timestamp) for e in session.events] == [
            ("e2", 1_700_000_000.0),
            ("e1", 1_700_000_000.25),
        ]
        recent = await service.get_session(
            app_name="app",
            user_id="u",
            session_id="s",
            config=GetSessionConfig(num_recent_events=1),
        )
        assert recent is not None and [e.id for e in recent.events] == ["e1"]
        listed = await service.list_sessions(app_name="app", user_id="u")
        assert [(s.id, s.last_update_time) for s in listed.sessions] == [("s", 1_700_000_000.5)]
        # The handle read from REAL times appends (its revision marker matches the stored one).
        await service.append_event(session, Event(author="user", invocation_id="i2"))
        again = await service.get_session(app_name="app", user_id="u", session_id="s")
        assert again is not None and len(again.events) == 3
        assert again.last_update_time == session.last_update_time
    finally:
        await service.close()
