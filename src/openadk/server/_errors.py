"""Google API JSON errors: ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from openadk.errors import CorruptDataError, StorageError

__all__ = [
    "ApiError",
    "RouteTable",
    "error_body",
    "error_response",
    "install_error_handlers",
    "new_request_id",
    "redact_detail",
]

logger = logging.getLogger("openadk.server")

# HTTP status -> the canonical google.rpc.Code name a Google API reports with it.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    421: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_MAX_MESSAGE = 2000


class ApiError(Exception):
    """An error answered as a Google API JSON error.

    Attributes:
        code: The HTTP status.
        status: The canonical code name, e.g. ``NOT_FOUND``.
        message: The human-readable message.
        reason: An optional ``google.rpc.ErrorInfo`` reason.
        headers: Extra response headers.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})


def error_body(
    code: int,
    message: str,
    status: str | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The JSON of a Google API error."""
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "openadk",
            }
        ]
    if request_id:
        error.setdefault("details", []).append(
            {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}
        )
    return {"error": error}


def error_response(
    code: int,
    message: str,
    *,
    status: str | None = None,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    """A Google API JSON error response."""
    return JSONResponse(
        error_body(code, message, status, reason, request_id),
        status_code=code,
        headers=dict(headers or {}),
    )


_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")


def redact_detail(text: str) -> str:
    """``text`` with any password in a URL replaced by ``***``, for log lines."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def new_request_id() -> str:
    """A fresh request id: it ties a client's generic error to the server's log line."""
    return uuid.uuid4().hex


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) if parts else "Invalid request."


class RouteTable:
    """Every route's path template and methods, for a 405's ``Allow`` header.

    Starlette names only the first matching route's methods. When several templates fit a path
    (``/sessions/{id}`` also fits ``/sessions/s:appendEvent``), the most specific ones, with the
    most literal characters, are the path's own.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], int, frozenset[str]]] = []

    def add(self, template: str, methods: Iterable[str]) -> None:
        """Records a route's full path template and its methods."""
        regex, _, _ = compile_path(template)
        literal = len(_TEMPLATE_PARAM.sub("", template))
        self._routes.append((regex, literal, frozenset(methods)))

    def allowed(self, path: str) -> list[str]:
        """The methods of the most specific templates matching ``path``, sorted."""
        best = -1
        methods: set[str] = set()
        for regex, literal, route_methods in self._routes:
            if not regex.match(path):
                continue
            if literal > best:
                best, methods = literal, set()
            if literal == best:
                methods |= route_methods
        return sorted(methods)


_TEMPLATE_PARAM = re.compile(r"{[^}]*}")


def install_error_handlers(app: FastAPI) -> None:
    """Makes every error, FastAPI's own included, a Google API JSON error."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        exc = cast(ApiError, exc)  # registered for ApiError only
        return error_response(
            exc.code, exc.message, status=exc.status, reason=exc.reason, headers=exc.headers
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, _validation_message(cast(RequestValidationError, exc)))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        exc = cast(StarletteHTTPException, exc)
        code = exc.status_code
        message = str(exc.detail) if exc.detail else "Error."
        headers = dict(exc.headers or {})
        if code == 404:
            message = f"No such resource or method: {request.method} {request.url.path}"
        elif code == 405:
            table = getattr(request.app.state, "route_table", None)
            allowed = table.allowed(request.url.path) if isinstance(table, RouteTable) else []
            if allowed:
                headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
                headers["allow"] = ", ".join(allowed)
                message = f"Method {request.method} is not allowed here; use {headers['allow']}."
        return error_response(code, message, headers=headers)

    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        # The detail names the database, its host and driver: the log gets it, clients do not.
        request_id = new_request_id()
        logger.warning(
            "storage error, request id %s, on %s %s: %s",
            request_id,
            request.method,
            request.url.path,
            redact_detail(str(exc)),
        )
        return error_response(
            503,
            f"The session store is unavailable; retry later. Request id {request_id} "
            "(the server's log has the details).",
            headers={"retry-after": "1"},
            request_id=request_id,
        )

    async def corrupt_data(request: Request, exc: Exception) -> JSONResponse:
        # A row that cannot be parsed stays so: no retry-after, unlike an unavailable store.
        logger.error("corrupt data on %s %s: %s", request.method, request.url.path, exc)
        return error_response(500, f"The session store holds data it cannot read: {exc}")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = new_request_id()
        logger.error(
            "internal error, request id %s, on %s %s",
            request_id,
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return error_response(
            500,
            f"Internal error: {type(exc).__name__}. Request id {request_id} (the server's log "
            "has the details).",
            request_id=request_id,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StorageError, storage_error)
    app.add_exception_handler(CorruptDataError, corrupt_data)
    app.add_exception_handler(Exception, internal_error)
