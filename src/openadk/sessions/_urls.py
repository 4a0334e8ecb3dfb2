"""Which service a URL names: the one table the CLI, the server and `open_service` share.

Imports nothing optional: a Redis URL never imports SQLAlchemy, a database URL never imports redis.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from openadk.sessions._base import BaseSessionService

__all__ = [
    "REDIS_SCHEMES",
    "is_redis_url",
    "normalize_redis_url",
    "open_service",
    "redact_redis_url",
]

REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster", "unix")
"""URL schemes `RedisSessionService` takes; ``+cluster`` connects to a Redis Cluster."""


def is_redis_url(url: object) -> bool:
    """Whether ``url`` names Redis (``redis://``, ``rediss://``, ``redis+cluster://``...)."""
    if not isinstance(url, str):
        return False
    scheme, sep, _ = url.strip().partition("://")
    return bool(sep) and scheme.lower() in REDIS_SCHEMES


def normalize_redis_url(url: str) -> str:
    """A Redis URL as typed, with surrounding blanks removed and the scheme lower-cased.

    Raises:
        ValueError: Not a Redis URL, or a URL without a host (the message hides a password).
    """
    text = url.strip()
    if not is_redis_url(text):
        raise ValueError(
            f"Not a Redis URL: {redact_redis_url(text)!r}; expected redis://host:port/db, "
            "rediss://host:port/db or redis+cluster://host:port."
        )
    scheme, _, rest = text.partition("://")
    text = f"{scheme.lower()}://{rest}"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        raise ValueError(f"Invalid Redis URL {redact_redis_url(text)!r}: {error}.") from error
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"Redis URL {redact_redis_url(text)!r} names no host.")
    return text


def redact_redis_url(url: str) -> str:
    """``url`` with its password shown as ``***``."""
    try:
        parts = urlsplit(url.strip())
        if parts.password is None:
            return url.strip()
    except ValueError:
        return "<unparseable Redis URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_service(url: str, **kwargs: Any) -> BaseSessionService:
    """The service for a URL: `RedisSessionService` for Redis URLs, else `DatabaseSessionService`.

    Raises:
        ValueError: The URL is not valid; ImportError: its driver is not installed.
    """
    if is_redis_url(url):
        from openadk.sessions._redis import RedisSessionService

        return RedisSessionService(normalize_redis_url(url), **kwargs)
    from openadk.sessions._database import DatabaseSessionService

    return DatabaseSessionService(url, **kwargs)
