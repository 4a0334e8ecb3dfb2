"""The server against hostile requests, in process: Host, blank keys, the page's cookie, error
bodies, readiness and the offline /docs."""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from openadk.cli import main
from openadk.server import create_app, serve
from openadk.server._guard import RedactKeyFilter, is_loopback_host, redact_key
from openadk.sessions import DatabaseSessionService, InMemorySessionService
from tests.server.conftest import API_KEY, BASE, LOCAL, PARENT

# A PostgreSQL URL nobody listens on: every query fails with a real driver error.
UNREACHABLE = "postgresql+asyncpg://postgres:secretpw@127.0.0.1:1/test"


def client_of(app: Any, base: str = BASE, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base, **kwargs)


# Host (DNS rebinding) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:1", "localhost.", "[::1]", "[::1]:9"],
)
@pytest.mark.asyncio
async def test_without_a_key_loopback_hosts_are_answered(host: str) -> None:
    async with client_of(create_app(InMemorySessionService()), LOCAL) as http:
        response = await http.get(f"{PARENT}/sessions", headers={"host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "10.0.0.5",
        "[::1].evil",
        "[::1]x",
        "127.0.0.1:80:80",
        "",
    ],
)
@pytest.mark.asyncio
async def test_without_a_key_other_hosts_are_421(host: str) -> None:
    store = InMemorySessionService()
    async with client_of(create_app(store), LOCAL) as http:
        for method, path, body in (
            ("GET", f"{PARENT}/sessions", None),
            ("POST", f"{PARENT}/sessions", {"userId": "u1"}),
            ("GET", "/", None),
            ("GET", f"{PARENT}/sessions/", None),
        ):
            response = await http.request(method, path, json=body, headers={"host": host})
            assert response.status_code == 421, (method, path, response.text)
            error = response.json()["error"]
            assert "127.0.0.1, localhost or [::1]" in error["message"]
            assert "location" not in response.headers
    assert (await store.list_sessions(app_name="app1")).sessions == []


@pytest.mark.asyncio
async def test_with_a_key_any_host_but_redirects_never_echo_it() -> None:
    async with client_of(
        create_app(InMemorySessionService(), api_key=API_KEY), headers={"x-goog-api-key": API_KEY}
    ) as http:
        ok = await http.get(f"{PARENT}/sessions", headers={"host": "api.example"})
        assert ok.status_code == 200
        slash = await http.get(f"{PARENT}/sessions/", headers={"host": "evil.example"})
        assert slash.status_code == 404 and "location" not in slash.headers
        assert "evil.example" not in slash.text
        signed = await http.post("/signin", data={"key": API_KEY}, headers={"host": "evil.example"})
        assert signed.status_code == 303 and signed.headers["location"] == "/"


def test_is_loopback_host() -> None:
    assert is_loopback_host("127.9.9.9:1") and is_loopback_host("[::1]:65535")
    assert not is_loopback_host("[::2]") and not is_loopback_host("0.0.0.0")
    assert not is_loopback_host("localhost:http")


# Blank keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", " ", "\t\n", "\u3000"])
def test_blank_keys_are_refused(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append(kwargs))
    with pytest.raises(ValueError, match="API key is blank"):
        create_app(InMemorySessionService(), api_key=key)
    out = io.StringIO()
    assert serve("memory", host="0.0.0.0", api_key=key, out=out) == 2
    assert "API key is blank" in out.getvalue()
    assert main(["serve", "--db", "memory", "--host", "0.0.0.0", "--api-key", key]) == 2
    monkeypatch.setenv("OPENADK_API_KEY", key)
    if key:
        assert main(["serve", "--db", "memory", "--host", "0.0.0.0"]) == 2
        assert runs == []
    else:
        # An empty variable is an unset one: no key, so loopback only.
        assert main(["serve", "--db", "memory", "--host", "0.0.0.0"]) == 0
        assert [r["host"] for r in runs] == ["127.0.0.1"]


# The browse page's cookie ---------------------------------------------------------------------


@pytest_asyncio.fixture
async def page() -> AsyncIterator[httpx.AsyncClient]:
    store = InMemorySessionService()
    for i in range(3):
        await store.create_session(app_name="app1", user_id="u1", session_id=f"s{i}")
    async with client_of(create_app(store, api_key=API_KEY)) as http:
        await http.get(f"{PARENT}/sessions", headers={"x-goog-api-key": API_KEY})
        yield http


