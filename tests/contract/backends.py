"""The registry of backends the contract suite runs on.

Each entry names a backend, makes a fresh service on it, and lists its known gaps: contract
tests expected to fail on that backend, with the exception (type and message) they fail with and
the reason. Gaps are strict xfails with ``raises=``, and conftest.py also checks the message: a
backend that starts passing one forces the entry's removal, and a gap test failing any other way
(a database down, a different bug) is a failure, not an expected one.

Database URLs come from the environment (``OPENADK_TEST_POSTGRES``, ``OPENADK_TEST_MYSQL``,
``OPENADK_TEST_REDIS``), with defaults for the servers `.ci/services.sh` starts on this machine.
The Redis Cluster is started by the tests themselves (tests/backends/redis_cluster.py).
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
REDIS = os.environ.get("OPENADK_TEST_REDIS", "redis://127.0.0.1:6379/3")
SQLITE_DIR = tempfile.mkdtemp(prefix="openadk-contract-")


@dataclass(frozen=True)
class Gap:
    """How and why a contract test fails on a backend."""

    raises: type[BaseException]
    match: str
    """A regular expression the exception's message must contain (``re.search``)."""
    reason: str


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[..., Awaitable[BaseSessionService]]
    known_gaps: dict[str, Gap] = field(default_factory=dict)
    """Contract test name -> how and why this backend fails it."""


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


async def _redis(**kwargs: Any) -> BaseSessionService:
    from openadk.sessions import RedisSessionService

    return RedisSessionService(REDIS, key_prefix="contract:", **kwargs)


async def _redis_cluster(**kwargs: Any) -> BaseSessionService:
    """A real Redis Cluster of three masters, started once for the session (tests/redis_cluster)."""
    from openadk.sessions import RedisSessionService
    from tests.backends.redis_cluster import shared_cluster

    return RedisSessionService(shared_cluster().url, key_prefix="contract:", **kwargs)


def _vertex_over(
    store: Callable[..., Awaitable[BaseSessionService]],
) -> Callable[..., Awaitable[BaseSessionService]]:
    """VertexAiSessionService talking, in process, to openadk's server backed by ``store``."""

    async def make(**kwargs: Any) -> BaseSessionService:
        import httpx

        from openadk.server import create_app
        from openadk.sessions import VertexAiSessionService

        # The server's store keeps and checks expiry, so the store gets the clock.
        clock = kwargs.pop("clock", None)
        backing = await store(**({} if clock is None else {"clock": clock}))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(backing)))

        class Client(VertexAiSessionService):
            async def close(self) -> None:
                await super().close()
                await http.aclose()
                await backing.close()

        return Client(api_endpoint="http://127.0.0.1:8080", http_client=http, **kwargs)

    return make


async def _vertex_over_socket(**kwargs: Any) -> BaseSessionService:
    """VertexAiSessionService talking over TCP to a started `openadk serve` on PostgreSQL."""
    import pytest

    from openadk.sessions import VertexAiSessionService
    from tests.vertex.serving import POSTGRES_URL, shared_server

    if "clock" in kwargs:
        pytest.skip(
            "the server is another process, whose clock cannot be moved; "
            "tests/vertex/test_real_socket.py::test_expiry_over_a_socket checks expiry over a "
            "socket by moving the stored expiry instead"
        )
    served = shared_server(POSTGRES_URL, api_key="contract-key")
    return VertexAiSessionService(
        api_endpoint=served.url, express_mode_api_key="contract-key", **kwargs
    )


_VERTEX_GAPS = {
    "test_create_uses_given_id_verbatim": Gap(
        ValueError,
        r"^Invalid session_id '.*': must match \^\[A-Za-z0-9_-\]\+\$\.$",
        "The REST API's session ids are [a-z0-9-] (up to 63, the server's create rule) and "
        "google-adk's client allows only [A-Za-z0-9_-]: ids with spaces, quotes, non-ASCII "
        "letters or 128 characters are refused with ValueError.",
    ),
    "test_unknown_session_get_is_none_and_delete_is_silent": Gap(
        ValueError,
        r"^Session \S+ does not belong to user other\.$",
        "REST session ids are unique per reasoning engine, not per user: like google-adk's "
        "Vertex client, get_session of another user's session raises ValueError('Session X "
        "does not belong to user Y.') instead of returning None.",
    ),
    "test_delete_user_erases_sessions_events_and_user_state": Gap(
        AssertionError,
        r"^delete_user left the user's state: \{'email': 'a@example.invalid'\}$",
        "The Sessions REST API cannot delete a user's state: delete_user removes the user's "
        "sessions and events, and the user: keys stay on the server.",
    ),
    "test_trim_events_keeps_the_last_and_never_splits_an_invocation": Gap(
        NotImplementedError,
        r"does not support trimming events\.$",
        "The Sessions REST API has no call that deletes events: trim_events raises "
        "NotImplementedError on the REST client (trim on the server's own database instead).",
    ),
}


BACKENDS: list[Backend] = [
    Backend("memory", _memory),
    Backend("sqlite-file", _database(f"sqlite+aiosqlite:///{SQLITE_DIR}/contract.db")),
    Backend("sqlite-memory", _database("sqlite+aiosqlite:///:memory:")),
    Backend("sqlite-sync-engine", _sqlite_sync_engine),
    Backend("postgres-asyncpg", _database(f"postgresql+asyncpg://{POSTGRES}")),
    Backend("postgres-psycopg", _database(f"postgresql+psycopg://{POSTGRES}")),
    Backend("mariadb-aiomysql", _database(f"mysql+aiomysql://{MYSQL}?charset=utf8mb4")),
    Backend("mariadb-asyncmy", _database(f"mysql+asyncmy://{MYSQL}?charset=utf8mb4")),
    Backend("redis", _redis),
    Backend("redis-cluster", _redis_cluster),
    Backend("vertex-rest-memory", _vertex_over(_memory), _VERTEX_GAPS),
    Backend(
        "vertex-rest-sqlite",
        _vertex_over(_database(f"sqlite+aiosqlite:///{SQLITE_DIR}/vertex-contract.db")),
        _VERTEX_GAPS,
    ),
    Backend("vertex-serve-postgres", _vertex_over_socket, _VERTEX_GAPS),
]
