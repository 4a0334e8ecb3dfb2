"""`create_app`: any openadk session service behind the Agent Engine Sessions REST API."""

import asyncio
import logging
import math
import uuid
import warnings
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import (
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from starlette.convertors import Convertor, register_url_convertor

import openadk
from openadk.errors import AlreadyExistsError, SessionNotFoundError, StaleSessionError
from openadk.events import Event
from openadk.server._docs import ASSETS_PATH, install_docs
from openadk.server._errors import (
    ApiError,
    RouteTable,
    error_response,
    install_error_handlers,
    new_request_id,
    redact_detail,
)
from openadk.server._filters import check_order, parse_sessions_filter, parse_time_filter
from openadk.server._guard import (
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
    Guard,
    Limits,
    RedactKeyFilter,
    check_api_key,
    key_matches,
)
from openadk.server._models import (
    ENGINE_PATTERN,
    NEW_SESSION_ID_PATTERN,
    OPERATION_PATTERN,
    SESSION_PATTERN,
    ForkBody,
    ListSessionEventsOut,
    ListSessionsOut,
    OperationOut,
    SessionBody,
    SessionEventBody,
    SessionOut,
    SessionPatchBody,
    UserStateOut,
    model_components,
)
from openadk.server._owners import AmbiguousSessionId, Owners
from openadk.server._patterns import (
    EVENTS_FILTER,
    EVENTS_ORDER,
    HEADER_KEY,
    JSON_VALUE,
    JSON_VALUE_SCHEMA,
    KEY,
    SESSIONS_FILTER,
    SESSIONS_ORDER,
)
from openadk.sessions import BaseSessionService, Session
from openadk.sessions._base import check_key, encode_page_token
from openadk.sessions._vertex import (
    HEADER_DUPLICATE,
    HEADER_EVENT_TIMESTAMP,
    HEADER_EXIST_OK,
    HEADER_IF_REVISION,
    HEADER_LAST_EVENT_ID,
    HEADER_RESUMED,
    HEADER_REVISION,
    HEADER_UPDATE_TIME,
    HEADER_USER_ID,
    OWNER_MISMATCH_REASON,
    event_from_api,
    event_to_api,
    format_time,
    parse_time,
)

__all__ = [
    "DEFAULT_MAX_BODIES_IN_FLIGHT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BODY_BYTES_IN_FLIGHT",
    "create_app",
]

logger = logging.getLogger("openadk.server")

_SESSION_PAGE_DEFAULT = 100
_SESSION_PAGE_MAX = 100
_EVENT_PAGE_DEFAULT = 100
_EVENT_PAGE_MAX = 1000
_MAX_OPERATIONS = 10_000
_STALE_RETRIES = 5
_VERSIONS = ("v1beta1", "v1")
_UPDATE_MASK = (
    r"^\s*((displayName|display_name|labels)(\s*,\s*(displayName|display_name|labels))*)?\s*$"
)
_PATCHABLE = {
    "displayName": "display_name",
    "display_name": "display_name",
    "labels": "labels",
}

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {}}}
    for code, text in (
        (400, "Invalid argument"),
        (401, "Missing or wrong API key or token"),
        (403, "Another user's session"),
        (404, "Not found"),
        (409, "Already exists, or a stale revision (ABORTED)"),
        (413, "Body too large"),
        (421, "Without an API key: a Host other than 127.0.0.1, localhost or [::1]"),
        (429, "Too many requests in flight"),
        (503, "The session store failed, or too many bodies in flight; retry"),
    )
}


@dataclass(frozen=True)
class Parent:
    """The reasoning engine a request is for, and the resource-name prefix it used."""

    version: str
    prefix: str
    engine: str

    def session_name(self, session_id: str) -> str:
        return f"{self.prefix}/sessions/{session_id}"


def _header(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"Header {name} is not percent-encoded UTF-8.") from exc


def _user(value: str | None) -> str | None:
    decoded = _header(value, HEADER_USER_ID)
    return None if decoded is None else _check(decoded, HEADER_USER_ID)


def _check(value: str, name: str) -> str:
    try:
        return check_key(value, name)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc)) from exc