@pytest.mark.asyncio
async def test_page_signs_in_with_a_form_and_a_strict_httponly_cookie(
    page: httpx.AsyncClient,
) -> None:
    before = await page.get("/")
    assert before.status_code == 401
    assert "<form method='post' action='/signin'>" in before.text
    assert "type='password' name='key'" in before.text
    # The key in the URL no longer opens the page.
    assert (await page.get("/", params={"key": API_KEY})).status_code == 401

    wrong = await page.post("/signin", data={"key": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    signed = await page.post("/signin", data={"key": API_KEY})
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = signed.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert API_KEY not in cookie

    for path, params in (
        ("/", {}),
        ("/", {"app": "app1"}),
        ("/", {"app": "app1", "user": "u1", "session": "s1"}),
    ):
        shown = await page.get(path, params=params)
        assert shown.status_code == 200, shown.text
        links = re.findall(r"(?:href|action)='([^']*)'", shown.text)
        assert links
        assert not [link for link in links if "key" in link]
        assert API_KEY not in shown.text
    assert "s1" in (await page.get("/", params={"app": "app1"})).text

    out = await page.post("/signout")
    assert out.status_code == 303
    cleared = out.headers["set-cookie"].lower()
    assert "openadk_key=" in cleared and ("max-age=0" in cleared or "expires=" in cleared)
    assert (await page.get("/")).status_code == 401


@pytest.mark.asyncio
async def test_the_sign_in_body_is_small(page: httpx.AsyncClient) -> None:
    big = await page.post("/signin", data={"key": "x" * 20_000})
    assert big.status_code == 413


@pytest.mark.asyncio
async def test_the_cookie_does_not_open_the_api(page: httpx.AsyncClient) -> None:
    await page.post("/signin", data={"key": API_KEY})
    assert (await page.get(f"{PARENT}/sessions")).status_code == 401


# Access-log redaction -------------------------------------------------------------------------


def test_redact_key() -> None:
    assert redact_key("/a?key=s3cret&x=1") == "/a?key=REDACTED&x=1"
    assert redact_key("/a?x=1&KEY=s3cret") == "/a?x=1&KEY=REDACTED"
    assert redact_key("/a?apikey=1&monkey=2") == "/a?apikey=1&monkey=2"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s %s", ("c", "/p?key=s3cret"), None
    )
    assert RedactKeyFilter().filter(record) and "s3cret" not in record.getMessage()


# Error bodies ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_storage_errors_are_generic_with_a_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = DatabaseSessionService(UNREACHABLE)
    try:
        async with client_of(create_app(service, api_key=API_KEY)) as http:
            with caplog.at_level(logging.WARNING, logger="openadk.server"):
                response = await http.get(f"{PARENT}/sessions", headers={"x-goog-api-key": API_KEY})
    finally:
        await service.close()
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    for leak in ("127.0.0.1", "postgresql", "asyncpg", "secretpw", ":1/", "Connect call"):
        assert leak not in response.text, leak
    error = response.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    (info,) = [d for d in error["details"] if d["@type"].endswith("RequestInfo")]
    request_id = info["requestId"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id) and request_id in error["message"]
    (line,) = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert "asyncpg" in line and "127.0.0.1" in line and "secretpw" not in line


# Liveness and readiness -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_readyz_touches_the_database_and_healthz_does_not() -> None:
    broken = DatabaseSessionService(UNREACHABLE)
    working = DatabaseSessionService(
        f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='openadk-server-ready-')}/r.db"
    )
    try:
        async with client_of(create_app(broken, api_key=API_KEY)) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["status"] == "UNAVAILABLE"
            assert "asyncpg" not in ready.text and "127.0.0.1" not in ready.text
        async with client_of(create_app(working, api_key=API_KEY)) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    finally:
        await broken.close()
        await working.close()


# Offline /docs --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_docs_reference_only_local_assets_that_are_served() -> None:
    async with client_of(create_app(InMemorySessionService(), api_key=API_KEY)) as http:
        docs = await http.get("/docs")
        assert docs.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
        urls += re.findall(r"""url: ['"]([^'"]+)['"]""", docs.text)
        assert len(urls) >= 4
        assert "//" not in "".join(urls) and "cdn" not in docs.text
        for url in urls:
            assert url.startswith("/"), url
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 100, url
        js = await http.get("/docs/assets/swagger-ui-bundle.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert b"SwaggerUIBundle" in js.content
        assert (await http.get("/docs/assets/..%2fcore.py")).status_code == 404
        assert (await http.get("/docs/assets/core.py")).status_code == 404


@pytest.mark.asyncio
async def test_a_non_ascii_key_works_in_headers_and_the_query() -> None:
    key = "clé-ünï-🔑"
    async with client_of(create_app(InMemorySessionService(), api_key=key)) as http:
        url = f"{PARENT}/sessions"
        raw = key.encode()
        assert (await http.get(url, headers={b"x-goog-api-key": raw})).status_code == 200
        assert (
            await http.get(url, headers={b"authorization": b"Bearer " + raw})
        ).status_code == 200
        assert (await http.get(url, params={"key": key})).status_code == 200
        assert (await http.get(url, headers={"x-goog-api-key": "cle"})).status_code == 401


@pytest.mark.asyncio
async def test_405_names_the_methods_of_the_path() -> None:
    async with client_of(create_app(InMemorySessionService()), LOCAL) as http:
        for path, allowed in (
            (f"{PARENT}/sessions", "GET, POST"),
            (f"{PARENT}/sessions/s1", "DELETE, GET, PATCH"),
            (f"{PARENT}/sessions/s1:appendEvent", "POST"),
            ("/signin", "POST"),
            ("/readyz", "GET"),
        ):
            response = await http.put(path)
            assert response.status_code == 405, path
            assert response.headers["allow"] == allowed, path
            assert allowed in response.json()["error"]["message"]
        # A GET on the custom method's path is that method's 405, not a session id "s1:...".
        assert (await http.get(f"{PARENT}/sessions/s1:appendEvent")).headers["allow"] == "POST"
