"""The session browser in a real browser: Debian's Chromium driven by Playwright.

A real `openadk serve` (a subprocess on a loopback port, SQLite underneath) and a real headless
Chromium: sign in, the apps, an app's sessions (paging, the user filter, the back button), a
session (load older, raw JSON, a live event appended through the REST API while the page is
open), the actions (trim, delete, and a deletion in another tab), hostile data. The tests save
screenshots in docs/images/, which the README and docs/server.md show.

Playwright never downloads a browser here: it launches /usr/bin/chromium (``.ci/run`` installs
Debian's package when it is missing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openadk.events import Event, EventActions
from tests.vertex.serving import Served, start_server

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # pragma: no cover - .ci/run installs it
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

API_KEY = "browser-test-key-7d41"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WAIT_MS = 20_000
"""How long an expectation waits for the page (a bound on waiting, not a timed assertion)."""
expect.set_options(timeout=WAIT_MS)

HOSTILE_TEXT = (
    "<script>alert('x')</script><img src=x onerror=alert(1)> \u202eevil\u202c "
    "\x1b[31mred\x1b[0m \x07 \u200f\u05e9\u05dc\u05d5\u05dd"
)


def _text(author: str, text: str, **more: Any) -> Event:
    from google.genai import types

    role = "user" if author == "user" else "model"
    return Event(
        author=author,
        invocation_id=more.pop("invocation_id", "inv-1"),
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **more,
    )


def _call(name: str, args: dict[str, Any]) -> Event:
    from google.genai import types

    return Event(
        author="shop_agent",
        invocation_id="inv-2",
        content=types.Content(
            role="model", parts=[types.Part(function_call=types.FunctionCall(name=name, args=args))]
        ),
    )


def _result(name: str, response: dict[str, Any]) -> Event:
    from google.genai import types

    return Event(
        author="shop_agent",
        invocation_id="inv-2",
        content=types.Content(
            role="user",
            parts=[
                types.Part(function_response=types.FunctionResponse(name=name, response=response))
            ],
        ),
    )


async def _seed(url: str) -> None:
    from openadk.sessions import DatabaseSessionService

    async with DatabaseSessionService(url) as service:
        for i in range(55):
            user = "bob" if i % 5 == 0 else "alice"
            session = await service.create_session(
                app_name="shop", user_id=user, session_id=f"chat-{i:02d}"
            )
            await service.append_event(
                session, _text("user", f"Question number {i} about an order")
            )
        long = await service.create_session(
            app_name="shop",
            user_id="carol",
            session_id="long-chat",
            state={"app:currency": "EUR", "user:tier": "gold", "cart": []},
        )
        for turn in range(40):
            await service.append_event(
                long, _text("user", f"Turn {turn}: where is my parcel?", invocation_id=f"i{turn}")
            )
            await service.append_event(long, _call("track_parcel", {"order": 1000 + turn}))
            await service.append_event(long, _result("track_parcel", {"status": "in transit"}))
            reply = _text(
                "shop_agent",
                f"Answer {turn}: it is in transit.",
                invocation_id=f"i{turn}",
                actions=EventActions(state_delta={"last_turn": turn, "user:seen": turn}),
            )
            await service.append_event(long, reply)
        failing = await service.create_session(app_name="shop", user_id="carol", session_id="oops")
        await service.append_event(failing, _text("user", "Please refund me"))
        await service.append_event(
            failing,
            Event(author="shop_agent", error_code="RATE_LIMITED", error_message="Quota exceeded"),
        )
        hostile = await service.create_session(
            app_name="<b>hostile</b>",
            user_id="\u202euser\u202c<i>",
            session_id="\x1b[2Jid'\"<script>",
            state={"<script>": HOSTILE_TEXT, "deep": _deep(120), "huge": "W" * 100_000},
        )
        await service.append_event(hostile, _text("user", HOSTILE_TEXT))
        await service.append_event(hostile, _text("agent<x>", "A" * 100_000 + " long-word-end"))
        await service.append_event(hostile, _call("<script>tool</script>", {"deep": _deep(120)}))
        await service.append_event(
            hostile, _text("user", "\x1b]0;title\x07 ok", invocation_id="<inv>\x1b[1m")
        )
        wide = await service.create_session(
            app_name="<b>hostile</b>", user_id="wide", session_id="x" * 128
        )
        await service.append_event(wide, _text("user", "B" * 100_000))


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('browser')}/sessions.db"
    # In a thread of its own: Playwright's sync API keeps an event loop on this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(url)).result()
    server = start_server(url, api_key=API_KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page and what went wrong on it: dialogs (a script ran), console errors (CSP)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        # A page answered 401 or 404 on purpose is logged as "Failed to load resource".
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    watched = Watched(page)
    page.goto("/")
    page.fill("input[name=key]", API_KEY)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Apps")
    page.watched = watched  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        assert watched.dialogs == [], "a script ran"
        assert watched.errors == [], "the browser reported errors (CSP?)"
        context.close()


def _shot(page: Page, name: str, full: bool = False) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=full)


def _api(served: Served) -> httpx.Client:
    return httpx.Client(
        base_url=f"{served.url}/v1beta1/reasoningEngines",
        headers={"x-goog-api-key": API_KEY},
        timeout=10,
    )


# Sign-in ------------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_httponly_cookie_and_no_url_has_the_key(
    browser: Browser, served: Served
) -> None:
    context = browser.new_context(base_url=served.url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    watched = Watched(page)
    page.goto("/ui/app?app=shop")
    expect(page.locator("h1")).to_have_text("Sign in")
    _shot(page, "browser-signin.png")
    page.fill("input[name=key]", "not-the-key")
    page.click("button:has-text('Sign in')")
    expect(page.locator(".signin")).to_contain_text("not the server's API key")
    page.fill("input[name=key]", API_KEY)
    page.click("button:has-text('Sign in')")
    # Back where the visitor wanted to go.
    expect(page.locator("h1")).to_have_text("shop")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert API_KEY not in cookie["value"]
    assert API_KEY not in page.url
    links = page.eval_on_selector_all(
        "a[href], form[action]", "els => els.map(e => e.href || e.action)"
    )
    assert links and not [link for link in links if API_KEY in link or "key=" in link]
    page.click("button:has-text('Sign out')")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert context.cookies() == []
    assert watched.dialogs == [] and watched.errors == []
    context.close()


# Apps and sessions --------------------------------------------------------------------------


def test_apps_page_lists_every_app_with_counts(page: Page) -> None:
    row = page.locator("table.apps tr", has_text="shop")
    expect(row).to_contain_text("57")  # 55 chats, long-chat, oops
    expect(row.locator("td").nth(2)).to_have_text("3")  # alice, bob, carol
    expect(page.locator("table.apps")).to_contain_text("<b>hostile</b>")
    expect(row.locator("time")).to_have_attribute("title", re.compile(r"UTC$"))
    _shot(page, "browser-apps.png")


def test_sessions_newest_first_paging_filter_and_back_button(page: Page) -> None:
    page.get_by_role("link", name="shop", exact=True).click()
    expect(page.locator("h1")).to_have_text("shop")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(50)
    # Newest first: the hostile app is elsewhere; the last seeded sessions lead.
    expect(rows.first).to_contain_text("Please refund me")
    expect(rows.nth(1)).to_contain_text("long-chat")
    expect(rows.nth(1)).to_contain_text("160")  # events
    _shot(page, "browser-sessions.png")
    page.click("a.next")
    expect(rows).to_have_count(7)
    expect(page.locator("table.sessions")).to_contain_text("Question number 0 ")
    assert "cursor=" in page.url
    page.go_back()
    expect(rows).to_have_count(50)
    page.fill("input[name=user]", "bob")
    page.click("button:has-text('Show')")
    expect(rows).to_have_count(11)
    for user in rows.locator("td.user").all_inner_texts():
        assert user == "bob"
    assert "user=bob" in page.url
    # The URL holds the view: opening it anew shows the same list.
    page.goto(page.url)
    expect(rows).to_have_count(11)
    page.go_back()
    expect(page.locator("input[name=user]")).to_have_value("")
    expect(rows).to_have_count(50)


def test_a_session_reads_as_a_conversation_and_loads_older_events(page: Page) -> None:
    page.goto("/ui/session?app=shop&user=carol&id=long-chat")
    events = page.locator("#events article.event, article.event")
    expect(page.locator("article.event")).to_have_count(50)
    first = page.locator("article.event").first
    expect(first).to_contain_text("Answer 39: it is in transit.")
    expect(first.locator(".delta summary")).to_contain_text("state Δ 2 keys")
    expect(page.locator("#count")).to_have_text("160 events")
    state = page.locator("#state")
    expect(state.locator(".scope-app")).to_contain_text("currency")
    expect(state.locator(".scope-user")).to_contain_text("tier")
    expect(state.locator(".scope-session")).to_contain_text("last_turn")
    call = page.locator("details.call").first
    expect(call).to_contain_text("track_parcel")
    call.locator("summary").click()
    expect(call.locator("pre")).to_contain_text('"order": 1039')
    result = page.locator("details.result").first
    result.locator("summary").click()
    expect(result.locator("pre")).to_contain_text("in transit")
    _shot(page, "browser-session.png")
    first.locator("a.rawlink").click()
    expect(first.locator(".raw pre")).to_contain_text('"invocationId": "i39"')
    page.click("a#older")
    expect(events).to_have_count(100)
    page.locator("#older").scroll_into_view_if_needed()
    # Scrolled into view, the button loads the next page by itself.
    expect(page.locator("article.event")).to_have_count(150)
    page.locator("#older").scroll_into_view_if_needed()
    expect(page.locator("article.event")).to_have_count(160)
    expect(page.locator("#older")).to_have_text("Start of the session.")
    expect(page.locator("article.event").last).to_contain_text("Turn 0: where is my parcel?")
    ids = page.eval_on_selector_all("article.event", "els => els.map(e => e.dataset.eventId)")
    assert len(set(ids)) == 160


def test_errors_are_marked(page: Page) -> None:
    page.goto("/ui/session?app=shop&user=carol&id=oops")
    failed = page.locator("article.event.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".error")).to_contain_text("RATE_LIMITED Quota exceeded")


def test_a_live_event_appears_without_reload(page: Page, served: Served) -> None:
    with _api(served) as api:
        api.post("/shop/sessions", params={"sessionId": "live-1"}, json={"userId": "dave"})
        page.goto("/ui/session?app=shop&user=dave&id=live-1")
        expect(page.locator("#no-events")).to_be_visible()
        expect(page.locator("#count")).to_have_text("0 events")
        appended = api.post(
            "/shop/sessions/live-1:appendEvent",
            json={
                "author": "user",
                "invocationId": "inv-live",
                "timestamp": "2026-12-01T10:00:00Z",
                "content": {"role": "user", "parts": [{"text": "Hello from the API"}]},
                "actions": {"stateDelta": {"mood": "curious"}},
            },
        )
        assert appended.status_code == 200, appended.text
        expect(page.locator("article.event")).to_have_count(1)
        expect(page.locator("article.event").first).to_contain_text("Hello from the API")
        expect(page.locator("#count")).to_have_text("1 event")
        expect(page.locator("#state .scope-session")).to_contain_text("curious")
        api.post(
            "/shop/sessions/live-1:appendEvent",
            json={
                "author": "shop_agent",
                "invocationId": "inv-live",
                "timestamp": "2026-12-01T10:00:01Z",
                "content": {"role": "model", "parts": [{"text": "Hi, how can I help?"}]},
            },
        )
        expect(page.locator("article.event")).to_have_count(2)
        expect(page.locator("article.event").first).to_contain_text("how can I help")
        _shot(page, "browser-live.png")


def test_trim_and_delete_are_confirmed_and_a_deleted_session_says_so(
    page: Page, served: Served
) -> None:
    with _api(served) as api:
        api.post("/shop/sessions", params={"sessionId": "doomed"}, json={"userId": "erin"})
        for n in range(6):
            api.post(
                "/shop/sessions/doomed:appendEvent",
                json={
                    "author": "user",
                    "invocationId": f"t{n}",
                    "timestamp": f"2026-12-01T11:00:0{n}Z",
                    "content": {"role": "user", "parts": [{"text": f"message {n}"}]},
                },
            )
    url = "/ui/session?app=shop&user=erin&id=doomed"
    page.goto(url)
    page.click("summary:has-text('Trim…')")
    page.fill("input[name=keep]", "2")
    page.click("button:has-text('Trim older events')")
    expect(page.locator(".flash")).to_have_text("Trimmed 4 events.")
    expect(page.locator("article.event")).to_have_count(2)

    other = page.context.new_page()
    other_watch = Watched(other)
    other.goto(url)
    expect(other.locator("article.event")).to_have_count(2)

    page.click("summary:has-text('Delete…')")
    # Not confirmed: the browser keeps the form (the box is required).
    page.click("button:has-text('Delete session')")
    expect(page.locator("h1")).to_have_text("doomed")
    page.check("input[name=confirm]")
    page.click("button:has-text('Delete session')")
    expect(page.locator(".flash")).to_have_text("Deleted session doomed.")
    expect(page.locator("table.sessions")).not_to_contain_text("doomed")

    # The other tab's live poll sees it gone; reloading shows "deleted", not a stack trace.
    expect(other.locator("#deleted")).to_contain_text("This session was deleted")
    _shot(other, "browser-deleted.png")
    response = other.reload()
    assert response is not None and response.status == 404
    expect(other.locator("h1")).to_have_text("Session deleted")
    assert "Traceback" not in other.content()
    assert other_watch.dialogs == []
    assert other_watch.errors == []


def test_hostile_strings_render_escaped_without_breaking_the_layout(page: Page) -> None:
    watched: Watched = page.watched  # type: ignore[attr-defined]
    page.get_by_role("link", name="<b>hostile</b>", exact=True).click()
    expect(page.locator("h1")).to_have_text("<b>hostile</b>")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(2)
    # A 100 KB first message is a one-line title; a 128-character id wraps.
    expect(rows.first.locator("td.name a")).to_have_text("B" * 119 + "\u2026")
    row = rows.nth(1)
    expect(row).to_contain_text("<script>alert('x')</script>")
    _fits(page)
    _shot(page, "browser-hostile-list.png")
    row.locator("td.name a").click()
    expect(page.locator("article.event")).to_have_count(4)
    expect(page.locator("article.event").first.locator(".inv")).to_have_text("<inv>\\x1b[1m")
    expect(page.locator("article.event.user").last).to_contain_text("<img src=x onerror=alert(1)>")
    # Terminal escapes show as symbols; nothing was made an element.
    expect(page.locator("article.event.user").last).to_contain_text("\\x1b[31mred")
    # A right-to-left override is shown, not obeyed: the user id reads as written.
    expect(page.locator(".facts")).to_contain_text("\\u202euser\\u202c<i>")
    assert page.locator("main script, main img, main b, main i").count() == 0
    expect(page.locator("article.event .more").first).to_contain_text("more characters")
    page.locator("details.call summary").click()
    expect(page.locator("details.call")).to_contain_text("<script>tool</script>")
    _fits(page)
    _shot(page, "browser-hostile.png")
    size = len(page.content())
    assert size < 150_000, size
    assert watched.dialogs == []


def _fits(page: Page) -> None:
    """Nothing is wider than the window: long words wrap, deep JSON scrolls in its box."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, (width, viewport)


