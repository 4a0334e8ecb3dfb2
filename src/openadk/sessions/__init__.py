"""Sessions: a conversation's events and state, and the services that store them.

Backends that need an optional dependency are imported lazily, so importing this package does not
import SQLAlchemy or httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from openadk.errors import AlreadyExistsError, SessionNotFoundError, StaleSessionError
from openadk.sessions._base import BaseSessionService
from openadk.sessions._in_memory import InMemorySessionService
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    SearchEventsResponse,
    SearchHit,
    Session,
)
from openadk.sessions._state import State

if TYPE_CHECKING:  # pragma: no cover
    from openadk.sessions._database import DatabaseSessionService
    from openadk.sessions._vertex import VertexAiSessionService

__all__ = [
    "AlreadyExistsError",
    "BaseSessionService",
    "DatabaseSessionService",
    "GetSessionConfig",
    "InMemorySessionService",
    "ListEventsResponse",
    "ListSessionsResponse",
    "SearchEventsResponse",
    "SearchHit",
    "Session",
    "SessionNotFoundError",
    "StaleSessionError",
    "State",
    "VertexAiSessionService",
]

# Backends that need an optional dependency: name -> module, imported on first access.
_LAZY: dict[str, str] = {
    "DatabaseSessionService": "openadk.sessions._database",
    "VertexAiSessionService": "openadk.sessions._vertex",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openadk.sessions' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ImportError(f"{name} is not available in this version of openadk yet.") from exc
        raise
