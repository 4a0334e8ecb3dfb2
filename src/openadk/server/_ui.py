"""A small HTML page at ``/`` for browsing an app's sessions and a session's events."""

from __future__ import annotations

import hashlib
import hmac
import json
from html import escape
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from openadk.server._guard import COOKIE_NAME
from openadk.server._owners import Owners
from openadk.sessions import BaseSessionService
from openadk.sessions._vertex import format_time

__all__ = ["install_ui"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
th { background: #f3f3f3; text-align: left; } pre { background: #f7f7f7; padding: .6rem; }
code { font-size: .9em; } .muted { color: #777; }
"""
_PAGE = 100


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def _cookie_token(api_key: str) -> str:
    """What the sign-in cookie holds: derived from the key, so the browser never stores it."""
    return hmac.new(api_key.encode(), b"openadk browse page", hashlib.sha256).hexdigest()


def _sign_in_page(message: str, status: int) -> HTMLResponse:
    form = (
        f"<p>{escape(message)}</p><form method='post' action='/signin'>"
        "<label>API key: <input type='password' name='key' autocomplete='current-password' "
        "required></label> <button>Sign in</button></form>"
    )
    return _page("openadk sessions", form, status)


def _redirect_home() -> Response:
    # A relative Location: a redirect is never built from the Host header.
    return Response(status_code=303, headers={"location": "/"})


def _json(value: object) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def install_ui(
    app: FastAPI, service: BaseSessionService, owners: Owners, api_key: str | None
) -> None:
    """Adds ``GET /``: a form for an app name, its sessions, and one session's state and events.

    With an API key configured, the page asks for it once (``POST /signin``, a form) and keeps
    an HttpOnly, SameSite=Strict cookie derived from it; ``POST /signout`` clears the cookie. No
    URL ever carries the key.
    """
    token = None if api_key is None else _cookie_token(api_key)

    def signed_in(request: Request) -> bool:
        if token is None:
            return True
        given = request.cookies.get(COOKIE_NAME, "")
        return hmac.compare_digest(given.encode(), token.encode())

    @app.post("/signin", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        if api_key is None or token is None:
            return _redirect_home()
        # The guard caps this public route's body at a few KiB.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        given = form.get("key", "")
        if not (given and hmac.compare_digest(given.encode(), api_key.encode())):
            return _sign_in_page("That is not the server's API key.", 401)
        response = _redirect_home()
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
        response = _redirect_home()
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def index(
        request: Request,
        app_name: Annotated[str | None, Query(alias="app", max_length=128)] = None,
        user_id: Annotated[str | None, Query(alias="user", max_length=128)] = None,
        session_id: Annotated[str | None, Query(alias="session", max_length=128)] = None,
        page_token: Annotated[str | None, Query(alias="page", max_length=4096)] = None,
    ) -> HTMLResponse:
        if not signed_in(request):
            return _sign_in_page("This server needs its API key to show sessions.", 401)

        def link(**params: str) -> str:
            return "/?" + urlencode(params)

        sign_out_form = (
            ""
            if token is None
            else "<form method='post' action='/signout'><button>Sign out</button></form>"
        )
        form = (
            sign_out_form + "<form method='get' action='/'>App (reasoning engine id): "
            f"<input name='app' value='{escape(app_name or '')}'>"
            "<button>Show sessions</button></form>"
        )
        apps = owners.known_apps()
        if not app_name:
            known = "".join(
                f"<li><a href='{escape(link(app=a))}'>{escape(a)}</a></li>" for a in apps
            )
            more = f"<p>Apps this server has seen:</p><ul>{known}</ul>" if known else ""
            return _page("openadk sessions", form + more)
        try:
            if session_id and user_id:
                session = await service.get_session(
                    app_name=app_name, user_id=user_id, session_id=session_id
                )
                if session is None:
                    return _page("Session not found", form, 404)
                events = "".join(
                    f"<h3>{escape(e.author or '?')} <span class='muted'>"
                    f"{escape(format_time(e.timestamp, clamp=True))} {escape(e.id)}</span></h3>"
                    + _json(e.model_dump(mode="json", by_alias=True, exclude_none=True))
                    for e in session.events
                )
                back = f"<p><a href='{escape(link(app=app_name))}'>All sessions</a></p>"
                return _page(
                    f"Session {session_id}",
                    form + back + f"<p>User <code>{escape(user_id)}</code>, "
                    f"{len(session.events)} events.</p><h2>State</h2>"
                    + _json(session.state)
                    + "<h2>Events</h2>"
                    + (events or "<p class='muted'>No events.</p>"),
                )
            listed = await service.list_sessions(
                app_name=app_name, limit=_PAGE, page_token=page_token
            )
        except (TypeError, ValueError) as exc:
            return _page("Bad request", form + f"<p>{escape(str(exc))}</p>", 400)
        rows = "".join(
            "<tr><td><a href='"
            + escape(link(app=app_name, user=s.user_id, session=s.id))
            + f"'>{escape(s.id)}</a></td><td>{escape(s.user_id)}</td>"
            f"<td>{escape(format_time(s.last_update_time, clamp=True))}</td>"
            f"<td>{len(s.state)}</td></tr>"
            for s in listed.sessions
        )
        table = (
            "<table><tr><th>Session</th><th>User</th><th>Updated</th><th>State keys</th></tr>"
            f"{rows}</table>"
            if rows
            else "<p class='muted'>No sessions.</p>"
        )
        nxt = (
            f"<p><a href='{escape(link(app=app_name, page=listed.next_page_token))}'>Next</a></p>"
            if listed.next_page_token
            else ""
        )
        return _page(f"Sessions of {app_name}", form + table + nxt)
