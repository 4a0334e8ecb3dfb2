"""The operator CLI as an operator meets it: missing files, hostile stored text, corrupt rows,
conflicting copies, pipes and terminals, missing extras, help texts.

Every command runs in a subprocess: standard output is then a pipe (tab-separated output); the
terminal rendering is tested under a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService
from tests.cli.test_admin import cli
from tests.contract.backends import MYSQL, POSTGRES

CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"
CLEAR = "\x1b[2J"
HOSTILE_USER = f"mallory{CLIPBOARD}{CLEAR}"


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def add_session(
    url: str,
    app: str,
    user: str,
    session_id: str,
    texts: list[str],
    state: dict[str, Any] | None = None,
) -> None:
    async with DatabaseSessionService(url) as service:
        session = await service.create_session(
            app_name=app, user_id=user, session_id=session_id, state=state
        )
        for number, text in enumerate(texts):
            await service.append_event(
                session,
                Event(
                    author="user" if number % 2 == 0 else "agent",
                    invocation_id=f"inv-{number // 2}",
                    content=types.Content(parts=[types.Part(text=text)]),
                    actions=EventActions(state_delta={"turn": number}),
                ),
            )


async def event_texts(url: str, app: str, user: str, session_id: str) -> list[str] | None:
    async with DatabaseSessionService(url) as service:
        session = await service.get_session(app_name=app, user_id=user, session_id=session_id)
        if session is None:
            return None
        return [
            e.content.parts[0].text or "" for e in session.events if e.content and e.content.parts
        ]


def run_in_terminal(*args: str, cwd: Path, columns: int = 80) -> str:
    """Runs ``openadk ARGS`` with a pseudo-terminal as its standard output; returns the output."""
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS=str(columns), LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "openadk", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            raise AssertionError("no output from the command for 60 s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode()


_STYLE = re.compile(r"\x1b\[[0-9;]*m")


# --- item 7: a mistyped SQLite path never creates a database ---------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list", "--app", "a"),
        ("sessions", "show", "--app", "a", "--user", "u", "s"),
        ("sessions", "export", "--app", "a"),
        ("sessions", "delete", "--app", "a", "--user", "u", "s"),
        ("apps",),
        ("db", "check"),
        ("db", "current"),
    ],
)
def test_read_commands_refuse_a_missing_file_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "sessons.db"  # the typo
    out = cli(*args, "--db", url_of(missing), cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(missing) in out.stderr and "No such" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
    assert not missing.exists()


def test_migrate_from_refuses_a_missing_source_and_creates_nothing(tmp_path: Path) -> None:
    out = cli("migrate-from", url_of(tmp_path / "nope.db"), url_of(tmp_path / "d.db"), cwd=tmp_path)
    assert out.returncode == 2
    assert str(tmp_path / "nope.db") in out.stderr and "source database" in out.stderr
    assert "verified" not in out.stdout
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "d.db").exists()


def test_migrate_from_knows_one_file_spelled_several_ways(tmp_path: Path) -> None:
    asyncio.run(add_session(url_of(tmp_path / "a.db"), "app", "u", "s", ["hi"]))
    (tmp_path / "link.db").symlink_to(tmp_path / "a.db")
    spellings = [
        "sqlite+aiosqlite:///./a.db",
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        f"sqlite:///{tmp_path / 'sub' / '..' / 'a.db'}",
        "sqlite+aiosqlite:///link.db",
    ]
    (tmp_path / "sub").mkdir()
    for source, dest in itertools.pairwise(spellings):
        out = cli("migrate-from", source, dest, cwd=tmp_path)
        assert out.returncode == 2, (source, dest, out.stdout, out.stderr)
        assert "same database" in out.stderr
    assert asyncio.run(event_texts(url_of(tmp_path / "a.db"), "app", "u", "s")) == ["hi"]


# --- item 6: migrate-from never merges two conversations -------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
def test_migrate_from_reports_a_colliding_session_and_changes_nothing_for_it(
    tmp_path: Path, kind: str
) -> None:
    source = url_of(tmp_path / "laptop.db")
    dest = {
        "sqlite": url_of(tmp_path / "server.db"),
        "postgres": f"postgresql+asyncpg://{POSTGRES}",
        "mariadb": f"mysql+aiomysql://{MYSQL}?charset=utf8mb4",
    }[kind]
    app = f"chat-operator-{uuid.uuid4().hex[:8]}"
    asyncio.run(add_session(source, app, "ann", "main", ["laptop 1", "laptop 2"]))
    asyncio.run(add_session(source, app, "ann", "other", ["only on the laptop"]))
    asyncio.run(add_session(dest, app, "ann", "main", ["server 1", "server 2", "server 3"]))
    out = cli("migrate-from", source, dest, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "verified: every source row" not in out.stdout
    assert f"conflict: session {app}/ann/main" in out.stderr and "DEST left as it was" in out.stderr
    assert "--rename-conflicts" in out.stderr
    assert asyncio.run(event_texts(dest, app, "ann", "main")) == [
        "server 1",
        "server 2",
        "server 3",
    ]
    assert asyncio.run(event_texts(dest, app, "ann", "other")) == ["only on the laptop"]

    renamed = cli("migrate-from", source, dest, "--rename-conflicts", cwd=tmp_path)
    assert renamed.returncode == 0, renamed.stdout + renamed.stderr
    new_id = re.search(r"copied as session id (main-[0-9a-f]{8})", renamed.stderr)
    assert new_id is not None, renamed.stderr
    assert asyncio.run(event_texts(dest, app, "ann", new_id.group(1))) == ["laptop 1", "laptop 2"]
    assert asyncio.run(event_texts(dest, app, "ann", "main")) == [
        "server 1",
        "server 2",
        "server 3",
    ]
    # Run again: the renamed copy is recognised, nothing is copied twice.
    again = cli("migrate-from", source, dest, "--rename-conflicts", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert asyncio.run(event_texts(dest, app, "ann", new_id.group(1))) == ["laptop 1", "laptop 2"]


def test_migrate_from_reports_app_and_user_state_that_differ(tmp_path: Path) -> None:
    source, dest = url_of(tmp_path / "s.db"), url_of(tmp_path / "d.db")
    asyncio.run(add_session(source, "app", "ann", "s1", [], {"app:plan": "pro", "user:lang": "fr"}))
    asyncio.run(add_session(dest, "app", "bob", "s2", [], {"app:plan": "free"}))
    asyncio.run(add_session(dest, "app", "ann", "s3", [], {"user:lang": "fr"}))
    out = cli("migrate-from", source, dest, cwd=tmp_path)
    assert out.returncode == 1
    assert "conflict: app state of app: SOURCE and DEST hold other values for plan" in out.stderr
    assert "user state" not in out.stderr  # the same value on both sides is no conflict

    async def plan() -> Any:
        async with DatabaseSessionService(dest) as service:
            session = await service.get_session(app_name="app", user_id="ann", session_id="s1")
            assert session is not None  # the session itself was copied
            return session.state["app:plan"]

    assert asyncio.run(plan()) == "free"


# --- item 8: stored text never reaches the terminal raw --------------------------------------


def test_control_characters_are_escaped_in_every_output(tmp_path: Path) -> None:
    url = url_of(tmp_path / "h.db")
    asyncio.run(
        add_session(
            url, "app", HOSTILE_USER, f"s{CLEAR}", [f"hello{CLIPBOARD}\nsecond line"], {"k": CLEAR}
        )
    )
    env = {"OPENADK_DB": url}
    outputs = [
        cli("sessions", "list", "--app", "app", cwd=tmp_path, env=env),
        cli("sessions", "list", "--json", cwd=tmp_path, env=env),
        cli(
            "sessions",
            "show",
            "--app",
            "app",
            "--user",
            HOSTILE_USER,
            f"s{CLEAR}",
            cwd=tmp_path,
            env=env,
        ),
        cli(
            "sessions", "show", "--json", "--user", HOSTILE_USER, f"s{CLEAR}", cwd=tmp_path, env=env
        ),
        cli("sessions", "show", "--user", HOSTILE_USER, "nope\x1b[5m", cwd=tmp_path, env=env),
        cli("apps", cwd=tmp_path, env=env),
        cli("sessions", "prune", "--older-than", "0s", "--dry-run", cwd=tmp_path, env=env),
    ]
    for out in outputs:
        assert "\x1b" not in out.stdout + out.stderr, out.args
        assert "\x07" not in out.stdout + out.stderr, out.args
    listed = outputs[0].stdout
    assert listed.split("\t")[:2] == ["mallory\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J", "s\\x1b[2J"]
    assert json.loads(outputs[1].stdout)["sessions"][0]["userId"] == HOSTILE_USER
    assert "hello\\x1b]52;c;cHduZWQ=\\x07\nsecond line" in outputs[2].stdout
    assert json.loads(outputs[3].stdout)["state"]["k"] == CLEAR
    rendered = run_in_terminal("sessions", "list", "--app", "app", "--db", url, cwd=tmp_path)
    assert CLIPBOARD not in rendered and CLEAR not in rendered
    assert "mallory\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J" in _STYLE.sub("", rendered)
    shown = run_in_terminal(
        "sessions", "show", "--db", url, "--user", HOSTILE_USER, f"s{CLEAR}", cwd=tmp_path
    )
    assert CLIPBOARD not in shown and CLEAR not in shown
    assert "hello\\x1b]52;c;cHduZWQ=\\x07" in _STYLE.sub("", shown)


# --- item 4: a corrupt row is reported, the other sessions go on -----------------------------


def corrupt_event(path: Path, session_id: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE events SET event_data = '{\"broken' WHERE session_id = ?", (session_id,)
        )


def test_show_and_export_report_a_corrupt_session_and_go_on(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    for name in ("s1", "s2", "s3", "s4"):
        asyncio.run(add_session(url_of(path), "app", "u", name, [f"text of {name}"]))
    corrupt_event(path, "s2")
    with sqlite3.connect(path) as conn:  # a session state that is not JSON: listings fail on it
        conn.execute("UPDATE sessions SET state = '[1' WHERE id = 's4'")
    env = {"OPENADK_DB": url_of(path)}
    shown = cli(
        "sessions", "show", "--app", "app", "--user", "u", "s1", "s2", "s3", cwd=tmp_path, env=env
    )
    assert shown.returncode == 1
    assert "text of s1" in shown.stdout and "text of s3" in shown.stdout
    assert "error: cannot read session s2 (app app, user u)" in shown.stderr
    assert "Traceback" not in shown.stderr
    exported = cli("sessions", "export", "--app", "app", "-o", "out.jsonl", cwd=tmp_path, env=env)
    assert exported.returncode == 1
    assert "error: cannot read session s2 (app app, user u)" in exported.stderr
    assert "error: cannot read session s4 (app app, user u)" in exported.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["s1", "s3"]
    assert "exported 2 session(s)" in exported.stdout and "2 could not be read" in exported.stdout


# --- issue 11 item 4: a missing extra is one line with the pip install ------------------------


def without(modules: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``openadk ARGS`` in an interpreter where importing ``modules`` fails."""
    shim = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from openadk.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", shim, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_a_missing_extra_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    out = without(["fastapi", "uvicorn"], "serve", "--db", "memory", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert 'pip install "openadk[server]"' in out.stderr
    database = without(["sqlalchemy"], "sessions", "list", "--app", "a", cwd=tmp_path)
    assert database.returncode == 2, database.stderr
    assert database.stderr.count("\n") == 1 and 'pip install "openadk[sqlite]"' in database.stderr
    postgres = without(
        ["sqlalchemy"], "apps", "--db", "postgresql+asyncpg://u@127.0.0.1/x", cwd=tmp_path
    )
    assert 'pip install "openadk[postgres]"' in postgres.stderr
    debug = without(["fastapi"], "serve", "--db", "memory", "--debug", cwd=tmp_path)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and 'pip install "openadk[server]"' in debug.stderr


