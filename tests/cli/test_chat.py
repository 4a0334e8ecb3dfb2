"""``openadk chat`` driven through its standard input, as a user would type."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from openadk.sessions import DatabaseSessionService
from tests.cli.terminal import CTRL_C, CTRL_D, ENTER, LEFT, UP, Terminal
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


# The chat, with the offline model made to wait on an answer that never comes when asked to
# answer "slowly", so Ctrl-C can be pressed while an answer is in progress, and to wait once
# until the test writes to the FIFO $CHAT_TEST_GATE when asked to answer "after the gate".
# Nothing else changes.
SLOW_MODEL_CHAT = """
import asyncio, os, sys
from openadk.models import _offline
real = _offline.OfflineModel.generate_content_async
gate = [os.environ.get("CHAT_TEST_GATE")]
async def generate(self, request):
    text = _offline._text_of(request.contents[-1])
    if "slowly" in text:
        print("(model is thinking)", flush=True)
        await asyncio.Event().wait()
    if "after the gate" in text and gate[0]:
        print("(model waits at the gate)", flush=True)
        path, gate[0] = gate[0], None
        await asyncio.to_thread(lambda: open(path).read())
    async for response in real(self, request):
        yield response
_offline.OfflineModel.generate_content_async = generate
from openadk.cli import main
sys.exit(main(sys.argv[1:]))
"""


def terminal_env(home: Path, **extra: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOOGLE_API_KEY", "OPENADK_MODEL", "GEMINI_API_KEY", "NO_COLOR")
    }
    environment.update(TERM="xterm", XDG_STATE_HOME=str(home / "state"), USER="alice")
    environment.update(extra)
    return environment


@contextlib.contextmanager
def terminal_chat(home: Path, *args: str, **env: str) -> Iterator[Terminal]:
    term = Terminal(
        [sys.executable, "-c", SLOW_MODEL_CHAT, "chat", *args], home, terminal_env(home, **env)
    )
    try:
        term.expect("Commands: /state  /history  /sessions  /new  /quit")
        term.expect("you> ")
        yield term
    finally:
        term.kill()


def test_line_editing_history_ctrl_c_and_ctrl_d_in_a_terminal(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    with terminal_chat(tmp_path, "--db", db) as term:
        term.type("My name is Alice" + ENTER)
        term.expect("Nice to meet you, Alice!")
        term.expect("you> ")
        # Up recalls the line typed before; Enter sends it again.
        term.type(UP + ENTER)
        term.expect('You said: "My name is Alice"')
        term.expect("you> ")
        # Left moves the cursor: "xz", Left, "y" is "xyz", not "xz^[[Dy".
        term.type("xz" + LEFT + "y" + ENTER)
        term.expect('You said: "xyz"')
        term.expect("you> ")
        # Ctrl-C at the prompt drops the half-typed line and keeps the chat.
        term.type("half a line" + CTRL_C)
        term.expect("you> ")
        term.type("/state" + ENTER)
        term.expect('"user:name": "Alice"')
        term.expect("you> ")
        # Ctrl-C while the model answers cancels that answer, not the chat.
        term.type("answer slowly" + ENTER)
        term.expect("(model is thinking)")
        term.type(CTRL_C)
        term.expect("(answer cancelled; your message is stored)")
        term.expect("you> ")
        term.type("What is my name?" + ENTER)
        term.expect("assistant> Your name is Alice.")
        term.expect("you> ")
        term.type(CTRL_D)
        assert term.wait() == 0
    assert "half a line" not in term.screen.split("/state")[1]
    assert "^[[" not in term.screen

    # The history outlives the process and belongs to this database only.
    with terminal_chat(tmp_path, "--db", db) as term:
        term.type(UP + ENTER)
        term.expect("assistant> Your name is Alice.")
        term.expect("you> ")
        term.type("/quit" + ENTER)
        assert term.wait() == 0
    histories = list((tmp_path / "state" / "openadk" / "chat-history").iterdir())
    assert len(histories) == 1
    assert histories[0].read_text().splitlines()[-2:] == ["What is my name?", "/quit"]
    assert "half a line" not in histories[0].read_text()
    # What a user types may be private.
    assert stat.S_IMODE(histories[0].stat().st_mode) == 0o600
    other = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    with terminal_chat(tmp_path, "--db", other) as term:
        term.type(UP + "hello" + ENTER)
        term.expect("assistant> Hello! How can I help you today?")
        term.expect("you> ")
        term.type(CTRL_D)
        assert term.wait() == 0
    assert len(list((tmp_path / "state" / "openadk" / "chat-history").iterdir())) == 2


def test_default_database_is_sessions_db_and_a_restart_resumes(tmp_path: Path) -> None:
    first = chat("My name is Alice\n/state\n/quit\n", "--user", "alice", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "No GOOGLE_API_KEY set: using the offline demo model" in first.stdout
    assert "openadk chat · app openadk_chat · user alice · model offline" in first.stdout
    assert "Nice to meet you, Alice!" in first.stdout
    assert (tmp_path / "sessions.db").exists()

    second = chat("What's my name?\n/history\n", "--user", "alice", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # The message, the remember() call, its response and the reply.
    assert "Resumed session main (4 events)" in second.stdout
    assert "you> My name is Alice" in second.stdout
    assert "assistant> Your name is Alice." in second.stdout


def test_slash_commands(tmp_path: Path) -> None:
    out = chat(
        "I live in Paris\n/sessions\n/new\n/history\nwhere do i live?\n/bogus\n/quit\n",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "main *" in out.stdout
    assert "New session chat-" in out.stdout
    # A new session starts a new conversation; the user's user: state comes along.
    assert "(no messages yet)" in out.stdout
    assert "assistant calls recall(key='user:city')" in out.stdout
    assert "assistant> You live in Paris." in out.stdout
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


def test_the_app_name_is_printed_at_the_start(tmp_path: Path) -> None:
    out = chat("/quit\n", "--app", "support_bot", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "openadk chat · app support_bot · user" in out.stdout


def test_state_shows_what_the_offline_model_learned_and_user_scope_outlives_the_session(
    tmp_path: Path,
) -> None:
    first = chat(
        "My name is Ann and I live in Oslo\nMy favourite colour is blue\n/state\n",
        "--user",
        "ann",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert "assistant calls remember(key='user:name', value='Ann')" in first.stdout
    assert '"user:name": "Ann"' in first.stdout
    assert '"user:city": "Oslo"' in first.stdout
    assert '"user:favorite_color": "blue"' in first.stdout
    # A restart, then a new session: user: keys belong to the user, not to one session.
    second = chat(
        "/new\n/state\nWhat is my name and where do I live?\nwhat is my favorite color?\n",
        "--user",
        "ann",
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert '"user:name": "Ann"' in second.stdout
    assert "assistant calls recall(key='user:name'), recall(key='user:city')" in second.stdout
    assert "assistant> Your name is Ann. You live in Oslo." in second.stdout
    assert "assistant> Your favorite color is blue." in second.stdout
    # Another user shares none of it.
    other = chat("/state\nWhat is my name?\n", "--user", "bob", cwd=tmp_path)
    assert "{}" in other.stdout
    assert "You have not told me your name yet." in other.stdout


def test_an_instruction_needing_a_missing_state_key_is_refused_at_start_up(
    tmp_path: Path,
) -> None:
    out = chat("My name is Alice\n", "--instruction", "You help {user:name}.", cwd=tmp_path)
    assert out.returncode == 1
    # google-adk's message for the same template, before any prompt.
    assert "Context variable not found: `user:name` in agent 'assistant'." in out.stdout
    assert "to make a placeholder optional" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    assert "you>" not in out.stdout
    listed = chat("/history\n", cwd=tmp_path)
    assert "(no messages yet)" in listed.stdout
    # Once the state holds the key, the same instruction is fine; optional placeholders always.
    chat("My name is Alice\n", cwd=tmp_path)
    named = chat("hello\n", "--instruction", "You help {user:name}.", cwd=tmp_path)
    assert named.returncode == 0, named.stdout
    assert "assistant> Hello, Alice!" in named.stdout
    optional = chat("hello\n", "--instruction", "Help {mood?}.", "--session", "s2", cwd=tmp_path)
    assert optional.returncode == 0, optional.stdout


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A database of its own on the local PostgreSQL, and a switch that takes it away.

    Going away is real: every connection to it is terminated and it is renamed, so reconnecting
    fails with "database does not exist" until it is renamed back.
    """
    name = f"chat_{uuid.uuid4().hex[:12]}"
    away = f"{name}_away"
    server = POSTGRES.rsplit("/", 1)[0]
    admin = psycopg.connect(f"postgresql://{server}/postgres", autocommit=True)

    def present(there: bool) -> None:
        source, target = (away, name) if there else (name, away)
        for _ in range(100):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (source,),
            )
            try:
                admin.execute(f"ALTER DATABASE {source} RENAME TO {target}")
                return
            except psycopg.errors.ObjectInUse:  # a connection came back in between
                continue
        raise AssertionError(f"could not rename {source}")

    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+asyncpg://{server}/{name}", present
    finally:
        for each in (name, away):
            admin.execute(f"DROP DATABASE IF EXISTS {each} WITH (FORCE)")
        admin.close()


