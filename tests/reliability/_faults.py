"""Faults: PostgreSQL connections terminated under load; a read-only and a full SQLite file.

``pg_terminate``: writer tasks append in a loop (default mode, each to its own session, plus
readers) while an admin connection runs ``pg_terminate_backend`` on the service's connections
(found by their ``application_name``) at random intervals. Every call must either succeed or
raise `StorageError` (never a raw driver exception); a writer whose append failed retries the
same event (a retry of an append that did commit is a no-op, and then its stale handle is
reloaded). Once the faults stop, every call must succeed at the first try (the service reruns
an operation whose connection turns out dead on a new one), and every acknowledged event must be
stored exactly once.

``sqlite_read_only``: a database file opened with ``mode=ro``, or on a read-only mount (chmod
0444 does not stop root): the file is never changed; writes raise a `StorageError` saying the
database is read-only; reads work, except on the read-only mount without ``immutable=1``, where
SQLite cannot open a WAL-mode file at all and the `StorageError` says so and how to read it.

``sqlite_full_disk``: a database on a 512 KiB tmpfs (or limited with ``PRAGMA max_page_count``
where mounting is not allowed) is appended to until the disk is full: the failing append raises
a `StorageError` saying so, every acknowledged event is stored, the failed one is not, the file
passes ``PRAGMA integrity_check``, and appends work again once space is freed.

The PostgreSQL server itself is never restarted: other tests share it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openadk.errors import StaleSessionError, StorageError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig, Session
from tests.contract.backends import POSTGRES
from tests.reliability._common import check_sessions, integrity_ok, read_app

USER = "fault-user"
APPEND_ATTEMPTS = 100
"""How often a writer tries one append (StorageError, then retry) before reporting a problem."""


def _event(event_id: str, i: int, blob: int = 0) -> Event:
    delta: dict[str, Any] = {"last": event_id, "n": i}
    if blob:
        delta["blob"] = "x" * blob
    return Event(
        id=event_id, author="writer", invocation_id="inv", actions=EventActions(state_delta=delta)
    )


def _name(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__name__}"


# PostgreSQL: pg_terminate_backend under load -----------------------------------------------------


async def _pg_terminate(
    driver: str, writers: int, seconds: float, interval: tuple[float, float], seed: int
) -> dict[str, Any]:
    import asyncpg

    rng = random.Random(seed)
    tag = f"openadk-fault-{uuid.uuid4().hex[:8]}"
    if driver == "asyncpg":
        connect_args: dict[str, Any] = {"server_settings": {"application_name": tag}}
    else:
        connect_args = {"application_name": tag}
    service = DatabaseSessionService(
        f"postgresql+{driver}://{POSTGRES}", connect_args=connect_args, pool_size=writers + 1
    )
    admin = await asyncpg.connect(f"postgresql://{POSTGRES}")
    app = f"fault-{uuid.uuid4().hex[:12]}"
    counts = {
        "attempted": 0,
        "acknowledged": 0,
        "storage_errors": 0,
        "retried_duplicates": 0,
        "stale_reloads": 0,
        "reads": 0,
        "read_storage_errors": 0,
        "terminated_connections": 0,
        "terminate_calls": 0,
        "post_fault_calls": 0,
    }
    acks: dict[str, str] = {}
    raw: list[str] = []
    messages: set[str] = set()
    stop = asyncio.Event()

    async def writer(index: int) -> None:
        session_id = f"w{index}"
        for _ in range(100):  # the killer may already be at work
            try:
                handle = await service.create_session(
                    app_name=app, user_id=USER, session_id=session_id
                )
                break
            except StorageError:
                counts["storage_errors"] += 1
                await asyncio.sleep(0.01)
        else:
            raw.append(f"{session_id}: create_session never succeeded")
            return
        i = 0
        while not stop.is_set():
            event = _event(f"{session_id}-{i:05d}", i)
            counts["attempted"] += 1
            last_error = "none"
            for _ in range(APPEND_ATTEMPTS):
                try:
                    await service.append_event(handle, event)
                except StorageError as error:
                    last_error = str(error)
                    counts["storage_errors"] += 1
                    messages.add(str(error).split(": ", 1)[0])
                    await asyncio.sleep(0.01)
                    continue
                except StaleSessionError:
                    # The append that "failed" had committed: reload and carry on.
                    counts["stale_reloads"] += 1
                    for _ in range(APPEND_ATTEMPTS):
                        try:
                            got = await service.get_session(
                                app_name=app,
                                user_id=USER,
                                session_id=session_id,
                                config=GetSessionConfig(num_recent_events=0),
                            )
                            break
                        except StorageError:
                            counts["storage_errors"] += 1
                            await asyncio.sleep(0.01)
                    else:
                        raw.append(f"{session_id}: reloading after a stale append never succeeded")
                        return
                    if got is None:
                        raw.append(f"{session_id}: the session is gone after a stale append")
                        return
                    handle = got
                    continue
                except Exception as error:
                    raw.append(f"append: {_name(error)}: {error}")
                    return
                if not handle.events or handle.events[-1] is not event:
                    counts["retried_duplicates"] += 1  # stored by an earlier, failed attempt
                acks[event.id] = session_id
                counts["acknowledged"] += 1
                break
            else:
                # Giving up drops the event: that is a problem to report, not a quiet end.
                raw.append(
                    f"{session_id}: append of {event.id} gave up after {APPEND_ATTEMPTS} "
                    f"attempts; last error: {last_error}"
                )
                return
            i += 1

    async def reader() -> None:
        while not stop.is_set():
            try:
                await service.list_sessions(app_name=app, user_id=USER)
                await service.get_session(app_name=app, user_id=USER, session_id="w0")
                counts["reads"] += 2
            except StorageError as error:
                counts["read_storage_errors"] += 1
                messages.add(str(error).split(": ", 1)[0])
            except Exception as error:
                raw.append(f"read: {_name(error)}: {error}")
                return
            await asyncio.sleep(0.005)

    async def killer() -> None:
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(*interval))
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                tag,
            )
            counts["terminate_calls"] += 1
            counts["terminated_connections"] += sum(1 for r in rows if r[0])

    try:
        tasks = [asyncio.create_task(writer(i)) for i in range(writers)]
        tasks.append(asyncio.create_task(reader()))
        kill_task = asyncio.create_task(killer())
        await asyncio.sleep(seconds)
        stop.set()
        await kill_task
        await asyncio.gather(*tasks)
        # Faults over: one more kill of whatever is idle in the pool, then every call must
        # succeed at once (pre-ping replaces dead pooled connections).
        await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            tag,
        )
        post_failures = []
        for index in range(writers):
            session_id = f"w{index}"
            for j in range(3):
                try:
                    got = await service.get_session(
                        app_name=app, user_id=USER, session_id=session_id
                    )
                    assert got is not None
                    event = _event(f"{session_id}-post-{j}", j)
                    await service.append_event(got, event)
                    acks[event.id] = session_id
                    counts["post_fault_calls"] += 2
                except Exception as error:
                    post_failures.append(f"after the faults: {_name(error)}: {error}")
        stored = await read_app(service.engine, app)  # type: ignore[arg-type]
    finally:
        await admin.close()
        await service.close()
    problems = raw + post_failures + check_sessions(stored)
    where = {item.id: item for item in stored.all_events()}
    lost = [i for i in acks if i not in where]
    problems += [f"acknowledged event {i} is not stored" for i in lost]
    counts.update(
        driver=driver,
        stored=len(where),
        lost=len(lost),
        error_messages=sorted(messages),
        problems=problems,
    )
    return counts


def pg_terminate(
    driver: str = "asyncpg",
    *,
    writers: int = 4,
    seconds: float = 3.0,
    interval: tuple[float, float] = (0.05, 0.25),
    seed: int | None = None,
) -> dict[str, Any]:
    """Terminates the service's PostgreSQL connections at random during a load."""
    seed = random.randrange(2**32) if seed is None else seed
    figures = asyncio.run(_pg_terminate(driver, writers, seconds, interval, seed))
    figures["seed"] = seed
    return figures