def test_bad_urls_and_options_are_one_line_exit_2(tmp_path: Path) -> None:
    for args in (
        ("apps", "--db", "nosuchdb://x"),
        ("sessions", "list", "--db", "::::"),
        ("sessions", "prune", "--older-than", "soon", "--db", url_of(tmp_path / "n.db")),
    ):
        if "prune" in args:
            asyncio.run(add_session(url_of(tmp_path / "n.db"), "a", "u", "s", []))
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr


# --- item 9: apps, and --app defaulting to the only app --------------------------------------


def test_apps_lists_counts_and_app_defaults_to_the_only_one(tmp_path: Path) -> None:
    url = url_of(tmp_path / "apps.db")
    asyncio.run(add_session(url, "travel", "ann", "s1", ["x"]))
    asyncio.run(add_session(url, "travel", "ann", "s2", []))
    asyncio.run(add_session(url, "travel", "bob", "s3", []))
    env = {"OPENADK_DB": url}
    one = cli("sessions", "list", cwd=tmp_path, env=env)
    assert one.returncode == 0, one.stderr
    assert [line.split("\t")[1] for line in one.stdout.splitlines()] == ["s1", "s2", "s3"]
    asyncio.run(add_session(url, "weather", "cat", "s9", []))
    apps = cli("apps", cwd=tmp_path, env=env)
    assert apps.stdout.splitlines() == ["travel\t3\t2", "weather\t1\t1"]
    assert json.loads(cli("apps", "--json", cwd=tmp_path, env=env).stdout)["apps"][0] == {
        "appName": "travel",
        "sessions": 3,
        "users": 2,
    }
    two = cli("sessions", "list", cwd=tmp_path, env=env)
    assert two.returncode == 2
    assert "--app is needed" in two.stderr and "travel, weather" in two.stderr
    terminal = _STYLE.sub("", run_in_terminal("apps", "--db", url, cwd=tmp_path))
    assert re.search(r"travel\s+│\s+3\s+│\s+2", terminal), terminal