def _metadata_json(session: Session) -> dict[str, Any]:
    """A session's title and labels as Session resource fields; none when it has neither."""
    fields: dict[str, Any] = {}
    if session.display_name is not None:
        fields["displayName"] = session.display_name
    if session.labels:
        fields["labels"] = dict(session.labels)
    return fields


def _unimplemented(exc: NotImplementedError) -> ApiError:
    return ApiError(501, f"The session store behind this server: {exc}")


class _Server:
    """The state behind one app: the service, session owners, operations."""

    def __init__(self, service: BaseSessionService) -> None:
        self.service = service
        self.owners = Owners(service)
        self.operations: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._create_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # helpers --------------------------------------------------------------------------------

    def session_json(self, parent: Parent, session: Session) -> dict[str, Any]:
        return {
            "name": parent.session_name(session.id),
            "userId": session.user_id,
            "sessionState": session.state,
            "updateTime": format_time(session.last_update_time, clamp=True),
            **_metadata_json(session),
        }

    @staticmethod
    def revision_headers(session: Session) -> dict[str, str]:
        marker = session._storage_update_marker
        return {} if marker is None else {HEADER_REVISION: quote(marker, safe="")}

    def operation(
        self, parent: Parent, session_id: str, kind: str, response: dict[str, Any]
    ) -> dict[str, Any]:
        op_id = f"{kind}-{uuid.uuid4().hex}"
        operation = {
            "name": f"{parent.session_name(session_id)}/operations/{op_id}",
            "done": True,
            "response": response,
        }
        self.operations[(parent.engine, session_id, op_id)] = operation
        while len(self.operations) > _MAX_OPERATIONS:
            self.operations.popitem(last=False)
        return operation

    async def find(self, parent: Parent, session_id: str, user_id: str | None) -> Session:
        """The session, as the claimed user may see it.

        Raises:
            ApiError: 404 when missing, 403 when it is another user's, 400 when ambiguous.
        """
        try:
            session = await self.owners.find(parent.engine, session_id, user_id)
        except AmbiguousSessionId as exc:
            raise ApiError(
                400,
                f"Session id {session_id} is used by {len(exc.users)} users of app "
                f"{parent.engine}; send the {HEADER_USER_ID} header to choose one.",
                status="FAILED_PRECONDITION",
            ) from exc
        if session is None:
            raise ApiError(404, f"Session {parent.session_name(session_id)} not found.")
        if user_id is not None and session.user_id != user_id:
            raise ApiError(
                403,
                f"Session {session_id} does not belong to user {user_id}.",
                reason=OWNER_MISMATCH_REASON,
            )
        return session

    def create_lock(self, app_name: str, session_id: str) -> asyncio.Lock:
        key = (app_name, session_id)
        lock = self._create_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._create_locks[key] = lock
        return lock

    # operations -----------------------------------------------------------------------------

    async def create(
        self, parent: Parent, body: SessionBody, session_id: str | None, exist_ok: bool
    ) -> JSONResponse:
        user_id = _check(body.user_id, "userId")
        state = body.session_state or {}
        resumed = False
        ttl = None if body.ttl is None else float(body.ttl.rstrip("s"))
        expire_time = None if body.expire_time is None else parse_time(body.expire_time)
        try:
            if session_id is None:
                session = await self.service.create_session(
                    app_name=parent.engine,
                    user_id=user_id,
                    state=state,
                    ttl=ttl,
                    expire_time=expire_time,
                    display_name=body.display_name,
                    labels=body.labels,
                )
            else:
                async with self.create_lock(parent.engine, session_id):
                    existing = await self.owners.find(parent.engine, session_id, user_id)
                    if existing is not None and (existing.user_id != user_id or not exist_ok):
                        raise AlreadyExistsError(f"Session with id {session_id} already exists.")
                    session = await self.service.create_session(
                        app_name=parent.engine,
                        user_id=user_id,
                        state=state,
                        session_id=session_id,
                        exist_ok=existing is not None,
                        ttl=ttl,
                        expire_time=expire_time,
                        display_name=body.display_name,
                        labels=body.labels,
                    )
                    resumed = existing is not None
        except AmbiguousSessionId as exc:
            raise ApiError(409, f"Session with id {session_id} already exists.") from exc
        except AlreadyExistsError as exc:
            raise ApiError(409, exc.message, status="ALREADY_EXISTS") from exc
        except NotImplementedError as exc:
            raise _unimplemented(exc) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        self.owners.remember(parent.engine, session.id, user_id)
        resource = {
            "@type": f"type.googleapis.com/google.cloud.aiplatform.{parent.version}.Session",
            **self.session_json(parent, session),
        }
        operation = self.operation(parent, session.id, "create", resource)
        headers = self.revision_headers(session)
        if resumed:
            headers[HEADER_RESUMED] = "1"
        return JSONResponse(operation, headers=headers)

    async def get(self, parent: Parent, session_id: str, user_id: str | None) -> JSONResponse:
        session = await self.find(parent, session_id, user_id)
        return JSONResponse(
            self.session_json(parent, session), headers=self.revision_headers(session)
        )

    async def list_sessions(
        self,
        parent: Parent,
        filter_: str | None,
        page_size: int | None,
        page_token: str | None,
        order_by: str | None,
    ) -> JSONResponse:
        wanted = parse_sessions_filter(filter_)
        user_id = wanted.user_id
        if user_id is not None:
            _check(user_id, "user_id")
        check_order(order_by, ("updateTime", "update_time"), "sessions")
        size = _SESSION_PAGE_DEFAULT if not page_size or page_size < 0 else page_size
        try:
            page = await self.service.list_sessions(
                app_name=parent.engine,
                user_id=user_id,
                limit=min(size, _SESSION_PAGE_MAX),
                page_token=page_token or None,
                labels=wanted.labels or None,
                updated_after=wanted.updated_after,
                updated_before=wanted.updated_before,
            )
        except NotImplementedError as exc:
            raise _unimplemented(exc) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        for session in page.sessions:
            self.owners.remember(parent.engine, session.id, session.user_id)
        body: dict[str, Any] = {"sessions": [self.session_json(parent, s) for s in page.sessions]}
        if page.next_page_token:
            body["nextPageToken"] = page.next_page_token
        return JSONResponse(body)

    async def patch(
        self,
        parent: Parent,
        session_id: str,
        body: SessionPatchBody,
        update_mask: str | None,
        user_id: str | None,
    ) -> JSONResponse:
        """Changes a session's ``displayName`` and ``labels``.

        ``updateMask`` names the fields to change; when absent, the fields in the body.
        """
        given = body.model_fields_set
        if update_mask is None or not update_mask.strip():
            fields: set[str] = {name for name in ("display_name", "labels") if name in given}
        else:
            fields = set()
            for item in update_mask.split(","):
                name = _PATCHABLE.get(item.strip())
                if name is None:
                    raise ApiError(
                        400,
                        f"Unsupported updateMask field {item.strip()!r}: a session's "
                        "displayName and labels can be changed.",
                    )
                fields.add(name)
        session = await self.find(parent, session_id, user_id)
        if not fields:
            # Nothing named: the session as it is.
            return JSONResponse(
                self.session_json(parent, session), headers=self.revision_headers(session)
            )
        changes: dict[str, Any] = {}
        if "display_name" in fields:
            changes["display_name"] = body.display_name
        if "labels" in fields:
            changes["labels"] = body.labels or {}
        try:
            updated = await self.service.update_session(
                app_name=parent.engine,
                user_id=session.user_id,
                session_id=session_id,
                **changes,
            )
        except SessionNotFoundError as exc:
            self.owners.forget(parent.engine, session_id)
            raise ApiError(404, f"Session {parent.session_name(session_id)} not found.") from exc
        except NotImplementedError as exc:
            raise _unimplemented(exc) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        return JSONResponse(
            self.session_json(parent, updated), headers=self.revision_headers(updated)
        )

    async def search(
        self,
        parent: Parent,
        query: str,
        user_id: str | None,
        page_size: int | None,
        page_token: str | None,
    ) -> JSONResponse:
        """openadk: full-text search over the events' text, newest first."""
        if user_id is not None:
            _check(user_id, "userId")
        try:
            found = await self.service.search_events(
                app_name=parent.engine,
                query=query,
                user_id=user_id,
                limit=20 if not page_size or page_size < 0 else min(page_size, 1000),
                page_token=page_token or None,
            )
        except NotImplementedError as exc:
            raise _unimplemented(exc) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        body: dict[str, Any] = {
            "hits": [
                {
                    "session": parent.session_name(h.session_id),
                    "userId": h.user_id,
                    "eventId": h.event_id,
                    "author": h.author,
                    "timestamp": repr(h.timestamp),
                    "snippet": h.snippet,
                }
                for h in found.hits
            ]
        }
        if found.next_page_token:
            body["nextPageToken"] = found.next_page_token
        return JSONResponse(body)

    async def fork(
        self, parent: Parent, session_id: str, body: ForkBody, user_id: str | None
    ) -> JSONResponse:
        """openadk: a new session holding a copy of the session's events up to an invocation."""
        session = await self.find(parent, session_id, user_id)
        try:
            fork = await self.service.fork_session(
                app_name=parent.engine,
                user_id=session.user_id,
                session_id=session_id,
                new_session_id=body.new_session_id or None,
                up_to_invocation_id=body.up_to_invocation_id,
            )
        except SessionNotFoundError as exc:
            raise ApiError(404, f"Session {parent.session_name(session_id)} not found.") from exc
        except AlreadyExistsError as exc:
            raise ApiError(409, exc.message, status="ALREADY_EXISTS") from exc
        except NotImplementedError as exc:
            raise _unimplemented(exc) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        self.owners.remember(parent.engine, fork.id, fork.user_id)
        return JSONResponse(self.session_json(parent, fork), headers=self.revision_headers(fork))

    async def delete(self, parent: Parent, session_id: str, user_id: str | None) -> JSONResponse:
        session = await self.find(parent, session_id, user_id)
        await self.service.delete_session(
            app_name=parent.engine, user_id=session.user_id, session_id=session_id
        )
        self.owners.forget(parent.engine, session_id)
        empty = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return JSONResponse(self.operation(parent, session_id, "delete", empty))

    async def append(
        self,
        parent: Parent,
        session_id: str,
        body: SessionEventBody,
        user_id: str | None,
        if_revision: str | None,
        last_event_id: str | None,
    ) -> JSONResponse:
        data = body.model_dump(by_alias=True, exclude_none=True)
        try:
            with warnings.catch_warnings():
                # google-genai keeps enum values it does not know (newer clients' values), with
                # a warning; a warning filter set to "error" must not make that a 500.
                warnings.filterwarnings("ignore", r".* is not a valid ", UserWarning)
                event = event_from_api(data)
            delta = (data.get("actions") or {}).get("stateDelta")
            if delta is not None:
                event.actions.state_delta = delta
        except (ValueError, TypeError, AttributeError) as exc:
            # google-genai's enums raise AttributeError for a non-string value, e.g. {}.
            raise ApiError(400, f"Invalid SessionEvent: {exc}") from exc
        current = await self.find(parent, session_id, user_id)
        for attempt in range(_STALE_RETRIES):
            handle = self._handle(current, if_revision, last_event_id)
            before = len(handle.events)
            try:
                await self.service.append_event(handle, event)
            except SessionNotFoundError as exc:
                self.owners.forget(parent.engine, session_id)
                raise ApiError(
                    404, f"Session {parent.session_name(session_id)} not found."
                ) from exc
            except StaleSessionError as exc:
                if if_revision is None and last_event_id is None and attempt < _STALE_RETRIES - 1:
                    # No precondition given (google-adk's client): append on top of the latest.
                    current = await self.find(parent, session_id, user_id)
                    continue
                raise ApiError(409, exc.message, status="ABORTED") from exc
            except (TypeError, ValueError) as exc:
                if "already stored" in str(exc):
                    raise ApiError(409, str(exc), status="ALREADY_EXISTS") from exc
                raise ApiError(400, str(exc)) from exc
            headers = self.revision_headers(handle)
            headers[HEADER_EVENT_TIMESTAMP] = repr(event.timestamp)
            headers[HEADER_UPDATE_TIME] = repr(handle.last_update_time)
            if len(handle.events) == before:
                headers[HEADER_DUPLICATE] = "1"
            return JSONResponse({}, headers=headers)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _handle(current: Session, if_revision: str | None, last_event_id: str | None) -> Session:
        """The handle to append through: the client's revision, its last event, or current."""
        if if_revision is None and last_event_id is None:
            return current
        handle = Session(id=current.id, app_name=current.app_name, user_id=current.user_id)
        if if_revision is not None:
            handle._storage_update_marker = if_revision
        elif last_event_id:
            handle.events.append(Event(id=last_event_id))
        return handle

    async def list_events(
        self,
        parent: Parent,
        session_id: str,
        filter_: str | None,
        page_size: int | None,
        page_token: str | None,
        order_by: str | None,
        user_id: str | None,
    ) -> JSONResponse:
        since = parse_time_filter(filter_)
        check_order(order_by, ("timestamp",), "events")
        session = await self.find(parent, session_id, user_id)
        size = _EVENT_PAGE_DEFAULT if not page_size or page_size < 0 else page_size
        token = page_token or None
        if token is None and since is not None:
            # Keyset position just before `since`: the first page starts at it.
            token = encode_page_token((math.nextafter(since, -math.inf), "", ""))
        try:
            page = await self.service.list_events(
                app_name=parent.engine,
                user_id=session.user_id,
                session_id=session_id,
                limit=min(size, _EVENT_PAGE_MAX),
                page_token=token,
            )
        except SessionNotFoundError as exc:
            raise ApiError(404, f"Session {parent.session_name(session_id)} not found.") from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from exc
        name = parent.session_name(session_id)
        events = [
            event_to_api(e, name=f"{name}/events/{e.id}", clamp=True)
            for e in page.events
            if since is None or e.timestamp >= since
        ]
        body: dict[str, Any] = {"sessionEvents": events}
        if page.next_page_token:
            body["nextPageToken"] = page.next_page_token
        return JSONResponse(body)

    async def get_operation(self, parent: Parent, session_id: str, op_id: str) -> JSONResponse:
        operation = self.operations.get((parent.engine, session_id, op_id))
        if operation is None:
            raise ApiError(
                404, f"Operation {parent.session_name(session_id)}/operations/{op_id} not found."
            )
        return JSONResponse(operation)

    async def user_state(self, parent: Parent, user_id: str) -> JSONResponse:
        _check(user_id, "userId")
        state = await self.service.get_user_state(app_name=parent.engine, user_id=user_id)
        return JSONResponse({"userId": user_id, "state": state})


