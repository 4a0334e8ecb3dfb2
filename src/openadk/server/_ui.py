"""The session browser: ``openadk serve``'s web pages.

Server-rendered Jinja2 templates, enhanced by htmx (vendored in ``web/static``, served by this
module, so the pages need no network). Every value is escaped by the templates; the pages carry a
Content-Security-Policy that allows scripts and styles from this server only, and no inline
script. Reads go through the session service's public methods and `openadk.sessions._browse`;
every action (trim, delete, rename, labels, fork, export) calls the same service method the CLI
does.

URLs hold the view (``/app?app=A&user=U&cursor=...``, ``/session?app=A&user=U&id=S``), with
identifiers in the query string, so any id (slashes, spaces, RTL marks) makes a valid link.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from markupsafe import Markup, escape

import openadk
from openadk.errors import SessionNotFoundError, StorageError
from openadk.server._guard import COOKIE_NAME
from openadk.server._owners import Owners
from openadk.server._views import (
    event_view,
    exact_time,
    relative_time,
    state_view,
    title_of,
    visible,
)
from openadk.sessions import BaseSessionService, GetSessionConfig, Session
from openadk.sessions import _browse as browse
from openadk.sessions._base import check_key, encode_page_token

__all__ = ["UI_PREFIX", "install_ui"]

UI_PREFIX = "/ui"
"""Every page but ``/``, ``/signin`` and ``/signout`` lives under this path."""

SESSIONS_PER_PAGE = 50
EVENTS_PER_PAGE = 50
POLL_SECONDS = 2

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
_STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def _cookie_token(api_key: str) -> str:
    """What the sign-in cookie holds: derived from the key, so the browser never stores it."""
    return hmac.new(api_key.encode(), b"openadk browse page", hashlib.sha256).hexdigest()


class _PageError(Exception):
    """Answered as an HTML page (or fragment) with this status and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class _Key:
    app: str
    user: str
    id: str

    def query(self, **more: str) -> str:
        return urlencode({"app": self.app, "user": self.user, "id": self.id, **more})


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("openadk.server", "web/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["visible"] = visible
    env.filters["exact"] = exact_time
    env.filters["highlight"] = _highlight
    env.globals["qs"] = lambda **params: urlencode(
        {k: v for k, v in params.items() if v not in (None, "")}
    )
    env.globals["version"] = openadk.__version__
    env.globals["prefix"] = UI_PREFIX
    env.globals["rel"] = lambda stamp: relative_time(stamp, time.time())
    return env


def _highlight(snippet: str) -> Markup:
    """A search snippet (matched words wrapped in ``**``) with the matches in ``<mark>``."""
    parts = visible(snippet).split("**")
    return Markup("").join(
        Markup("<mark>{}</mark>").format(part) if odd else escape(part)
        for odd, part in ((i % 2 == 1, p) for i, p in enumerate(parts))
    )


def _static_files() -> dict[str, bytes]:
    root = resources.files("openadk.server") / "web" / "static"
    return {name: root.joinpath(name).read_bytes() for name in _STATIC}


def _arg(source: Mapping[str, str], name: str, *, required: bool = True) -> str | None:
    value = source.get(name)
    if value is None or value == "":
        if required:
            raise _PageError(400, "Bad request", f"The {name!r} parameter is missing.")
        return None
    try:
        return check_key(value, name)
    except ValueError as exc:
        raise _PageError(400, "Bad request", str(exc)) from exc


def _key(source: Mapping[str, str]) -> _Key:
    return _Key(str(_arg(source, "app")), str(_arg(source, "user")), str(_arg(source, "id")))


def _labels_filter(text: str | None) -> dict[str, str]:
    """``k=v`` pairs separated by commas or spaces."""
    if not text:
        return {}
    found = {}
    for item in text.replace(",", " ").split():
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise _PageError(
                400, "Bad label filter", f"Label filter {item!r} is not key=value (e.g. env=prod)."
            )
        found[name] = value
    return found


def _capable(service: BaseSessionService, capability: str, method: str) -> bool:
    """Whether the service has ``method`` and, when it lists its capabilities, ``capability``."""
    if not callable(getattr(service, method, None)):
        return False
    declared = getattr(service, "capabilities", None)
    return declared is None or capability in declared


def _same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this server's own pages.

    A cross-site form post is refused whatever cookie it carries: browsers send ``Origin`` (and
    ``Sec-Fetch-Site``) on every POST, and pages of another origin cannot make either say this
    server. This matters most without an API key, where no cookie guards the forms.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def install_ui(
    app: FastAPI, service: BaseSessionService, owners: Owners, api_key: str | None
) -> None:
    """Adds the browser's pages: ``/`` (apps), ``/signin``, ``/signout`` and ``/ui/...``.

    With an API key configured, every page asks for it once (``POST /signin``, a form) and keeps
    an HttpOnly, SameSite=Strict cookie derived from it; ``POST /signout`` clears the cookie. No
    URL ever carries the key. Without a key (the server then answers loopback addresses only)
    there is no sign-in.
    """
    del owners  # the pages name sessions by (app, user, id): no owner lookups needed
    env = _templates()
    static = _static_files()
    token = None if api_key is None else _cookie_token(api_key)
    supports_labels = _capable(service, "metadata", "update_session")
    supports_search = _capable(service, "search", "search_events")
    supports_fork = _capable(service, "fork", "fork_session")
    features = {"labels": supports_labels, "search": supports_search, "fork": supports_fork}

    def signed_in(request: Request) -> bool:
        if token is None:
            return True
        given = request.cookies.get(COOKIE_NAME, "")
        return hmac.compare_digest(given.encode(), token.encode())

    def render(
        request: Request, name: str, status: int = 200, headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        body = env.get_template(name).render(
            signed_in=token is not None and signed_in(request), features=features, **context
        )
        return HTMLResponse(body, status_code=status, headers={**_PAGE_HEADERS, **(headers or {})})

    def error_page(request: Request, error: _PageError) -> HTMLResponse:
        fragment = request.headers.get("hx-request") == "true"
        return render(
            request,
            "fragment_error.html" if fragment else "error.html",
            status=error.status,
            title=error.title,
            message=error.message,
        )

    def sign_in_page(request: Request, message: str, status: int) -> HTMLResponse:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            back = "/"
        return render(request, "signin.html", status=status, message=message, next=back)

    Handler = Callable[[Request], Any]

    def page(path: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
        """Registers a page: signed-in check, same-origin check for POST, HTML errors."""

        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                if not signed_in(request):
                    if request.headers.get("hx-request") == "true":
                        return render(
                            request, "fragment_error.html", status=401, title="Signed out",
                            message="Signed out: reload the page to sign in again.",
                        )  # fmt: skip
                    return sign_in_page(request, "This server needs its API key.", 401)
                if request.method == "POST" and not _same_origin(request):
                    return error_page(
                        request,
                        _PageError(403, "Refused", "A form from another site was refused."),
                    )
                try:
                    response: Response = await handler(request)
                except _PageError as error:
                    return error_page(request, error)
                except StorageError as error:
                    return error_page(
                        request,
                        _PageError(
                            503,
                            "The session store failed",
                            f"{type(error).__name__}: the server's log has the details.",
                        ),
                    )
                return response

            app.add_api_route(
                path, endpoint, methods=list(methods), include_in_schema=False,
                response_class=HTMLResponse,
            )  # fmt: skip
            return handler

        return register

    async def form_of(request: Request) -> dict[str, str]:
        # The guard caps these public routes' bodies at a few KiB.
        return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))

    def redirect(location: str) -> Response:
        # Relative: a redirect is never built from the Host header.
        return Response(status_code=303, headers={"location": location})

    # Sign-in ----------------------------------------------------------------------------------

    @app.get("/signin", include_in_schema=False)
    async def sign_in_form(request: Request) -> Response:
        if token is None or signed_in(request):
            return redirect("/")
        return sign_in_page(request, "Sign in with the server's API key.", 200)

    @app.post("/signin", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        if api_key is None or token is None:
            return redirect("/")
        if not _same_origin(request):
            return error_page(
                request, _PageError(403, "Refused", "A form from another site was refused.")
            )
        form = await form_of(request)
        given = form.get("key", "")
        target = form.get("next", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        if not (given and hmac.compare_digest(given.encode(), api_key.encode())):
            return render(
                request, "signin.html", status=401,
                message="That is not the server's API key.", next=target,
            )  # fmt: skip
        response = redirect(target)
        response.set_cookie(
            COOKIE_NAME,
            token,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/signout", include_in_schema=False)
    async def sign_out() -> Response:
        response = redirect("/")
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @app.get(UI_PREFIX + "/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        media = _STATIC.get(name)
        if media is None:
            return Response("No such file.", status_code=404, media_type="text/plain")
        return Response(
            static[name],
            media_type=media,
            headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
        )

    # Apps -------------------------------------------------------------------------------------

    @page("/")
    async def apps_page(request: Request) -> Response:
        params = request.query_params
        if params.get("app"):
            # The links of the page this browser replaced (``/?app=A&user=U&session=S``).
            if params.get("user") and params.get("session"):
                query = urlencode(
                    {"app": params["app"], "user": params["user"], "id": params["session"]}
                )
                return redirect(f"{UI_PREFIX}/session?{query}")
            return redirect(f"{UI_PREFIX}/app?" + urlencode({"app": params["app"]}))
        try:
            rows = await browse.app_rows(service)
        except ValueError as exc:
            raise _PageError(501, "Apps cannot be listed", str(exc)) from exc
        return render(request, "apps.html", apps=rows)

    # Sessions of an app -----------------------------------------------------------------------

    @page(UI_PREFIX + "/app")
    async def sessions_page(request: Request) -> Response:
        params = request.query_params
        app_name = str(_arg(params, "app"))
        user = _arg(params, "user", required=False)
        label_text = (params.get("label") or "").strip()
        labels = _labels_filter(label_text)
        if labels and not supports_labels:
            raise _PageError(
                400, "Labels are not kept", "This session service keeps no labels to filter by."
            )
        query = (params.get("q") or "").strip()
        cursor = params.get("cursor") or None
        if query:
            return await search_results(request, app_name, user, query, cursor)
        try:
            listed = await browse.newest_sessions(
                service, app_name=app_name, user_id=user, labels=labels, cursor=cursor,
                limit=SESSIONS_PER_PAGE,
            )  # fmt: skip
        except ValueError as exc:
            raise _PageError(400, "Bad request", str(exc)) from exc
        rows = [
            {
                "row": row,
                "title": title_of(row.display_name, row.first_message, row.id),
                "named": bool(row.display_name or row.first_message),
            }
            for row in listed.rows
        ]
        view = {"app": app_name, "user": user, "label": label_text or None}
        return render(
            request, "sessions.html", app_name=app_name, user=user or "", label=label_text,
            q="", rows=rows, view=view, cursor=cursor, next_cursor=listed.next_cursor,
            hits=None, notice=params.get("done"),
        )  # fmt: skip

    async def search_results(
        request: Request, app_name: str, user: str | None, query: str, cursor: str | None
    ) -> Response:
        if not supports_search:
            raise _PageError(
                501, "No search", "This session service has no full-text search of events."
            )
        search: Any = service.search_events
        try:
            found = await search(
                app_name=app_name, query=query, user_id=user, limit=SESSIONS_PER_PAGE,
                page_token=cursor,
            )  # fmt: skip
        except ValueError as exc:
            raise _PageError(400, "Bad search", str(exc)) from exc
        hits = getattr(found, "hits", None)
        if hits is None:
            hits = getattr(found, "events", found)
        view = {"app": app_name, "user": user, "q": query}
        return render(
            request, "sessions.html", app_name=app_name, user=user or "", label="", q=query,
            rows=[], view=view, cursor=cursor,
            next_cursor=getattr(found, "next_page_token", None), hits=list(hits), notice=None,
        )  # fmt: skip

    @page(UI_PREFIX + "/app/export")
    async def export_app(request: Request) -> Response:
        app_name = str(_arg(request.query_params, "app"))
        user = _arg(request.query_params, "user", required=False)
        lines = _export_lines(service, app_name, user)
        return StreamingResponse(
            lines,
            media_type="application/x-ndjson",
            headers={
                "content-disposition": "attachment; filename=sessions.jsonl",
                "x-content-type-options": "nosniff",
            },
        )

    # A session --------------------------------------------------------------------------------

    async def load(key: _Key, recent: int) -> Session:
        session = await service.get_session(
            app_name=key.app, user_id=key.user, session_id=key.id,
            config=GetSessionConfig(num_recent_events=recent),
        )  # fmt: skip
        if session is None:
            raise _PageError(
                404,
                "Session deleted",
                f"Session {key.id!r} of user {key.user!r} was deleted (or never existed).",
            )
        return session

    def revision(session: Session) -> str:
        marker = session._storage_update_marker
        return marker if marker is not None else repr(session.last_update_time)

    def event_cursor(stamp: float, event_id: str) -> str:
        return f"{stamp!r}:{event_id}"

    def parse_cursor(text: str | None) -> tuple[float, str]:
        stamp, colon, event_id = (text or "").partition(":")
        try:
            value = float(stamp)
        except ValueError:
            value = float("nan")
        if not colon or value != value:
            raise _PageError(400, "Bad request", "The event position is not valid.")
        return value, event_id

    def session_context(
        key: _Key, session: Session, events: list[Any], older: bool
    ) -> dict[str, Any]:
        name, labels = browse._metadata(session)
        views = [event_view(e) for e in reversed(events)]
        newest = events[-1] if events else None
        oldest = events[0] if events else None
        return {
            "key": key,
            "session": session,
            "display_name": name,
            "labels": labels,
            "title": title_of(name, None, session.id),
            "state": state_view(session.state),
            "events": views,
            "after": event_cursor(newest.timestamp, newest.id) if newest else "",
            "before": event_cursor(oldest.timestamp, oldest.id) if oldest and older else "",
            "rev": revision(session),
        }

    @page(UI_PREFIX + "/session")
    async def session_page(request: Request) -> Response:
        key = _key(request.query_params)
        session = await load(key, EVENTS_PER_PAGE)
        count = await browse.count_events(
            service, app_name=key.app, user_id=key.user, session_id=key.id
        )
        context = session_context(key, session, session.events, count > len(session.events))
        notice = request.query_params.get("done")
        return render(
            request, "session.html", count=count, poll=POLL_SECONDS, notice=notice, **context
        )

    @page(UI_PREFIX + "/session/older")
    async def older_events(request: Request) -> Response:
        key = _key(request.query_params)
        before = parse_cursor(request.query_params.get("before"))
        try:
            found, more = await browse.events_before(
                service, app_name=key.app, user_id=key.user, session_id=key.id, before=before,
                limit=EVENTS_PER_PAGE,
            )  # fmt: skip
        except SessionNotFoundError as exc:
            raise _PageError(404, "Session deleted", "This session was deleted.") from exc
        oldest = found[0] if found else None
        return render(
            request, "older.html", key=key, events=[event_view(e) for e in reversed(found)],
            before=event_cursor(oldest.timestamp, oldest.id) if oldest and more else "",
        )  # fmt: skip

    @page(UI_PREFIX + "/session/live")
    async def live_events(request: Request) -> Response:
        key = _key(request.query_params)
        rev = request.query_params.get("rev", "")
        after_text = request.query_params.get("after") or ""
        try:
            head = await load(key, 0)
        except _PageError:
            # 286 tells htmx to stop polling; the banner replaces the poller.
            return render(request, "deleted.html", status=286, key=key)
        if revision(head) == rev:
            return Response(status_code=204)
        after = parse_cursor(after_text) if after_text else None
        # At most a page of new events (plus the one at ``after``, which is not new).
        config = GetSessionConfig(
            num_recent_events=EVENTS_PER_PAGE + 1,
            after_timestamp=None if after is None else after[0],
        )
        session = await service.get_session(
            app_name=key.app, user_id=key.user, session_id=key.id, config=config
        )
        if session is None:
            return render(request, "deleted.html", status=286, key=key)
        fresh = [e for e in session.events if after is None or (e.timestamp, e.id) > after]
        skipped = len(fresh) > EVENTS_PER_PAGE
        fresh = fresh[-EVENTS_PER_PAGE:]
        count = await browse.count_events(
            service, app_name=key.app, user_id=key.user, session_id=key.id
        )
        newest = fresh[-1] if fresh else None
        return render(
            request, "live.html", key=key, events=[event_view(e) for e in reversed(fresh)],
            after=event_cursor(newest.timestamp, newest.id) if newest else after_text,
            rev=revision(session), poll=POLL_SECONDS, state=state_view(session.state),
            count=count, session=session, skipped=skipped,
        )  # fmt: skip

    @page(UI_PREFIX + "/session/raw")
    async def raw_event(request: Request) -> Response:
        key = _key(request.query_params)
        event_id = str(_arg(request.query_params, "event"))
        try:
            stamp = float(request.query_params.get("at", ""))
        except ValueError:
            stamp = math.nan
        if not math.isfinite(stamp):
            raise _PageError(400, "Bad request", "The event's time ('at') is not valid.")
        try:
            # From just before the event's time: the event is among the first few listed.
            near = await service.list_events(
                app_name=key.app, user_id=key.user, session_id=key.id, limit=20,
                page_token=encode_page_token((math.nextafter(stamp, -math.inf), "", "")),
            )  # fmt: skip
        except SessionNotFoundError as exc:
            raise _PageError(404, "Session deleted", "This session was deleted.") from exc
        event = next((e for e in near.events if e.id == event_id), None)
        if event is None:
            raise _PageError(404, "No such event", f"Event {event_id!r} is not in this session.")
        raw = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        name = "fragment_raw.html" if request.headers.get("hx-request") == "true" else "raw.html"
        return render(request, name, key=key, event=event, raw=browse.dumps(raw))

    @page(UI_PREFIX + "/session/export")
    async def export_session(request: Request) -> Response:
        key = _key(request.query_params)
        session = await service.get_session(app_name=key.app, user_id=key.user, session_id=key.id)
        if session is None:
            raise _PageError(404, "Session deleted", "This session was deleted.")
        line = session.model_dump_json(by_alias=True, exclude_none=True) + "\n"
        return Response(
            line,
            media_type="application/x-ndjson",
            headers={
                "content-disposition": "attachment; filename=session.jsonl",
                "x-content-type-options": "nosniff",
            },
        )

    # Actions ----------------------------------------------------------------------------------

    def app_url(key: _Key, done: str) -> str:
        return f"{UI_PREFIX}/app?" + urlencode({"app": key.app, "done": done})

    def session_url(key: _Key, done: str) -> str:
        return f"{UI_PREFIX}/session?" + key.query(done=done)

    @page(UI_PREFIX + "/session/delete", ("POST",))
    async def delete(request: Request) -> Response:
        form = await form_of(request)
        key = _key(form)
        if form.get("confirm") != "yes":
            raise _PageError(400, "Not confirmed", "Tick the box to confirm the deletion.")
        await load(key, 0)
        await service.delete_session(app_name=key.app, user_id=key.user, session_id=key.id)
        return redirect(app_url(key, f"Deleted session {key.id}."))

    @page(UI_PREFIX + "/session/trim", ("POST",))
    async def trim(request: Request) -> Response:
        form = await form_of(request)
        key = _key(form)
        try:
            keep = int(form.get("keep", ""))
            if keep < 0:
                raise ValueError(keep)
        except ValueError as exc:
            raise _PageError(400, "Bad request", "Keep must be a whole number, 0 or more.") from exc
        await load(key, 0)
        try:
            deleted = await service.trim_events(
                app_name=key.app, user_id=key.user, session_id=key.id, keep_last_events=keep
            )
        except NotImplementedError as exc:
            raise _PageError(501, "Cannot trim", str(exc)) from exc
        except SessionNotFoundError as exc:
            raise _PageError(404, "Session deleted", "This session was deleted.") from exc
        return redirect(session_url(key, f"Trimmed {deleted} events."))

    @page(UI_PREFIX + "/session/rename", ("POST",))
    async def rename(request: Request) -> Response:
        form = await form_of(request)
        key = _key(form)
        if not supports_labels:
            raise _PageError(501, "Cannot rename", "This session service keeps no names.")
        await load(key, 0)
        name = form.get("display_name", "").strip() or None
        await update(key, display_name=name)
        return redirect(session_url(key, "Renamed." if name else "Name removed."))

    @page(UI_PREFIX + "/session/labels", ("POST",))
    async def set_labels(request: Request) -> Response:
        form = await form_of(request)
        key = _key(form)
        if not supports_labels:
            raise _PageError(501, "Cannot label", "This session service keeps no labels.")
        labels = _labels_filter(form.get("labels", ""))
        await load(key, 0)
        await update(key, labels=labels)
        return redirect(session_url(key, "Labels saved."))

    async def update(key: _Key, **changes: Any) -> None:
        updater: Any = service.update_session
        try:
            await updater(app_name=key.app, user_id=key.user, session_id=key.id, **changes)
        except SessionNotFoundError as exc:
            raise _PageError(404, "Session deleted", "This session was deleted.") from exc
        except (TypeError, ValueError) as exc:
            raise _PageError(400, "Refused", str(exc)) from exc

    @page(UI_PREFIX + "/session/fork", ("POST",))
    async def fork(request: Request) -> Response:
        form = await form_of(request)
        key = _key(form)
        if not supports_fork:
            raise _PageError(501, "Cannot fork", "This session service cannot fork sessions.")
        new_id = _arg(form, "new_id", required=False)
        up_to = form.get("up_to_invocation_id") or None
        await load(key, 0)
        forker: Any = service.fork_session
        try:
            forked = await forker(
                app_name=key.app, user_id=key.user, session_id=key.id, new_session_id=new_id,
                up_to_invocation_id=up_to,
            )  # fmt: skip
        except SessionNotFoundError as exc:
            raise _PageError(404, "Session deleted", "This session was deleted.") from exc
        except (TypeError, ValueError) as exc:
            raise _PageError(400, "Cannot fork", str(exc)) from exc
        target = _Key(key.app, key.user, forked.id)
        return redirect(session_url(target, f"Forked from {key.id}."))


async def _export_lines(
    service: BaseSessionService, app_name: str, user_id: str | None
) -> AsyncIterator[str]:
    """The app's sessions as JSON Lines: `export_sessions` on a database, else listed."""
    from openadk.sessions._admin import export_sessions

    try:
        from openadk.sessions._database import DatabaseSessionService
    except ImportError:  # pragma: no cover
        DatabaseSessionService = None  # type: ignore[assignment,misc]
    if DatabaseSessionService is not None and isinstance(service, DatabaseSessionService):
        async for line in export_sessions(service, app_name=app_name, user_id=user_id):
            yield line + "\n"
        return
    token = None
    while True:
        page = await service.list_sessions(
            app_name=app_name, user_id=user_id, limit=100, page_token=token
        )
        for listed in page.sessions:
            full = await service.get_session(
                app_name=app_name, user_id=listed.user_id, session_id=listed.id
            )
            if full is not None:
                yield full.model_dump_json(by_alias=True, exclude_none=True) + "\n"
        token = page.next_page_token
        if token is None:
            return
