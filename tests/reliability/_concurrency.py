"""Concurrency across processes: several writer processes appending to one session and to many.

Each worker process appends events to a session shared by all workers (with probability
``shared``) or to one of several other sessions, records what it was acknowledged (event id,
returned timestamp, the wall-clock span of the call) and every `StaleSessionError` it got, then
exits. The parent reads the tables directly and checks:

* every acknowledged event is stored exactly once, in the session it was sent to, at the
  timestamp its append returned; nothing is stored that no worker sent;
* stored order (timestamp, id) is commit order: timestamps strictly increase, and an event
  acknowledged before another was sent is stored before it;
* each session's state is the fold of its stored deltas; the app and user rows hold each
  worker's last written value;
* `StaleSessionError` only where the handle really was stale: another writer's event was stored
  after the handle was read (with ``on_stale="merge"``: none at all).

Run as ``python -m tests.reliability._concurrency run --backend postgres ...`` (see
``scripts/reliability_concurrency.py``) or through ``tests/reliability/test_processes.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from openadk.errors import StaleSessionError
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig, Session
from tests.reliability._common import (
    check_sessions,
    read_app,
    spawn,
    ts_micros,
    url_for,
    wait_ready,
)

MODULE = "tests.reliability._concurrency"
USER = "writer"


# The worker ------------------------------------------------------------------------------------


async def _phase(args: dict[str, Any], phase: dict[str, Any]) -> None:
    index = args["index"]
    rng = random.Random(args["seed"] + len(phase["mode"]))
    service = DatabaseSessionService(args["url"], on_stale=phase["mode"])
    app, session_ids = phase["app"], args["sessions"]
    handles: dict[str, Session] = {}

    async def load(session_id: str) -> Session:
        got = await service.get_session(
            app_name=app,
            user_id=USER,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        assert got is not None
        handles[session_id] = got
        return got

    for session_id in session_ids:
        await load(session_id)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's "go": every worker starts at once

    acks: list[dict[str, Any]] = []
    stales: list[dict[str, Any]] = []
    errors: list[str] = []
    for i in range(args["appends"]):
        target = session_ids[0] if rng.random() < args["shared"] else rng.choice(session_ids[1:])
        event_id = f"w{index}-{i:05d}"
        delta: dict[str, Any] = {"last": event_id, f"w{index}": i, "temp:scratch": i}
        if i % 3 == 0:
            delta[f"app:w{index}"] = i
            delta[f"user:w{index}"] = i
        event = Event(
            id=event_id,
            author=f"w{index}",
            invocation_id=f"inv-{index}",
            actions=EventActions(state_delta=delta),
        )
        start = time.monotonic_ns()
        for attempt in range(1000):
            handle = handles[target]
            try:
                await service.append_event(handle, event)
            except StaleSessionError:
                was = handle.last_update_time
                fresh = await load(target)
                stales.append(
                    {
                        "id": event_id,
                        "session": target,
                        "handle": was,
                        "reload": fresh.last_update_time,
                    }
                )
                continue
            except Exception as error:  # recorded; the parent fails the run
                name = f"{type(error).__module__}.{type(error).__name__}"
                errors.append(f"{event_id}: {name}: {error}")
                break
            acks.append(
                {
                    "id": event_id,
                    "session": target,
                    "ts": event.timestamp,
                    "start": start,
                    "end": time.monotonic_ns(),
                    "attempts": attempt + 1,
                }
            )
            break
    await service.close()
    result = json.dumps({"acks": acks, "stales": stales, "errors": errors})
    await asyncio.to_thread(Path(phase["out"]).write_text, result)


async def _worker(args: dict[str, Any]) -> None:
    """One phase per mode, in one process (so a run pays the interpreter start-up once)."""
    for phase in args["phases"]:
        await _phase(args, phase)
        print("done", flush=True)


# The parent ------------------------------------------------------------------------------------


async def _prepare(url: str, app: str, session_ids: list[str]) -> None:
    service = DatabaseSessionService(url)
    try:
        for session_id in session_ids:
            await service.create_session(app_name=app, user_id=USER, session_id=session_id)
    finally:
        await service.close()


async def _verify(url: str, app: str, results: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    service = DatabaseSessionService(url)
    try:
        stored = await read_app(service.engine, app)  # type: ignore[arg-type]
    finally:
        await service.close()
    problems = check_sessions(stored)
    acks = {a["id"]: a for r in results for a in r["acks"]}
    stored_by_id: dict[str, list[Any]] = {}
    for item in stored.all_events():
        stored_by_id.setdefault(item.id, []).append(item)
    lost = [i for i in acks if i not in stored_by_id]
    duplicated = [i for i, found in stored_by_id.items() if len(found) > 1]
    phantoms = [i for i in stored_by_id if i not in acks]
    problems += [f"acknowledged event {i} is not stored" for i in lost]
    problems += [f"event {i} is stored {len(stored_by_id[i])} times" for i in duplicated]
    problems += [f"event {i} is stored but was never acknowledged" for i in phantoms]
    for event_id, ack in acks.items():
        for item in stored_by_id.get(event_id, []):
            if item.session_id != ack["session"]:
                problems.append(
                    f"event {event_id} stored in {item.session_id}, sent to {ack['session']}"
                )
            if item.event.timestamp != ack["ts"]:
                problems.append(
                    f"event {event_id} stored at {item.event.timestamp!r}, "
                    f"acknowledged at {ack['ts']!r}"
                )
    # Commit order: walking stored order, no event may have been acknowledged before an
    # earlier-stored one was even sent.
    for (_, session_id), listed in stored.events.items():
        spans = [acks[item.id] for item in listed if item.id in acks]
        later_end = None
        for span in reversed(spans):
            if later_end is not None and later_end < span["start"]:
                problems.append(
                    f"{session_id}: event {span['id']} is stored before an event acknowledged "
                    f"before it was sent"
                )
            later_end = span["end"] if later_end is None else min(later_end, span["end"])
    # App and user rows: each worker's key holds the last value that worker stored.
    last: dict[str, Any] = {}
    for listed in stored.events.values():
        for item in listed:
            for key, value in item.event.actions.state_delta.items():
                if key.startswith(("app:", "user:")) and (key not in last or value > last[key]):
                    last[key] = value
    for key, value in last.items():
        scope, name = key.split(":", 1)
        held = stored.app_state if scope == "app" else stored.user_states.get(USER, {})
        if held.get(name) != value:
            problems.append(f"{key}: stored {held.get(name)!r}, last write {value!r}")
    # StaleSessionError only where another writer's event was stored after the handle was read.
    stales = [s for r in results for s in r["stales"]]
    if mode == "merge" and stales:
        problems.append(f"{len(stales)} StaleSessionError in merge mode")
    for stale in stales:
        listed = stored.events.get((USER, stale["session"]), [])
        writer = stale["id"].split("-")[0]
        newer = [
            item
            for item in listed
            if ts_micros(stale["handle"]) < item.column_us <= ts_micros(stale["reload"])
            and not item.id.startswith(writer + "-")
        ]
        if not newer:
            problems.append(f"StaleSessionError for {stale['id']} but no other write was stored")
    errors = [e for r in results for e in r["errors"]]
    problems += errors
    return {
        "sessions": len(stored.sessions),
        "acknowledged": len(acks),
        "stored": sum(len(v) for v in stored_by_id.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "phantoms": len(phantoms),
        "stale_errors": len(stales),
        "other_errors": len(errors),
        "problems": problems,
    }


def run(
    backend: str,
    modes: tuple[str, ...] = ("error", "merge"),
    *,
    workers: int = 4,
    appends: int = 50,
    sessions: int = 5,
    shared: float = 0.5,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """``workers`` processes x ``appends`` appends, once per mode; figures and problems per mode."""
    seed = random.randrange(2**32) if seed is None else seed
    with tempfile.TemporaryDirectory(prefix="openadk-concurrency-") as tmp:
        workdir = Path(tmp)
        url = url_for(backend, workdir)
        session_ids = ["shared"] + [f"s{i}" for i in range(sessions)]
        phases = [
            {"mode": mode, "app": f"conc-{uuid.uuid4().hex[:12]}", "out": str(workdir / mode)}
            for mode in modes
        ]
        for phase in phases:
            Path(phase["out"]).mkdir()
            asyncio.run(_prepare(url, phase["app"], session_ids))
        processes = []
        for index in range(workers):
            args = {
                "index": index,
                "url": url,
                "phases": [{**p, "out": f"{p['out']}/{index}.json"} for p in phases],
                "sessions": session_ids,
                "appends": appends,
                "shared": shared,
                "seed": seed + index,
            }
            processes.append(spawn(MODULE, args))
        all_figures = []
        try:
            for phase in phases:
                for process in processes:
                    wait_ready(process)
                go = time.monotonic()
                for process in processes:
                    assert process.stdin is not None
                    process.stdin.write("go\n")
                    process.stdin.flush()
                for process in processes:
                    assert process.stdout is not None
                    line = process.stdout.readline()
                    if line.strip() != "done":
                        _, err = process.communicate(timeout=60)
                        raise RuntimeError(f"worker failed ({line!r}):\n{err}")
                elapsed = time.monotonic() - go
                results = [
                    json.loads(Path(f"{phase['out']}/{i}.json").read_text()) for i in range(workers)
                ]
                figures = asyncio.run(_verify(url, phase["app"], results, phase["mode"]))
                figures.update(
                    backend=backend,
                    mode=phase["mode"],
                    workers=workers,
                    attempted=workers * appends,
                    seed=seed,
                    seconds=round(elapsed, 2),
                    appends_per_second=round(figures["acknowledged"] / elapsed),
                )
                all_figures.append(figures)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=60)
    return all_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("args")
    go = sub.add_parser("run")
    go.add_argument(
        "--backend", action="append", choices=["sqlite", "postgres", "mariadb"], default=None
    )
    go.add_argument("--mode", action="append", choices=["error", "merge"], default=None)
    go.add_argument("--workers", type=int, default=8)
    go.add_argument("--appends", type=int, default=500)
    go.add_argument("--sessions", type=int, default=10)
    go.add_argument("--shared", type=float, default=0.5)
    go.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    if options.command == "worker":
        asyncio.run(_worker(json.loads(options.args)))
        return 0
    failed = False
    for backend in options.backend or ["sqlite", "postgres", "mariadb"]:
        for figures in run(
            backend,
            tuple(options.mode or ["error", "merge"]),
            workers=options.workers,
            appends=options.appends,
            sessions=options.sessions,
            shared=options.shared,
            seed=options.seed,
        ):
            problems = figures.pop("problems")
            print(json.dumps(figures), flush=True)
            for problem in problems[:20]:
                print("  PROBLEM:", problem, flush=True)
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