def _capable(capability: str) -> bool:
    """Whether the served store (a SQLite file) can do this."""
    from openadk.sessions import DatabaseSessionService

    # Capabilities belong to the instance (search depends on the database); none is opened.
    probe = DatabaseSessionService("sqlite+aiosqlite:///unused-probe.db")
    return capability in getattr(probe, "capabilities", ())


@pytest.mark.skipif(not _capable("metadata"), reason="the service keeps no titles or labels")
def test_rename_label_and_filter_by_label(page: Page) -> None:
    page.goto("/ui/session?app=shop&user=alice&id=chat-07")
    page.click("summary:has-text('Rename…')")
    page.fill("input[name=display_name]", "Refund for order 7 <script>alert(1)</script>")
    page.click("button:has-text('Save name')")
    expect(page.locator(".flash")).to_have_text("Renamed.")
    expect(page.locator("h1")).to_have_text("Refund for order 7 <script>alert(1)</script>")
    page.click("summary:has-text('Labels…')")
    page.fill("input[name=labels]", "team=support priority=high")
    page.click("button:has-text('Save labels')")
    expect(page.locator(".flash")).to_have_text("Labels saved.")
    expect(page.locator(".facts .label")).to_have_count(2)
    page.click("summary:has-text('Labels…')")
    page.fill("input[name=labels]", "Not A Label!")
    page.click("button:has-text('Save labels')")
    expect(page.locator(".error-page")).to_be_visible()
    assert "Traceback" not in page.content()

    page.goto("/ui/app?app=shop")
    page.fill("input[name=label]", "team=support")
    page.click("button:has-text('Show')")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.name a")).to_have_text(
        "Refund for order 7 <script>alert(1)</script>"
    )
    expect(rows.first).to_contain_text("chat-07")
    expect(rows.first.locator(".label")).to_have_count(2)
    assert "label=team%3Dsupport" in page.url
    _shot(page, "browser-labels.png")
    page.fill("input[name=label]", "team=nobody")
    page.click("button:has-text('Show')")
    expect(page.locator(".empty")).to_contain_text("No sessions")


@pytest.mark.skipif(not _capable("search"), reason="the service has no full-text search")
def test_search_finds_messages_across_sessions(page: Page) -> None:
    page.goto("/ui/app?app=shop")
    page.fill("input[name=q]", "parcel")
    page.click("button:has-text('Show')")
    hits = page.locator("ol.hits li")
    expect(hits.first).to_contain_text("long-chat")
    assert "q=parcel" in page.url
    _shot(page, "browser-search.png")
    hits.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text("long-chat")


@pytest.mark.skipif(not _capable("fork"), reason="the service cannot fork sessions")
def test_fork_a_session_up_to_an_invocation(page: Page) -> None:
    page.goto("/ui/session?app=shop&user=carol&id=long-chat")
    page.click("summary:has-text('Fork…')")
    page.fill("input[name=new_id]", "long-chat-fork")
    page.fill("input[name=up_to_invocation_id]", "i2")
    page.click("button:has-text('Fork')")
    expect(page.locator(".flash")).to_have_text("Forked from long-chat.")
    expect(page.locator("#count")).to_contain_text("events")
    expect(page.locator("article.event").first).to_contain_text("Answer 2")
