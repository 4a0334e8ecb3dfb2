"""``openadk serve``: the server on uvicorn, storing sessions in a database."""

from __future__ import annotations

import gc
import ipaddress
import sys
from typing import TextIO

from openadk.sessions import BaseSessionService, InMemorySessionService

__all__ = ["build_service", "serve"]

_MEMORY = ("memory", "memory://", ":memory:")


def build_service(db_url: str) -> BaseSessionService:
    """The session service for a database URL; ``memory`` keeps sessions in process memory.

    Raises:
        ValueError: The URL is not valid or its driver is missing (the message says what to
            install).
    """
    if db_url.strip().lower() in _MEMORY:
        return InMemorySessionService()
    from openadk.sessions._urls import open_service

    return open_service(db_url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    db_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    max_requests_in_flight: int | None = None,
    max_bodies_in_flight: int | None = None,
    max_body_bytes_in_flight: int | None = None,
    log_level: str = "info",
    out: TextIO | None = None,
) -> int:
    """Runs the server until interrupted; returns the exit code.

    Without ``api_key`` the server listens on 127.0.0.1 only, whatever ``host`` says, and says
    so: anyone who can reach it could read and change every session. A blank key (empty or
    whitespace) is refused (exit code 2), not taken as protection. The ``max_*`` limits are
    :func:`create_app`'s; None keeps its default.
    """
    import uvicorn

    from openadk.server._app import create_app
    from openadk.server._guard import (
        DEFAULT_MAX_BODIES_IN_FLIGHT,
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
        Limits,
        check_api_key,
    )

    out = out or sys.stderr
    try:
        api_key = check_api_key(api_key)
        limits = Limits(
            max_body_bytes=DEFAULT_MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes,
            max_requests_in_flight=max_requests_in_flight,
            max_bodies_in_flight=(
                DEFAULT_MAX_BODIES_IN_FLIGHT
                if max_bodies_in_flight is None
                else max_bodies_in_flight
            ),
            max_body_bytes_in_flight=(
                DEFAULT_MAX_BODY_BYTES_IN_FLIGHT
                if max_body_bytes_in_flight is None
                else max_body_bytes_in_flight
            ),
        )
    except (TypeError, ValueError) as exc:
        print(f"openadk serve: {exc}", file=out)
        return 2
    if api_key is None:
        if not _is_loopback(host):
            print(
                f"openadk serve: no API key configured, so listening on 127.0.0.1 only "
                f"(not {host}). Pass --api-key or set OPENADK_API_KEY to accept other hosts.",
                file=out,
            )
        else:
            print("openadk serve: no API key configured; listening on 127.0.0.1 only.", file=out)
        host = "127.0.0.1"
    try:
        service = build_service(db_url)
    except (ImportError, ValueError) as exc:
        print(f"openadk serve: {exc}", file=out)
        return 2
    app = create_app(
        service,
        api_key=api_key,
        max_body_bytes=limits.max_body_bytes,
        max_requests_in_flight=limits.max_requests_in_flight,
        max_bodies_in_flight=limits.max_bodies_in_flight,
        max_body_bytes_in_flight=limits.max_body_bytes_in_flight,
        close_service=True,
    )
    where = f"[{host}]" if ":" in host else host
    storage = "process memory" if isinstance(service, InMemorySessionService) else repr(service)
    print(
        f"openadk serve: Agent Engine Sessions REST API on http://{where}:{port}/v1beta1/ "
        f"(and /v1/), storing sessions in {storage}",
        file=out,
        flush=True,
    )
    # Everything alive now (modules, the app, the service) lives as long as the process: kept
    # out of the collector's generations, later collections do not walk it again.
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        gc.unfreeze()
    return 0
