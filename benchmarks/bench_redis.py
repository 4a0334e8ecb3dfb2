"""Side-by-side benchmark: openadk ``RedisSessionService`` vs google-adk 2.13's.

Both run in one process against the SAME redis-server: by default one this script starts on a
loopback port (7190; no persistence, so the disk does not enter the numbers), or ``--url``. Each
library has its own key prefix. Measured (ops/s = calls / summed call time, and p50):

1. ``append_event`` on one session as it grows: 50 timed appends when it holds 10, 100 and
   1,000 events (and 10,000 for openadk, to show the cost is flat; google-adk rewrites the whole
   session per append, so it is not grown that far). Events carry 200 characters of text and a
   small state delta; the handle is kept, as both libraries expect.
2. ``get_session`` of the 1,000-event session, full and ``num_recent_events=10``.
3. ``list_sessions`` of one user with 1,000 sessions, with 100,000 unrelated keys in the
   database (google-adk lists with SCAN over the keyspace).
4. 32 concurrent writers (``asyncio.gather``), one session each, 20 appends each: appends/s.

Run::

    .venv/bin/python benchmarks/bench_redis.py            # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_redis.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkActions
from google.adk.integrations.redis import RedisSessionService as AdkRedis
from google.adk.integrations.redis import RedisSessionServiceConfig
from google.adk.sessions.base_session_service import GetSessionConfig as AdkConfig
from google.genai import types

from openadk.events import Event, EventActions
from openadk.sessions import GetSessionConfig, RedisSessionService

TEXT = "x" * 200


def ours_event(i: int) -> Event:
    return Event(
        author="user",
        invocation_id=f"inv-{i}",
        content=types.Content(role="user", parts=[types.Part(text=TEXT)]),
        actions=EventActions(state_delta={"n": i, "last": f"e{i}"}),
    )


def adk_event(i: int) -> AdkEvent:
    return AdkEvent(
        author="user",
        invocation_id=f"inv-{i}",
        content=types.Content(role="user", parts=[types.Part(text=TEXT)]),
        actions=AdkActions(state_delta={"n": i, "last": f"e{i}"}),
    )


class Lib:
    def __init__(self, name: str, service: Any, event: Callable[[int], Any], config: Any) -> None:
        self.name, self.service, self.event, self.config = name, service, event, config


async def timed(calls: int, op: Callable[[int], Awaitable[Any]]) -> list[float]:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        await op(i)
        times.append(time.perf_counter() - start)
    return times


def rate(times: list[float]) -> float:
    return len(times) / sum(times)


def row(label: str, ours: list[float], theirs: list[float] | None) -> str:
    a = rate(ours)
    p50 = statistics.median(ours) * 1e3
    if theirs is None:
        return f"| {label} | {a:,.0f} ({p50:.2f} ms) | — | — |"
    b = rate(theirs)
    q50 = statistics.median(theirs) * 1e3
    return f"| {label} | {a:,.0f} ({p50:.2f} ms) | {b:,.0f} ({q50:.2f} ms) | **{a / b:.1f}x** |"


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed; pass --url")
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if out.stdout.strip() == "PONG":
            return proc
        time.sleep(0.05)
    sys.exit("redis-server did not start")


async def grow(lib: Lib, session: Any, app: str, count: int) -> Any:
    for i in range(count):
        await lib.service.append_event(session, lib.event(i))
    return session


async def main(args: argparse.Namespace) -> None:
    proc = None
    url = args.url
    if url is None:
        proc = start_server(args.port)
        url = f"redis://127.0.0.1:{args.port}/0"
    n = 10 if args.quick else 50
    ours = Lib("openadk", RedisSessionService(url, key_prefix="bo:"), ours_event, GetSessionConfig)
    adk = AdkRedis(RedisSessionServiceConfig(uri=url, key_prefix="ba:session:", ttl_seconds=0))
    theirs = Lib("google-adk", adk, adk_event, AdkConfig)
    libs = [ours, theirs]
    lines = [f"openadk vs google-adk 2.13 RedisSessionService, one redis-server ({url})", ""]
    lines += [
        "| operation | openadk ops/s (p50) | google-adk ops/s (p50) | ratio |",
        "|---|---|---|---|",
    ]
    app = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        # Warm-up: connections opened, scripts loaded, code paths hot.
        for lib in libs:
            warm = await lib.service.create_session(app_name=app, user_id="warm")
            await grow(lib, warm, app, 30)
            await lib.service.get_session(app_name=app, user_id="warm", session_id=warm.id)
        # 1. Appends as the session grows.
        sessions = {}
        sizes = [10, 100, 1000] if not args.quick else [10, 100]
        results: dict[tuple[str, int], list[float]] = {}
        for lib in libs:
            s = await lib.service.create_session(app_name=app, user_id="grow")
            have = 0
            for size in sizes + ([10_000] if lib is ours and not args.quick else []):
                s = await grow(lib, s, app, size - have)
                base = size
                results[(lib.name, size)] = await timed(
                    n,
                    lambda i, s=s, base=base, lib=lib: lib.service.append_event(
                        s, lib.event(base + i)
                    ),
                )
                have = size + n
            sessions[lib.name] = s
        for size in sizes:
            lines.append(
                row(
                    f"append_event at {size:,} events",
                    results[("openadk", size)],
                    results[("google-adk", size)],
                )
            )
        if not args.quick:
            lines.append(row("append_event at 10,000 events", results[("openadk", 10_000)], None))
        # 2. Reads of a 1,000-event session.
        reads: dict[str, Any] = {}
        for lib in libs:
            s = await lib.service.create_session(app_name=app, user_id="read")
            await grow(lib, s, app, 1000 if not args.quick else 100)
            reads[lib.name] = s
        full = {
            lib.name: await timed(
                n,
                lambda i, lib=lib: lib.service.get_session(
                    app_name=app, user_id="read", session_id=reads[lib.name].id
                ),
            )
            for lib in libs
        }
        recent = {
            lib.name: await timed(
                n,
                lambda i, lib=lib: lib.service.get_session(
                    app_name=app,
                    user_id="read",
                    session_id=reads[lib.name].id,
                    config=lib.config(num_recent_events=10),
                ),
            )
            for lib in libs
        }
        label = "1,000" if not args.quick else "100"
        lines.append(
            row(f"get_session, {label} events (full)", full["openadk"], full["google-adk"])
        )
        lines.append(
            row(f"get_session, {label} events (recent 10)", recent["openadk"], recent["google-adk"])
        )
        # 3. list_sessions over 1,000 sessions with 100,000 unrelated keys.
        count, junk = (1000, 100_000) if not args.quick else (100, 10_000)
        client = ours.service.client
        for start in range(0, junk, 5000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(junk, start + 5000)):
                pipe.set(f"unrelated:{i}", "v")
            await pipe.execute()
        for lib in libs:
            for i in range(count):
                await lib.service.create_session(app_name=app, user_id="lister", state={"i": i})
        listed = {
            lib.name: await timed(
                max(3, n // 10),
                lambda i, lib=lib: lib.service.list_sessions(app_name=app, user_id="lister"),
            )
            for lib in libs
        }
        lines.append(
            row(
                f"list_sessions, {count:,} sessions, {junk:,} other keys",
                listed["openadk"],
                listed["google-adk"],
            )
        )
        # 4. 32 concurrent writers, one session each.
        conc = {}
        for lib in libs:
            handles = [
                await lib.service.create_session(app_name=app, user_id=f"w{w}") for w in range(32)
            ]

            async def writer(h: Any, lib: Lib = lib) -> None:
                for i in range(20):
                    await lib.service.append_event(h, lib.event(i))

            start = time.perf_counter()
            await asyncio.gather(*(writer(h) for h in handles))
            conc[lib.name] = 32 * 20 / (time.perf_counter() - start)
        lines.append(
            f"| 32 concurrent writers (appends/s) | {conc['openadk']:,.0f} | "
            f"{conc['google-adk']:,.0f} | **{conc['openadk'] / conc['google-adk']:.1f}x** |"
        )
        top = max(results_size(results))
        p50s = {
            size: statistics.median(results[("openadk", size)]) * 1e3
            for size in results_size(results)
        }
        lines += [
            "",
            "openadk append p50 by session size: "
            + ", ".join(f"{size:,}: {ms:.2f} ms" for size, ms in sorted(p50s.items()))
            + f" (at {top:,} / at 10: {p50s[top] / p50s[10]:.2f}; 1.00 = flat)",
        ]
    finally:
        await ours.service.close()
        await adk._get_redis().aclose()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    print("\n".join(lines))


def results_size(results: dict[tuple[str, int], list[float]]) -> list[int]:
    return [size for name, size in results if name == "openadk"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an existing Redis (its DB gets junk keys)")
    parser.add_argument("--port", type=int, default=7190)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args()))
