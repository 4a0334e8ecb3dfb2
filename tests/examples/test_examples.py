"""The user's document's examples, run with only their imports changed."""

from __future__ import annotations

import asyncio
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from openadk.events import Event
from openadk.models import OFFLINE_MARKER
from openadk.sessions import DatabaseSessionService, InMemorySessionService, Session
from tests.contract.backends import POSTGRES

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


DOCUMENT = Path(__file__).parents[3] / "shared" / "mission" / "sessions-package-doc.md"
POSTGRES_URL = f"postgresql+asyncpg://{POSTGRES}"

# Examples that cannot run on this machine, and why. Everything else runs below.
NOT_RUN = {
    "example_6_spanner.py": "needs a Cloud Spanner instance and Google credentials; there is no "
    "Spanner emulator here (the Spanner engine and DDL are unit-tested instead)",
}


def run_example(
    name: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None, prelude: str = ""
) -> str:
    environment = dict(os.environ, OPENADK_MODEL="offline", **(env or {}))
    code = f"{prelude}\nimport runpy\nrunpy.run_path({str(EXAMPLES / name)!r}, run_name='__main__')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_examples_are_the_documents_with_only_imports_changed() -> None:
    if not DOCUMENT.exists():
        pytest.skip("the user's document is not beside this checkout")
    document = DOCUMENT.read_text()
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", document, flags=re.S) if "asyncio.run(" in b
    ]
    examples = sorted(EXAMPLES.glob("example_*.py"))
    assert len(examples) == len(blocks) == 11
    for path in examples:
        text = path.read_text()
        assert "google.adk" not in text, path.name
        assert text.replace("openadk", "google.adk") in blocks, path.name


def test_every_example_is_run_or_has_a_reason() -> None:
    tested = {
        "example_1_basic_session.py",
        "example_1_session_agent.py",
        "example_3_sqlite.py",
        "example_4_postgresql.py",
        "example_5_mysql.py",
        "example_7_alloydb.py",
        "example_7a_supabase.py",
        "example_8_session_state.py",
        "example_9_multiple_sessions.py",
    }
    # Example 2 runs against `openadk serve` in tests/vertex/test_example_2.py.
    tested.add("example_2_vertex_ai.py")
    assert {p.name for p in EXAMPLES.glob("example_*.py")} == tested | set(NOT_RUN)


def test_example_1_basic_session_remembers(tmp_path: Path) -> None:
    out = run_example("example_1_basic_session.py", tmp_path)
    assert out.splitlines() == [
        "Nice to meet you, Alice! I will remember that.",
        "Your name is Alice.",
    ]


def test_example_1_runnable_session_agent(tmp_path: Path) -> None:
    out = run_example(
        "example_1_session_agent.py", tmp_path, stdin="My name is Bob\nWhat is my name?\nquit\n"
    )
    assert "Session created: session456" in out
    assert "Agent: Nice to meet you, Bob!" in out
    assert "Agent: Your name is Bob." in out


def stored_session(url: str, app: str) -> Session | None:
    """The examples' session (user123/session456 of ``app``), read back with openadk."""

    async def read() -> Session | None:
        async with DatabaseSessionService(url) as service:
            return await service.get_session(
                app_name=app, user_id="user123", session_id="session456"
            )

    return asyncio.run(read())


def turns(events: list[Event]) -> list[tuple[str, str]]:
    """(author, text) of each event; every event holds exactly one text part."""
    found = []
    for event in events:
        assert event.content is not None and event.content.parts, event
        assert len(event.content.parts) == 1 and event.content.parts[0].text, event
        found.append((event.author, event.content.parts[0].text))
    return found


