"""`register`: ``--session_service_uri openadk+...`` for google-adk's CLI (``adk web``, ...)."""

from __future__ import annotations

from typing import Any

from openadk.adk._service import AdkSessionService
from openadk.sessions import BaseSessionService, InMemorySessionService

__all__ = ["PREFIX", "register", "schemes", "service_for_uri"]

PREFIX = "openadk+"
"""What an openadk scheme starts with; the rest is the URL openadk itself takes."""

# google-adk's registry matches the URL scheme exactly, so every dialect+driver pair openadk
# supports is registered by name.
_DATABASE_SCHEMES = (
    "sqlite",
    "sqlite+aiosqlite",
    "sqlite+pysqlite",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgres",
    "mysql",
    "mysql+aiomysql",
    "mysql+asyncmy",
    "mysql+pymysql",
    "mariadb",
    "mariadb+aiomysql",
    "mariadb+asyncmy",
    "mariadb+pymysql",
    "spanner",
    "spanner+spanner",
)
_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")


def _has_redis() -> bool:
    import openadk.sessions

    try:
        return getattr(openadk.sessions, "RedisSessionService", None) is not None
    except ImportError:  # the class exists but its driver is not installed
        return True


def schemes() -> tuple[str, ...]:
    """The schemes `register` registers: ``openadk+memory`` and ``openadk+<dialect>[+<driver>]``.

    ``openadk+redis``, ``openadk+rediss``, ``openadk+redis+cluster`` and ``openadk+rediss+cluster``
    are included when this openadk has a ``RedisSessionService``.
    """
    names = ["memory", *_DATABASE_SCHEMES]
    if _has_redis():
        names.extend(_REDIS_SCHEMES)
    return tuple(PREFIX + name for name in names)


def _service_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    # google-adk passes agents_dir to every factory; openadk's services do not take it.
    return {key: value for key, value in kwargs.items() if key != "agents_dir"}


def service_for_uri(uri: str, **kwargs: Any) -> AdkSessionService:
    """The google-adk session service for an ``openadk+...`` URI (it owns the openadk service).

    ``openadk+memory://`` is an `InMemorySessionService`; ``openadk+<database URL>`` a
    `DatabaseSessionService` (``openadk+sqlite:///x.db`` is the file ``x.db`` relative to the
    working directory, as in google-adk's ``sqlite:///x.db``; four slashes for an absolute path);
    ``openadk+redis://...`` a ``RedisSessionService``. ``kwargs`` other than google-adk's
    ``agents_dir`` go to the service's constructor (google-adk's ``session_db_kwargs``).

    Raises:
        ValueError: ``uri`` does not start with ``openadk+``, or the URL is not valid.
    """
    if not isinstance(uri, str) or not uri.startswith(PREFIX):
        raise ValueError(
            f"An openadk session service URI starts with {PREFIX!r}, e.g. "
            f"'openadk+sqlite:///sessions.db' or 'openadk+memory://'; got {uri!r}."
        )
    url = uri[len(PREFIX) :]
    scheme = url.partition(":")[0].lower()
    options = _service_kwargs(kwargs)
    service: BaseSessionService
    if scheme == "memory":
        service = InMemorySessionService(**options)
    elif scheme in _REDIS_SCHEMES:
        import openadk.sessions

        redis_service = getattr(openadk.sessions, "RedisSessionService", None)
        if redis_service is None:
            raise ValueError(f"This openadk has no RedisSessionService; {uri!r} cannot be served.")
        service = redis_service(url, **options)
    else:
        from openadk.sessions import DatabaseSessionService

        service = DatabaseSessionService(url, **options)
    return AdkSessionService(service, owns_service=True)


def register(registry: Any = None) -> tuple[str, ...]:
    """Registers the ``openadk+...`` session service schemes with google-adk's CLI.

    Put this in a ``services.py`` in the agents directory, which ``adk web``, ``adk
    api_server`` and ``adk run`` import at start-up::

        import openadk.adk; openadk.adk.register()

    then run e.g. ``adk api_server --session_service_uri openadk+sqlite:///sessions.db``.

    Args:
        registry: A google-adk ``ServiceRegistry``; google-adk's global one when None.

    Returns:
        The schemes registered (`schemes`).
    """
    if registry is None:
        from google.adk.cli.service_registry import get_service_registry

        registry = get_service_registry()
    names = schemes()
    for name in names:
        registry.register_session_service(name, service_for_uri)
    return names
