"""Side-by-side benchmark: openadk vs google-adk ``InMemorySessionService``.

Both libraries are imported into one process and given identical data: a session
holding 1,000 events (authors alternating "user"/"model", ~200 characters of text
each, a small ``state_delta``) and 1,000 sessions for ``list_sessions``. Each
operation is timed in interleaved rounds (the implementation that goes first
alternates from round to round) and the table shows the median per-call time of
each and the speed ratio (openadk speed / google-adk speed, so a value above 1
means openadk is faster).

Operations:

- ``get_session``: full history (1,000 events).
- ``get_session(config=GetSessionConfig(num_recent_events=10))``.
- ``list_sessions``: one user with 1,000 sessions.
- ``append_event``: appending 1,000 prebuilt events to a fresh session.

How to run (takes well under two minutes)::

    python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install google-adk==2.13.0
    /tmp/bench-venv/bin/pip install -e /path/to/openadk
    /tmp/bench-venv/bin/python benchmarks/bench_inmemory.py

Options: ``--rounds`` (default 7), ``--target-seconds`` (time spent per batch
of calls, default 0.2; each implementation's number of calls per batch is
calibrated from it) and ``--adk-light-copy``.

Note on ``get_session``: by default google-adk deep-copies the stored session
(every event) on each read, while openadk returns a new list of shared,
never-mutated event objects. ``--adk-light-copy`` turns on google-adk's
work-in-progress ``IN_MEMORY_SESSION_SERVICE_LIGHT_COPY`` feature, which makes
its reads shallow-copy too, for a like-for-like comparison.

Only ``time.perf_counter`` is used; there are no benchmark dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import InMemorySessionService as AdkInMemorySessionService
from google.adk.sessions.base_session_service import GetSessionConfig as AdkGetSessionConfig
from google.genai import types

from openadk.events import Event as OpenEvent
from openadk.events import EventActions as OpenEventActions
from openadk.sessions import GetSessionConfig as OpenGetSessionConfig
from openadk.sessions import InMemorySessionService as OpenInMemorySessionService

APP = "bench_app"
USER = "bench_user"
LIST_USER = "bench_list_user"
NUM_EVENTS = 1_000
NUM_SESSIONS = 1_000
TEXT = ("The quick brown fox jumps over the lazy dog while the agent ponders state. " * 3)[:200]

# A zero-argument coroutine factory: one call of the operation being timed.
Call = Callable[[], Awaitable[Any]]


@dataclass
class Impl:
    """One library under test: its service class, Event class and config class."""

    name: str
    service_cls: Any
    event_cls: Any
    actions_cls: Any
    config_cls: Any


ADK = Impl(
    "google-adk",
    AdkInMemorySessionService,
    AdkEvent,
    AdkEventActions,
    AdkGetSessionConfig,
)
OPEN = Impl(
    "openadk",
    OpenInMemorySessionService,
    OpenEvent,
    OpenEventActions,
    OpenGetSessionConfig,
)


def make_event(impl: Impl, i: int, invocation: str = "inv") -> Any:
    """Builds event number ``i``: alternating author, ~200 chars of text, a small delta."""
    is_user = i % 2 == 0
    return impl.event_cls(
        invocation_id=f"{invocation}-{i // 2}",
        author="user" if is_user else "model",
        content=types.Content(
            role="user" if is_user else "model",
            parts=[types.Part(text=f"{i:05d} {TEXT}"[:200])],
        ),
        actions=impl.actions_cls(
            state_delta={"turn": i, "last_author": "user" if is_user else "model"}
        ),
    )


async def build_history_session(impl: Impl) -> tuple[Any, str]:
    """Returns a service holding one session with NUM_EVENTS events, and that session's id."""
    service = impl.service_cls()
    session = await service.create_session(
        app_name=APP, user_id=USER, state={"app:theme": "dark", "user:lang": "en", "count": 0}
    )
    for i in range(NUM_EVENTS):
        await service.append_event(session, make_event(impl, i))
    return service, session.id