def test_the_admin_library_lists_apps_in_memory_too() -> None:
    from openadk.sessions import InMemorySessionService
    from openadk.sessions._admin import AppSummary, list_apps

    async def run() -> list[AppSummary]:
        service = InMemorySessionService()
        await service.create_session(app_name="b", user_id="u1", session_id="x")
        await service.create_session(app_name="b", user_id="u2", session_id="y")
        await service.create_session(app_name="a", user_id="u1", session_id="z")
        return await list_apps(service)

    assert asyncio.run(run()) == [AppSummary("a", 1, 1), AppSummary("b", 2, 2)]


# --- item 10: ids are never cut, pipes get tab-separated lines, --json -----------------------


def test_long_ids_survive_terminals_and_pipes(tmp_path: Path) -> None:
    url = url_of(tmp_path / "long.db")
    user = "user-" + "u" * 60
    ids = [f"session-{n}-" + uuid.uuid4().hex * 3 for n in range(3)]
    for session_id in ids:
        asyncio.run(add_session(url, "app", user, session_id, [], {"a_rather_long_state_key": 1}))
    env = {"OPENADK_DB": url}
    piped = cli("sessions", "list", "--app", "app", "--limit", "2", cwd=tmp_path, env=env)
    rows = [line.split("\t") for line in piped.stdout.splitlines()]
    assert [row[:2] for row in rows] == [[user, ids[0]], [user, ids[1]]]
    token = re.fullmatch(r"next page: --page-token (\S+)\n", piped.stderr)
    assert token is not None, piped.stderr
    rest = cli("sessions", "list", "--page-token", token.group(1), cwd=tmp_path, env=env)
    assert [line.split("\t")[1] for line in rest.stdout.splitlines()] == [ids[2]]
    as_json = json.loads(
        cli("sessions", "list", "--json", "--limit", "2", cwd=tmp_path, env=env).stdout
    )
    assert [s["id"] for s in as_json["sessions"]] == ids[:2]
    assert as_json["nextPageToken"] == token.group(1)
    rendered = _STYLE.sub(
        "",
        run_in_terminal(
            "sessions", "list", "--app", "app", "--db", url, "--limit", "2", cwd=tmp_path
        ),
    )
    lines = rendered.splitlines()
    for session_id in ids[:2]:
        assert any(session_id in line for line in lines), rendered
    assert f"more: --page-token {token.group(1)}" in lines, rendered


