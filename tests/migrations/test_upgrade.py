"""In-place upgrades: google-adk V0 to V1 on SQLite, PostgreSQL and MariaDB, and the edge cases."""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from openadk.sessions import DatabaseSessionService, migrations
from openadk.sessions.migrations import _convert
from openadk.sessions.migrations._runner import script_head
from tests.migrations import checks
from tests.migrations.conftest import (
    EXPECTED,
    V0_EVENTS,
    V0_FILE,
    WRITER,
    WRITER_TZ,
    engine_for,
    sqlite_copy,
    throwaway_database,
)
from tests.migrations.v0_schema import load_v0

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_adk_warnings")]


def test_head_matches_the_migration_scripts() -> None:
    assert script_head() == migrations.HEAD


def test_public_api() -> None:
    assert set(migrations.__all__) == {
        "HEAD",
        "BadRow",
        "BadRowsError",
        "SchemaStatus",
        "UpgradeError",
        "UpgradeReport",
        "refusal",
        "stamp",
        "status",
        "upgrade",
        "upgrade_command",
    }


async def test_sqlite_v0_upgrades_in_place(tmp_path: Path) -> None:
    url = sqlite_copy(tmp_path)
    before = await migrations.status(url)
    assert before.layout is not None and before.layout.kind == "v0"
    assert before.behind and before.pending[0][0] == "0001_adk_v1"
    report = await migrations.upgrade(url, v0_times=WRITER_TZ)
    assert report.action == "converted"
    assert (report.v0_events, report.converted) == (V0_EVENTS, V0_EVENTS)
    assert not report.bad_rows and not report.orphans and report.kept_table is None
    await checks.assert_upgraded(url)
    # The backup is the untouched V0 file.
    assert report.backup is not None
    await checks.assert_fully_v0(f"sqlite+aiosqlite:///{report.backup}")
    after = await migrations.status(url)
    assert (after.current, after.recorded, after.pending) == (migrations.HEAD, True, ())


async def test_server_v0_upgrades_in_place(v0_server: str) -> None:
    await checks.assert_fully_v0(v0_server)
    state_tables = {
        t: await checks.rows(v0_server, t, "app_name") for t in ("app_states", "user_states")
    }
    report = await migrations.upgrade(v0_server, v0_times=WRITER_TZ)
    assert (report.action, report.converted, report.backup) == ("converted", V0_EVENTS, None)
    await checks.assert_upgraded(v0_server)
    for table, before in state_tables.items():
        assert await checks.rows(v0_server, table, "app_name") == before


async def test_upgrading_a_current_database_is_a_no_op(v0_sqlite: str) -> None:
    await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    events = await checks.rows(v0_sqlite, "events", "id")
    again = await migrations.upgrade(v0_sqlite)
    assert again.action == "nothing"
    assert "nothing to do" in again.summary()[0]
    assert await checks.rows(v0_sqlite, "events", "id") == events


async def test_downgrades_are_refused(v0_sqlite: str) -> None:
    await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    with pytest.raises(migrations.UpgradeError, match="Refusing to downgrade"):
        await migrations.upgrade(v0_sqlite, revision="base")
    with pytest.raises(ValueError, match="Unknown revision"):
        await migrations.upgrade(v0_sqlite, revision="0099_future")
    assert (await migrations.status(v0_sqlite)).current == migrations.HEAD


async def test_utc_rule_reads_naive_times_as_utc(v0_sqlite: str) -> None:
    await migrations.upgrade(v0_sqlite, v0_times="utc")
    service = DatabaseSessionService(v0_sqlite)
    try:
        session = await service.get_session(
            app_name="travel_agent", user_id="alice", session_id="s-trip"
        )
        assert session is not None
        # The writer ran at UTC+05:30: read as UTC, every time lands 5.5 hours late.
        for event in session.events:
            assert event.timestamp == pytest.approx(WRITER["event_timestamps"][event.id] + 19800)
        assert session.last_update_time == pytest.approx(session.events[-1].timestamp)
    finally:
        await service.close()


