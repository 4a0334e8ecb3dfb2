"""`openadk serve`'s choices, without starting a server (uvicorn.run is replaced)."""

from __future__ import annotations

import gc
import io
from typing import Any

import pytest
import uvicorn

from openadk.cli import main
from openadk.server import build_service, serve
from openadk.sessions import DatabaseSessionService, InMemorySessionService


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    return calls


def test_start_up_objects_are_frozen_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: frozen.append(gc.get_freeze_count()))
    assert serve("memory", out=io.StringIO()) == 0
    assert frozen and frozen[0] > 0
    assert gc.get_freeze_count() == 0  # thawed once the server has stopped


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.com"])
def test_without_a_key_only_loopback(runs: list[dict[str, Any]], host: str) -> None:
    out = io.StringIO()
    assert serve("memory", host=host, port=1234, out=out) == 0
    assert runs == [{"host": "127.0.0.1", "port": 1234, "log_level": "info"}]
    assert f"listening on 127.0.0.1 only (not {host})" in out.getvalue()


def test_loopback_without_a_key_says_so(runs: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    serve("memory", out=out)
    assert runs[0]["host"] == "127.0.0.1"
    assert "no API key configured; listening on 127.0.0.1 only" in out.getvalue()


def test_with_a_key_the_host_is_kept(runs: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    serve("memory", host="0.0.0.0", port=80, api_key="k", out=out)
    assert runs[0]["host"] == "0.0.0.0"
    assert "127.0.0.1 only" not in out.getvalue()
    assert "http://0.0.0.0:80/v1beta1/" in out.getvalue()


def test_cli_reads_the_key_from_the_environment(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENADK_API_KEY", "from-env")
    assert main(["serve", "--db", "memory", "--host", "0.0.0.0", "--port", "9"]) == 0
    assert runs[0]["host"] == "0.0.0.0" and runs[0]["port"] == 9


def test_bad_database_url(runs: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    assert serve("nosuchdb://x", out=out) == 2
    assert runs == [] and "openadk serve:" in out.getvalue()


@pytest.mark.asyncio
async def test_build_service() -> None:
    assert isinstance(build_service("memory"), InMemorySessionService)
    service = build_service("sqlite+aiosqlite:///:memory:")
    assert isinstance(service, DatabaseSessionService)
    await service.close()
