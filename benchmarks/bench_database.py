"""Side-by-side benchmark: openadk vs google-adk 2.13 ``DatabaseSessionService``.

Both libraries run in one process against the SAME database (they share google-adk's V1 schema,
so they share the tables) with different app names so their rows never mix:

- SQLite: a temporary file, ``sqlite+aiosqlite:///...`` (put in WAL mode before either service
  opens it; WAL is a property of the file, ``synchronous`` is per connection and each library
  keeps its own default, printed in the header).
- PostgreSQL: a throwaway database ``bench_<random>`` created at start (asyncpg, from the admin
  DSN ``postgresql://postgres@127.0.0.1:5432/test``) and dropped at the end;
  ``postgresql+asyncpg://``.
- MariaDB/MySQL with ``--mysql``: a throwaway database on ``root@127.0.0.1:3306``,
  ``mysql+aiomysql://``.

Each database gets:

0. A floor: a bare one-row INSERT+COMMIT into a scratch table ``bench_floor``, through the raw
   driver (aiosqlite / asyncpg / aiomysql) and through SQLAlchemy Core on an async engine with
   the settings the services use (SQLite: WAL, synchronous=NORMAL, ``BEGIN IMMEDIATE`` like
   openadk; servers: ``pool_pre_ping=True`` like both libraries).
1. ``create_session`` (300 per library, one app, one user: these are the sessions listed in 5).
2. ``append_event`` on one growing session (500 timed appends; each event has 200 characters of
   text and a small ``state_delta``; the same session handle is kept, as both libraries' stale
   checks require), then 500 more untimed to make a 1,000-event session.
3. ``get_session`` of that 1,000-event session (full history).
4. ``get_session(config=GetSessionConfig(num_recent_events=10))`` on a 10-event session (read
   every turn) and on the 1,000-event session of 2, read by an openadk service with its parsed-event
   cache off (``event_cache_size=0``: every read parses what it returns, as a fresh service would).
5. ``list_sessions`` over the 300 sessions of 1.
6. 32 concurrent writers (``asyncio.gather``) on 32 sessions, 20 appends each.
7. 32 concurrent writers on ONE session, 10 appends each, every writer holding its own handle
   (as separate workers would). openadk uses a second service with ``on_stale="merge"``.
   google-adk has no merge mode: a writer that gets ``StaleSessionError`` (or another error)
   re-reads its handle with ``get_session(config=GetSessionConfig(num_recent_events=10))`` and
   retries, at most 50 times per append. Reported: appends/s, retries, errors, events stored,
   events lost, whether the final state holds every writer's last value, and whether the stored
   order (``get_session``) equals (a) commit order, observed with SQLAlchemy engine events (the
   event id a connection INSERTs, recorded when it issues COMMIT; writers hold the session's
   lock until they commit, so that is the order commits take effect) and (b) acknowledgement
   order, the order the ``append_event`` calls returned (asyncio may resume two writers whose
   commits finished close together in either order, so (b) can differ while (a) holds).

Single-call operations are timed per call with ``time.perf_counter`` in alternating blocks (the
library that goes first alternates from block to block); the table shows ops/s (calls / summed
call time), p50 and p99 per call, the ratio openadk ops/s / google-adk ops/s, and the process CPU
time per operation (``time.process_time`` over each library's blocks, every thread included: what
a server handling many users pays). google-adk runs with ``pool_pre_ping=True`` on servers (its
default); openadk with its own defaults. Concurrent
operations show completed appends / wall time and per-append latency (including retries).
A summary at the end checks the targets of issue 12 per database and says MET / NOT MET, prints
the ratio table of docs/benchmarks.md and draws it as docs/benchmarks.png (``--png``).

How to run (on 2 cores: about 3 minutes for SQLite + PostgreSQL, about 4 with --mysql)::

    .venv/bin/python benchmarks/bench_database.py             # SQLite + PostgreSQL
    .venv/bin/python benchmarks/bench_database.py --mysql     # ... + MariaDB/MySQL
    .venv/bin/python benchmarks/bench_database.py --sqlite-only --quick   # smoke run

Timing uses ``time.perf_counter`` and ``time.process_time``; the chart needs matplotlib (in the
``dev`` extra); the drivers are the dev environment's (aiosqlite, asyncpg, aiomysql).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import platform
import secrets
import shutil
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from google.adk.errors import StaleSessionError as AdkStaleSessionError
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import DatabaseSessionService as AdkDatabaseSessionService
from google.adk.sessions.base_session_service import GetSessionConfig as AdkGetSessionConfig
from google.genai import types
from sqlalchemy import Column, Integer, MetaData, Table, Text, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from openadk.events import Event as OpenEvent
from openadk.events import EventActions as OpenEventActions
from openadk.sessions import DatabaseSessionService as OpenDatabaseSessionService
from openadk.sessions import GetSessionConfig as OpenGetSessionConfig
from openadk.sessions import StaleSessionError as OpenStaleSessionError

USER = "bench_user"
LIST_USER = "bench_list_user"
WARM_USER = "bench_warm_user"
WRITERS = 32
MAX_RETRIES = 50
TEXT = ("The quick brown fox jumps over the lazy dog while the agent ponders state. " * 3)[:200]
PAYLOAD = TEXT

# One call of an operation; the argument is the call's index.
Call = Callable[[int], Awaitable[Any]]


# Libraries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lib:
    """One library under test."""

    name: str
    key: str
    service_cls: Any
    event_cls: Any
    actions_cls: Any
    config_cls: Any
    stale_error: type[Exception]

    def app(self, purpose: str) -> str:
        """The app name this library uses for one part of the benchmark."""
        return f"bench_{self.key}_{purpose}"


ADK = Lib(
    "google-adk",
    "adk",
    AdkDatabaseSessionService,
    AdkEvent,
    AdkEventActions,
    AdkGetSessionConfig,
    AdkStaleSessionError,
)
OPEN = Lib(
    "openadk",
    "open",
    OpenDatabaseSessionService,
    OpenEvent,
    OpenEventActions,
    OpenGetSessionConfig,
    OpenStaleSessionError,
)
LIBS = (ADK, OPEN)


def make_event(
    lib: Lib, i: int, invocation: str = "inv", delta: dict[str, Any] | None = None
) -> Any:
    """Event number ``i``: alternating author, 200 characters of text, a small state delta."""
    is_user = i % 2 == 0
    author = "user" if is_user else "model"
    return lib.event_cls(
        invocation_id=f"{invocation}-{i // 2}",
        author=author,
        content=types.Content(role=author, parts=[types.Part(text=f"{i:06d} {TEXT}"[:200])]),
        actions=lib.actions_cls(
            state_delta=delta if delta is not None else {"turn": i, "last_author": author}
        ),
    )


# Sizes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much work each operation does (full run or --quick)."""

    floor: int
    create: int
    append: int
    history: int
    get_full: int
    big: int
    recent: int
    list_calls: int
    many_per_writer: int
    one_per_writer: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(500, 300, 500, 1_000, 40, 1_000, 300, 60, 20, 10)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(50, 30, 50, 100, 5, 100, 30, 5, 5, 5)