async def test_google_adk_v1_database_is_adopted_unchanged(tmp_path: Path) -> None:
    from google.adk.events import Event as AdkEvent
    from google.adk.sessions import DatabaseSessionService as AdkService
    from google.genai import types

    url = f"sqlite+aiosqlite:///{tmp_path / 'adk.db'}"
    adk = AdkService(db_url=url)
    session = await adk.create_session(app_name="a", user_id="u", state={"app:x": 1, "k": "v"})
    await adk.append_event(
        session,
        AdkEvent(author="user", content=types.Content(role="user", parts=[types.Part(text="hi")])),
    )
    await adk.close()
    tables = ("app_states", "user_states", "sessions", "events", "adk_internal_metadata")
    snapshot = {t: await checks.rows(url, t, "1") for t in tables}
    before = await migrations.status(url)
    # google-adk's V1 layout is revision 0002; openadk's own tables (0003) are still to add,
    # which does not keep the service from using it.
    assert (before.current, before.recorded) == ("0002_exact_keys", False)
    pending = [revision for revision, _ in before.pending]
    assert pending == ["0003_session_metadata", "0004_event_search", "0005_search_pending"]
    assert not before.blocks_use
    report = await migrations.upgrade(url)
    assert report.action == "adopted" and report.backup is None
    assert {t: await checks.rows(url, t, "1") for t in tables} == snapshot
    assert await checks.rows(url, "openadk_schema_version", "1") == [(migrations.HEAD,)]
    assert (await migrations.upgrade(url)).action == "nothing"


async def test_empty_database_is_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    found = await migrations.status(url)
    assert found.layout is None and found.behind
    assert not (tmp_path / "new.db").exists()  # status never creates the file
    report = await migrations.upgrade(url)
    assert report.action == "created"
    assert await checks.metadata_version(url) == "1"
    assert (await migrations.status(url)).pending == ()


async def corrupt(url: str, event_id: str, actions: bytes) -> None:
    async with engine_for(url) as engine, engine.begin() as conn:
        await conn.execute(
            text("UPDATE events SET actions = :a WHERE id = :i"), {"a": actions, "i": event_id}
        )


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo should-never-run",))


async def test_bad_rows_stop_the_upgrade_without_change(v0_sqlite: str) -> None:
    await corrupt(v0_sqlite, "ev-03", b"\x80\x05not a pickle")
    await corrupt(v0_sqlite, "ev-21", pickle.dumps({"state_delta": Evil()}))
    with pytest.raises(migrations.BadRowsError) as caught:
        await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    reasons = {row.event_id: row.reason for row in caught.value.rows}
    assert set(reasons) == {"ev-03", "ev-21"}
    assert "not a readable pickle" in reasons["ev-03"]
    assert "refused to load posix.system" in reasons["ev-21"]
    assert "ev-03" in str(caught.value) and "--skip-bad-rows" in str(caught.value)
    await checks.assert_fully_v0(v0_sqlite)


async def test_pickle_bombs_are_bad_rows_and_the_database_is_intact(v0_sqlite: str) -> None:
    from tests.migrations.test_v0_reader import shared_tuple_bomb

    await corrupt(v0_sqlite, "ev-03", shared_tuple_bomb(32, as_key=False))
    await corrupt(v0_sqlite, "ev-21", shared_tuple_bomb(60, as_key=True))
    with pytest.raises(migrations.BadRowsError) as caught:
        await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    reasons = {row.event_id: row.reason for row in caught.value.rows}
    assert set(reasons) == {"ev-03", "ev-21"}
    assert all("more than 500,000 values" in reason for reason in reasons.values())
    await checks.assert_fully_v0(v0_sqlite)


async def test_bad_rows_can_be_skipped_and_are_kept(v0_sqlite: str) -> None:
    await corrupt(v0_sqlite, "ev-21", pickle.dumps({"state_delta": Evil()}))
    report = await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ, skip_bad_rows=True)
    assert [row.event_id for row in report.bad_rows] == ["ev-21"]
    assert report.converted == V0_EVENTS - 1
    assert report.kept_table == "openadk_v0_events"
    assert await checks.count(v0_sqlite, "openadk_v0_events") == V0_EVENTS
    assert any("skipped event ev-21" in line for line in report.summary())
    service = DatabaseSessionService(v0_sqlite)
    try:
        hotel = await service.get_session(
            app_name="travel_agent", user_id="alice", session_id="s-hotel"
        )
        assert hotel is not None and [e.id for e in hotel.events] == ["ev-22"]
    finally:
        await service.close()


