"""The registry of backends the contract suite runs on.

Each entry names a backend, makes a fresh service on it, and lists its known gaps: contract
tests expected to fail on that backend, with the reason. Gaps are strict xfails, so a backend
that starts passing one forces the entry's removal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openadk.sessions import BaseSessionService, InMemorySessionService


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[..., Awaitable[BaseSessionService]]
    known_gaps: dict[str, str] = field(default_factory=dict)
    """Contract test name -> why this backend fails it."""


async def _memory(**kwargs: Any) -> BaseSessionService:
    return InMemorySessionService(**kwargs)


BACKENDS: list[Backend] = [
    Backend("memory", _memory),
]
