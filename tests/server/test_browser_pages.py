"""The session browser's pages over HTTP (no browser): headers, markup rules, forms, errors.

What a real browser shows is in test_browser.py; here, what every page must hold whatever it
shows: the Content-Security-Policy, no inline script or style, no key in a URL, cross-site forms
refused, bad parameters and deleted sessions answered as pages, not stack traces.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
import pytest_asyncio
from google.genai import types

from openadk.events import Event
from openadk.server import create_app
from openadk.server._ui import CSP
from openadk.sessions import InMemorySessionService
from tests.server.conftest import API_KEY, LOCAL

pytestmark = pytest.mark.asyncio


class _Markup(HTMLParser):
    """Collects what the CSP would block or what would let a string become markup."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.styles = 0
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.inline_scripts += 1
        if tag == "style":
            self.styles += 1
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(name)
            if name == "style":
                self.styles += 1
            if name in ("href", "action", "src", "hx-get") and value:
                self.urls.append(value)


def _markup(html: str) -> _Markup:
    parser = _Markup()
    parser.feed(html)
    return parser


async def _seed(store: InMemorySessionService) -> None:
    session = await store.create_session(
        app_name="app1", user_id="u1", session_id="s1", state={"app:a": 1, "user:b": 2, "c": 3}
    )
    await store.append_event(
        session,
        Event(
            author="user",
            content=types.Content(role="user", parts=[types.Part(text="<script>x</script>")]),
        ),
    )


@pytest_asyncio.fixture
async def keyed() -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySessionService]]:
    store = InMemorySessionService()
    await _seed(store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(store, api_key=API_KEY)),
        base_url="http://openadk.test",
    ) as http:
        signed = await http.post(
            "/signin", data={"key": API_KEY}, headers={"origin": "http://openadk.test"}
        )
        assert signed.status_code == 303
        yield http, store


@pytest_asyncio.fixture
async def open_pages() -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySessionService]]:
    store = InMemorySessionService()
    await _seed(store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(store)), base_url=LOCAL
    ) as http:
        yield http, store


PAGES = [
    "/",
    "/ui/app?app=app1",
    "/ui/app?app=app1&user=u1",
    "/ui/session?app=app1&user=u1&id=s1",
    "/ui/session?app=app1&user=u1&id=gone",
    "/ui/app?app=",
    "/ui/session?app=app1&user=u1&id=s1&x=" + "y" * 5000,
]


