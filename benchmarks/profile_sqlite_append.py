"""Where one SQLite `append_event` spends its time, next to the bare aiosqlite floor.

The performance issue's SQLite append target has two parts: ≥ 10x google-adk, and ≥ ½ the rate
of a bare one-row INSERT+COMMIT through aiosqlite. This script explains the second. In one
process, taking turns 50 calls at a time, it times:

- openadk's ``append_event`` on a growing session (the event of ``bench_database.py``: 200
  characters of text and a two-key state delta), split into its phases: Python on the event
  loop before the hop, the hop to the writer thread, the transaction in the thread, and the hop
  back with the Python after it;
- the transaction's statements one by one;
- the floor: ``INSERT INTO f (payload) VALUES (?)`` then ``commit()`` on aiosqlite (two hops);
- a hop to openadk's writer thread that runs nothing;

and counts the WAL frames (pages) one append writes against the floor's.

```bash
.venv/bin/python benchmarks/profile_sqlite_append.py            # --appends N (default 3000)
```

It patches two functions of ``openadk.sessions._sqlite`` to take its time stamps, so run it on
its own, not inside a service that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite
from google.genai import types

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, _sqlite

_T = TypeVar("_T")
TEXT = ("lorem ipsum dolor sit amet " * 10)[:200]
ROUND = 50

marks: dict[str, float] = {}
statements: dict[str, list[float]] = collections.defaultdict(list)
_transaction = _sqlite.transaction
_execute = _sqlite.Connection.execute
_run = _sqlite.Worker.run


def _timed_transaction(
    conn: _sqlite.Connection, write: bool, body: Callable[[_sqlite.Connection], _T]
) -> _T:
    marks["begin"] = time.perf_counter()
    try:
        return _transaction(conn, write, body)
    finally:
        marks["end"] = time.perf_counter()


def _timed_execute(
    self: _sqlite.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> sqlite3.Cursor:
    start = time.perf_counter()
    try:
        return _execute(self, sql, params)
    finally:
        statements[" ".join(sql.split())[:64]].append(time.perf_counter() - start)


async def _timed_run(self: _sqlite.Worker, fn: Callable[[_sqlite.Connection], _T]) -> _T:
    marks["put"] = time.perf_counter()
    return await _run(self, fn)


def make_event(i: int) -> Event:
    author = "user" if i % 2 == 0 else "model"
    return Event(
        invocation_id=f"inv-{i // 2}",
        author=author,
        content=types.Content(role=author, parts=[types.Part(text=f"{i:06d} {TEXT}"[:200])]),
        actions=EventActions(state_delta={"turn": i, "last_author": author}),
    )


def us(values: list[float]) -> str:
    mean, p50 = statistics.mean(values) * 1e6, statistics.median(values) * 1e6
    return f"mean {mean:7.1f} µs   p50 {p50:7.1f} µs"


def wal_frames(path: str) -> int:
    log = path + "-wal"
    return (os.path.getsize(log) - 32) // (4096 + 24) if os.path.exists(log) else 0


async def main(appends: int) -> None:
    _sqlite.transaction = _timed_transaction
    _sqlite.Connection.execute = _timed_execute  # type: ignore[method-assign]
    _sqlite.Worker.run = _timed_run  # type: ignore[method-assign]
    folder = tempfile.mkdtemp(prefix="openadk-profile-")
    path = os.path.join(folder, "sessions.db")
    floor_path = os.path.join(folder, "floor.db")
    service = DatabaseSessionService(f"sqlite+aiosqlite:///{path}")
    session = await service.create_session(app_name="profile", user_id="u")
    floor = await aiosqlite.connect(floor_path)
    await floor.execute("PRAGMA journal_mode=WAL")
    await floor.execute("PRAGMA synchronous=NORMAL")
    await floor.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, payload TEXT)")
    await floor.commit()
    lite = service._lite
    assert lite is not None, "the dedicated-thread SQLite path is off"
    events = [make_event(i) for i in range(appends + 100)]
    for event in events[:100]:  # warm-up
        await service.append_event(session, event)
    statements.clear()

    phases: dict[str, list[float]] = {"before": [], "there": [], "thread": [], "back": []}
    totals: dict[str, list[float]] = {"append": [], "floor": [], "hop": []}
    nothing: Callable[[_sqlite.Connection], None] = lambda _conn: None  # noqa: E731
    upcoming = iter(events[100:])
    for _ in range(appends // ROUND):
        for _ in range(ROUND):
            event = next(upcoming)
            start = time.perf_counter()
            await service.append_event(session, event)
            done = time.perf_counter()
            totals["append"].append(done - start)
            phases["before"].append(marks["put"] - start)
            phases["there"].append(marks["begin"] - marks["put"])
            phases["thread"].append(marks["end"] - marks["begin"])
            phases["back"].append(done - marks["end"])
        for _ in range(ROUND):
            start = time.perf_counter()
            await floor.execute("INSERT INTO f (payload) VALUES (?)", (TEXT,))
            await floor.commit()
            totals["floor"].append(time.perf_counter() - start)
        for _ in range(ROUND):
            start = time.perf_counter()
            await lite.writer.run(nothing)
            totals["hop"].append(time.perf_counter() - start)
    sql_total = sum(sum(v) for v in statements.values()) / len(totals["append"])

    # Pages: the frames one append adds to the WAL, with background checkpoints paused.
    lite._background_checkpoints = False
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    first = wal_frames(path)
    for i in range(100):
        await service.append_event(session, make_event(appends + 100 + i))
    frames = (wal_frames(path) - first) / 100
    with sqlite3.connect(floor_path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    first = wal_frames(floor_path)
    for _ in range(100):
        await floor.execute("INSERT INTO f (payload) VALUES (?)", (TEXT,))
        await floor.commit()
    floor_frames = (wal_frames(floor_path) - first) / 100
    await floor.close()
    await service.close()

    append, floor_time = statistics.mean(totals["append"]), statistics.mean(totals["floor"])
    print(f"{len(totals['append'])} appends, taking turns {ROUND} at a time with the floor\n")
    print(f"openadk append_event          {us(totals['append'])}")
    print(f"  Python before the hop       {us(phases['before'])}")
    print(f"  hop to the writer thread    {us(phases['there'])}")
    print(f"  transaction in the thread   {us(phases['thread'])}  (SQL {sql_total * 1e6:.1f} µs)")
    print(f"  hop back and Python after   {us(phases['back'])}")
    print(f"hop to the writer, no SQL     {us(totals['hop'])}")
    print(f"floor: aiosqlite INSERT+COMMIT{us(totals['floor'])}")
    print(f"\nappend rate / floor rate: {floor_time / append:.2f}x (target >= 0.5x)")
    print(f"WAL frames per append: {frames:.1f}; per floor INSERT: {floor_frames:.1f}\n")
    print("statements in the thread (per call):")
    for sql, times in sorted(statements.items(), key=lambda item: -sum(item[1])):
        print(f"  {len(times):6d} x {us(times)}  {sql}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=3000)
    asyncio.run(main(parser.parse_args().appends))