def test_example_3_sqlite_persists_across_runs(tmp_path: Path) -> None:
    first = run_example("example_3_sqlite.py", tmp_path, stdin="My name is Carol\nquit\n")
    assert "Agent: Nice to meet you, Carol!" in first
    assert (tmp_path / "sessions.db").exists()
    second = run_example("example_3_sqlite.py", tmp_path, stdin="What is my name?\nquit\n")
    assert "Agent: Your name is Carol." in second
    # What the two runs stored: both turns in one session, read back from the file.
    session = stored_session(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", "sqlite_app")
    assert session is not None
    assert turns(session.events) == [
        ("user", "My name is Carol"),
        ("sqlite_agent", "Nice to meet you, Carol! I will remember that."),
        ("user", "What is my name?"),
        ("sqlite_agent", "Your name is Carol."),
    ]
    assert len({e.invocation_id for e in session.events}) == 2
    assert session.events[1].custom_metadata == {OFFLINE_MARKER: True}
    assert session.state == {}


@pytest.mark.parametrize(
    ("name", "env", "prelude", "url", "app", "agent"),
    [
        (
            "example_4_postgresql.py",
            {},
            "",
            "postgresql+asyncpg://user:password@localhost:5432/adk_sessions",
            "postgres_app",
            "postgres_agent",
        ),
        (
            "example_5_mysql.py",
            {},
            "",
            "mysql+aiomysql://user:password@localhost:3306/adk_sessions",
            "mysql_app",
            "mysql_agent",
        ),
        # AlloyDB is PostgreSQL: the example's host name is pointed at the local server.
        (
            "example_7_alloydb.py",
            {},
            "import socket\n_real = socket.getaddrinfo\n"
            "socket.getaddrinfo = lambda host, *a, **k: _real("
            "'127.0.0.1' if host == 'alloydb-instance-ip' else host, *a, **k)",
            "postgresql+asyncpg://user:password@127.0.0.1:5432/database",
            "alloydb_app",
            "alloydb_agent",
        ),
        (
            "example_7a_supabase.py",
            {"SUPABASE_DATABASE_URL": POSTGRES_URL},
            "",
            POSTGRES_URL,
            "supabase_app",
            "supabase_agent",
        ),
    ],
    ids=["postgresql", "mysql", "alloydb", "supabase"],
)
def test_server_database_examples(
    name: str, env: dict[str, str], prelude: str, url: str, app: str, agent: str, tmp_path: Path
) -> None:
    # The examples resume one fixed session on a shared server: this run's events are the ones
    # that were not there before it.
    before = stored_session(url, app)
    seen = {e.id for e in before.events} if before is not None else set()
    out = run_example(name, tmp_path, env=env, prelude=prelude)
    after = stored_session(url, app)
    assert after is not None
    new = [e for e in after.events if e.id not in seen]
    by_invocation: dict[str, list[Event]] = {}
    for event in new:
        by_invocation.setdefault(event.invocation_id, []).append(event)
    # One invocation per run (another checkout running this test at the same time adds its own).
    assert by_invocation, "the run stored no events"
    reply = "Hello! How can I help you today?"
    for events in by_invocation.values():
        assert turns(events) == [("user", "Hello!"), (agent, reply)]
        assert events[1].custom_metadata == {OFFLINE_MARKER: True}
    # What the example printed is the reply it stored.
    assert f"text={reply!r}" in out and "role='model'" in out
    assert after.state == (before.state if before is not None else {})


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
    assert bob == [
        ("user", "Hi there"),
        ("multi_session_agent", "Hello! How can I help you today?"),
    ]


def test_example_1_without_a_model_key_says_why_nothing_came_back(tmp_path: Path) -> None:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENADK_MODEL", "GOOGLE_API_KEY", "GEMINI_API_KEY")
        and not k.startswith("GOOGLE_GENAI_")
        and not k.startswith("GOOGLE_CLOUD_")
    }
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "example_1_basic_session.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    # The example prints only text parts, and an error event has none: the Runner's warning
    # is what tells the user why.
    assert out.stdout == ""
    assert out.stderr.count("Agent 'session_agent' answered with an error (MODEL_ERROR)") == 2
    assert "needs credentials: set GOOGLE_API_KEY" in out.stderr
    assert "OPENADK_MODEL=offline" in out.stderr
