"""Side-by-side benchmark: the google-adk adapter (`openadk.adk.AdkSessionService`) vs openadk.

What a google-adk ``Runner`` pays for using openadk through the adapter, compared with calling
the same openadk service directly, and compared with google-adk's own services, on sessions of
0, 100 and 1,000 events. All in one process, in interleaved rounds; each figure is the fastest
round (the least disturbed by other work on a shared machine; ``--median`` takes medians
instead), and the table reports ratios.

Operations, each on a session already holding N events:

- ``get_session``: the full history (what the Runner reads at the start of every turn);
- ``append_event``: one event of ~200 characters of text and a small state delta (each round
  times 80 appends on a fresh session filled to N events first, untimed);
- a turn: ``get_session`` then four ``append_event`` calls, what a ``Runner`` does for one
  user message with one tool call.

Backends: the in-memory service (google-adk's ``InMemorySessionService`` alongside) and
``DatabaseSessionService`` on a SQLite file (google-adk's ``DatabaseSessionService`` on the same
file alongside, under another app name).

Run::

    PYTHONPATH=src python benchmarks/bench_adk.py [--rounds 7] [--target-seconds 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import DatabaseSessionService as AdkDatabaseSessionService
from google.adk.sessions import InMemorySessionService as AdkInMemorySessionService
from google.genai import types

from openadk.adk import AdkSessionService
from openadk.events import Event, EventActions
from openadk.sessions import DatabaseSessionService, InMemorySessionService

USER = "bench_user"
SIZES = (0, 100, 1_000)
TEXT = ("The quick brown fox jumps over the lazy dog while the agent ponders state. " * 3)[:200]

Call = Callable[[], Awaitable[Any]]
# How the rounds of one measurement are summarised: min by default, median with --median.
AGGREGATE: list[Callable[[list[float]], float]] = [min]


def make_event(adk: bool, i: int) -> Any:
    event_cls, actions_cls = (AdkEvent, AdkEventActions) if adk else (Event, EventActions)
    is_user = i % 2 == 0
    return event_cls(
        invocation_id=f"inv-{i // 2}",
        author="user" if is_user else "model",
        content=types.Content(
            role="user" if is_user else "model",
            parts=[types.Part(text=f"{i:05d} {TEXT}"[:200])],
        ),
        actions=actions_cls(state_delta={"turn": i, "last_author": "user" if is_user else "m"}),
    )


@dataclass
class Subject:
    """One way of calling a session service: its service, its session, whether google-adk's."""

    name: str
    service: Any
    app: str
    adk_objects: bool
    session: Any = None
    appended: int = 0

    async def fill(self, size: int, session_id: str) -> None:
        self.session = await self.service.create_session(
            app_name=self.app, user_id=USER, session_id=session_id, state={"app:x": 1, "k": 0}
        )
        for i in range(size):
            await self.service.append_event(self.session, make_event(self.adk_objects, i))

    def get(self) -> Call:
        session_id = self.session.id

        def call() -> Awaitable[Any]:
            return self.service.get_session(app_name=self.app, user_id=USER, session_id=session_id)

        return call

    def turn(self) -> Call:
        """What a Runner does per turn: read the session, append four events."""
        get, append = self.get(), self.append()

        async def call() -> None:
            self.session = await get()
            for _ in range(4):
                await append()

        return call

    def append(self) -> Call:
        def call() -> Awaitable[Any]:
            self.appended += 1
            return self.service.append_event(
                self.session, make_event(self.adk_objects, 10_000_000 + self.appended)
            )

        return call