# Routes -------------------------------------------------------------------------------------


class _SessionIdConvertor(Convertor[str]):
    """A session id path segment, which holds no ``:``.

    So ``/sessions/s:appendEvent`` is never the session ``s:appendEvent``, and a GET there is
    405 (the API's custom method is POST only).
    """

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("session_id", _SessionIdConvertor())

_Engine = Annotated[str, Path(pattern=ENGINE_PATTERN, description="Reasoning engine id = app.")]
_Name = Annotated[str, Path(pattern=ENGINE_PATTERN)]
_SessionId = Annotated[str, Path(pattern=SESSION_PATTERN)]
_UserHeader = Annotated[
    str | None,
    Header(
        alias=HEADER_USER_ID,
        description="openadk: the caller's user id (percent-encoded); another user's session "
        "is refused with 403.",
        max_length=128,
        json_schema_extra={"pattern": HEADER_KEY, "minLength": 1},
    ),
]


def _full_parent(version: str) -> Callable[..., Awaitable[Parent]]:
    async def parent(project: _Name, location: _Name, engine: _Engine) -> Parent:
        prefix = f"projects/{project}/locations/{location}/reasoningEngines/{engine}"
        return Parent(version=version, prefix=prefix, engine=engine)

    return parent


def _express_parent(version: str) -> Callable[..., Awaitable[Parent]]:
    async def parent(engine: _Engine) -> Parent:
        return Parent(version=version, prefix=f"reasoningEngines/{engine}", engine=engine)

    return parent