# SQLite: read-only file, full disk --------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mounts a tmpfs of ``size`` at ``path``; yields False (and mounts nothing) if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _seed_db(url: str, app: str, events: int) -> None:
    service = DatabaseSessionService(url)
    try:
        session = await service.create_session(
            app_name=app, user_id=USER, session_id="s", state={"k": 1}
        )
        for i in range(events):
            await service.append_event(session, _event(f"e{i}", i))
    finally:
        await service.close()


async def _try_read_only(url: str, app: str) -> dict[str, Any]:
    service = DatabaseSessionService(url)
    outcome: dict[str, Any] = {}
    try:
        try:
            got = await service.get_session(app_name=app, user_id=USER, session_id="s")
            outcome["read"] = f"ok ({len(got.events) if got else None} events)"
        except Exception as error:
            outcome["read"] = f"{_name(error)}: {error}"
            got = None
        if got is None:
            got = Session(id="s", app_name=app, user_id=USER)
        try:
            await service.append_event(got, _event("refused", 99))
            outcome["append"] = "ok"
        except Exception as error:
            outcome["append"] = f"{_name(error)}: {error}"
        try:
            await service.create_session(app_name=app, user_id=USER, session_id="new")
            outcome["create"] = "ok"
        except Exception as error:
            outcome["create"] = f"{_name(error)}: {error}"
    finally:
        await service.close()
    return outcome