async def test_unsafe_unpickling_reads_what_the_allow_list_refuses(v0_sqlite: str) -> None:
    await corrupt(
        v0_sqlite,
        "ev-21",
        pickle.dumps({"state_delta": {"when": Path("/x")}, "agent_state": {"f": os.sep}}),
    )
    await corrupt(v0_sqlite, "ev-22", pickle.dumps({"state_delta": {"fn": len}}))
    with pytest.raises(migrations.BadRowsError):
        await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    report = await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ, allow_unsafe_unpickling=True)
    assert report.converted == V0_EVENTS
    service = DatabaseSessionService(v0_sqlite)
    try:
        hotel = await service.get_session(
            app_name="travel_agent", user_id="alice", session_id="s-hotel"
        )
        assert hotel is not None
        assert hotel.events[0].actions.state_delta == {"when": "/x"}
        # What google-adk 2.13 writes for a value JSON cannot hold: its text.
        assert "len" in hotel.events[1].actions.state_delta["fn"]
    finally:
        await service.close()


async def test_orphan_events_are_reported_not_carried(v0_sqlite: str) -> None:
    path = v0_sqlite.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as conn:  # foreign keys off, as in google-adk 1.x before 1.19
        conn.execute("DELETE FROM sessions WHERE id = 's-ticket'")
    report = await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    assert sorted(row.event_id for row in report.orphans) == ["ev-41", "ev-42"]
    assert all("no longer exists" in row.reason for row in report.orphans)
    assert report.converted == V0_EVENTS - 2
    assert report.kept_table == "openadk_v0_events"


class Crash(Exception):
    pass


