"""The reliability checks themselves: tampering with stored rows must be reported.

A check that never fails proves nothing; each kind of damage the suites look for is made by hand
here, and the checks must name it.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from openadk.errors import StorageError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService
from openadk.sessions._schema import events, sessions
from tests.reliability import _crash, _faults
from tests.reliability._common import check_sessions, read_app


async def _seeded(tmp_path: Path) -> tuple[DatabaseSessionService, str, list[dict[str, str]]]:
    service = DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path}/h.db")
    app = "harness"
    acks = []
    for session_id in _crash.SESSIONS:
        await service.create_session(app_name=app, user_id=_crash.USER, session_id=session_id)
    session = await service.get_session(app_name=app, user_id=_crash.USER, session_id="a")
    assert session is not None
    for i in range(3):
        event_id = f"r0-{i:06d}"
        delta = {"last": event_id, "n": i, "app:last": event_id, "user:last": event_id}
        event = Event(id=event_id, author="w", actions=EventActions(state_delta=delta))
        await service.append_event(session, event)
        acks.append({"id": event_id, "session": "a"})
    return service, app, acks


def test_commit_order_of_crash_event_ids() -> None:
    # Round 10 comes after round 9 (a string sort would put it first).
    ids = ["r10-000001", "r9-000002", "r10-000000", "r9-000010"]
    assert sorted(ids, key=_crash._position) == [
        "r9-000002",
        "r9-000010",
        "r10-000000",
        "r10-000001",
    ]


@pytest.mark.asyncio
async def test_untouched_rows_pass(tmp_path: Path) -> None:
    service, app, acks = await _seeded(tmp_path)
    await service.close()
    figures = await _crash._verify(f"sqlite+aiosqlite:///{tmp_path}/h.db", app, acks)
    assert figures["problems"] == []
    assert figures["stored"] == figures["acknowledged"] == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("lose an event", "is not stored"),
        ("rewrite the state", "fold of deltas"),
        ("reorder", "timestamp"),
        ("corrupt a row", "does not parse"),
        ("move update_time", "update_time"),
    ],
)
async def test_damage_is_reported(tmp_path: Path, damage: str, reported: str) -> None:
    service, app, acks = await _seeded(tmp_path)
    one = events.c.id == "r0-000001"
    statement = {
        "lose an event": delete(events).where(one),
        "rewrite the state": update(sessions).where(sessions.c.id == "a").values(state={"n": 7}),
        "reorder": update(events).where(one).values(timestamp=datetime.datetime(2000, 1, 1)),
        "corrupt a row": update(events).where(one).values(event_data='{"id": 5, "author": [}'),
        "move update_time": update(sessions)
        .where(sessions.c.id == "a")
        .values(update_time=datetime.datetime(2001, 1, 1)),
    }[damage]
    try:
        async with service.engine.begin() as conn:  # type: ignore[union-attr]
            await conn.execute(statement)
        stored = await read_app(service.engine, app)  # type: ignore[arg-type]
    finally:
        await service.close()
    figures = await _crash._verify(f"sqlite+aiosqlite:///{tmp_path}/h.db", app, acks)
    problems = figures["problems"] + check_sessions(stored)
    assert any(reported in p for p in problems), problems


def test_a_writer_that_gives_up_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every append fails as a dropped connection does: each writer must report the event it
    # gave up on, not end quietly with the event neither stored nor counted as lost.
    async def always_fails(self: DatabaseSessionService, session: Any, event: Event) -> Event:
        raise StorageError("append_event failed: the connection was closed")

    monkeypatch.setattr(_faults, "APPEND_ATTEMPTS", 3)
    monkeypatch.setattr(DatabaseSessionService, "append_event", always_fails)
    figures = _faults.pg_terminate("asyncpg", writers=2, seconds=0.2, interval=(1.0, 1.0))
    gave_up = [p for p in figures["problems"] if "gave up after 3 attempts" in p]
    assert len(gave_up) == 2, figures["problems"]
    assert "last error: append_event failed: the connection was closed" in gave_up[0]