# Statistics --------------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Stats:
    """Throughput and per-call latency of one library on one operation."""

    ops_per_s: float
    p50: float
    p99: float
    n: int
    cpu: float = math.nan
    """Process CPU seconds per operation (every thread of the process: SQLite's too)."""

    @classmethod
    def of(
        cls,
        samples: list[float],
        wall: float | None = None,
        count: int | None = None,
        cpu: float | None = None,
    ) -> Stats:
        """From per-call times; ``wall`` and ``count`` for concurrent runs (count / wall).

        ``cpu`` is the CPU time the calls took in all (`time.process_time`).
        """
        ordered = sorted(samples)
        total = wall if wall is not None else sum(samples)
        done = count if count is not None else len(samples)
        rate = done / total if total > 0 else math.nan
        per_op = cpu / done if cpu is not None and done else math.nan
        return cls(rate, percentile(ordered, 50), percentile(ordered, 99), done, per_op)


@dataclass
class Row:
    """One line of a database's table."""

    label: str
    stats: dict[str, Stats]

    @property
    def ratio(self) -> float:
        """openadk ops/s / google-adk ops/s."""
        return self.stats["open"].ops_per_s / self.stats["adk"].ops_per_s

    @property
    def cpu_ratio(self) -> float:
        """google-adk CPU per op / openadk CPU per op (how much less CPU openadk uses)."""
        return self.stats["adk"].cpu / self.stats["open"].cpu


@dataclass
class ConcResult:
    """What happened in one concurrent-writers run."""

    ok: int
    expected: int
    wall: float
    latencies: list[float]
    cpu: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    stored: int = 0
    lost: int = 0
    stored_unacked: int = 0
    order_ok: bool | None = None
    commit_order_ok: bool | None = None
    state_ok: bool | None = None
    first_traceback: dict[str, str] = field(default_factory=dict)

    def note(self) -> str:
        """A one-line account of the run."""
        parts = [
            f"{self.ok}/{self.expected} acknowledged",
            f"errors={sum(self.errors.values())}"
            + (f" {dict(self.errors)}" if self.errors else ""),
        ]
        if self.retries:
            parts.append(f"retries={sum(self.retries.values())} {dict(self.retries)}")
        parts.append(f"stored={self.stored}")
        parts.append(f"lost={self.lost}")
        if self.stored_unacked:
            parts.append(f"stored-but-not-acknowledged={self.stored_unacked}")
        if self.commit_order_ok is not None:
            parts.append(f"stored order == commit order: {'yes' if self.commit_order_ok else 'NO'}")
        if self.order_ok is not None:
            parts.append(f"stored order == ack order: {'yes' if self.order_ok else 'NO'}")
        if self.state_ok is not None:
            parts.append(f"state has every writer's last value: {'yes' if self.state_ok else 'NO'}")
        return ", ".join(parts)


@dataclass
class DbReport:
    """Everything measured on one database."""

    label: str
    kind: str = ""
    rows: dict[str, Row] = field(default_factory=dict)
    floors: list[tuple[str, Stats]] = field(default_factory=list)
    verdict_floor: str = ""
    core_floor: str = ""
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conc: dict[str, dict[str, ConcResult]] = field(default_factory=dict)
    recent_flat: dict[str, float] = field(default_factory=dict)


# Timing helpers ----------------------------------------------------------------------------------


CPU: dict[str, float] = {}
"""CPU seconds of the last `interleaved` run, by key."""


async def interleaved(
    calls: dict[str, Call], n: int, block: int, shift: int
) -> dict[str, list[float]]:
    """Runs ``n`` calls of each entry in blocks, rotating which goes first each block.

    Also sums each entry's process CPU time into `CPU` (block by block, so the other library's
    calls are never counted).
    """
    keys = list(calls)
    samples: dict[str, list[float]] = {key: [] for key in keys}
    CPU.clear()
    CPU.update(dict.fromkeys(keys, 0.0))
    for b, start in enumerate(range(0, n, block)):
        r = (b + shift) % len(keys)
        gc.collect()
        for key in keys[r:] + keys[:r]:
            call, sink = calls[key], samples[key]
            c0 = time.process_time()
            for i in range(start, min(n, start + block)):
                t0 = time.perf_counter()
                await call(i)
                sink.append(time.perf_counter() - t0)
            CPU[key] += time.process_time() - c0
    return samples


