"""``openadk chat`` driven through its standard input, as a user would type."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.contract.backends import POSTGRES


def chat(
    stdin: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOOGLE_API_KEY", "OPENADK_MODEL", "GEMINI_API_KEY")
    }
    environment["COLUMNS"] = "200"
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "openadk", "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )


def test_default_database_is_sessions_db_and_a_restart_resumes(tmp_path: Path) -> None:
    first = chat("My name is Alice\n/state\n/quit\n", "--user", "alice", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "No GOOGLE_API_KEY set: using the offline demo model" in first.stdout
    assert "Nice to meet you, Alice!" in first.stdout
    assert (tmp_path / "sessions.db").exists()

    second = chat("What's my name?\n/history\n", "--user", "alice", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Resumed session main (2 events)" in second.stdout
    assert "you> My name is Alice" in second.stdout
    assert "assistant> Your name is Alice." in second.stdout


def test_slash_commands(tmp_path: Path) -> None:
    out = chat("I live in Paris\n/sessions\n/new\nwhere do i live?\n/bogus\n/quit\n", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "main *" in out.stdout
    assert "New session chat-" in out.stdout
    # A new session starts a new conversation.
    assert "You have not told me where you live yet." in out.stdout
    assert "Unknown command /bogus" in out.stdout


def test_bad_model_and_bad_database_fail_clearly(tmp_path: Path) -> None:
    out = chat("hi\n", "--model", "no-such-model", cwd=tmp_path)
    assert out.returncode == 1
    assert "Unknown model 'no-such-model'" in out.stdout
    out = chat("hi\n", "--db", "nosuchdb://x", cwd=tmp_path)
    assert out.returncode == 1
    assert "Invalid database URL" in out.stdout


@pytest.mark.parametrize("scheme", ["postgresql+asyncpg"])
def test_a_conversation_in_postgres_is_resumed_by_a_new_process(
    tmp_path: Path, scheme: str
) -> None:
    url = f"{scheme}://{POSTGRES}"
    session = f"pg-{uuid.uuid4().hex[:8]}"
    first = chat("My name is Alice\n", "--db", url, "--session", session, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = chat("What's my name?\n", "--db", url, "--session", session, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # The offline model answers from the conversation it is sent: both turns reached it.
    assert "assistant> Your name is Alice." in second.stdout
    assert "postgresql+asyncpg://postgres@127.0.0.1" in second.stdout