def sqlite_read_only() -> dict[str, Any]:
    """A read-only SQLite database: reads work, writes fail clearly, the file is unchanged."""
    results: dict[str, Any] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="openadk-readonly-") as tmp:
        workdir = Path(tmp)
        app = "readonly"
        source = workdir / "source.db"
        asyncio.run(_seed_db(f"sqlite+aiosqlite:///{source}", app, 3))
        scenarios: dict[str, str] = {}
        # 1. chmod 0444 (and a 0555 directory): stops ordinary users, not root.
        chmod_dir = workdir / "chmod"
        chmod_dir.mkdir()
        shutil.copy(source, chmod_dir / "db")
        os.chmod(chmod_dir / "db", 0o444)
        os.chmod(chmod_dir, 0o555)
        scenarios["chmod 0444"] = f"sqlite+aiosqlite:///{chmod_dir}/db"
        # 2. mode=ro in a URI filename.
        shutil.copy(source, workdir / "uri.db")
        scenarios["uri mode=ro"] = f"sqlite+aiosqlite:///file:{workdir}/uri.db?mode=ro&uri=true"
        with _tmpfs(workdir / "mount", "1m") as mounted:
            # 3. A read-only file system (a tmpfs remounted read-only).
            if mounted:
                shutil.copy(source, workdir / "mount" / "db")
                remount = ["mount", "-o", "remount,ro", str(workdir / "mount")]
                subprocess.run(remount, check=True, capture_output=True)
                scenarios["read-only mount"] = f"sqlite+aiosqlite:///{workdir}/mount/db"
                scenarios["read-only mount, immutable=1"] = (
                    f"sqlite+aiosqlite:///file:{workdir}/mount/db?immutable=1&uri=true"
                )
            for name, url in scenarios.items():
                path = Path(url.split("///", 1)[1].removeprefix("file:").split("?")[0])
                before = _digest(path)
                outcome = asyncio.run(_try_read_only(url, app))
                outcome["unchanged"] = _digest(path) == before
                results[name] = outcome
                root_bypass = name == "chmod 0444" and os.geteuid() == 0
                if root_bypass:
                    outcome["note"] = "root ignores file permissions: the writes went through"
                    continue
                if not outcome["unchanged"]:
                    problems.append(f"{name}: the file changed")
                if name == "read-only mount":
                    # SQLite cannot open a WAL-mode file there at all: the error must say so,
                    # and how to read it (the next scenario).
                    for call in ("read", "append", "create"):
                        said = outcome[call]
                        if not (
                            said.startswith("openadk.errors.StorageError")
                            and "read-only" in said
                            and "immutable=1" in said
                        ):
                            problems.append(f"{name}: {call} gave {said}")
                    continue
                if not outcome["read"].startswith("ok (3"):
                    problems.append(f"{name}: read failed: {outcome['read']}")
                for write in ("append", "create"):
                    said = outcome[write]
                    if not (said.startswith("openadk.errors.StorageError") and "readonly" in said):
                        problems.append(f"{name}: {write} gave {said}")
        os.chmod(chmod_dir, 0o755)
    return {"scenarios": results, "problems": problems}