def crash_after(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    real = _convert.convert_row
    seen = 0

    def failing(row: Any, **kwargs: Any) -> Any:
        nonlocal seen
        seen += 1
        if seen > rows:
            raise Crash(f"injected failure after {rows} rows")
        return real(row, **kwargs)

    monkeypatch.setattr(_convert, "convert_row", failing)


async def test_failure_mid_copy_leaves_v0_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_copy(tmp_path)
    crash_after(monkeypatch, 7)
    with pytest.raises(Crash):
        await migrations.upgrade(url, v0_times=WRITER_TZ, batch_size=3)
    await checks.assert_fully_v0(url)
    monkeypatch.undo()
    await migrations.upgrade(url, v0_times=WRITER_TZ, batch_size=3)
    await checks.assert_upgraded(url)


async def test_server_failure_mid_copy_then_rerun(
    v0_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_after(monkeypatch, 7)
    with pytest.raises(Crash):
        await migrations.upgrade(v0_server, v0_times=WRITER_TZ, batch_size=3)
    await checks.assert_fully_v0(v0_server)
    monkeypatch.undo()
    await migrations.upgrade(v0_server, v0_times=WRITER_TZ, batch_size=3)
    await checks.assert_upgraded(v0_server)


async def test_server_failure_after_the_swap_then_rerun(
    v0_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(conn: Any) -> int:
        raise Crash("injected failure after the swap")

    monkeypatch.setattr(_convert, "_retime_sessions", fail)
    with pytest.raises(Crash):
        await migrations.upgrade(v0_server, v0_times=WRITER_TZ)
    found = await migrations.status(v0_server)
    assert found.layout is not None
    if v0_server.startswith("postgresql"):
        await checks.assert_fully_v0(v0_server)  # one transaction: all undone
    else:
        # MySQL DDL is not transactional: the swap happened, the upgrade is unfinished and
        # says so; the service refuses the database until it is finished.
        assert found.layout.interrupted and found.blocks_use
        service = DatabaseSessionService(v0_server)
        try:
            with pytest.raises(ValueError, match="interrupted"):
                await service.list_sessions(app_name="travel_agent")
        finally:
            await service.close()
    monkeypatch.undo()
    report = await migrations.upgrade(v0_server, v0_times=WRITER_TZ)
    assert report.action in ("converted", "finished")
    await checks.assert_upgraded(v0_server)


async def test_service_refuses_v0_with_the_command(tmp_path: Path) -> None:
    url = sqlite_copy(tmp_path)
    service = DatabaseSessionService(url)
    try:
        with pytest.raises(ValueError, match="V0") as caught:
            await service.list_sessions(app_name="travel_agent")
        assert f"openadk db upgrade --db {url}" in str(caught.value)
        assert "auto_upgrade=True" in str(caught.value)
    finally:
        await service.close()
    await checks.assert_fully_v0(url)


async def test_service_refusal_redacts_the_password() -> None:
    async with throwaway_database("postgres") as url:
        async with engine_for(url) as engine:
            await load_v0(engine, V0_FILE, WRITER_TZ)
        await refused_without_password(url)


async def refused_without_password(v0_server: str) -> None:
    # PostgreSQL here trusts local connections, so any password gets in.
    scheme, _, rest = v0_server.partition("://")
    user, _, host = rest.partition("@")
    secret_url = f"{scheme}://{user}:s3cret@{host}"
    service = DatabaseSessionService(secret_url)
    try:
        with pytest.raises(ValueError, match="openadk db upgrade --db") as caught:
            await service.get_session(app_name="travel_agent", user_id="alice", session_id="s-trip")
        assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
        assert "fill in the password" in str(caught.value)
    finally:
        await service.close()


async def test_service_auto_upgrade(tmp_path: Path) -> None:
    url = sqlite_copy(tmp_path)
    service = DatabaseSessionService(url, auto_upgrade=True)
    try:
        session = await service.get_session(
            app_name="travel_agent", user_id="alice", session_id="s-trip"
        )
        assert session is not None and len(session.events) == 15
    finally:
        await service.close()
    assert (await migrations.status(url)).current == migrations.HEAD
    assert [p for p in os.listdir(tmp_path) if p.startswith("sessions.db.v0-backup-")]
    await checks.assert_google_adk_reads_ids(url)


async def test_service_still_creates_fresh_databases(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    service = DatabaseSessionService(url)
    try:
        await service.create_session(app_name="a", user_id="u")
    finally:
        await service.close()
    assert (await migrations.status(url)).pending == ()


async def test_unknown_recorded_revision_is_refused(v0_sqlite: str) -> None:
    await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    async with engine_for(v0_sqlite) as engine, engine.begin() as conn:
        await conn.execute(text("UPDATE openadk_schema_version SET version_num = '0042_future'"))
    found = await migrations.status(v0_sqlite)
    assert found.problem and "newer openadk" in found.problem
    with pytest.raises(migrations.UpgradeError, match="newer openadk"):
        await migrations.upgrade(v0_sqlite)
    service = DatabaseSessionService(v0_sqlite)
    try:
        with pytest.raises(ValueError, match="newer openadk"):
            await service.list_sessions(app_name="travel_agent")
    finally:
        await service.close()


async def test_stamp(v0_sqlite: str) -> None:
    with pytest.raises(migrations.UpgradeError, match="still need converting"):
        await migrations.stamp(v0_sqlite, "head")
    await migrations.upgrade(v0_sqlite, v0_times=WRITER_TZ)
    cleared = await migrations.stamp(v0_sqlite, "base")
    assert (cleared.current, cleared.recorded) == (migrations.HEAD, False)
    assert (await migrations.stamp(v0_sqlite, "head")).recorded


async def test_concurrent_auto_upgrades_convert_once(v0_server: str) -> None:
    services = [DatabaseSessionService(v0_server, auto_upgrade=True) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.list_sessions(app_name="travel_agent") for s in services)
        )
    finally:
        for service in services:
            await service.close()
    assert all(len(r.sessions) == 3 for r in results)
    assert await checks.count(v0_server, "events") == EXPECTED["counts"]["events"]


async def test_an_empty_database_is_not_stamped(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(migrations.UpgradeError, match="no session tables"):
        await migrations.stamp(f"sqlite+aiosqlite:///{path}", "head")
