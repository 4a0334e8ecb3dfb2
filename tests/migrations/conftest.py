"""Fixtures for the schema-migration tests: V0 databases on SQLite, PostgreSQL and MariaDB.

The V0 data is tests/fixtures/v0/adk_v0.sqlite, written by google-adk 1.21 with TZ=Asia/Kolkata;
expected_v1.json is what google-adk 2.13 reads after converting a copy with its own migration
(see scripts/make_v0_fixtures.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.contract.backends import MYSQL, POSTGRES
from tests.migrations.v0_schema import load_v0

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "v0"
V0_FILE = FIXTURES / "adk_v0.sqlite"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected_v1.json").read_text())
WRITER: dict[str, Any] = json.loads((FIXTURES / "adk_v0.writer.json").read_text())
WRITER_TZ = "Asia/Kolkata"
V0_EVENTS = len(WRITER["event_timestamps"])

SERVERS = {
    "postgres": ("postgresql+asyncpg", POSTGRES.rsplit("/", 1)[0], ""),
    "mariadb": ("mysql+aiomysql", MYSQL.rsplit("/", 1)[0], "?charset=utf8mb4"),
}


def sqlite_copy(directory: Path, name: str = "sessions.db") -> str:
    """A fresh copy of the V0 fixture; returns its URL."""
    target = directory / name
    shutil.copy(V0_FILE, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def v0_sqlite(tmp_path: Path) -> str:
    return sqlite_copy(tmp_path)


@contextlib.asynccontextmanager
async def throwaway_database(kind: str) -> AsyncIterator[str]:
    """Creates database ``v0_<random>`` on the local server and drops it afterwards."""
    scheme, server, query = SERVERS[kind]
    name = f"v0_{uuid.uuid4().hex[:12]}"
    admin_db = "postgres" if kind == "postgres" else ""
    admin = create_async_engine(
        f"{scheme}://{server}/{admin_db}{query}", isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            extra = " CHARACTER SET utf8mb4" if kind == "mariadb" else ""
            await conn.execute(text(f"CREATE DATABASE {name}{extra}"))
        try:
            yield f"{scheme}://{server}/{name}{query}"
        finally:
            async with admin.connect() as conn:
                force = " WITH (FORCE)" if kind == "postgres" else ""
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(params=["postgres", "mariadb"])
async def v0_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A throwaway PostgreSQL or MariaDB database holding the fixture's V0 rows."""
    async with throwaway_database(request.param) as url:
        # aiomysql cannot send bytes with the installed PyMySQL; asyncmy loads the pickles.
        loader = url.replace("mysql+aiomysql://", "mysql+asyncmy://")
        async with engine_for(loader) as engine:
            await load_v0(engine, V0_FILE, WRITER_TZ)
        yield url


@pytest.fixture
def quiet_adk_warnings() -> Iterator[None]:
    """google-adk emits deprecation and experimental warnings on import and use."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield
