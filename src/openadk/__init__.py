"""openadk: a session store for AI agents, compatible with google-adk's sessions package.

``from openadk import Agent`` and ``from openadk import Runner`` work as in google-adk; the
submodules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from openadk.agents import Agent
    from openadk.runners import Runner

__version__ = "0.1.0"

__all__ = ["Agent", "Runner", "__version__"]

_LAZY = {"Agent": "openadk.agents", "Runner": "openadk.runners"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openadk' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
