"""The session browser's pages: size and time of a session page and of the sessions list.

What it checks (issue 15's targets):

- A session page of a 10,000-event session weighs < 150 KB and costs about what the page of a
  10-event session does: the page shows the newest 50 events and loads older ones on request.
- The sessions list of an app with 100,000 sessions pages (first page, and a page 20 pages deep
  through the keyset cursor) as fast as the list of an app with 100 sessions. Measured without
  and with the index the newest-first order wants::

      CREATE INDEX idx_sessions_app_update
          ON sessions (app_name, update_time DESC, user_id DESC, id DESC)

  (created by hand here; the schema has no such index yet, so a migration would add it).

The pages are requested in-process through httpx's ASGI transport from `create_app` (the same
app ``openadk serve`` runs), so the numbers are the server's work: the queries through the
session service, rendering, and nothing of the network. There is no google-adk counterpart to
compare with (google-adk's ``adk web`` is a development UI bound to agents, not a store browser),
so results are reported as ratios between the large and the small case.

Data: SQLite (a temporary file) always; PostgreSQL with ``--postgres`` (a throwaway database on
``postgres@127.0.0.1:5432``). Sessions are written through ``import_sessions`` (one transaction
per session, exact rows) for the event-heavy ones, and as bulk rows for the 100,000 sessions.

How to run (about a minute on SQLite)::

    .venv/bin/python benchmarks/bench_browser.py
    .venv/bin/python benchmarks/bench_browser.py --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from openadk.server import create_app
from openadk.sessions import DatabaseSessionService
from openadk.sessions._admin import import_sessions
from openadk.sessions._schema import sessions as sessions_table
from openadk.sessions._schema import to_db_time

INDEX = (
    "CREATE INDEX idx_sessions_app_update ON sessions "
    "(app_name, update_time DESC, user_id DESC, id DESC)"
)


def session_line(app: str, user: str, session_id: str, events: int, start: float) -> str:
    """One JSON Lines session as `export_sessions` writes it, with ``events`` chat events."""
    history = []
    for n in range(events):
        author = "user" if n % 2 == 0 else "agent"
        history.append(
            {
                "id": f"e{n:06d}",
                "invocationId": f"inv{n // 2}",
                "author": author,
                "timestamp": start + n * 0.001,
                "content": {
                    "role": "user" if author == "user" else "model",
                    "parts": [{"text": f"Message {n}: " + "lorem ipsum dolor sit amet " * 4}],
                },
                "actions": {"stateDelta": {"turn": n} if author == "agent" else {}},
            }
        )
    return json.dumps(
        {
            "id": session_id,
            "appName": app,
            "userId": user,
            "state": {"topic": "bench"},
            "events": history,
            "lastUpdateTime": start + events * 0.001,
        }
    )


async def bulk_sessions(service: DatabaseSessionService, app: str, count: int) -> None:
    """``count`` sessions without events, in batches of bulk INSERTs."""
    now = time.time() - count
    engine: Any = service.engine
    batch = 5000
    for first in range(0, count, batch):
        rows = [
            {
                "app_name": app,
                "user_id": f"user{n % 1000:04d}",
                "id": f"s{n:07d}",
                "state": {},
                "create_time": to_db_time(now + n),
                "update_time": to_db_time(now + n),
            }
            for n in range(first, min(first + batch, count))
        ]
        async with engine.begin() as conn:
            await conn.execute(sessions_table.insert(), rows)


async def timed(client: httpx.AsyncClient, url: str, runs: int) -> tuple[float, int]:
    """Median seconds of ``runs`` GETs of ``url`` (after one warm-up) and the page's bytes."""
    first = await client.get(url)
    assert first.status_code == 200, (url, first.status_code, first.text[:500])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = await client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return statistics.median(times), len(first.content)


async def cursor_deep(client: httpx.AsyncClient, app: str, pages: int) -> str:
    """The URL of the page ``pages`` pages into the app's list (following "Older" links)."""
    url = f"/ui/app?app={app}"
    for _ in range(pages):
        text = (await client.get(url)).text
        marker = 'class="next" rel="next" href="'
        at = text.index(marker) + len(marker)
        url = text[at : text.index('"', at)].replace("&amp;", "&")
    return url


