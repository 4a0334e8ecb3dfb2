"""The ASGI layer in front of the routes: Host check, API key, body limits, in-flight caps.

Everything here runs on the request's headers before any byte of its body is read, so a client
without the key, or one of too many, costs the server a small fixed amount of memory: uvicorn
buffers at most 64 KiB of an unread body per connection, and a refusal of a request that has a
body closes the connection.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import openadk
from openadk.server._errors import error_body
from openadk.sessions._vertex import HEADER_SERVER

__all__ = [
    "COOKIE_NAME",
    "DEFAULT_MAX_BODIES_IN_FLIGHT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BODY_BYTES_IN_FLIGHT",
    "PUBLIC_BODY_BYTES",
    "Guard",
    "Limits",
    "RedactKeyFilter",
    "check_api_key",
    "is_loopback_host",
    "key_matches",
    "redact_key",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BODIES_IN_FLIGHT = 64
DEFAULT_MAX_BODY_BYTES_IN_FLIGHT = 64 * 1024 * 1024
PUBLIC_BODY_BYTES = 16 * 1024
"""Routes open without the key (the page's sign-in form) take small bodies only."""

COOKIE_NAME = "openadk_key"


def check_api_key(api_key: str | None) -> str | None:
    """``api_key`` when it is a usable key; None stays None.

    Raises:
        ValueError: The key is empty or only whitespace: it would look like protection and be
            none (a blank key is what an unset shell variable gives).
    """
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, got {type(api_key).__name__}.")
    if not api_key.strip():
        raise ValueError(
            "The API key is blank; give a real key (e.g. from `openssl rand -hex 32`), or none "
            "to serve on 127.0.0.1 only."
        )
    return api_key


def key_matches(given: Iterable[str | bytes | None], expected: bytes) -> bool:
    """Whether any non-empty value in ``given`` is the key (constant-time comparisons).

    Header values come as the raw bytes the client sent; strings are compared as UTF-8.
    """
    found = False
    for value in given:
        if not value:
            continue
        raw = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(raw, expected):
            found = True
    return found


def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header value (with or without port) names this machine's loopback."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
            return False
    else:
        name, _, port = host.partition(":")
        if port and not re.fullmatch(r"[0-9]{1,5}", port):
            return False
    if name.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_KEY_IN_QUERY = re.compile(r"(?i)((?:^|[?&;])key=)[^&;#\s]*")


def redact_key(text: str) -> str:
    """``text`` (a path with query string, or a request line) with every ``key=`` value hidden."""
    return _KEY_IN_QUERY.sub(r"\1REDACTED", text)


class RedactKeyFilter(logging.Filter):
    """Hides ``?key=`` values in uvicorn's access log lines (its record args hold the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(redact_key(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = redact_key(record.msg)
        return True


@dataclass(frozen=True)
class Limits:
    """What the guard lets through.

    Attributes:
        max_body_bytes: One request body's limit (413 beyond it).
        max_requests_in_flight: Concurrent requests (429 beyond it); None for no limit.
        max_bodies_in_flight: Requests whose body is being read or held (503 beyond it).
        max_body_bytes_in_flight: Body bytes being read or held, counted by ``Content-Length``
            up front and by the bytes received for chunked bodies (503 beyond it).
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_requests_in_flight: int | None = None
    max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT
    max_body_bytes_in_flight: int = DEFAULT_MAX_BODY_BYTES_IN_FLIGHT

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_bodies_in_flight", "max_body_bytes_in_flight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.max_requests_in_flight is not None and self.max_requests_in_flight < 1:
            raise ValueError(
                f"max_requests_in_flight must be positive or None, got "
                f"{self.max_requests_in_flight!r}."
            )


class _Refused(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


class Guard:
    """ASGI middleware: refuses on headers alone, then reads the body within the limits.

    Order: Host (without a key: loopback names only, against DNS rebinding), requests in flight
    (429), the API key for non-public paths (401), the declared body size (413), bodies in flight
    (503 + ``Retry-After``), then the body is read (413 past the limit while streaming) and
    handed to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        limits: Limits,
        is_public: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.expected = None if api_key is None else api_key.encode()
        self.limits = limits
        self.is_public = is_public
        self.requests = 0
        self.bodies = 0
        self.body_bytes = 0
        self.version = openadk.__version__.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HEADER_SERVER.encode(), self.version))
                message = {**message, "headers": headers}
            await send(message)

        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            # Repeated headers: the first wins for Host and Content-Length checks below.
            headers.setdefault(name, value)
        path: str = scope.get("path", "")
        limits = self.limits
        try:
            self._check_host(headers)
            if limits.max_requests_in_flight is not None and (
                self.requests >= limits.max_requests_in_flight
            ):
                raise _Refused(
                    429, "Too many requests in flight; retry later.", {"retry-after": "1"}
                )
            public = self.is_public(path)
            if not public:
                self._check_key(scope, headers)
            max_body = (
                min(limits.max_body_bytes, PUBLIC_BODY_BYTES) if public else (limits.max_body_bytes)
            )
            declared = self._declared_length(headers, max_body)
        except _Refused as refused:
            await _reject(send_marked, refused, close=_has_body(headers))
            return
        self.requests += 1
        try:
            if declared == 0:
                await self.app(scope, receive, send_marked)
                return
            await self._with_body(scope, receive, send_marked, declared, max_body)
        finally:
            self.requests -= 1

    async def _with_body(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None, max_body: int
    ) -> None:
        limits = self.limits
        reserved = declared or 0
        if (
            self.bodies >= limits.max_bodies_in_flight
            or self.body_bytes + reserved > limits.max_body_bytes_in_flight
        ):
            await _reject(send, self._busy(), close=True)
            return
        self.bodies += 1
        self.body_bytes += reserved
        try:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > max_body:
                    await _reject(send, _Refused(413, _too_large(max_body)), close=True)
                    return
                if size > reserved:
                    # Chunked (or lying) bodies are counted as they arrive.
                    if self.body_bytes + size - reserved > limits.max_body_bytes_in_flight:
                        await _reject(send, self._busy(), close=True)
                        return
                    self.body_bytes += size - reserved
                    reserved = size
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.bodies -= 1
            self.body_bytes -= reserved

    def _busy(self) -> _Refused:
        limits = self.limits
        return _Refused(
            503,
            f"The server is reading too many request bodies ({limits.max_bodies_in_flight} "
            f"bodies or {limits.max_body_bytes_in_flight} bytes at most); retry later.",
            {"retry-after": "1"},
        )

    def _check_host(self, headers: dict[bytes, bytes]) -> None:
        if self.expected is not None:
            return
        host = headers.get(b"host", b"").decode("latin-1")
        if not is_loopback_host(host):
            shown = host[:100] if host else "(none)"
            raise _Refused(
                421,
                f"Host {shown!r} refused: without an API key this server answers only requests "
                "addressed to 127.0.0.1, localhost or [::1]. Configure an API key to serve "
                "other host names.",
            )

    def _check_key(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        if self.expected is None:
            return
        given: list[str | bytes | None] = [headers.get(b"x-goog-api-key", b"")]
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given.append(token.strip())
        query = scope.get("query_string", b"").decode("latin-1")
        if "key=" in query:
            given.extend(v for k, v in parse_qsl(query, keep_blank_values=True) if k == "key")
        if not any(given):
            raise _Refused(
                401,
                "Missing credentials: send 'Authorization: Bearer <key>' or "
                "'x-goog-api-key: <key>'.",
                {"www-authenticate": "Bearer"},
            )
        if not key_matches(given, self.expected):
            raise _Refused(
                401, "The API key or bearer token is not valid.", {"www-authenticate": "Bearer"}
            )

    @staticmethod
    def _declared_length(headers: dict[bytes, bytes], max_body: int) -> int | None:
        """The body's ``Content-Length``; None for a chunked body; 0 for none."""
        raw = headers.get(b"content-length")
        if raw is None:
            return None if b"transfer-encoding" in headers else 0
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            raise _Refused(400, "Invalid Content-Length header.")
        if length > max_body:
            raise _Refused(413, _too_large(max_body))
        return length


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"


def _too_large(max_body: int) -> str:
    return f"Request body is larger than the server's limit of {max_body} bytes."


async def _reject(send: Send, refused: _Refused, *, close: bool) -> None:
    headers: dict[str, Any] = dict(refused.headers)
    if close:
        # The body is left unread: closing the connection drops whatever the client still sends.
        headers["connection"] = "close"
    response = JSONResponse(
        error_body(refused.code, refused.message), status_code=refused.code, headers=headers
    )
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})
