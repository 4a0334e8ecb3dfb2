"""The user's document's examples, run with only their imports changed."""

from __future__ import annotations

import asyncio
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from openadk.models import OFFLINE_MARKER
from openadk.sessions import InMemorySessionService

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def test_examples_differ_from_the_document_only_in_imports() -> None:
    for path in EXAMPLES.glob("example_*.py"):
        text = path.read_text()
        assert "google.adk" not in text, path.name
        assert "from openadk" in text, path.name


def test_example_8_session_state() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "example_8_session_state.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.splitlines() == [
        "Retrieved session: session456",
        "State: {'user_name': 'Alice', 'preferences': {'theme': 'dark'}}",
    ]


def test_example_9_multiple_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENADK_MODEL", "offline")
    module = runpy.run_path(str(EXAMPLES / "example_9_multiple_sessions.py"))
    service = module["session_service"]
    assert isinstance(service, InMemorySessionService)

    async def load(user: str) -> list[tuple[str, str]]:
        session = await service.get_session(
            app_name="multi_session_app", user_id=user, session_id=f"user_{user}"
        )
        assert session is not None
        turns = []
        for event in session.events:
            assert event.content is not None and event.content.parts
            text = event.content.parts[0].text or ""
            turns.append((event.author, text))
            if event.author != "user":
                assert event.custom_metadata == {OFFLINE_MARKER: True}
        return turns

    alice = asyncio.run(load("alice"))
    bob = asyncio.run(load("bob"))
    assert [author for author, _ in alice] == ["user", "multi_session_agent"] * 2
    assert alice[0][1] == "Hello" and alice[2][1] == "Remember me?"
    assert "talked before" in alice[3][1]
    assert bob == [("user", "Hi there"), ("multi_session_agent", bob[1][1])]
    assert bob[1][1].startswith("Hello")