async def _full_disk(directory: Path, mounted: bool, blob: int) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{directory}/full.db"
    service = DatabaseSessionService(url)
    if not mounted:
        from sqlalchemy import event as sa_event

        @sa_event.listens_for(service.engine.sync_engine, "connect")  # type: ignore[union-attr]
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA max_page_count=128")

    app = "full"
    filler = directory / "filler"
    filler.write_bytes(b"\0" * (128 * 1024))
    acks: list[str] = []
    failure = None
    try:
        handle = await service.create_session(app_name=app, user_id=USER, session_id="s")
        for i in range(2000):
            event = _event(f"e{i:05d}", i, blob)
            try:
                await service.append_event(handle, event)
            except Exception as error:
                failure = (event.id, error)
                break
            acks.append(event.id)
        after: list[str] = []
        if failure is not None:
            filler.unlink()
            if not mounted:
                async with service.engine.connect() as conn:  # type: ignore[union-attr]
                    await conn.exec_driver_sql("PRAGMA max_page_count=100000")
                await service.engine.dispose()  # type: ignore[union-attr]
            # Space is back: a reloaded handle appends again.
            got = await service.get_session(
                app_name=app,
                user_id=USER,
                session_id="s",
                config=GetSessionConfig(num_recent_events=0),
            )
            assert got is not None
            for j in range(3):
                retry = _event(f"after-{j}", j)
                await service.append_event(got, retry)
                after.append(retry.id)
        stored = await read_app(service.engine, app)  # type: ignore[arg-type]
        intact = await integrity_ok(service.engine)  # type: ignore[arg-type]
    finally:
        await service.close()
    problems = check_sessions(stored)
    if not intact:
        problems.append("PRAGMA integrity_check is not ok")
    where = {item.id for item in stored.all_events()}
    problems += [f"acknowledged event {i} is not stored" for i in acks + after if i not in where]
    message = None
    if failure is None:
        problems.append("the disk never filled up")
    else:
        failed_id, error = failure
        message = f"{_name(error)}: {error}"
        if failed_id in where:
            problems.append(f"the failed append {failed_id} is stored")
        if not (isinstance(error, StorageError) and "full" in str(error)):
            problems.append(f"the full disk gave {message}")
    return {
        "method": "512 KiB tmpfs" if mounted else "PRAGMA max_page_count=128",
        "acknowledged_before_full": len(acks),
        "stored": len(where),
        "appends_after_space_freed": len(after),
        "error": message,
        "problems": problems,
    }


def sqlite_full_disk(blob: int = 8_000) -> dict[str, Any]:
    """A SQLite database filled until the disk is full, then given space again."""
    with tempfile.TemporaryDirectory(prefix="openadk-full-") as tmp:
        directory = Path(tmp) / "disk"
        with _tmpfs(directory, "512k") as mounted:
            return asyncio.run(_full_disk(directory, mounted, blob))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--driver", action="append", choices=["asyncpg", "psycopg"], default=None)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--min-interval", type=float, default=0.05)
    parser.add_argument("--max-interval", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    failed = False
    started = time.monotonic()
    for driver in options.driver or ["asyncpg", "psycopg"]:
        figures = pg_terminate(
            driver,
            writers=options.writers,
            seconds=options.seconds,
            interval=(options.min_interval, options.max_interval),
            seed=options.seed,
        )
        problems = figures.pop("problems")
        print(json.dumps({"test": "pg_terminate", **figures}), flush=True)
        for problem in problems[:20]:
            print("  PROBLEM:", problem, flush=True)
        failed |= bool(problems)
    for name, check in (
        ("sqlite_read_only", sqlite_read_only),
        ("sqlite_full_disk", sqlite_full_disk),
    ):
        figures = check()
        problems = figures.pop("problems")
        print(json.dumps({"test": name, **figures}), flush=True)
        for problem in problems[:20]:
            print("  PROBLEM:", problem, flush=True)
        failed |= bool(problems)
    print(f"{time.monotonic() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
