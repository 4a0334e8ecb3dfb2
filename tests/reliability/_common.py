"""What the reliability harnesses share: database URLs, worker processes, and the log checks.

The checks read the tables directly (not through the service under test), so a bug in the
service's read path cannot hide a bug in its write path.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Text, cast, select, text, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from openadk.events import Event
from openadk.sessions._schema import app_states, events, sessions, user_states
from tests.contract.backends import MYSQL, POSTGRES

REPO = Path(__file__).resolve().parents[2]

URLS = {
    "sqlite": "",  # filled per run: a fresh file
    "postgres": f"postgresql+asyncpg://{POSTGRES}",
    "postgres-psycopg": f"postgresql+psycopg://{POSTGRES}",
    "mariadb": f"mysql+asyncmy://{MYSQL}?charset=utf8mb4",
    "mariadb-aiomysql": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
}


def url_for(backend: str, workdir: Path) -> str:
    """The database URL of ``backend``; SQLite gets a fresh file in ``workdir``."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{workdir}/reliability.db"
    return URLS[backend]


def spawn(module: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    """Starts ``python -m module worker ARGS`` in the repository, with pipes for the handshake."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", module, "worker", json.dumps(args)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    """Waits for a worker's ``ready`` line; raises with its stderr if it died instead."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        _, err = process.communicate(timeout=30)
        raise RuntimeError(f"worker did not start ({line!r}):\n{err}")


def micros(value: datetime.datetime) -> int:
    """A stored (naive UTC) time as integer microseconds since the epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def ts_micros(timestamp: float) -> int:
    """An event timestamp (float seconds) as the microseconds the database stores."""
    return micros(datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc))


@dataclass
class StoredEvent:
    id: str
    session_id: str
    user_id: str
    column_us: int
    event: Event


@dataclass
class StoredApp:
    """Everything stored under one app name, read straight from the tables."""

    sessions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(user_id, session_id) -> {"state": ..., "update_us": ...}"""
    events: dict[tuple[str, str], list[StoredEvent]] = field(default_factory=dict)
    """(user_id, session_id) -> events in stored order (timestamp, id)"""
    app_state: dict[str, Any] = field(default_factory=dict)
    user_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    unparsable: list[str] = field(default_factory=list)
    """Ids of event rows whose event_data does not parse as an Event."""

    def all_events(self) -> Iterable[StoredEvent]:
        for listed in self.events.values():
            yield from listed


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


async def read_app(engine: AsyncEngine, app_name: str) -> StoredApp:
    """Reads every row of ``app_name`` from the four tables, parsing each event row on its own."""
    stored = StoredApp()
    async with engine.connect() as conn:
        for row in await conn.execute(
            select(
                sessions.c.user_id, sessions.c.id, sessions.c.state, sessions.c.update_time
            ).where(sessions.c.app_name == app_name)
        ):
            stored.sessions[(row.user_id, row.id)] = {
                "state": _json(row.state),
                "update_us": micros(row.update_time),
            }
            stored.events.setdefault((row.user_id, row.id), [])
        # The raw text, so that a row that does not parse is reported rather than raised.
        if engine.dialect.name == "postgresql":
            data = cast(events.c.event_data, Text).label("event_data")
        else:
            data = type_coerce(events.c.event_data, Text).label("event_data")
        rows = await conn.execute(
            select(events.c.id, events.c.user_id, events.c.session_id, events.c.timestamp, data)
            .where(events.c.app_name == app_name)
            .order_by(events.c.user_id, events.c.session_id, events.c.timestamp, events.c.id)
        )
        for row in rows:
            try:
                event = Event.model_validate(_json(row.event_data))
            except Exception:
                stored.unparsable.append(row.id)
                continue
            stored.events.setdefault((row.user_id, row.session_id), []).append(
                StoredEvent(row.id, row.session_id, row.user_id, micros(row.timestamp), event)
            )
        app_row = (
            await conn.execute(select(app_states.c.state).where(app_states.c.app_name == app_name))
        ).first()
        stored.app_state = _json(app_row.state) if app_row is not None else {}
        for row in await conn.execute(
            select(user_states.c.user_id, user_states.c.state).where(
                user_states.c.app_name == app_name
            )
        ):
            stored.user_states[row.user_id] = _json(row.state)
    return stored


def fold(deltas: Iterable[dict[str, Any]], start: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state that results from applying ``deltas`` in order (top-level replace)."""
    state = dict(start or {})
    for delta in deltas:
        state.update(delta)
    return state


def split_scopes(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(session keys, app keys without prefix, user keys without prefix); temp keys dropped."""
    own: dict[str, Any] = {}
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith("app:"):
            app[key[4:]] = value
        elif key.startswith("user:"):
            user[key[5:]] = value
        elif not key.startswith("temp:"):
            own[key] = value
    return own, app, user


def check_sessions(stored: StoredApp, *, only_appends: bool = True) -> list[str]:
    """The invariants every stored session keeps, whatever happened to its writers.

    Each event row parses; its JSON timestamp is the timestamp column; timestamps strictly
    increase in stored order; the session's own state is the fold of its events' deltas; and,
    when only appends changed it after creation, its update time is its last event's timestamp.
    """
    problems = [f"event row {i} does not parse" for i in stored.unparsable]
    for key, listed in stored.events.items():
        previous = None
        for item in listed:
            if ts_micros(item.event.timestamp) != item.column_us:
                problems.append(
                    f"{key} event {item.id}: JSON timestamp {item.event.timestamp!r} != column "
                    f"{item.column_us}"
                )
            if previous is not None and item.column_us <= previous:
                problems.append(f"{key} event {item.id}: timestamp not after the previous one")
            previous = item.column_us
            if item.event.id != item.id:
                problems.append(f"{key} event {item.id}: JSON id {item.event.id!r}")
        row = stored.sessions.get(key)
        if row is None:
            if listed:
                problems.append(f"{key}: events without a session row")
            continue
        own = fold(split_scopes(item.event.actions.state_delta)[0] for item in listed)
        if own != row["state"]:
            problems.append(f"{key}: state {row['state']!r} != fold of deltas {own!r}")
        if only_appends and listed and row["update_us"] != listed[-1].column_us:
            problems.append(
                f"{key}: update_time {row['update_us']} != last event {listed[-1].column_us}"
            )
    return problems


async def integrity_ok(engine: AsyncEngine) -> bool:
    """SQLite's ``PRAGMA integrity_check`` (True on other databases)."""
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        result = (await conn.execute(text("PRAGMA integrity_check"))).scalar()
    return bool(result == "ok")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file (a torn last line, from a kill, is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