async def run(db_url: str, label: str, runs: int, big: int) -> list[str]:
    lines = []
    async with DatabaseSessionService(db_url) as service:
        await service.prepare_tables()
        start = time.time() - 3600
        report = await import_sessions(
            service,
            [
                session_line("chat", "u1", "ten", 10, start),
                session_line("chat", "u1", "fifty", 50, start + 50),
                session_line("chat", "u1", "tenk", 10_000, start + 100),
            ],
        )
        assert report.imported == 3, report
        await bulk_sessions(service, "small", 100)
        await bulk_sessions(service, "large", big)
        engine: Any = service.engine
        if engine.dialect.name == "postgresql":
            # What autovacuum would have done by now: fresh statistics for the planner.
            from sqlalchemy import text

            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        app = create_app(service)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            ten, ten_bytes = await timed(client, "/ui/session?app=chat&user=u1&id=ten", runs)
            fifty, fifty_bytes = await timed(client, "/ui/session?app=chat&user=u1&id=fifty", runs)
            tenk, tenk_bytes = await timed(client, "/ui/session?app=chat&user=u1&id=tenk", runs)
            older_url = "/ui/session/older?app=chat&user=u1&id=tenk&before=" + (
                f"{start + 100 + 5:.6f}:e005000"
            )
            older, older_bytes = await timed(client, older_url, runs)
            lines.append(f"## {label}")
            lines.append("")
            lines.append("| page | median ms | bytes | ratio |")
            lines.append("| --- | ---: | ---: | ---: |")
            lines.append(f"| session, 10 events | {ten * 1000:.1f} | {ten_bytes:,} | 1.00 |")
            lines.append(
                f"| session, 50 events (a full page) | {fifty * 1000:.1f} | {fifty_bytes:,} | "
                f"{fifty / ten:.2f} |"
            )
            lines.append(
                f"| session, 10,000 events | {tenk * 1000:.1f} | {tenk_bytes:,} | "
                f"{tenk / ten:.2f} |"
            )
            lines.append(
                f"| 50 older events (from the middle of 10,000) | {older * 1000:.1f} | "
                f"{older_bytes:,} | {older / ten:.2f} |"
            )
            for indexed in (False, True):
                if indexed:
                    async with engine.begin() as conn:
                        from sqlalchemy import text

                        await conn.execute(text(INDEX))
                small_first, _ = await timed(client, "/ui/app?app=small", runs)
                large_first, _ = await timed(client, "/ui/app?app=large", runs)
                deep_url = await cursor_deep(client, "large", 20)
                large_deep, _ = await timed(client, deep_url, runs)
                small_user, _ = await timed(client, "/ui/app?app=small&user=user0007", runs)
                large_user, _ = await timed(client, "/ui/app?app=large&user=user0007", runs)
                note = "with the index" if indexed else "without the index"
                lines.append(
                    f"| sessions list, 100 sessions, first page ({note}) | "
                    f"{small_first * 1000:.1f} | | 1.00 |"
                )
                lines.append(
                    f"| sessions list, {big:,} sessions, first page ({note}) | "
                    f"{large_first * 1000:.1f} | | {large_first / small_first:.2f} |"
                )
                lines.append(
                    f"| sessions list, {big:,} sessions, page 21 ({note}) | "
                    f"{large_deep * 1000:.1f} | | {large_deep / small_first:.2f} |"
                )
                lines.append(
                    f"| one user's sessions: 1 of 100 / {big // 1000} of {big:,} ({note}) | "
                    f"{small_user * 1000:.1f} / {large_user * 1000:.1f} | | "
                    f"{large_user / small_user:.2f} |"
                )
    lines.append("")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    parser.add_argument("--runs", type=int, default=15, help="timed requests per page")
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions of the big app")
    args = parser.parse_args()
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'browser.db'}"
        out += await run(url, "SQLite", args.runs, args.sessions)
    if args.postgres:
        import asyncpg

        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            out += await run(url, "PostgreSQL", args.runs, args.sessions)
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            await admin.close()
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