def _router(server: _Server, parent_dep: Callable[..., Awaitable[Parent]]) -> APIRouter:
    router = APIRouter(responses=_ERROR_RESPONSES)
    _Parent = Annotated[Parent, Depends(parent_dep)]

    @router.post("/sessions", response_model=OperationOut, summary="Create a session")
    async def create_session(
        parent: _Parent,
        body: Annotated[SessionBody, Body()],
        session_id: Annotated[
            str | None, Query(alias="sessionId", pattern=NEW_SESSION_ID_PATTERN)
        ] = None,
        exist_ok: Annotated[
            str | None,
            Header(
                alias=HEADER_EXIST_OK,
                description="openadk: 'true' resumes an existing session of the same user, "
                "merging sessionState into it.",
            ),
        ] = None,
    ) -> JSONResponse:
        return await server.create(
            parent, body, session_id or None, (exist_ok or "").lower() in ("1", "true")
        )

    @router.get("/sessions", response_model=ListSessionsOut, summary="List sessions")
    async def list_sessions(
        parent: _Parent,
        filter_: Annotated[
            str | None,
            Query(
                alias="filter",
                max_length=4096,
                description='Terms joined with AND: user_id="...", labels.KEY="VALUE", '
                'update_time>="RFC 3339" (also >, <, <=, =).',
                json_schema_extra={"pattern": SESSIONS_FILTER},
            ),
        ] = None,
        page_size: Annotated[int | None, Query(alias="pageSize")] = None,
        page_token: Annotated[str | None, Query(alias="pageToken", max_length=4096)] = None,
        order_by: Annotated[
            str | None,
            Query(alias="orderBy", max_length=256, json_schema_extra={"pattern": SESSIONS_ORDER}),
        ] = None,
    ) -> JSONResponse:
        return await server.list_sessions(parent, filter_, page_size, page_token, order_by)

    @router.get(
        "/sessions/{session_id:session_id}", response_model=SessionOut, summary="Get a session"
    )
    async def get_session(
        parent: _Parent, session_id: _SessionId, user: _UserHeader = None
    ) -> JSONResponse:
        return await server.get(parent, session_id, _user(user))

    @router.get(
        "/sessions:search",
        response_model=dict[str, Any],
        summary="openadk: full-text search over the events' text, newest first",
    )
    async def search_sessions(
        parent: _Parent,
        query: Annotated[
            str,
            Query(
                max_length=4096,
                description="Words to look for (all must occur); other characters are text.",
                json_schema_extra={"pattern": "[A-Za-z0-9]"},
            ),
        ],
        user_id: Annotated[
            str | None,
            Query(alias="userId", max_length=128, json_schema_extra={"pattern": KEY}),
        ] = None,
        page_size: Annotated[int | None, Query(alias="pageSize")] = None,
        page_token: Annotated[str | None, Query(alias="pageToken", max_length=4096)] = None,
    ) -> JSONResponse:
        return await server.search(parent, query, user_id, page_size, page_token)

    @router.post(
        "/sessions/{session_id:session_id}:fork",
        response_model=SessionOut,
        summary="openadk: fork a session (copy its events up to an invocation)",
    )
    async def fork_session(
        parent: _Parent,
        session_id: _SessionId,
        body: Annotated[ForkBody, Body()],
        user: _UserHeader = None,
    ) -> JSONResponse:
        return await server.fork(parent, session_id, body, _user(user))

    @router.patch(
        "/sessions/{session_id:session_id}",
        response_model=SessionOut,
        summary="Change a session's displayName and labels",
    )
    async def patch_session(
        parent: _Parent,
        session_id: _SessionId,
        body: Annotated[SessionPatchBody, Body()],
        update_mask: Annotated[
            str | None,
            Query(
                alias="updateMask",
                max_length=256,
                description="Comma-separated: displayName, labels (all given fields when absent).",
                json_schema_extra={"pattern": _UPDATE_MASK},
            ),
        ] = None,
        user: _UserHeader = None,
    ) -> JSONResponse:
        return await server.patch(parent, session_id, body, update_mask, _user(user))

    @router.delete(
        "/sessions/{session_id:session_id}", response_model=OperationOut, summary="Delete a session"
    )
    async def delete_session(
        parent: _Parent, session_id: _SessionId, user: _UserHeader = None
    ) -> JSONResponse:
        return await server.delete(parent, session_id, _user(user))

    @router.post(
        "/sessions/{session_id:session_id}:appendEvent",
        response_model=dict[str, Any],
        summary="Append",
    )
    async def append_event(
        parent: _Parent,
        session_id: _SessionId,
        body: Annotated[SessionEventBody, Body()],
        user: _UserHeader = None,
        if_revision: Annotated[
            str | None,
            Header(
                alias=HEADER_IF_REVISION,
                description="openadk: refuse with 409 ABORTED unless the session is at this "
                "revision.",
            ),
        ] = None,
        last_event_id: Annotated[
            str | None,
            Header(
                alias=HEADER_LAST_EVENT_ID,
                description="openadk: refuse with 409 ABORTED unless the session's last event "
                "has this id ('' = no events).",
            ),
        ] = None,
    ) -> JSONResponse:
        return await server.append(
            parent,
            session_id,
            body,
            _user(user),
            _header(if_revision, HEADER_IF_REVISION),
            _header(last_event_id, HEADER_LAST_EVENT_ID),
        )

    @router.get(
        "/sessions/{session_id:session_id}/events",
        response_model=ListSessionEventsOut,
        summary="List a session's events",
    )
    async def list_events(
        parent: _Parent,
        session_id: _SessionId,
        filter_: Annotated[
            str | None,
            Query(
                alias="filter",
                max_length=4096,
                description='timestamp>="RFC 3339" only.',
                json_schema_extra={"pattern": EVENTS_FILTER},
            ),
        ] = None,
        page_size: Annotated[int | None, Query(alias="pageSize")] = None,
        page_token: Annotated[str | None, Query(alias="pageToken", max_length=4096)] = None,
        order_by: Annotated[
            str | None,
            Query(alias="orderBy", max_length=256, json_schema_extra={"pattern": EVENTS_ORDER}),
        ] = None,
        user: _UserHeader = None,
    ) -> JSONResponse:
        return await server.list_events(
            parent,
            session_id,
            filter_,
            page_size,
            page_token,
            order_by,
            _user(user),
        )

    @router.get(
        "/sessions/{session_id:session_id}/operations/{operation_id}",
        response_model=OperationOut,
        summary="Get an operation",
    )
    async def get_operation(
        parent: _Parent,
        session_id: _SessionId,
        operation_id: Annotated[str, Path(pattern=OPERATION_PATTERN)],
    ) -> JSONResponse:
        return await server.get_operation(parent, session_id, operation_id)

    @router.get(
        "/userState",
        response_model=UserStateOut,
        summary="openadk: a user's state (keys without the user: prefix)",
    )
    async def get_user_state(
        parent: _Parent,
        user_id: Annotated[
            str,
            Query(alias="userId", min_length=1, max_length=128, json_schema_extra={"pattern": KEY}),
        ],
    ) -> JSONResponse:
        return await server.user_state(parent, user_id)

    return router