async def build_many_sessions(service: Any) -> None:
    """Adds NUM_SESSIONS small sessions for LIST_USER to ``service``."""
    for i in range(NUM_SESSIONS):
        await service.create_session(
            app_name=APP, user_id=LIST_USER, state={"index": i, "label": f"session {i}"}
        )


async def run_batch(call: Call, n: int) -> float:
    """Runs ``call`` ``n`` times and returns the mean seconds per call."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n


async def calibrate(call: Call, target_seconds: float, max_calls: int) -> int:
    """Returns how many calls of ``call`` take about ``target_seconds`` (after a warm-up)."""
    await call()
    n = 1
    while True:
        elapsed = await run_batch(call, n) * n
        if elapsed >= target_seconds / 10 or n >= max_calls:
            break
        n *= 2
    return max(3, min(max_calls, round(n * target_seconds / max(elapsed, 1e-9))))


@dataclass
class Result:
    """Median seconds per call for each implementation."""

    label: str
    calls_per_batch: tuple[int, int]
    adk: float
    open: float

    @property
    def ratio(self) -> float:
        """openadk speed / google-adk speed (>1 means openadk is faster)."""
        return self.adk / self.open


async def compare(
    label: str,
    adk_call: Call,
    open_call: Call,
    rounds: int,
    target_seconds: float,
    max_calls: int = 20_000,
) -> Result:
    """Times two equivalent calls in interleaved rounds, returning the medians.

    Each implementation gets its own batch size, so a fast call is not timed in a batch of a
    few microseconds; the results are per-call means, so they stay comparable.
    """
    n_adk = await calibrate(adk_call, target_seconds, max_calls)
    n_open = await calibrate(open_call, target_seconds, max_calls)
    adk_times: list[float] = []
    open_times: list[float] = []
    for r in range(rounds):
        order = [(adk_call, n_adk, adk_times), (open_call, n_open, open_times)]
        if r % 2:
            order.reverse()
        for call, n, sink in order:
            sink.append(await run_batch(call, n))
    return Result(
        label, (n_adk, n_open), statistics.median(adk_times), statistics.median(open_times)
    )


async def compare_append(rounds: int) -> Result:
    """Times append_event: each round appends prebuilt events to a fresh session."""

    async def one_round(impl: Impl, n: int) -> float:
        service = impl.service_cls()
        session = await service.create_session(app_name=APP, user_id=USER)
        events = [make_event(impl, i, invocation=f"append-{id(session)}") for i in range(n)]
        gc.collect()
        start = time.perf_counter()
        for event in events:
            await service.append_event(session, event)
        elapsed = time.perf_counter() - start
        if len(session.events) != n:
            raise AssertionError(f"{impl.name}: expected {n} events, got {len(session.events)}")
        return elapsed / n

    # A fixed number of appends per round, so the session sizes (google-adk's append scans the
    # stored events for a duplicate) are the same on every machine. One warm-up round each.
    n = NUM_EVENTS
    await one_round(ADK, 50)
    await one_round(OPEN, 50)
    adk_times: list[float] = []
    open_times: list[float] = []
    for r in range(rounds):
        order = [(ADK, adk_times), (OPEN, open_times)]
        if r % 2:
            order.reverse()
        for impl, sink in order:
            sink.append(await one_round(impl, n))
    return Result(
        f"append_event ({n} into a fresh session)",
        (n, n),
        statistics.median(adk_times),
        statistics.median(open_times),
    )


def fmt_time(seconds: float) -> str:
    """Formats a duration with a unit that keeps 3-4 significant digits."""
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} µs"


def print_table(results: list[Result]) -> None:
    """Prints the results as an aligned text table."""
    headers = ("operation", "calls/batch adk/open", "google-adk", "openadk", "speed ratio")
    rows = [
        (
            r.label,
            f"{r.calls_per_batch[0]}/{r.calls_per_batch[1]}",
            fmt_time(r.adk),
            fmt_time(r.open),
            f"{r.ratio:.2f}x",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def render(cells: tuple[str, ...]) -> str:
        # First column left-aligned, the numbers right-aligned.
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    line = render(headers)
    print(line)
    print("-" * len(line))
    for row in rows:
        print(render(row))
    print()
    print("Times are medians of per-call means over the rounds.")
    print("speed ratio = openadk speed / google-adk speed (above 1 means openadk is faster).")


def check_same_results(adk_session: Any, open_session: Any, expected: int) -> None:
    """Sanity check that both services return the same number of events."""
    got = (len(adk_session.events), len(open_session.events))
    if got != (expected, expected):
        raise AssertionError(f"expected {expected} events from both, got {got}")


async def main_async(rounds: int, target_seconds: float) -> None:
    """Builds the data sets, runs every comparison and prints the table."""
    print(
        f"google-adk {metadata.version('google-adk')}, openadk {metadata.version('openadk')}, "
        f"pydantic {metadata.version('pydantic')}, Python {platform.python_version()}"
    )
    light_copy = os.environ.get("ADK_ENABLE_IN_MEMORY_SESSION_SERVICE_LIGHT_COPY", "")
    print(
        f"rounds={rounds}, target per batch={target_seconds}s, "
        f"google-adk light copy={'on' if light_copy else 'off (default)'}\n"
    )

    setup_start = time.perf_counter()
    adk_service, adk_id = await build_history_session(ADK)
    open_service, open_id = await build_history_session(OPEN)
    await build_many_sessions(adk_service)
    await build_many_sessions(open_service)
    print(f"setup: {time.perf_counter() - setup_start:.1f} s\n")

    def get_full(impl_service: Any, session_id: str) -> Call:
        return lambda: impl_service.get_session(app_name=APP, user_id=USER, session_id=session_id)

    def get_recent(impl_service: Any, session_id: str, config: Any) -> Call:
        return lambda: impl_service.get_session(
            app_name=APP, user_id=USER, session_id=session_id, config=config
        )

    def list_all(impl_service: Any) -> Call:
        return lambda: impl_service.list_sessions(app_name=APP, user_id=LIST_USER)

    adk_recent = AdkGetSessionConfig(num_recent_events=10)
    open_recent = OpenGetSessionConfig(num_recent_events=10)

    check_same_results(
        await get_full(adk_service, adk_id)(), await get_full(open_service, open_id)(), NUM_EVENTS
    )
    check_same_results(
        await get_recent(adk_service, adk_id, adk_recent)(),
        await get_recent(open_service, open_id, open_recent)(),
        10,
    )
    adk_listed = await list_all(adk_service)()
    open_listed = await list_all(open_service)()
    if (len(adk_listed.sessions), len(open_listed.sessions)) != (NUM_SESSIONS, NUM_SESSIONS):
        raise AssertionError("list_sessions returned the wrong number of sessions")

    results = [
        await compare(
            f"get_session ({NUM_EVENTS} events)",
            get_full(adk_service, adk_id),
            get_full(open_service, open_id),
            rounds,
            target_seconds,
        ),
        await compare(
            "get_session (num_recent_events=10)",
            get_recent(adk_service, adk_id, adk_recent),
            get_recent(open_service, open_id, open_recent),
            rounds,
            target_seconds,
        ),
        await compare(
            f"list_sessions ({NUM_SESSIONS} sessions)",
            list_all(adk_service),
            list_all(open_service),
            rounds,
            target_seconds,
        ),
        await compare_append(rounds),
    ]
    print_table(results)


def main() -> None:
    """Parses the command line and runs the benchmark."""
    parser = argparse.ArgumentParser(description="openadk vs google-adk InMemorySessionService")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--target-seconds",
        type=float,
        default=0.2,
        help="approximate seconds per batch of calls (default 0.2)",
    )
    parser.add_argument(
        "--adk-light-copy",
        action="store_true",
        help=(
            "enable google-adk's IN_MEMORY_SESSION_SERVICE_LIGHT_COPY feature (work in progress,"
            " off by default), which makes its reads copy the event list instead of deep-copying"
            " the session, like openadk"
        ),
    )
    args = parser.parse_args()
    if args.adk_light_copy:
        os.environ["ADK_ENABLE_IN_MEMORY_SESSION_SERVICE_LIGHT_COPY"] = "1"
    start = time.perf_counter()
    asyncio.run(main_async(args.rounds, args.target_seconds))
    print(f"\ntotal: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
