"""Regression tests for the bugs the reliability suites found (see docs/reliability.md).

Each test names the input that used to leak a raw driver or Python exception, a `StorageError`,
or worse, store an event that could never be read again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.genai import types

from openadk.errors import StorageError
from openadk.events import Event, EventActions
from openadk.sessions import (
    BaseSessionService,
    DatabaseSessionService,
    GetSessionConfig,
    InMemorySessionService,
)
from openadk.sessions._base import encode_page_token
from tests.reliability._common import URLS

DATABASES = ["sqlite", "postgres", "postgres-psycopg", "mariadb", "mariadb-aiomysql"]


def _nested_dicts(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest_asyncio.fixture(params=DATABASES)
async def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseSessionService]:
    name = request.param
    url = f"sqlite+aiosqlite:///{tmp_path}/r.db" if name == "sqlite" else URLS[name]
    made = DatabaseSessionService(url)
    yield made
    await made.close()


@pytest_asyncio.fixture(params=["memory", *DATABASES])
async def any_service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BaseSessionService]:
    name = request.param
    made: BaseSessionService
    if name == "memory":
        made = InMemorySessionService()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/r.db" if name == "sqlite" else URLS[name]
        made = DatabaseSessionService(url)
    yield made
    await made.close()


def _app() -> str:
    return f"regress-{uuid.uuid4().hex[:10]}"


def _exactly(error: BaseException, kind: type[BaseException]) -> None:
    assert type(error) is kind, f"{type(error).__module__}.{type(error).__name__}: {error}"


@pytest.mark.asyncio
async def test_lone_surrogate_ids_are_a_value_error(service: DatabaseSessionService) -> None:
    # Used to leak UnicodeEncodeError (sqlite3, psycopg, asyncmy, aiomysql) or a StorageError
    # (asyncpg) from every operation given an id that is not valid Unicode.
    app = _app()
    await service.create_session(app_name=app, user_id="u", session_id="s")
    calls = {
        "create": lambda: service.create_session(app_name=app, user_id="u", session_id="a\ud800"),
        "get": lambda: service.get_session(app_name=app, user_id="\udfff", session_id="s"),
        "list_sessions": lambda: service.list_sessions(app_name=app + "\ud83d"),
        "list_events": lambda: service.list_events(app_name=app, user_id="u", session_id="\ud800"),
        "delete": lambda: service.delete_session(app_name=app, user_id="u", session_id="\ud800"),
        "user_state": lambda: service.get_user_state(app_name=app, user_id="\ud800"),
    }
    outcomes = {}
    for name, call in calls.items():
        try:
            await call()
            outcomes[name] = "accepted"
        except Exception as error:
            said = "names the surrogate" if "surrogate" in str(error) else str(error)
            outcomes[name] = f"{type(error).__module__}.{type(error).__name__}: {said}"
    # The comparison shows every call that went wrong, and how.
    assert outcomes == dict.fromkeys(calls, "builtins.ValueError: names the surrogate")
    assert [s.id for s in (await service.list_sessions(app_name=app)).sessions] == ["s"]


@pytest.mark.asyncio
async def test_event_with_lone_surrogate_is_refused_not_stored_unreadable(
    service: DatabaseSessionService,
) -> None:
    # SQLite and MariaDB used to store it (json.dumps escapes it), and then every get_session
    # of the session failed with pydantic's ValidationError; PostgreSQL gave a StorageError.
    app = _app()
    session = await service.create_session(app_name=app, user_id="u", session_id="s")
    bad = [
        Event(author="\ud83d"),
        Event(author="a", content=types.Content(parts=[types.Part(text="x\udfffy")])),
        Event(author="a", custom_metadata={"k\ud800": 1}),
        Event(author="a", actions=EventActions(state_delta={"k": "\ud800"})),
    ]
    for event in bad:
        # custom_metadata is checked by the base class, which calls it a TypeError.
        with pytest.raises((ValueError, TypeError), match="surrogate") as caught:
            await service.append_event(session, event)
        assert type(caught.value) in (ValueError, TypeError), repr(caught.value)
    got = await service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None and got.events == [] and got.state == {}
    with pytest.raises(ValueError, match="surrogate") as refused:
        await service.create_session(app_name=app, user_id="u", state={"user:k": "a\udfff"})
    _exactly(refused.value, ValueError)
    assert len((await service.list_sessions(app_name=app)).sessions) == 1


@pytest.mark.asyncio
async def test_event_nested_too_deep_to_read_back_is_refused(
    service: DatabaseSessionService,
) -> None:
    # An event nested ~200 levels deep used to be stored, after which pydantic's JSON parser
    # (limit 200 levels) refused the session's events on every read: the session was lost.
    app = _app()
    session = await service.create_session(app_name=app, user_id="u", session_id="s")
    for event in (
        Event(author="a", custom_metadata={"k": _nested(198)}),
        Event(author="a", actions=EventActions(state_delta={"k": _nested(197)})),
    ):
        with pytest.raises(ValueError, match="nested") as caught:
            await service.append_event(session, event)
        _exactly(caught.value, ValueError)
    fine = Event(author="a", actions=EventActions(state_delta={"k": _nested(140)}))
    await service.append_event(session, fine)
    got = await service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None and [e.id for e in got.events] == [fine.id]
    assert got.state["k"] == _nested(140)


@pytest.mark.asyncio
async def test_state_nested_2000_levels_is_a_value_error(any_service: BaseSessionService) -> None:
    # Used to leak RecursionError from the JSON conversion, on every backend; and a state
    # nested ~300 dicts deep passed the conversion but not the copy made on every read.
    app = _app()
    for depth in (300, 2000):
        with pytest.raises(ValueError, match="nested") as caught:
            await any_service.create_session(
                app_name=app, user_id="u", state={"k": _nested_dicts(depth)}
            )
        _exactly(caught.value, ValueError)
    with pytest.raises(ValueError, match="nested") as caught:
        await any_service.create_session(app_name=app, user_id="u", state={"k": _nested(2000)})
    _exactly(caught.value, ValueError)
    session = await any_service.create_session(app_name=app, user_id="u", session_id="s")
    with pytest.raises(ValueError, match="nested") as caught:
        await any_service.append_event(
            session, Event(author="a", actions=EventActions(state_delta={"k": _nested(2000)}))
        )
    _exactly(caught.value, ValueError)
    got = await any_service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None and got.events == [] and got.state == {}


@pytest.mark.asyncio
async def test_times_beyond_the_calendar_are_handled(any_service: BaseSessionService) -> None:
    # after_timestamp / page-token times past year 9999 or before year 1 used to leak
    # OverflowError or "year -29719 is out of range" from the database service.
    app = _app()
    session = await any_service.create_session(app_name=app, user_id="u", session_id="s")
    event = Event(author="a")
    await any_service.append_event(session, event)

    async def events_after(stamp: float) -> list[str]:
        got = await any_service.get_session(
            app_name=app,
            user_id="u",
            session_id="s",
            config=GetSessionConfig(after_timestamp=stamp),
        )
        assert got is not None
        return [e.id for e in got.events]

    assert await events_after(1e300) == []
    assert await events_after(-1e12) == [event.id]
    far = encode_page_token((1e300, "u", "s"))
    assert (await any_service.list_sessions(app_name=app, page_token=far)).sessions == []
    early = encode_page_token((-1e300, "", ""))
    listed = await any_service.list_sessions(app_name=app, page_token=early)
    assert [s.id for s in listed.sessions] == ["s"]
    page = await any_service.list_events(app_name=app, user_id="u", session_id="s", page_token=far)
    assert page.events == []


@pytest.mark.asyncio
async def test_event_timestamp_beyond_the_calendar_is_a_value_error(
    service: DatabaseSessionService,
) -> None:
    # Used to leak OverflowError ("timestamp out of range for platform time_t").
    app = _app()
    session = await service.create_session(app_name=app, user_id="u", session_id="s")
    for stamp in (1e300, float("inf"), 253402300800.0):
        with pytest.raises(ValueError, match="timestamp") as caught:
            await service.append_event(session, Event(author="a", timestamp=stamp))
        _exactly(caught.value, ValueError)
    got = await service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None and got.events == []


@pytest.mark.asyncio
async def test_huge_limits_mean_everything(any_service: BaseSessionService) -> None:
    # num_recent_events / limit beyond a 64-bit integer used to leak OverflowError (sqlite3) or
    # a StorageError (PostgreSQL "bigint out of range", MariaDB syntax error).
    app = _app()
    session = await any_service.create_session(app_name=app, user_id="u", session_id="s")
    await any_service.append_event(session, Event(author="a"))
    for huge in (2**63, 2**70):
        got = await any_service.get_session(
            app_name=app,
            user_id="u",
            session_id="s",
            config=GetSessionConfig(num_recent_events=huge),
        )
        assert got is not None and len(got.events) == 1
        assert len((await any_service.list_sessions(app_name=app, limit=huge)).sessions) == 1
        listed = await any_service.list_events(
            app_name=app, user_id="u", session_id="s", limit=huge
        )
        assert len(listed.events) == 1


@pytest.mark.asyncio
async def test_nul_in_event_ids_is_stored_or_a_value_error(
    service: DatabaseSessionService,
) -> None:
    # PostgreSQL cannot store NUL in a text column; that used to surface as a StorageError.
    app = _app()
    session = await service.create_session(app_name=app, user_id="u", session_id="s")
    refusals: list[BaseException] = []
    stored: list[Event] = []
    for event in (Event(author="a", id="e\x00"), Event(author="a", invocation_id="i\x00")):
        try:
            await service.append_event(session, event)
        except ValueError as error:
            refusals.append(error)
        else:
            stored.append(event)
    # An acknowledged event reads back exactly, NUL included; a refused one left no trace.
    got = await service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None
    read = [(e.id, e.invocation_id) for e in got.events]
    assert read == [(e.id, e.invocation_id) for e in stored]
    assert [e.id for e in session.events] == [e.id for e in stored]
    assert len(stored) + len(refusals) == 2
    if service.engine.dialect.name == "postgresql":
        assert stored == []  # PostgreSQL text cannot hold NUL: both are refused
    else:
        assert len(stored) == 2  # SQLite and MariaDB store NUL as it is
    token = encode_page_token((0.0, "u\x00", "s"))
    try:
        listed = await service.list_sessions(app_name=app, page_token=token)
        assert [s.id for s in listed.sessions] == ["s"]
    except ValueError as error:
        refusals.append(error)
    for refusal in refusals:
        _exactly(refusal, ValueError)
        assert "NUL" in str(refusal)


def test_read_only_media_error_says_so() -> None:
    # A WAL-mode SQLite file on a read-only file system used to fail every call, reads too,
    # with "Could not create the session tables ...: unable to open database file".
    import asyncio

    async def seed(url: str) -> None:
        async with DatabaseSessionService(url) as made:
            await made.create_session(app_name="ro", user_id="u", session_id="s")

    async def read(url: str) -> Any:
        async with DatabaseSessionService(url) as made:
            return await made.get_session(app_name="ro", user_id="u", session_id="s")

    tmp = Path(tempfile.mkdtemp(prefix="openadk-ro-"))
    mount = tmp / "mnt"
    mount.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        shutil.rmtree(tmp)
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        asyncio.run(seed(f"sqlite+aiosqlite:///{mount}/db"))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(StorageError, match="read-only") as caught:
            asyncio.run(read(f"sqlite+aiosqlite:///{mount}/db"))
        assert "immutable=1" in str(caught.value)
        # The way the message gives works.
        got = asyncio.run(read(f"sqlite+aiosqlite:///file:{mount}/db?immutable=1&uri=true"))
        assert got is not None and got.id == "s"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(tmp)
    assert not os.path.ismount(mount)


@pytest.mark.asyncio
async def test_deep_temp_value_is_a_value_error(any_service: BaseSessionService) -> None:
    # temp: keys skip the JSON conversion (they are never stored), so a deep one reached the
    # in-memory service's copy of the event and leaked RecursionError. Found by the fuzz run.
    app = _app()
    session = await any_service.create_session(app_name=app, user_id="u", session_id="s")
    event = Event(author="a", actions=EventActions(state_delta={"temp:k": _nested_dicts(2000)}))
    with pytest.raises(ValueError, match="deep") as caught:
        await any_service.append_event(session, event)
    _exactly(caught.value, ValueError)
    got = await any_service.get_session(app_name=app, user_id="u", session_id="s")
    assert got is not None and got.events == []
