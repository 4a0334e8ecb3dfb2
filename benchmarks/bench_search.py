"""Benchmark of openadk's additions: label-filtered listing, full-text search, indexed appends.

google-adk has neither labels nor search, so there is no side-by-side ratio for those; the
append with the index kept is reported as a ratio to the same append without it (the target is
within 1.3x).

Data is built with bulk SQL (one multi-row INSERT per 5,000 rows), not through the service:

1. ``list_sessions(labels={"team": "t7"}, limit=100)`` over ``--sessions`` sessions (default
   100,000) of which 1 in 100 carries the label (1,000 matching).
2. ``search_events`` over ``--events`` events (default 1,000,000; 200 sessions' worth of
   generated sentences from a 5,000-word vocabulary), p50/p95 of 200 queries of two words.
3. ``append_event`` with the search index kept vs. with it switched off (1,000 appends each,
   taking turns 50 at a time), and the ratio of their p50 and mean times. On SQLite an append
   puts its index row in the pending list; the p99 includes the appends that wait behind the
   writer's flush of 256 pending rows into the FTS5 table.
4. ``search_events`` right after 10 appends (on SQLite it first flushes the pending rows).

Run: ``python benchmarks/bench_search.py [--db sqlite|postgres] [--sessions N] [--events N]``.
PostgreSQL uses a throwaway database on ``postgres@127.0.0.1:5432``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from google.genai import types
from sqlalchemy import text

from openadk.events import Event
from openadk.sessions import DatabaseSessionService
from openadk.sessions._schema import session_labels, sessions, to_db_time
from openadk.sessions._search import INSERT, family, index_params

APP = "bench"
BATCH = 5_000
APPEND_ROUNDS = 20
APPEND_BATCH = 50


def _words(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(n))


async def _bulk(
    service: DatabaseSessionService, statement: Any, rows: list[dict[str, Any]]
) -> None:
    engine: Any = service.engine
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(statement, rows[start : start + BATCH])


async def build_sessions(service: DatabaseSessionService, count: int) -> None:
    now = time.time()
    rows = [
        {
            "app_name": APP,
            "user_id": f"u{i % 1000}",
            "id": f"s{i}",
            "state": "{}" if service.engine.dialect.name != "postgresql" else {},
            "create_time": to_db_time(now - count + i),
            "update_time": to_db_time(now - count + i),
        }
        for i in range(count)
    ]
    await _bulk(service, sessions.insert(), rows)
    labels = [
        {
            "app_name": APP,
            "user_id": f"u{i % 1000}",
            "session_id": f"s{i}",
            "key": "team",
            "value": f"t{i % 100}",
        }
        for i in range(count)
    ]
    await _bulk(service, session_labels.insert(), labels)


async def build_events(service: DatabaseSessionService, count: int) -> list[str]:
    rng = random.Random(7)
    vocabulary = [f"w{n}x" for n in range(5_000)]
    fam = family(service.engine.dialect.name)
    rows = []
    now = time.time() - count
    for i in range(count):
        rows.append(
            index_params(
                fam,
                APP,
                f"u{i % 1000}",
                f"s{i % 200}",
                (f"e{i}", "user", now + i, _words(rng, vocabulary, 12)),
            )
        )
    await _bulk(service, INSERT[fam], rows)
    return vocabulary


async def timed(call: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"p50 {statistics.median(values) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms (n={len(values)})"
    )


async def run(url: str, n_sessions: int, n_events: int) -> dict[str, Any]:
    service = DatabaseSessionService(url)
    await service.prepare_tables()
    results: dict[str, Any] = {"url": url.split("@")[-1]}
    started = time.perf_counter()
    await build_sessions(service, n_sessions)
    vocabulary = await build_events(service, n_events)
    engine: Any = service.engine
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    results["build_seconds"] = round(time.perf_counter() - started, 1)

    async def listing() -> None:
        page = await service.list_sessions(app_name=APP, labels={"team": "t7"}, limit=100)
        assert len(page.sessions) == min(100, n_sessions // 100)

    results["list_by_label"] = _ms(await timed(listing, 50))
    rng = random.Random(3)

    async def search() -> None:
        query = f"{rng.choice(vocabulary)} {rng.choice(vocabulary)}"
        await service.search_events(app_name=APP, query=query)

    results["search"] = _ms(await timed(search, 200))

    def said(n: int) -> Event:
        return Event(
            author="user",
            invocation_id=f"e-{uuid.uuid4()}",
            content=types.Content(
                role="user", parts=[types.Part(text=_words(rng, vocabulary, 30) + f" {n}")]
            ),
        )

    # The two kinds of append take turns, 50 at a time, so drifting machine load falls on both.
    sessions_by_mode = {
        indexed: await service.create_session(app_name=f"{APP}-append", user_id="u")
        for indexed in (False, True)
    }
    times: dict[bool, list[float]] = {False: [], True: []}
    for turn in range(2 * APPEND_ROUNDS):
        indexed = turn % 2 == 1
        service._search_on = indexed
        for n in range(APPEND_BATCH):
            event = said(n)
            start = time.perf_counter()
            await service.append_event(sessions_by_mode[indexed], event)
            times[indexed].append(time.perf_counter() - start)
    service._search_on = True
    results["append_without_index"] = _ms(times[False])
    results["append_with_index"] = _ms(times[True])
    results["append_ratio_p50"] = round(
        statistics.median(times[True]) / statistics.median(times[False]), 2
    )
    results["append_ratio_mean"] = round(
        statistics.fmean(times[True]) / statistics.fmean(times[False]), 2
    )

    # A search right after appends (the same kind of query as above): on SQLite it first moves
    # the rows still pending into the FTS5 table (here 10 appends' worth).
    session = sessions_by_mode[True]

    async def search_after_appends() -> None:
        for n in range(10):
            await service.append_event(session, said(n))
        start = time.perf_counter()
        query = f"{rng.choice(vocabulary)} {rng.choice(vocabulary)}"
        await service.search_events(app_name=APP, query=query)
        after_times.append(time.perf_counter() - start)

    after_times: list[float] = []
    for _ in range(50):
        await search_after_appends()
    results["search_after_10_appends"] = _ms(after_times)
    await service.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.db == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="openadk-bench-search-"))
        print(
            json.dumps(
                await run(f"sqlite+aiosqlite:///{folder / 'b.db'}", args.sessions, args.events),
                indent=2,
            )
        )
        return
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        print(json.dumps(await run(url, args.sessions, args.events), indent=2))
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