async def test_every_page_has_the_csp_and_no_inline_script(
    keyed: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, _ = keyed
    for url in PAGES:
        response = await http.get(url)
        assert response.headers["content-security-policy"] == CSP, url
        assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-type"].startswith("text/html")
        markup = _markup(response.text)
        assert markup.inline_scripts == 0 and markup.handlers == [] and markup.styles == 0, url
        assert not [u for u in markup.urls if "key=" in u or API_KEY in u], url
        assert "Traceback" not in response.text
        # Every asset is served by this server: nothing from another host.
        assert not [u for u in markup.urls if re.match(r"(?i)(https?:)?//", u)], url


async def test_assets_are_served_from_the_package(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, _ = open_pages
    htmx = await http.get("/ui/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.headers["content-type"].startswith("text/javascript")
    assert b"htmx" in htmx.content[:100]
    assert (await http.get("/ui/static/app.css")).status_code == 200
    assert (await http.get("/ui/static/../_ui.py")).status_code == 404
    assert (await http.get("/ui/static/nope.js")).status_code == 404
    # Swagger's /docs is served from installed files too.
    docs = await http.get("/docs")
    assert docs.status_code == 200
    for asset in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
        assert asset.startswith("/"), asset
        assert (await http.get(asset)).status_code == 200, asset


async def test_without_a_key_there_is_no_sign_in(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, _ = open_pages
    home = await http.get("/")
    assert home.status_code == 200 and "app1" in home.text
    assert "Sign out" not in home.text and 'name="key"' not in home.text
    assert (await http.get("/signin")).headers["location"] == "/"


async def test_a_signed_out_visitor_gets_the_form_for_every_page(
    keyed: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, _ = keyed
    http.cookies.clear()
    for url in PAGES[:4]:
        response = await http.get(url)
        assert response.status_code == 401
        assert 'name="key"' in response.text and "<script>x" not in response.text
        assert "&lt;script&gt;x" not in response.text
    fragment = await http.get(
        "/ui/session/live?app=app1&user=u1&id=s1", headers={"hx-request": "true"}
    )
    assert fragment.status_code == 401 and "Signed out" in fragment.text
    # Signing in brings the visitor back to the page asked for, never to another site.
    for target, lands in (
        ("/ui/app?app=app1", "/ui/app?app=app1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
    ):
        signed = await http.post(
            "/signin",
            data={"key": API_KEY, "next": target},
            headers={"origin": "http://openadk.test"},
        )
        assert signed.headers["location"] == lands


async def test_cross_site_forms_are_refused(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, store = open_pages
    form = {"app": "app1", "user": "u1", "id": "s1", "confirm": "yes"}
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:8080"},
    ):
        refused = await http.post("/ui/session/delete", data=form, headers=headers)
        assert refused.status_code == 403, headers
        assert "another site" in refused.text
    assert await store.get_session(app_name="app1", user_id="u1", session_id="s1") is not None
    done = await http.post(
        "/ui/session/delete",
        data=form,
        headers={"origin": "http://127.0.0.1:8080", "sec-fetch-site": "same-origin"},
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/ui/app?app=app1")
    assert await store.get_session(app_name="app1", user_id="u1", session_id="s1") is None


async def test_actions_need_confirmation_and_say_deleted(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, store = open_pages
    key = {"app": "app1", "user": "u1", "id": "s1"}
    unconfirmed = await http.post("/ui/session/delete", data=key)
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    bad_trim = await http.post("/ui/session/trim", data={**key, "keep": "-1"})
    assert bad_trim.status_code == 400 and "whole number" in bad_trim.text
    await store.delete_session(app_name="app1", user_id="u1", session_id="s1")
    for response in (
        await http.get("/ui/session", params=key),
        await http.post("/ui/session/trim", data={**key, "keep": "1"}),
        await http.post("/ui/session/delete", data={**key, "confirm": "yes"}),
        await http.get("/ui/session/export", params=key),
        await http.get("/ui/session/raw", params={**key, "event": "e", "at": "1"}),
    ):
        assert response.status_code == 404, response.request.url
        assert "deleted" in response.text and "Traceback" not in response.text
    live = await http.get("/ui/session/live", params={**key, "rev": "x"})
    # 286: htmx stops polling and shows the banner.
    assert live.status_code == 286 and "This session was deleted" in live.text


async def test_bad_parameters_are_pages_not_errors(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, _ = open_pages
    for url, says in (
        ("/ui/app", "'app' parameter is missing"),
        ("/ui/app?app=" + "a" * 200, "limit is 128"),
        ("/ui/app?app=app1&cursor=zzz", "page_token is not valid"),
        ("/ui/session?app=app1&user=u1", "'id' parameter is missing"),
        ("/ui/session/older?app=app1&user=u1&id=s1&before=nope", "position is not valid"),
        ("/ui/session/raw?app=app1&user=u1&id=s1&event=e&at=nan", "not valid"),
        ("/ui/app?app=a%00b", "NUL"),
    ):
        response = await http.get(url)
        assert response.status_code == 400, url
        assert response.headers["content-type"].startswith("text/html"), url
        assert says in html.unescape(response.text), (url, response.text)


async def test_export_and_live_fragments(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, store = open_pages
    key = {"app": "app1", "user": "u1", "id": "s1"}
    one = await http.get("/ui/session/export", params=key)
    assert one.headers["content-type"].startswith("application/x-ndjson")
    assert one.text.count("\n") == 1 and '"id":"s1"' in one.text
    every = await http.get("/ui/app/export", params={"app": "app1"})
    assert every.text.splitlines() == one.text.splitlines()

    page = (await http.get("/ui/session", params=key)).text
    live_url = re.search(r'id="live"[^>]*hx-get="([^"]+)"', page.replace("\n", " "))
    assert live_url is not None
    url = live_url.group(1).replace("&amp;", "&")
    assert (await http.get(url)).status_code == 204  # nothing new
    session = await store.get_session(app_name="app1", user_id="u1", session_id="s1")
    assert session is not None
    await store.append_event(
        session,
        Event(
            author="agent",
            content=types.Content(role="model", parts=[types.Part(text="new one")]),
        ),
    )
    fresh = await http.get(url)
    assert fresh.status_code == 200 and "new one" in fresh.text
    assert 'id="state" hx-swap-oob="true"' in fresh.text and "2 events" in fresh.text
    assert "&lt;script&gt;x&lt;/script&gt;" not in fresh.text  # only the new event


async def test_a_burst_of_new_events_shows_a_page_and_says_so(
    open_pages: tuple[httpx.AsyncClient, InMemorySessionService],
) -> None:
    http, store = open_pages
    key = {"app": "app1", "user": "u1", "id": "s1"}
    page = (await http.get("/ui/session", params=key)).text
    found = re.search(r'id="live"[^>]*hx-get="([^"]+)"', page.replace("\n", " "))
    assert found is not None
    url = found.group(1).replace("&amp;", "&")
    session = await store.get_session(app_name="app1", user_id="u1", session_id="s1")
    assert session is not None
    for n in range(60):
        text = types.Content(role="model", parts=[types.Part(text=f"burst {n}")])
        await store.append_event(session, Event(author="agent", content=text))
    fresh = await http.get(url)
    assert fresh.text.count("<article") == 50
    assert "burst 59" in fresh.text and "burst 9<" not in fresh.text
    assert "More events arrived than fit here" in fresh.text


async def test_search_snippets_mark_matches_and_escape_the_rest() -> None:
    from openadk.server._ui import _highlight

    shown = str(_highlight("say **<b>hi</b>** to \x1b[2J **me**"))
    assert shown == "say <mark>&lt;b&gt;hi&lt;/b&gt;</mark> to \\x1b[2J <mark>me</mark>"