async def run_batch(call: Call, n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n


async def calibrate(call: Call, target: float, max_calls: int) -> int:
    await call()
    n = 1
    while True:
        elapsed = await run_batch(call, n) * n
        if elapsed >= target / 10 or n >= max_calls:
            break
        n *= 2
    return max(3, min(max_calls, round(n * target / max(elapsed, 1e-9))))


async def measure(
    calls: dict[str, Call], rounds: int, target: float, max_calls: int
) -> dict[str, float]:
    """Per-call seconds of each call: the fastest of interleaved rounds (order rotates)."""
    sizes = {name: await calibrate(call, target, max_calls) for name, call in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(await run_batch(calls[name], sizes[name]))
    return {name: AGGREGATE[0](values) for name, values in times.items()}


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


async def time_fresh(
    subjects: tuple[Subject, ...], size: int, op: str, rounds: int, appends: int
) -> dict[str, float]:
    """Per-call seconds of appends (or turns) on sessions of ``size`` events (fastest round).

    Every round gives each subject a fresh session filled to ``size`` events (not timed), then
    times ``appends`` appends (``appends // 4`` turns), so every measurement is at the same size.
    """
    times: dict[str, list[float]] = {s.name: [] for s in subjects}
    for r in range(rounds + 1):  # the first round warms up
        order = list(subjects[r % len(subjects) :] + subjects[: r % len(subjects)])
        for subject in order:
            await subject.fill(size, f"fresh-{op[:4]}-{r}")
            call = subject.turn() if op.startswith("turn") else subject.append()
            n = appends // 4 if op.startswith("turn") else appends
            elapsed = await run_batch(call, n)
            if r:
                times[subject.name].append(elapsed)
    return {name: AGGREGATE[0](values) for name, values in times.items()}


async def backend_rows(
    label: str, make: Callable[[], tuple[Any, Any]], rounds: int, target: float
) -> list[tuple[str, ...]]:
    rows = []
    ours, theirs = make()
    adapter = AdkSessionService(ours)
    for size in SIZES:
        tag = f"{label}-{size}-{time.time_ns()}"
        direct = Subject("openadk", ours, f"direct-{tag}", adk_objects=False)
        through = Subject("adapter", adapter, f"adapter-{tag}", adk_objects=True)
        google = Subject("google-adk", theirs, f"adk-{tag}", adk_objects=True)
        subjects = (direct, through, google)
        for subject in subjects:
            await subject.fill(size, "s")
        for op in ("get_session", "append_event", "turn (get + 4 appends)"):
            if op == "get_session":
                calls = {s.name: s.get() for s in subjects}
                result = await measure(calls, rounds, target, 20_000)
            else:
                result = await time_fresh(subjects, size, op, rounds, appends=80)
            rows.append(
                (
                    label,
                    f"{op}, {size:,} events",
                    fmt(result["openadk"]),
                    fmt(result["adapter"]),
                    fmt(result["google-adk"]),
                    f"{result['adapter'] / result['openadk']:.2f}x",
                    f"{result['google-adk'] / result['adapter']:.1f}x",
                )
            )
            print("  ".join(rows[-1]), flush=True)
    await ours.close()
    if hasattr(theirs, "close"):
        await theirs.close()
    return rows


async def main_async(rounds: int, target: float, only: str | None) -> None:
    print(
        f"google-adk {metadata.version('google-adk')}, pydantic {metadata.version('pydantic')}; "
        f"rounds={rounds}, target per batch={target}s"
    )
    headers = (
        "backend",
        "operation",
        "openadk",
        "adapter",
        "google-adk",
        "adapter/openadk",
        "google-adk/adapter",
    )
    print("  ".join(headers))
    rows: list[tuple[str, ...]] = []
    directory = Path(tempfile.mkdtemp(prefix="bench-adk-"))
    if only in (None, "memory"):
        rows += await backend_rows(
            "memory",
            lambda: (InMemorySessionService(), AdkInMemorySessionService()),
            rounds,
            target,
        )
    if only in (None, "sqlite"):
        url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        rows += await backend_rows(
            "sqlite",
            lambda: (DatabaseSessionService(url), AdkDatabaseSessionService(db_url=url)),
            rounds,
            target,
        )
    print()
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("adapter/openadk: the adapter's cost over calling openadk directly (1.00x = none).")
    print("google-adk/adapter: how many times faster the adapter is than google-adk's service.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--target-seconds", type=float, default=0.2)
    parser.add_argument("--only", choices=("memory", "sqlite"), default=None)
    parser.add_argument("--median", action="store_true", help="medians instead of the fastest")
    args = parser.parse_args()
    if args.median:
        AGGREGATE[0] = statistics.median
    asyncio.run(main_async(args.rounds, args.target_seconds, args.only))


if __name__ == "__main__":
    main()
