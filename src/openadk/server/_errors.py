"""Google API JSON errors: ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openadk.errors import CorruptDataError, StorageError

__all__ = ["ApiError", "error_response", "install_error_handlers"]

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
    code: int, message: str, status: str | None = None, reason: str | None = None
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
    return {"error": error}


def error_response(
    code: int,
    message: str,
    *,
    status: str | None = None,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A Google API JSON error response."""
    return JSONResponse(
        error_body(code, message, status, reason), status_code=code, headers=dict(headers or {})
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) if parts else "Invalid request."


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
        if code == 404:
            message = f"No such resource or method: {request.method} {request.url.path}"
        return error_response(code, message, headers=exc.headers)

    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("storage error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, f"The session store is unavailable: {exc}", headers={"retry-after": "1"}
        )

    async def corrupt_data(request: Request, exc: Exception) -> JSONResponse:
        # A row that cannot be parsed stays so: no retry-after, unlike an unavailable store.
        logger.error("corrupt data on %s %s: %s", request.method, request.url.path, exc)
        return error_response(500, f"The session store holds data it cannot read: {exc}")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error: {type(exc).__name__}.")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StorageError, storage_error)
    app.add_exception_handler(CorruptDataError, corrupt_data)
    app.add_exception_handler(Exception, internal_error)