def stats_of(samples: dict[str, list[float]]) -> dict[str, Stats]:
    """Stats of an `interleaved` run, with its CPU times."""
    return {key: Stats.of(value, cpu=CPU.get(key)) for key, value in samples.items()}


def fmt_rate(rate: float) -> str:
    if math.isnan(rate):
        return "-"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def fmt_ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f}"
    return f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


# Databases ---------------------------------------------------------------------------------------


@dataclass
class Backend:
    """One database both libraries run against."""

    label: str
    kind: str
    url: str
    path: str = ""
    pg_dsn: str = ""
    mysql: dict[str, Any] = field(default_factory=dict)

    def engine_kwargs(self) -> dict[str, Any]:
        """google-adk's engine settings on this database (openadk runs with its defaults)."""
        return {} if self.kind == "sqlite" else {"pool_pre_ping": True}


@contextlib.asynccontextmanager
async def sqlite_backend() -> AsyncIterator[Backend]:
    directory = tempfile.mkdtemp(prefix="bench_database_")
    path = f"{directory}/sessions.db"
    try:
        # WAL is a property of the file; set it before either service opens it so both see it.
        async with aiosqlite.connect(path) as db:
            await db.execute("PRAGMA journal_mode=WAL")
        yield Backend("SQLite", "sqlite", f"sqlite+aiosqlite:///{path}", path=path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres_backend(admin_dsn: str) -> AsyncIterator[Backend]:
    name = f"bench_{secrets.token_hex(4)}"
    admin = make_url(admin_dsn)
    dsn = admin.set(database=name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        yield Backend(
            f"PostgreSQL (db {name})",
            "postgresql",
            url.render_as_string(hide_password=False),
            pg_dsn=dsn,
        )
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def mysql_backend(admin_url: str) -> AsyncIterator[Backend]:
    import aiomysql

    name = f"bench_{secrets.token_hex(4)}"
    admin = make_url(admin_url)
    params = {
        "host": admin.host or "127.0.0.1",
        "port": admin.port or 3306,
        "user": admin.username or "root",
        "password": admin.password or "",
    }
    conn = await aiomysql.connect(**params, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            await cur.execute("SELECT VERSION()")
            version = (await cur.fetchone())[0]
    finally:
        conn.close()
    try:
        url = admin.set(drivername="mysql+aiomysql", database=name)
        yield Backend(
            f"MariaDB/MySQL {version} (db {name})",
            "mysql",
            url.render_as_string(hide_password=False),
            mysql={**params, "db": name},
        )
    finally:
        conn = await aiomysql.connect(**params, autocommit=True)
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


# Floor -------------------------------------------------------------------------------------------

FLOOR_META = MetaData()
FLOOR_TABLE = Table(
    "bench_floor",
    FLOOR_META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("payload", Text),
)


def floor_core_engine(backend: Backend) -> AsyncEngine:
    """An async engine configured like the services' (openadk's SQLite setup on SQLite)."""
    engine = create_async_engine(backend.url, **backend.engine_kwargs())
    if backend.kind == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def measure_floor(backend: Backend, n: int, shift: int, report: DbReport) -> None:
    """Times a bare one-row INSERT+COMMIT through the raw driver and SQLAlchemy Core."""
    engine = floor_core_engine(backend)
    closers: list[Callable[[], Awaitable[Any]]] = [engine.dispose]
    calls: dict[str, Call] = {}
    labels: dict[str, str] = {}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(FLOOR_META.create_all)

        async def core(_i: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(FLOOR_TABLE.insert().values(payload=PAYLOAD))

        sql = "INSERT INTO bench_floor (payload) VALUES "
        if backend.kind == "sqlite":
            raw: dict[str, aiosqlite.Connection] = {}
            for sync in ("NORMAL", "FULL"):
                db = await aiosqlite.connect(backend.path)
                closers.append(db.close)
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute(f"PRAGMA synchronous={sync}")
                await db.execute("PRAGMA busy_timeout=30000")
                raw[sync] = db

            def raw_sqlite(db: aiosqlite.Connection) -> Call:
                async def call(_i: int) -> None:
                    await db.execute(sql + "(?)", (PAYLOAD,))
                    await db.commit()

                return call

            calls["raw"] = raw_sqlite(raw["NORMAL"])
            labels["raw"] = "raw aiosqlite, WAL, synchronous=NORMAL (openadk's setting)"
            calls["core"] = core
            labels["core"] = (
                "SQLAlchemy Core async engine, WAL, synchronous=NORMAL, BEGIN IMMEDIATE"
            )
            calls["raw_full"] = raw_sqlite(raw["FULL"])
            labels["raw_full"] = "raw aiosqlite, WAL, synchronous=FULL (google-adk's connections)"
        elif backend.kind == "postgresql":
            pg = await asyncpg.connect(backend.pg_dsn)
            closers.append(pg.close)

            async def raw_pg(_i: int) -> None:
                async with pg.transaction():
                    await pg.execute(sql + "($1)", PAYLOAD)

            calls["raw"] = raw_pg
            labels["raw"] = "raw asyncpg, BEGIN; INSERT; COMMIT"
            calls["core"] = core
            labels["core"] = "SQLAlchemy Core async engine (asyncpg), pool_pre_ping=True"
        else:
            import aiomysql

            my = await aiomysql.connect(**backend.mysql, autocommit=False)

            async def close_my() -> None:
                my.close()

            closers.append(close_my)

            async def raw_my(_i: int) -> None:
                async with my.cursor() as cur:
                    await cur.execute(sql + "(%s)", (PAYLOAD,))
                await my.commit()

            calls["raw"] = raw_my
            labels["raw"] = "raw aiomysql, INSERT; COMMIT"
            calls["core"] = core
            labels["core"] = "SQLAlchemy Core async engine (aiomysql), pool_pre_ping=True"
        for call in calls.values():  # warm-up
            for i in range(10):
                await call(i)
        samples = await interleaved(calls, n, max(1, n // 10), shift)
        for key, sink in samples.items():
            report.floors.append((labels[key], Stats.of(sink)))
        report.verdict_floor = labels["raw"]
        report.core_floor = labels["core"]
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()


# Operations --------------------------------------------------------------------------------------


@dataclass
class Services:
    """The services of one database: one per library, plus openadk's merge-mode one."""

    by_key: dict[str, Any]
    merge: Any
    uncached: Any
    """openadk with its parsed-event cache off: every read parses what it returns."""


async def bench_create(svcs: Services, sizes: Sizes, shift: int, report: DbReport) -> None:
    for lib in LIBS:
        await svcs.by_key[lib.key].create_session(app_name=lib.app("list"), user_id=WARM_USER)

    def creator(lib: Lib) -> Call:
        service = svcs.by_key[lib.key]
        app = lib.app("list")

        async def call(i: int) -> None:
            await service.create_session(
                app_name=app, user_id=LIST_USER, state={"index": i, "label": f"session {i}"}
            )

        return call

    samples = await interleaved(
        {lib.key: creator(lib) for lib in LIBS}, sizes.create, max(1, sizes.create // 10), shift
    )
    report.rows["create"] = Row(f"create_session ({sizes.create})", stats_of(samples))


async def bench_append_and_history(
    svcs: Services, sizes: Sizes, shift: int, report: DbReport
) -> dict[str, str]:
    """Times appends to a growing session, then grows it to ``history`` events."""
    handles: dict[str, Any] = {}
    events: dict[str, list[Any]] = {}
    for lib in LIBS:
        service = svcs.by_key[lib.key]
        warm = await service.create_session(app_name=lib.app("warm"), user_id=USER)
        for i in range(10):
            await service.append_event(warm, make_event(lib, i, "warm"))
        handles[lib.key] = await service.create_session(
            app_name=lib.app("hist"), user_id=USER, state={"count": 0}
        )
        events[lib.key] = [make_event(lib, i, "hist") for i in range(sizes.history)]

    def appender(lib: Lib) -> Call:
        service, handle, evs = svcs.by_key[lib.key], handles[lib.key], events[lib.key]

        async def call(i: int) -> None:
            await service.append_event(handle, evs[i])

        return call

    calls = {lib.key: appender(lib) for lib in LIBS}
    samples = await interleaved(calls, sizes.append, max(1, sizes.append // 10), shift)
    report.rows["append"] = Row(
        f"append_event (growing session, {sizes.append} appends)",
        stats_of(samples),
    )
    # Grow to `history` events, untimed.
    for lib in LIBS:
        for i in range(sizes.append, sizes.history):
            await calls[lib.key](i)
    return {lib.key: handles[lib.key].id for lib in LIBS}


async def bench_get_full(
    svcs: Services, sizes: Sizes, shift: int, report: DbReport, ids: dict[str, str]
) -> None:
    def getter(lib: Lib) -> Call:
        service, sid, app = svcs.by_key[lib.key], ids[lib.key], lib.app("hist")

        async def call(_i: int) -> None:
            session = await service.get_session(app_name=app, user_id=USER, session_id=sid)
            if len(session.events) != sizes.history:
                raise AssertionError(f"{lib.name}: got {len(session.events)} events")

        return call

    calls = {lib.key: getter(lib) for lib in LIBS}
    for call in calls.values():
        await call(0)
    samples = await interleaved(calls, sizes.get_full, max(1, sizes.get_full // 8), shift)
    report.rows["get_full"] = Row(
        f"get_session ({sizes.history:,} events, full)",
        stats_of(samples),
    )
    # Same schema: each library reads the other's session.
    for reader, writer in ((OPEN, ADK), (ADK, OPEN)):
        try:
            session = await svcs.by_key[reader.key].get_session(
                app_name=writer.app("hist"), user_id=USER, session_id=ids[writer.key]
            )
            got = "missing" if session is None else f"{len(session.events)} events"
            report.notes.append(f"cross-read: {reader.name} reads {writer.name}'s session: {got}")
        except Exception as error:
            report.notes.append(
                f"cross-read: {reader.name} reading {writer.name}'s session FAILED: {error!r}"
            )


async def build_session(lib: Lib, service: Any, app: str, n: int) -> str:
    session = await service.create_session(app_name=app, user_id=USER)
    for i in range(n):
        await service.append_event(session, make_event(lib, i, f"{app}-{n}"))
    return str(session.id)


async def bench_recent(
    svcs: Services, sizes: Sizes, shift: int, report: DbReport, ids: dict[str, str]
) -> None:
    """Recent-10 reads: a 10-event session read every turn (warm), and the last 10 of the
    1,000-event session by openadk with its event cache off (every read parses its events)."""
    small = {
        lib.key: await build_session(lib, svcs.by_key[lib.key], lib.app("r10"), 10) for lib in LIBS
    }
    for label, purpose, chosen, size, uncached in (
        ("r10", "r10", small, 10, False),
        ("rbig", "hist", ids, sizes.history, True),
    ):
        calls = {
            lib.key: recent_getter(svcs, lib, purpose, chosen[lib.key], uncached) for lib in LIBS
        }
        for warm in calls.values():
            for i in range(3):
                await warm(i)
        samples = await interleaved(calls, sizes.recent, max(1, sizes.recent // 10), shift)
        how = "openadk uncached" if uncached else "read every turn"
        report.rows[label] = Row(
            f"get_session(num_recent_events=10), {size:,}-event session ({how})",
            stats_of(samples),
        )


def recent_getter(svcs: Services, lib: Lib, purpose: str, sid: str, uncached: bool) -> Call:
    """A call of get_session(num_recent_events=10) on one of ``lib``'s sessions."""
    service = svcs.uncached if uncached and lib is OPEN else svcs.by_key[lib.key]
    app = lib.app(purpose)
    config = lib.config_cls(num_recent_events=10)

    async def call(_i: int) -> None:
        session = await service.get_session(
            app_name=app, user_id=USER, session_id=sid, config=config
        )
        if len(session.events) != 10:
            raise AssertionError(f"{lib.name}: got {len(session.events)} events")

    return call


async def bench_list(svcs: Services, sizes: Sizes, shift: int, report: DbReport) -> None:
    def lister(lib: Lib) -> Call:
        service, app = svcs.by_key[lib.key], lib.app("list")

        async def call(_i: int) -> None:
            response = await service.list_sessions(app_name=app, user_id=LIST_USER)
            if len(response.sessions) != sizes.create:
                raise AssertionError(f"{lib.name}: listed {len(response.sessions)} sessions")

        return call

    calls = {lib.key: lister(lib) for lib in LIBS}
    for call in calls.values():
        await call(0)
    samples = await interleaved(calls, sizes.list_calls, max(1, sizes.list_calls // 8), shift)
    report.rows["list"] = Row(
        f"list_sessions ({sizes.create:,} sessions, one user)",
        stats_of(samples),
    )


def record_error(result: ConcResult, sink: Counter[str], error: BaseException) -> None:
    name = type(error).__name__
    sink[name] += 1
    if name not in result.first_traceback:
        result.first_traceback[name] = "".join(traceback.format_exception(error)).rstrip()


async def many_sessions_run(lib: Lib, service: Any, per_writer: int) -> ConcResult:
    """WRITERS writers, each appending ``per_writer`` events to its own session."""
    app = lib.app("many")
    handles = [await service.create_session(app_name=app, user_id=USER) for _ in range(WRITERS)]
    result = ConcResult(0, WRITERS * per_writer, 0.0, [])

    async def writer(k: int) -> None:
        for j in range(per_writer):
            ev = make_event(lib, j, f"m{k}", {f"w{k}": j})
            t0 = time.perf_counter()
            try:
                await service.append_event(handles[k], ev)
                result.ok += 1
            except Exception as error:
                record_error(result, result.errors, error)
            result.latencies.append(time.perf_counter() - t0)

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(writer(k) for k in range(WRITERS)))
    result.wall = time.perf_counter() - t0
    result.cpu = time.process_time() - c0
    for handle in handles:
        stored = await service.get_session(app_name=app, user_id=USER, session_id=handle.id)
        result.stored += len(stored.events)
    result.lost = max(0, result.ok - result.stored)
    result.stored_unacked = max(0, result.stored - result.ok)
    return result


@contextlib.contextmanager
def commit_order(engine: AsyncEngine, app: str) -> Iterator[list[str]]:
    """Records the ids of ``app``'s events in the order their transactions COMMIT.

    The id is taken from the ``INSERT INTO events`` a connection runs and recorded when that
    connection issues COMMIT (dropped on ROLLBACK). Writers to one session hold its lock until
    they commit, so the order COMMITs are issued in is the order they take effect.
    """
    order: list[str] = []
    # openadk's SQLite engine reports its statements (BEGIN/COMMIT too) with no connection or
    # context, from the thread that owns its connection: tracked by thread.
    pending: dict[int, str] = {}

    def on_execute(
        conn: Any, _cursor: Any, statement: str, params: Any, context: Any, _many: bool
    ) -> None:
        head = statement.lstrip()[:18].upper()
        if context is None and conn is None:
            thread = threading.get_ident()
            if head == "INSERT INTO EVENTS" and params[1] == app:
                pending[thread] = params[0]
            elif head == "COMMIT" and thread in pending:
                order.append(pending.pop(thread))
            elif head == "ROLLBACK":
                pending.pop(thread, None)
            return
        if head == "INSERT INTO EVENTS" and context is not None:
            params = context.compiled_parameters[0]
            if params.get("app_name") == app:
                conn.info["bench_event_id"] = params["id"]

    def on_commit(conn: Any) -> None:
        event_id = conn.info.pop("bench_event_id", None)
        if event_id is not None:
            order.append(event_id)

    def on_rollback(conn: Any) -> None:
        conn.info.pop("bench_event_id", None)

    hooks = (
        ("before_cursor_execute", on_execute),
        ("commit", on_commit),
        ("rollback", on_rollback),
    )
    for name, fn in hooks:
        event.listen(engine.sync_engine, name, fn)
    try:
        yield order
    finally:
        for name, fn in hooks:
            event.remove(engine.sync_engine, name, fn)


def engine_of(service: Any) -> AsyncEngine:
    """The service's engine (``engine`` on openadk, ``db_engine`` on google-adk)."""
    return service.engine if isinstance(service, OpenDatabaseSessionService) else service.db_engine


async def one_session_run(
    lib: Lib, service: Any, reader: Any, per_writer: int, retry: bool
) -> ConcResult:
    """WRITERS writers on ONE session, each with its own handle (re-read on error if ``retry``)."""
    app = lib.app("one")
    sid = (await service.create_session(app_name=app, user_id=USER)).id
    handles = [
        await service.get_session(app_name=app, user_id=USER, session_id=sid)
        for _ in range(WRITERS)
    ]
    reread = lib.config_cls(num_recent_events=10)
    result = ConcResult(0, WRITERS * per_writer, 0.0, [])
    acked: list[str] = []
    last_ok: dict[int, int] = {}

    async def writer(k: int) -> None:
        for j in range(per_writer):
            t0 = time.perf_counter()
            attempts = 0
            while True:
                ev = make_event(lib, j, f"o{k}", {f"w{k}": j, "last_writer": k})
                try:
                    await service.append_event(handles[k], ev)
                except Exception as error:
                    if not retry or attempts >= MAX_RETRIES:
                        record_error(result, result.errors, error)
                        break
                    if isinstance(error, lib.stale_error):
                        result.retries["StaleSessionError"] += 1
                    else:
                        record_error(result, result.retries, error)
                    attempts += 1
                    handles[k] = await service.get_session(
                        app_name=app, user_id=USER, session_id=sid, config=reread
                    )
                    continue
                acked.append(ev.id)
                last_ok[k] = j
                result.ok += 1
                break
            result.latencies.append(time.perf_counter() - t0)

    gc.collect()
    with commit_order(engine_of(service), app) as committed:
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(k) for k in range(WRITERS)))
        result.wall = time.perf_counter() - t0
        result.cpu = time.process_time() - c0
    stored = await reader.get_session(app_name=app, user_id=USER, session_id=sid)
    stored_ids = [ev.id for ev in stored.events]
    result.stored = len(stored_ids)
    stored_set, acked_set = set(stored_ids), set(acked)
    result.lost = len(acked_set - stored_set)
    result.stored_unacked = len(stored_set - acked_set)
    result.order_ok = stored_ids == acked
    result.commit_order_ok = stored_ids == committed
    result.state_ok = all(stored.state.get(f"w{k}") == j for k, j in last_ok.items())
    return result


async def bench_concurrency(svcs: Services, sizes: Sizes, shift: int, report: DbReport) -> None:
    order = LIBS if shift % 2 == 0 else LIBS[::-1]
    many: dict[str, ConcResult] = {}
    for lib in order:
        many[lib.key] = await many_sessions_run(lib, svcs.by_key[lib.key], sizes.many_per_writer)
    report.conc["many"] = many
    report.rows["many"] = Row(
        f"{WRITERS} writers x {WRITERS} sessions x {sizes.many_per_writer} appends",
        {k: Stats.of(r.latencies, wall=r.wall, count=r.ok, cpu=r.cpu) for k, r in many.items()},
    )
    one: dict[str, ConcResult] = {}
    for lib in order[::-1]:
        if lib is OPEN:
            one[lib.key] = await one_session_run(
                lib, svcs.merge, svcs.by_key[lib.key], sizes.one_per_writer, retry=False
            )
        else:
            service = svcs.by_key[lib.key]
            one[lib.key] = await one_session_run(
                lib, service, service, sizes.one_per_writer, retry=True
            )
    report.conc["one"] = one
    report.rows["one"] = Row(
        f"{WRITERS} writers x ONE session x {sizes.one_per_writer} appends",
        {k: Stats.of(r.latencies, wall=r.wall, count=r.ok, cpu=r.cpu) for k, r in one.items()},
    )


# Driver ------------------------------------------------------------------------------------------


async def pragmas(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return f"journal_mode={journal}, synchronous={names.get(sync, sync)}"


async def run_database(backend: Backend, sizes: Sizes, index: int) -> DbReport:
    report = DbReport(backend.label, backend.kind)
    print(f"\n=== {backend.label} ===", flush=True)
    kwargs = backend.engine_kwargs()
    svcs = Services(
        {
            "adk": AdkDatabaseSessionService(backend.url, **kwargs),
            "open": OpenDatabaseSessionService(backend.url),
        },
        OpenDatabaseSessionService(backend.url, on_stale="merge"),
        OpenDatabaseSessionService(backend.url, event_cache_size=0),
    )
    try:
        # Alternate which library creates the (shared) tables.
        first = LIBS if index % 2 == 0 else LIBS[::-1]
        if backend.kind == "mysql":
            # google-adk's MySQL tables compare ids case-insensitively, which openadk refuses
            # until `openadk db upgrade`; tables openadk creates serve both libraries.
            first = (OPEN, ADK)
        for lib in first:
            await svcs.by_key[lib.key].prepare_tables()
        await svcs.merge.prepare_tables()
        await svcs.uncached.prepare_tables()
        report.notes.append(f"tables created by {first[0].name}; {first[1].name} reused them")
        if backend.kind == "sqlite":
            report.notes.append(
                f"SQLite connections: google-adk {await pragmas(svcs.by_key['adk'].db_engine)}; "
                f"openadk {await pragmas(svcs.by_key['open'].engine)}"
            )

        steps: list[tuple[str, Callable[[int], Awaitable[Any]]]] = []
        ids: dict[str, str] = {}

        async def append_step(shift: int) -> None:
            ids.update(await bench_append_and_history(svcs, sizes, shift, report))

        async def get_full_step(shift: int) -> None:
            if not ids:
                raise RuntimeError("skipped: the append step failed")
            await bench_get_full(svcs, sizes, shift, report, ids)

        steps = [
            ("floor INSERT+COMMIT", lambda s: measure_floor(backend, sizes.floor, s, report)),
            ("create_session", lambda s: bench_create(svcs, sizes, s, report)),
            ("append_event", append_step),
            ("get_session full", get_full_step),
            ("get_session recent 10", lambda s: bench_recent(svcs, sizes, s, report, ids)),
            ("list_sessions", lambda s: bench_list(svcs, sizes, s, report)),
            ("concurrent writers", lambda s: bench_concurrency(svcs, sizes, s, report)),
        ]
        for number, (name, step) in enumerate(steps):
            t0 = time.perf_counter()
            try:
                await step(index + number)
                print(f"  {name}: {time.perf_counter() - t0:.1f} s", flush=True)
            except Exception:
                tb = traceback.format_exc().rstrip()
                report.failures.append(f"{name}:\n{tb}")
                print(f"  {name}: FAILED after {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        for service in (*svcs.by_key.values(), svcs.merge, svcs.uncached):
            with contextlib.suppress(Exception):
                await service.close()
    return report


def print_report(report: DbReport) -> None:
    print(f"\n--- {report.label} ---")
    if report.floors:
        print("floor: bare one-row INSERT+COMMIT into a scratch table")
        width = max(len(label) for label, _ in report.floors)
        for label, stats in report.floors:
            print(
                f"  {label.ljust(width)}  {fmt_rate(stats.ops_per_s):>7} ops/s  "
                f"p50 {fmt_ms(stats.p50)} ms  p99 {fmt_ms(stats.p99)} ms"
            )
        print()
    headers = (
        "operation",
        "adk ops/s",
        "adk p50 ms",
        "adk p99 ms",
        "open ops/s",
        "open p50 ms",
        "open p99 ms",
        "open/adk",
        "adk CPU ms/op",
        "open CPU ms/op",
        "CPU adk/open",
    )
    lines = []
    for row in report.rows.values():
        a, o = row.stats["adk"], row.stats["open"]
        lines.append(
            (
                row.label,
                fmt_rate(a.ops_per_s),
                fmt_ms(a.p50),
                fmt_ms(a.p99),
                fmt_rate(o.ops_per_s),
                fmt_ms(o.p50),
                fmt_ms(o.p99),
                f"{row.ratio:.2f}x",
                fmt_ms(a.cpu),
                fmt_ms(o.cpu),
                "-" if math.isnan(row.cpu_ratio) else f"{row.cpu_ratio:.2f}x",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    head = render(headers)
    print(head)
    print("-" * len(head))
    for line in lines:
        print(render(line))
    print("(concurrent rows: ops/s = acknowledged appends / wall time; p50/p99 per append,")
    print(" including google-adk's re-reads and retries on the ONE-session row; commit order is")
    print(" the order COMMITs were issued, ack order the order append_event calls returned)")
    for key, title in (("many", f"{WRITERS} sessions"), ("one", "ONE session")):
        for lib in LIBS:
            conc = report.conc.get(key, {}).get(lib.key)
            if conc is not None:
                mode = ""
                if key == "one":
                    mode = " (on_stale='merge')" if lib is OPEN else " (re-read + retry)"
                print(f"  {title}, {lib.name}{mode}: {conc.note()}")
    for note in report.notes:
        print(f"  {note}")
    for key in ("many", "one"):
        for lib in LIBS:
            conc = report.conc.get(key, {}).get(lib.key)
            if conc is None:
                continue
            for name, tb in conc.first_traceback.items():
                print(f"\n  first {name} from {lib.name} ({key}):")
                print("    " + tb.replace("\n", "\n    "))
    for failure in report.failures:
        print(f"\n  FAILED {failure}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# The targets of issue 12: operation row -> (what, {database kind: minimum ratio}).
TARGETS: dict[str, tuple[str, dict[str, float]]] = {
    "append": ("append_event, growing session", {"sqlite": 10, "postgresql": 5, "mysql": 3}),
    "create": ("create_session", {"sqlite": 10, "postgresql": 5, "mysql": 3}),
    "rbig": (
        "get_session recent-10 of 1,000, uncached",
        {"sqlite": 5, "postgresql": 5, "mysql": 3},
    ),
    "get_full": ("get_session full 1,000, warm", {"sqlite": 30, "postgresql": 20, "mysql": 10}),
    "list": ("list_sessions of 300", {"sqlite": 8, "postgresql": 5, "mysql": 3}),
    "many": (f"{WRITERS} writers, {WRITERS} sessions", {"sqlite": 5, "postgresql": 5, "mysql": 3}),
}
SHORT = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def print_summary(reports: list[DbReport]) -> None:
    print("\n=== Targets (issue 12) ===")
    for report in reports:
        rows = report.rows
        print(f"[{SHORT.get(report.kind, report.kind)}]")
        for key, (what, goals) in TARGETS.items():
            goal = goals.get(report.kind)
            if key not in rows or goal is None:
                continue
            row = rows[key]
            print(
                f"  {what} >= {goal:g}x: {verdict(row.ratio >= goal)} ({row.ratio:.2f}x; "
                f"CPU per op {row.cpu_ratio:.2f}x less)"
            )
        if "append" in rows and report.kind == "postgresql":
            cpu = rows["append"].cpu_ratio
            print(f"  append_event CPU per op >= 10x less: {verdict(cpu >= 10)} ({cpu:.2f}x)")
        floors = dict(report.floors)
        if "append" in rows and report.verdict_floor in floors:
            floor = floors[report.verdict_floor].ops_per_s
            share = rows["append"].stats["open"].ops_per_s / floor
            check = " >= 0.5x" if report.kind == "sqlite" else ""
            shown = verdict(share >= 0.5) if report.kind == "sqlite" else "(reported)"
            print(
                f"  append_event vs bare INSERT+COMMIT{check}: {shown} ({share:.2f}x of "
                f"{fmt_rate(floor)}/s [{report.verdict_floor}])"
            )
        for key in ("many", "one"):
            conc = report.conc.get(key, {})
            for lib in LIBS:
                run = conc.get(lib.key)
                if run is None:
                    continue
                ordered = sorted(run.latencies)
                print(
                    f"  {WRITERS} writers x {'ONE session' if key == 'one' else 'own sessions'}, "
                    f"{lib.name}: {fmt_rate(run.ok / run.wall)} appends/s, "
                    f"p99 {fmt_ms(percentile(ordered, 99))} ms, lost {run.lost}, "
                    f"errors {sum(run.errors.values())}"
                )
        if report.failures:
            print(f"  {len(report.failures)} step(s) FAILED: see above")


def markdown_table(reports: list[DbReport]) -> str:
    """The ratio table of docs/benchmarks.md: speed (and CPU) ratios with the targets."""
    kinds = [r.kind for r in reports]
    head = "| operation | " + " | ".join(SHORT.get(k, k) for k in kinds) + " |"
    lines = [head, "|---|" + "---|" * len(kinds)]
    labels = {**{key: what for key, (what, _) in TARGETS.items()}}
    labels["r10"] = "get_session recent-10 of 10, read every turn"
    labels["one"] = f"{WRITERS} writers, ONE session (openadk merge mode)"
    for key in ("append", "create", "rbig", "r10", "get_full", "list", "many", "one"):
        cells = []
        for report in reports:
            row = report.rows.get(key)
            if row is None:
                cells.append("-")
                continue
            goal = TARGETS.get(key, ("", {}))[1].get(report.kind)
            mark = "" if goal is None else (" ✓" if row.ratio >= goal else f" ✗ (≥{goal:g}x)")
            cpu = "" if math.isnan(row.cpu_ratio) else f", CPU {row.cpu_ratio:.1f}x"
            cells.append(f"**{row.ratio:.1f}x**{mark}{cpu}")
        lines.append(f"| {labels[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_png(reports: list[DbReport], path: str) -> None:
    """Bars of the speed ratios per operation and database, targets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["append", "create", "rbig", "get_full", "list", "many"]
    names = [
        "append_event",
        "create_session",
        "recent-10 of 1,000\n(uncached)",
        "full 1,000\n(warm)",
        "list 300",
        f"{WRITERS} writers",
    ]
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    width = 0.8 / max(1, len(reports))
    for n, report in enumerate(reports):
        xs = [i + (n - (len(reports) - 1) / 2) * width for i in range(len(keys))]
        values = [report.rows[k].ratio if k in report.rows else 0.0 for k in keys]
        bars = ax.bar(xs, values, width, label=SHORT.get(report.kind, report.kind))
        for bar, value in zip(bars, values, strict=True):
            if value:
                ax.annotate(
                    f"{value:.1f}x",
                    (bar.get_x() + bar.get_width() / 2, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        for x, key in zip(xs, keys, strict=True):
            goal = TARGETS[key][1].get(report.kind)
            if goal:
                ax.plot([x - width / 2, x + width / 2], [goal, goal], color="black", lw=1)
    ax.set_yscale("log")
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(keys)), names, fontsize=8)
    ax.set_ylabel("openadk speed ÷ google-adk 2.13 speed (log)")
    ax.set_title("DatabaseSessionService, openadk vs google-adk, one run (black ticks: targets)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> None:
    sizes = Sizes.quick() if args.quick else Sizes.full()
    print(
        f"google-adk {metadata.version('google-adk')}, openadk {metadata.version('openadk')}, "
        f"SQLAlchemy {metadata.version('sqlalchemy')}, aiosqlite {metadata.version('aiosqlite')}, "
        f"asyncpg {metadata.version('asyncpg')}, pydantic {metadata.version('pydantic')}, "
        f"Python {platform.python_version()}"
    )
    print(f"sizes: {sizes}")
    backends: list[Callable[[], contextlib.AbstractAsyncContextManager[Backend]]] = [sqlite_backend]
    if args.mysql_only:
        backends = [lambda: mysql_backend(args.mysql_url)]
    elif not args.sqlite_only:
        backends.append(lambda: postgres_backend(args.pg_admin_dsn))
        if args.mysql:
            backends.append(lambda: mysql_backend(args.mysql_url))
    reports: list[DbReport] = []
    for index, make in enumerate(backends):
        try:
            async with make() as backend:
                report = await run_database(backend, sizes, index)
        except Exception:
            print(f"database setup FAILED:\n{traceback.format_exc()}")
            continue
        reports.append(report)
        print_report(report)
    print_summary(reports)
    print("\n" + markdown_table(reports))
    if args.png and reports:
        draw_png(reports, args.png)
        print(f"\nwrote {args.png}")


def main() -> None:
    parser = argparse.ArgumentParser(description="openadk vs google-adk DatabaseSessionService")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL and MySQL")
    parser.add_argument("--mysql", action="store_true", help="also run on MariaDB/MySQL")
    parser.add_argument("--mysql-only", action="store_true", help="only MariaDB/MySQL")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--pg-admin-dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="where to CREATE/DROP the throwaway database (default: %(default)s)",
    )
    parser.add_argument(
        "--mysql-url",
        default="mysql://root@127.0.0.1:3306/test",
        help="server for --mysql; only host, port, user, password are used (default: %(default)s)",
    )
    parser.add_argument(
        "--png",
        default=str(Path(__file__).resolve().parent.parent / "docs" / "benchmarks.png"),
        help="where to draw the ratio chart ('' for none; default: %(default)s)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    asyncio.run(main_async(args))
    print(f"\ntotal: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
