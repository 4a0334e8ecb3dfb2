"""``openadk db ...`` end to end: exit codes, messages, a killed upgrade, permissions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.cli._main import main
from tests.migrations import checks
from tests.migrations.conftest import (
    SERVERS,
    V0_FILE,
    WRITER_TZ,
    engine_for,
    sqlite_copy,
    throwaway_database,
)
from tests.migrations.v0_schema import load_v0

pytestmark = pytest.mark.usefixtures("quiet_adk_warnings")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_current_upgrade_stamp_downgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_copy(tmp_path)
    code, out, _ = run(capsys, "db", "check", "--db", url)
    assert code == 1
    assert "pending: 0001_adk_v1: convert the google-adk V0 (pickle) events" in out
    assert f"run: openadk db upgrade --db {url}" in out
    code, out, _ = run(capsys, "db", "current", "--db", url)
    assert code == 0 and "no revision: google-adk's V0 (pickle) schema" in out
    code, _, err = run(capsys, "db", "stamp", "head", "--db", url)
    assert code == 2 and "still need converting" in err
    code, out, _ = run(capsys, "db", "upgrade", "--db", url, "--v0-times", WRITER_TZ)
    assert code == 0
    assert "Converted 19 of 19 V0 events to V1 in place; at revision 0005_search_pending." in out
    assert "Backup of the V0 database: " in out
    code, out, _ = run(capsys, "db", "check", "--db", url)
    assert code == 0 and "up to date" in out
    code, out, _ = run(capsys, "db", "upgrade", "--db", url)
    assert code == 0 and "nothing to do" in out
    code, _, err = run(capsys, "db", "downgrade", "--db", url)
    assert code == 2 and "refusing to downgrade" in err
    code, _, err = run(capsys, "db", "upgrade", "base", "--db", url)
    assert code == 2 and "Refusing to downgrade" in err
    code, out, _ = run(capsys, "db", "stamp", "base", "--db", url)
    assert code == 0 and "not recorded" in out
    code, out, _ = run(capsys, "db", "check", "--db", url)
    assert code == 0 and "to record the revision" in out
    code, out, _ = run(capsys, "db", "upgrade", "--db", url)
    assert code == 0 and "Adopted the existing google-adk V1 schema" in out


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_copy(tmp_path)
    code, _, err = run(capsys, "db", "upgrade", "--db", url, "--v0-times", "Mars/Olympus")
    assert code == 2 and "Unknown V0 time rule" in err
    code, _, err = run(capsys, "db", "upgrade", "0099", "--db", url)
    assert code == 2 and "Unknown revision" in err
    code, _, err = run(
        capsys, "db", "check", "--db", "postgresql+asyncpg://nobody:pw@127.0.0.1:1/x"
    )
    assert code == 2 and "cannot reach" in err and "pw" not in err.replace("pwd", "")
    code, _, err = run(capsys, "db", "upgrade", "--db", "nosuchdb://x")
    assert code == 2 and "error:" in err


def test_database_url_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENADK_DB", raising=False)
    monkeypatch.setenv("DATABASE_URL", sqlite_copy(tmp_path))
    code, out, _ = run(capsys, "db", "check")
    assert code == 1 and "V0" in out


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openadk", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.asyncio
async def test_default_rule_reads_times_in_the_local_zone(tmp_path: Path) -> None:
    url = sqlite_copy(tmp_path)
    # google-adk 1.x wrote local times; upgraded on a machine in the writer's zone, they are
    # exactly what google-adk's own migration reads there.
    done = cli("db", "upgrade", "--db", url, env={"TZ": WRITER_TZ})
    assert done.returncode == 0, done.stderr
    await checks.assert_upgraded(url)


_SLOW_UPGRADE = """
import sys, time
from openadk.sessions.migrations import _convert
from openadk.cli._main import main

stage, url = sys.argv[1], sys.argv[2]
if stage == "copy":
    real, seen = _convert.convert_row, [0]
    def slow(row, **kwargs):
        seen[0] += 1
        if seen[0] == 6:
            print("READY", flush=True)
            time.sleep(60)
        return real(row, **kwargs)
    _convert.convert_row = slow
else:
    def slow(conn):
        print("READY", flush=True)
        time.sleep(60)
    _convert._retime_sessions = slow
main(["db", "upgrade", "--db", url, "--v0-times", "Asia/Kolkata", "--batch-size", "2"])
"""


def kill_mid_upgrade(url: str, stage: str) -> None:
    """Starts ``openadk db upgrade`` and SIGKILLs it at ``stage`` (``copy`` or ``swapped``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_UPGRADE, stage, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "READY", process.stderr.read() if process.stderr else ""
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.asyncio
async def test_killed_sqlite_upgrade_is_rerun(tmp_path: Path) -> None:
    url = sqlite_copy(tmp_path)
    kill_mid_upgrade(url, "copy")
    await checks.assert_fully_v0(url)
    done = cli("db", "upgrade", "--db", url, "--v0-times", WRITER_TZ)
    assert done.returncode == 0, done.stderr
    await checks.assert_upgraded(url)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "stage"),
    [("postgres", "copy"), ("mariadb", "copy"), ("mariadb", "swapped")],
)
async def test_killed_server_upgrade_is_rerun(kind: str, stage: str) -> None:
    async with throwaway_database(kind) as url:
        async with engine_for(url.replace("mysql+aiomysql", "mysql+asyncmy")) as engine:
            await load_v0(engine, V0_FILE, WRITER_TZ)
        kill_mid_upgrade(url, stage)
        if stage == "copy":
            await checks.assert_fully_v0(url)
        else:
            done = cli("db", "check", "--db", url)
            assert done.returncode == 1 and "interrupted" in done.stdout
        done = cli("db", "upgrade", "--db", url, "--v0-times", WRITER_TZ)
        assert done.returncode == 0, done.stderr
        await checks.assert_upgraded(url)


@pytest.mark.asyncio
async def test_no_permission_is_a_clear_error() -> None:
    role = f"v0_reader_{uuid.uuid4().hex[:8]}"
    scheme, server, _ = SERVERS["postgres"]
    async with throwaway_database("postgres") as url:
        async with engine_for(url) as engine:
            await load_v0(engine, V0_FILE, WRITER_TZ)
        admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f"CREATE ROLE {role} LOGIN"))
                await conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
            host = server.partition("@")[2]
            done = cli("db", "upgrade", "--db", f"{scheme}://{role}@{host}/{url.rsplit('/', 1)[1]}")
            assert done.returncode == 2
            assert "permission denied" in done.stderr and done.stderr.count("\n") == 1
            await checks.assert_fully_v0(url)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f"DROP OWNED BY {role}"))
            await admin.dispose()
            admin = create_async_engine(
                f"{scheme}://{server}/postgres", isolation_level="AUTOCOMMIT"
            )
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
    await admin.dispose()