def _auth_dependency(api_key: str) -> Callable[..., Awaitable[None]]:
    """The routes' own check of the key, which also documents the credentials in the schema.

    The guard has checked the key already, before reading the body.
    """
    expected = api_key.encode()
    bearer = HTTPBearer(auto_error=False, description="The server's API key as a bearer token.")
    header = APIKeyHeader(name="x-goog-api-key", auto_error=False)
    query = APIKeyQuery(name="key", auto_error=False)

    async def require_key(
        token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        key_header: Annotated[str | None, Depends(header)],
        key_query: Annotated[str | None, Depends(query)],
    ) -> None:
        # Starlette decodes header values as latin-1: back to the bytes the client sent.
        from_headers = [v.encode("latin-1") for v in (token and token.credentials, key_header) if v]
        if not key_matches([*from_headers, key_query], expected):
            raise ApiError(
                401,
                "The API key or bearer token is not valid.",
                headers={"www-authenticate": "Bearer"},
            )

    return require_key


_PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
)
_UI_PATHS = frozenset({"/", "/signin", "/signout"})
_READY_APP = "openadk-readyz"
_READY_TIMEOUT = 5.0


def _redact_access_log() -> None:
    """Hides ``?key=`` values in uvicorn's access log, whoever runs the app."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactKeyFilter) for f in access.filters):
        access.addFilter(RedactKeyFilter())


def create_app(
    service: BaseSessionService,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_requests_in_flight: int | None = None,
    max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT,
    max_body_bytes_in_flight: int = DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
    close_service: bool = False,
    ui: bool = True,
) -> FastAPI:
    """Serves ``service`` through the Agent Engine Sessions REST API.

    Routes live under ``/v1beta1/`` and ``/v1/``, with the parent
    ``projects/{project}/locations/{location}/reasoningEngines/{engine}`` (project and location
    are accepted and ignored) or ``reasoningEngines/{engine}`` (Express Mode style). The
    reasoning engine id is the app name. ``/openapi.json`` holds the schema, ``/docs`` shows it
    (Swagger UI, served from installed files); ``/healthz`` answers ``{"status": "ok"}`` while
    the process runs, ``/readyz`` ``{"status": "ready"}`` when the service answers a query (503
    otherwise); ``/`` is a small page for browsing sessions.

    The key and the ``Host`` are checked on the request's headers, before its body is read.
    Without a key only requests addressed to a loopback name (``127.0.0.1``, ``localhost``,
    ``[::1]``, any port) are answered (421 otherwise), so a web page cannot reach the server
    through DNS rebinding.

    Args:
        service: Where sessions are stored; any openadk session service.
        api_key: When given, every API request must carry it as ``Authorization: Bearer <key>``,
            ``x-goog-api-key: <key>`` or ``?key=<key>`` (401 otherwise); the page at ``/``
            asks for it once and keeps a cookie.
        max_body_bytes: Larger request bodies are refused with 413.
        max_requests_in_flight: More concurrent requests than this are refused with 429.
        max_bodies_in_flight: More request bodies than this being read or handled at once are
            refused with 503 and ``Retry-After``.
        max_body_bytes_in_flight: More body bytes than this being read or handled at once are
            refused with 503 and ``Retry-After``.
        close_service: Close ``service`` when the app shuts down.
        ui: Serve the browsing page at ``/``.

    Returns:
        The FastAPI app (an ASGI app).

    Raises:
        ValueError: A blank ``api_key`` or a limit that is not positive.
    """
    api_key = check_api_key(api_key)
    limits = Limits(
        max_body_bytes=max_body_bytes,
        max_requests_in_flight=max_requests_in_flight,
        max_bodies_in_flight=max_bodies_in_flight,
        max_body_bytes_in_flight=max_body_bytes_in_flight,
    )
    server = _Server(service)
    _redact_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_service:
                await service.close()

    app = FastAPI(
        title="openadk sessions server",
        version=openadk.__version__,
        description="The Vertex AI Agent Engine Sessions REST API, served by openadk from any "
        "session service. Headers named x-openadk-* are openadk's extensions.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Starlette builds slash redirects from the Host header; a wrong path is a 404 instead.
        redirect_slashes=False,
    )
    app.state.openadk = server
    install_error_handlers(app)
    dependencies = [] if api_key is None else [Depends(_auth_dependency(api_key))]
    table = RouteTable()
    app.state.route_table = table
    for version in _VERSIONS:
        for parent_dep, prefix in (
            (_full_parent(version), "/projects/{project}/locations/{location}"),
            (_express_parent(version), ""),
        ):
            router = _router(server, parent_dep)
            full_prefix = f"/{version}{prefix}/reasoningEngines/{{engine}}"
            for route in router.routes:
                if isinstance(route, APIRoute):
                    table.add(full_prefix + route.path, route.methods or ())
            app.include_router(
                router,
                prefix=full_prefix,
                dependencies=dependencies,
                include_in_schema=version == "v1beta1" and bool(prefix),
            )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await asyncio.wait_for(
                service.list_sessions(app_name=_READY_APP, limit=1), timeout=_READY_TIMEOUT
            )
        except Exception as exc:
            request_id = new_request_id()
            logger.warning(
                "not ready, request id %s: %s: %s",
                request_id,
                type(exc).__name__,
                redact_detail(str(exc)),
            )
            return error_response(
                503,
                f"The session store is not answering. Request id {request_id} (the server's "
                "log has the details).",
                headers={"retry-after": "1"},
                request_id=request_id,
            )
        return JSONResponse({"status": "ready"})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # State values refer to this recursive schema, which pydantic cannot declare.
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components[JSON_VALUE] = JSON_VALUE_SCHEMA
            components.update(model_components())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_docs(app, "/openapi.json", app.title)
    public = set(_PUBLIC_PATHS)
    if ui:
        from openadk.server._ui import install_ui

        install_ui(app, server.service, server.owners, api_key)
        public |= _UI_PATHS

    for route in app.router.routes:
        if isinstance(route, APIRoute):
            table.add(route.path, route.methods or ())

    def is_public(path: str) -> bool:
        return path in public or path.startswith(ASSETS_PATH + "/")

    app.add_middleware(Guard, api_key=api_key, limits=limits, is_public=is_public)
    return app