# --- item 11: import errors, --replace counts, export | head, progress counts ----------------


def test_import_says_which_field_and_why(tmp_path: Path) -> None:
    dest = url_of(tmp_path / "i.db")
    good = {"id": "ok", "appName": "a", "userId": "u", "state": {"k": 1}}
    lines = [
        "{not json",
        json.dumps(good),
        json.dumps({"id": "x", "appName": "a", "userId": "u", "events": [{"timestamp": "soon"}]}),
        json.dumps({"id": "", "appName": "a", "userId": "u"}),
        "[1, 2]",
    ]
    out = cli("sessions", "import", "-", "--db", dest, cwd=tmp_path, stdin="\n".join(lines))
    assert out.returncode == 1
    errors = out.stderr.splitlines()
    assert errors[0].startswith("error: line 1: not JSON (")
    assert "line 3: field events.0" in errors[1] and "validation error for" not in out.stderr
    assert errors[2].startswith("error: line 4: field id: ")
    assert errors[3] == "error: line 5: not a session: a JSON list, not an object"
    assert "imported 1, replaced 0, skipped 0 (already there), 4 bad line(s)" in out.stdout
    again = cli("sessions", "import", "-", "--db", dest, cwd=tmp_path, stdin=json.dumps(good))
    assert "imported 0, replaced 0, skipped 1" in again.stdout
    replaced = cli(
        "sessions", "import", "-", "--replace", "--db", dest, cwd=tmp_path, stdin=json.dumps(good)
    )
    assert replaced.returncode == 0
    assert "imported 0, replaced 1, skipped 0" in replaced.stdout


