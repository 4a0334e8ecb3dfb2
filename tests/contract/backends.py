"""The registry of backends the contract suite runs on.

Each entry names a backend, makes a fresh service on it, and lists its known gaps: contract
tests expected to fail on that backend, with the reason. Gaps are strict xfails, so a backend
that starts passing one forces the entry's removal.

Database URLs come from the environment (``OPENADK_TEST_POSTGRES``, ``OPENADK_TEST_MYSQL``), with
defaults for the servers `.ci/services.sh` starts on this machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openadk.sessions import BaseSessionService, InMemorySessionService

POSTGRES = os.environ.get("OPENADK_TEST_POSTGRES", "postgres@127.0.0.1:5432/test")
MYSQL = os.environ.get("OPENADK_TEST_MYSQL", "root@127.0.0.1:3306/test")
SQLITE_DIR = tempfile.mkdtemp(prefix="openadk-contract-")


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[..., Awaitable[BaseSessionService]]
    known_gaps: dict[str, str] = field(default_factory=dict)
    """Contract test name -> why this backend fails it."""


async def _memory(**kwargs: Any) -> BaseSessionService:
    return InMemorySessionService(**kwargs)


def _database(url: str) -> Callable[..., Awaitable[BaseSessionService]]:
    async def make(**kwargs: Any) -> BaseSessionService:
        from openadk.sessions import DatabaseSessionService

        return DatabaseSessionService(url, **kwargs)

    return make


async def _sqlite_sync_engine(**kwargs: Any) -> BaseSessionService:
    """A synchronous pysqlite engine: exercises the worker-thread path Spanner uses."""
    from sqlalchemy import create_engine

    from openadk.sessions import DatabaseSessionService

    engine = create_engine(
        f"sqlite:///{SQLITE_DIR}/contract-sync.db", connect_args={"check_same_thread": False}
    )
    return DatabaseSessionService(db_engine=engine, **kwargs)


BACKENDS: list[Backend] = [
    Backend("memory", _memory),
    Backend("sqlite-file", _database(f"sqlite+aiosqlite:///{SQLITE_DIR}/contract.db")),
    Backend("sqlite-memory", _database("sqlite+aiosqlite:///:memory:")),
    Backend("sqlite-sync-engine", _sqlite_sync_engine),
    Backend("postgres-asyncpg", _database(f"postgresql+asyncpg://{POSTGRES}")),
    Backend("postgres-psycopg", _database(f"postgresql+psycopg://{POSTGRES}")),
    Backend("mariadb-aiomysql", _database(f"mysql+aiomysql://{MYSQL}?charset=utf8mb4")),
    Backend("mariadb-asyncmy", _database(f"mysql+asyncmy://{MYSQL}?charset=utf8mb4")),
]
