"""Crash safety: a writer process killed with SIGKILL at random points, round after round.

Each round starts a writer process that appends events in a loop to a few sessions (with
session, app and user state, and every other event carrying a payload of some kilobytes, so
that kills land inside transactions too). After each append returns, the writer writes the event
id to an acknowledgement file and fsyncs it. The parent kills the writer after a random delay,
then reads the tables directly and checks that:

* every acknowledged event is stored (an event stored but not acknowledged is allowed: the kill
  came between the commit and the acknowledgement);
* every stored event row parses, its timestamp column matches its JSON, timestamps strictly
  increase, and nothing is stored that the writer did not send;
* each session's update time is its last event's timestamp, its state the fold of its deltas,
  and the app and user rows hold the last stored value (one writer, so stored order is commit
  order across sessions too);
* on SQLite, ``PRAGMA integrity_check`` is ``ok``.

The next round's writer resumes on the same sessions, so recovery is exercised as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, GetSessionConfig, Session
from tests.reliability._common import (
    check_sessions,
    integrity_ok,
    read_app,
    read_jsonl,
    spawn,
    url_for,
)

MODULE = "tests.reliability._crash"
USER = "crash-user"
SESSIONS = ("a", "b", "c")


async def _worker(args: dict[str, Any]) -> None:
    rng = random.Random(args["seed"])
    service = DatabaseSessionService(args["url"])
    handles: dict[str, Session] = {}
    for session_id in SESSIONS:
        got = await service.get_session(
            app_name=args["app"],
            user_id=USER,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        assert got is not None
        handles[session_id] = got
    fd = os.open(args["acks"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    print("ready", flush=True)
    i = 0
    while True:
        session_id = rng.choice(SESSIONS)
        event_id = f"r{args['round']}-{i:06d}"
        delta: dict[str, Any] = {"last": event_id, "n": i, f"from-{session_id}": i}
        if i % 2:
            delta["blob"] = "x" * rng.randint(1_000, args["payload"])
        if i % 3 == 0:
            delta["app:last"] = event_id
            delta["user:last"] = event_id
        event = Event(
            id=event_id,
            author="writer",
            invocation_id=f"round-{args['round']}",
            actions=EventActions(state_delta=delta),
        )
        await service.append_event(handles[session_id], event)
        # Acknowledged: record it durably before doing anything else.
        os.write(fd, (json.dumps({"id": event_id, "session": session_id}) + "\n").encode())
        os.fsync(fd)
        i += 1


def _position(event_id: str) -> tuple[int, int]:
    """(round, number) of an event id ``r<round>-<number>``."""
    round_part, number = event_id[1:].split("-")
    return int(round_part), int(number)


async def _prepare(url: str, app: str) -> None:
    service = DatabaseSessionService(url)
    try:
        for session_id in SESSIONS:
            await service.create_session(app_name=app, user_id=USER, session_id=session_id)
    finally:
        await service.close()


async def _verify(url: str, app: str, acks: list[dict[str, Any]]) -> dict[str, Any]:
    service = DatabaseSessionService(url)
    try:
        stored = await read_app(service.engine, app)  # type: ignore[arg-type]
        intact = await integrity_ok(service.engine)  # type: ignore[arg-type]
    finally:
        await service.close()
    problems = check_sessions(stored)
    if not intact:
        problems.append("PRAGMA integrity_check is not ok")
    where = {item.id: item for item in stored.all_events()}
    lost = [a["id"] for a in acks if a["id"] not in where]
    problems += [f"acknowledged event {i} is not stored" for i in lost]
    for ack in acks:
        item = where.get(ack["id"])
        if item is not None and item.session_id != ack["session"]:
            problems.append(f"event {ack['id']} stored in the wrong session")
    # One writer at a time: commit order across sessions is (round, number) order.
    ordered = sorted(stored.all_events(), key=lambda item: _position(item.id))
    last_app = last_user = None
    for item in ordered:
        delta = item.event.actions.state_delta
        last_app = delta.get("app:last", last_app)
        last_user = delta.get("user:last", last_user)
    if stored.app_state.get("last") != last_app:
        problems.append(f"app state {stored.app_state!r}, last stored write {last_app!r}")
    if stored.user_states.get(USER, {}).get("last") != last_user:
        problems.append(f"user state {stored.user_states.get(USER)!r}, last write {last_user!r}")
    acked = {a["id"] for a in acks}
    return {
        "acknowledged": len(acked),
        "stored": len(where),
        "stored_not_acknowledged": len(set(where) - acked),
        "lost": len(lost),
        "problems": problems,
    }


def run(
    backend: str,
    *,
    rounds: int = 5,
    min_delay: float = 0.05,
    max_delay: float = 0.6,
    payload: int = 20_000,
    seed: int | None = None,
) -> dict[str, Any]:
    """``rounds`` writer processes, each SIGKILLed after a random delay; figures and problems."""
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="openadk-crash-") as tmp:
        workdir = Path(tmp)
        url = url_for(backend, workdir)
        app = f"crash-{uuid.uuid4().hex[:12]}"
        ack_path = workdir / "acks.jsonl"
        asyncio.run(_prepare(url, app))
        problems: list[str] = []
        figures: dict[str, Any] = {}
        for round_number in range(rounds):
            process = spawn(
                MODULE,
                {
                    "url": url,
                    "app": app,
                    "acks": str(ack_path),
                    "round": round_number,
                    "seed": seed + round_number,
                    "payload": payload,
                },
            )
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                _, err = process.communicate(timeout=60)
                raise RuntimeError(f"writer did not start:\n{err}")
            time.sleep(rng.uniform(min_delay, max_delay))
            if process.poll() is not None:
                _, err = process.communicate(timeout=60)
                raise RuntimeError(f"writer died before it was killed:\n{err}")
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            figures = asyncio.run(_verify(url, app, read_jsonl(ack_path)))
            problems += [f"round {round_number}: {p}" for p in figures.pop("problems")]
    figures.update(backend=backend, kills=rounds, seed=seed, problems=problems)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("args")
    go = sub.add_parser("run")
    go.add_argument("--backend", action="append", choices=["sqlite", "postgres"], default=None)
    go.add_argument("--rounds", type=int, default=50)
    go.add_argument("--min-delay", type=float, default=0.05)
    go.add_argument("--max-delay", type=float, default=1.0)
    go.add_argument("--payload", type=int, default=20_000)
    go.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    if options.command == "worker":
        asyncio.run(_worker(json.loads(options.args)))
        return 0
    failed = False
    for backend in options.backend or ["sqlite", "postgres"]:
        figures = run(
            backend,
            rounds=options.rounds,
            min_delay=options.min_delay,
            max_delay=options.max_delay,
            payload=options.payload,
            seed=options.seed,
        )
        problems = figures.pop("problems")
        print(json.dumps(figures), flush=True)
        for problem in problems[:20]:
            print("  PROBLEM:", problem, flush=True)
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