def test_export_into_head_ends_quietly(tmp_path: Path) -> None:
    url = url_of(tmp_path / "big.db")

    async def fill() -> None:
        async with DatabaseSessionService(url) as service:
            for n in range(60):
                session = await service.create_session(
                    app_name="a", user_id="u", session_id=f"s{n}"
                )
                await service.append_event(
                    session,
                    Event(
                        author="user", content=types.Content(parts=[types.Part(text="x" * 4000)])
                    ),
                )

    asyncio.run(fill())
    export = f"{sys.executable} -m openadk sessions export --app a --db {url}"
    shell = f"{export} 2>err.txt | head -n 1 > first.txt"
    done = subprocess.run(["bash", "-c", shell], cwd=tmp_path, timeout=120, env=dict(os.environ))
    assert done.returncode == 0
    assert json.loads((tmp_path / "first.txt").read_text())["id"] == "s0"
    assert (tmp_path / "err.txt").read_text() == ""


def test_migrate_progress_shows_row_counts(tmp_path: Path) -> None:
    source = url_of(tmp_path / "p.db")
    for n in range(3):
        asyncio.run(add_session(source, "a", "u", f"s{n}", ["1", "2"]))
    out = cli("migrate-from", source, url_of(tmp_path / "q.db"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"events\s.*\b6/6 rows\b", out.stdout), out.stdout
    assert re.search(r"sessions\s.*\b3/3 rows\b", out.stdout), out.stdout


# --- item 12: help texts ---------------------------------------------------------------------


def _all_parsers() -> list[Any]:
    import argparse

    from openadk.cli._main import _parser

    found = []
    pending = [_parser()]
    while pending:
        parser = pending.pop()
        found.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    return found


def test_every_option_and_argument_is_documented() -> None:
    import argparse

    undocumented = [
        f"{parser.prog} {action.dest}"
        for parser in _all_parsers()
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert undocumented == []
    assert len(_all_parsers()) > 15


def test_top_level_help_lists_every_verb_and_the_environment(tmp_path: Path) -> None:
    out = cli("--help", cwd=tmp_path)
    verbs = ["list", "show", "export", "import", "delete", "trim", "delete-user", "prune"]
    for verb in [f"sessions {v}" for v in verbs] + ["apps", "chat", "serve", "migrate-from"]:
        assert f"openadk {verb}" in out.stdout, verb
    assert "$OPENADK_DB" in out.stdout and "$DATABASE_URL" in out.stdout
    listing = cli("sessions", "list", "--help", cwd=tmp_path).stdout
    assert "(default: 50)" in listing and "$OPENADK_DB wins" in listing
    version = cli("--version", cwd=tmp_path)
    assert re.fullmatch(r"openadk \d+\.\d+\.\d+\S*\n", version.stdout)


def test_openadk_db_wins_over_database_url(tmp_path: Path) -> None:
    asyncio.run(add_session(url_of(tmp_path / "one.db"), "from_openadk_db", "u", "s", []))
    asyncio.run(add_session(url_of(tmp_path / "two.db"), "from_database_url", "u", "s", []))
    env = {"OPENADK_DB": url_of(tmp_path / "one.db"), "DATABASE_URL": url_of(tmp_path / "two.db")}
    assert cli("apps", cwd=tmp_path, env=env).stdout.startswith("from_openadk_db\t")


def test_hostile_import_lines_are_reported_one_by_one_and_the_rest_imported(
    tmp_path: Path,
) -> None:
    def session(session_id: str, **fields: Any) -> str:
        return json.dumps({"id": session_id, "appName": "a", "userId": "u", **fields})

    deep = '{"id": "deep", "appName": "a", "userId": "u", "state": ' + '{"k":' * 3000 + "1"
    lines = [
        session("dup", events=[{"id": "e1", "author": "x"}, {"id": "e1", "author": "x"}]),
        session("far", lastUpdateTime=1e308),
        deep + "}" * 3001,
        "[" * 100_000 + "]" * 100_000,
        session("surrogate", state={"t": "x\ud800"}),
        session("n\u0000ul"),
        session("fine", state={"k": 1}),
    ]
    dest = url_of(tmp_path / "i.db")
    out = cli("sessions", "import", "-", "--db", dest, cwd=tmp_path, stdin="\n".join(lines))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "unexpected" not in out.stderr
    errors = out.stderr.splitlines()
    assert [e.split(":")[1] for e in errors] == [f" line {n}" for n in range(1, 7)], errors
    assert "event id 'e1' appears twice" in errors[0]
    assert "session 'far' cannot be stored" in errors[1]
    assert "nested too deeply" in errors[2] and "nested too deeply" in errors[3]
    assert "not valid Unicode" in errors[4] and "NUL" in errors[5]
    assert "imported 1, replaced 0, skipped 0 (already there), 6 bad line(s)" in out.stdout
    exported = cli("sessions", "export", "--app", "a", "--db", dest, cwd=tmp_path)
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == ["fine"]


def test_hostile_arguments_are_one_line_errors(tmp_path: Path) -> None:
    url = url_of(tmp_path / "args.db")
    asyncio.run(add_session(url, "a", "u", "s", []))
    (tmp_path / "binary.jsonl").write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff")
    cases = {
        ("sessions", "prune", "--older-than", "99999999999999d"): "longer than any time",
        ("sessions", "prune", "--older-than", "\u0663d"): "must be a number and a unit",
        ("sessions", "list", "--page-token", "garbage"): "page_token is not valid",
        ("sessions", "list", "--limit", "0"): "--limit must be at least 1",
        ("sessions", "import", "binary.jsonl"): "binary.jsonl is not UTF-8 text (byte 8)",
        ("sessions", "import", "missing.jsonl"): "No such file or directory",
        ("migrate-from", url, url_of(tmp_path / "d.db"), "--batch-size", "0"): "at least 1",
    }
    for args, message in cases.items():
        out = cli(*args, cwd=tmp_path, env={"OPENADK_DB": url})
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, (args, out.stderr)


def test_migrate_from_again_brings_an_earlier_copy_up_to_date(tmp_path: Path) -> None:
    """A cut-over: copy, SOURCE keeps taking turns, copy again. DEST's session is an earlier
    copy of the same conversation, so it is caught up, not reported as a conflict; once DEST
    has its own new turns it is a conflict."""
    source, dest = url_of(tmp_path / "old.db"), url_of(tmp_path / "new.db")
    asyncio.run(add_session(source, "app", "ann", "main", ["one", "two"]))
    assert cli("migrate-from", source, dest, cwd=tmp_path).returncode == 0

    async def more(url: str, text: str) -> None:
        async with DatabaseSessionService(url) as service:
            session = await service.get_session(app_name="app", user_id="ann", session_id="main")
            assert session is not None
            await service.append_event(
                session,
                Event(author="user", content=types.Content(parts=[types.Part(text=text)])),
            )

    asyncio.run(more(source, "three"))
    caught_up = cli("migrate-from", source, dest, cwd=tmp_path)
    assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    assert "verified: every source row is in DEST" in caught_up.stdout
    assert asyncio.run(event_texts(dest, "app", "ann", "main")) == ["one", "two", "three"]
    assert asyncio.run(snapshot_state(dest)) == asyncio.run(snapshot_state(source))
    asyncio.run(more(dest, "four, on the new database"))
    asyncio.run(more(source, "four, on the old database"))
    diverged = cli("migrate-from", source, dest, cwd=tmp_path)
    assert diverged.returncode == 1 and "conflict: session app/ann/main" in diverged.stderr
    assert asyncio.run(event_texts(dest, "app", "ann", "main")) == [
        "one",
        "two",
        "three",
        "four, on the new database",
    ]


async def snapshot_state(url: str) -> tuple[dict[str, Any], float]:
    async with DatabaseSessionService(url) as service:
        session = await service.get_session(app_name="app", user_id="ann", session_id="main")
        assert session is not None
        return session.state, session.last_update_time


def test_migrate_from_never_changes_the_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    out = cli("migrate-from", url_of(empty), url_of(tmp_path / "d.db"), cwd=tmp_path)
    assert out.returncode == 2 and "is an empty file" in out.stderr, out.stderr
    assert empty.stat().st_size == 0
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    out = cli("migrate-from", url_of(other), url_of(tmp_path / "d.db"), cwd=tmp_path)
    assert out.returncode == 2 and "has no sessions table" in out.stderr, out.stderr
    with sqlite3.connect(other) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    # A database google-adk wrote has none of openadk's own tables; they stay absent.
    source = tmp_path / "adk.db"
    asyncio.run(add_session(url_of(source), "app", "u", "s", ["hi"]))
    with sqlite3.connect(source) as conn:
        conn.execute("DROP TABLE openadk_session_expiry")
    copied = cli("migrate-from", url_of(source), url_of(tmp_path / "copy.db"), cwd=tmp_path)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    with sqlite3.connect(source) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "openadk_session_expiry" not in tables
    assert asyncio.run(event_texts(url_of(tmp_path / "copy.db"), "app", "u", "s")) == ["hi"]


def test_list_apps_leaves_expired_sessions_out(tmp_path: Path) -> None:
    from openadk.sessions._admin import AppSummary, list_apps

    path = tmp_path / "expiry.db"

    async def make() -> None:
        async with DatabaseSessionService(url_of(path)) as service:
            await service.create_session(app_name="x", user_id="u", session_id="a", ttl=3600)
            await service.create_session(app_name="x", user_id="v", session_id="b")
            await service.create_session(app_name="gone", user_id="w", session_id="c", ttl=60)

    asyncio.run(make())
    with sqlite3.connect(path) as conn:  # expire two of them, without waiting
        stored = conn.execute("SELECT expire_time FROM openadk_session_expiry").fetchone()[0]
        past = "2000-01-01 00:00:00" + str(stored)[19:]
        conn.execute("UPDATE openadk_session_expiry SET expire_time = ?", (past,))

    async def apps() -> list[AppSummary]:
        async with DatabaseSessionService(url_of(path)) as service:
            return await list_apps(service)

    assert asyncio.run(apps()) == [AppSummary("x", 1, 1)]


def test_db_check_and_current_speak_json(tmp_path: Path) -> None:
    from tests.migrations.conftest import sqlite_copy

    v0 = sqlite_copy(tmp_path, "v0.db")
    check = cli("db", "check", "--json", "--db", v0, cwd=tmp_path)
    assert check.returncode == 1
    found = json.loads(check.stdout)
    assert found["current"] is None and found["pending"][-1]["revision"] == found["head"]
    current = cli("db", "current", "--json", "--db", v0, cwd=tmp_path)
    assert current.returncode == 0 and json.loads(current.stdout) == found