def user_messages(url: str, session_id: str = "main") -> list[str]:
    async def load() -> list[str]:
        async with DatabaseSessionService(url) as service:
            session = await service.get_session(
                app_name="openadk_chat", user_id="alice", session_id=session_id
            )
            assert session is not None
            return [
                "".join(p.text or "" for p in e.content.parts)
                for e in session.events
                if e.author == "user" and e.content and e.content.parts
            ]

    return asyncio.run(load())


def test_the_database_going_away_mid_chat_is_retried_and_the_message_kept(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with (
        postgres_database() as (url, present),
        terminal_chat(tmp_path, "--db", url, CHAT_TEST_GATE=str(gate)) as term,
    ):
        term.type("My name is Alice" + ENTER)
        term.expect("Nice to meet you, Alice!")
        term.expect("you> ")

        # Gone before the message is sent: the chat says so, retries, and sends it once back.
        present(False)
        term.type("What is my name?" + ENTER)
        term.expect("The database is not answering")
        term.expect("your message is kept, not sent yet")
        term.expect("Retrying in")
        present(True)
        term.expect("(the database answers again)")
        term.expect("assistant> Your name is Alice.")
        term.expect("you> ")

        # Gone, and the user gives up waiting: the message is back on the line, Enter sends it.
        present(False)
        term.type("Where do I live?" + ENTER)
        term.expect("Retrying in")
        term.type(CTRL_C)
        term.expect("your message was not sent: it is back on the line")
        term.expect("you> Where do I live?")
        present(True)
        term.type(ENTER)
        term.expect("assistant> You have not told me where you live yet.")
        term.expect("you> ")

        # Gone after the message was stored, while the model answers: the answer is asked for
        # again once the database is back, and the message is not stored twice.
        term.type("I live in Oslo, answer after the gate" + ENTER)
        term.expect("(model waits at the gate)")
        present(False)
        gate.write_text("go")
        term.expect("your message is stored")
        present(True)
        term.expect("assistant> Noted: you live in Oslo.")
        term.expect("you> ")
        term.type(CTRL_D)
        assert term.wait() == 0
        assert user_messages(url) == [
            "My name is Alice",
            "What is my name?",
            "Where do I live?",
            "I live in Oslo, answer after the gate",
        ]
