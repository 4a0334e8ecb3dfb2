"""google-adk integration: openadk's session services as google-adk session services.

`AdkSessionService` wraps any openadk service as a ``google.adk.sessions.BaseSessionService``
(google-adk's ``Runner`` takes it); `register` adds ``openadk+...`` schemes to google-adk's CLI
(``--session_service_uri openadk+sqlite:///sessions.db``). Needs google-adk
(``pip install 'openadk[adk]'``). See docs/google-adk.md.
"""

from __future__ import annotations

try:
    import google.adk.sessions  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - the extra is installed in tests
    raise ImportError(
        "openadk.adk needs google-adk. Install it with: pip install 'openadk[adk]'"
    ) from exc

from openadk.adk._convert import UnknownFieldError
from openadk.adk._registry import register, schemes, service_for_uri
from openadk.adk._service import AdkSessionService

__all__ = [
    "AdkSessionService",
    "UnknownFieldError",
    "register",
    "schemes",
    "service_for_uri",
]
