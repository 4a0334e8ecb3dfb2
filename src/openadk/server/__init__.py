"""openadk's server: any session service behind the Agent Engine Sessions REST API.

`VertexAiSessionService(api_endpoint=...)`, and google-adk's own Vertex client, can store sessions
in it. Needs the ``server`` extra: ``pip install "openadk[server]"``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('openadk.server needs FastAPI: pip install "openadk[server]"') from exc

from openadk.server._app import DEFAULT_MAX_BODY_BYTES, create_app
from openadk.server._serve import build_service, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "build_service", "create_app", "serve"]
