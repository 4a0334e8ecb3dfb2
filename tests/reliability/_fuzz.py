"""Bad input at scale: hostile values through the public API of every backend.

Hypothesis draws one call per example (create, append, get, list sessions, list events, delete,
get user state) with hostile arguments: SQL-looking and enormous ids, NUL characters, lone
surrogates, right-to-left marks, deep nesting (up to 2,000 levels), huge states (2 MB strings,
20,000 keys), NaN and infinite floats, 100-digit integers, non-JSON values (bytes, sets,
objects), hostile timestamps, limits and page tokens. The call runs on the in-memory service and
on the database service over SQLite, PostgreSQL (asyncpg, psycopg) and MariaDB (asyncmy,
aiomysql). It must either succeed, or raise exactly one of openadk's documented errors for bad
input: ``TypeError``, ``ValueError``, `SessionNotFoundError`, `StaleSessionError`,
`AlreadyExistsError`, `StateSchemaError` (a subclass of those, like ``UnicodeEncodeError``, is a
leak, not an answer). Never a raw driver exception, never `StorageError`. When it refuses a
write, the database rows of the example's app are unchanged; when it accepts one, the session
reads back.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import decimal
import hashlib
import json
import random
import re
import reprlib
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from openadk.errors import (
    AlreadyExistsError,
    SessionNotFoundError,
    StaleSessionError,
    StateSchemaError,
)
from openadk.events import Event, EventActions
from openadk.sessions import (
    BaseSessionService,
    DatabaseSessionService,
    GetSessionConfig,
    InMemorySessionService,
)
from openadk.sessions._base import encode_page_token
from openadk.sessions._schema import app_states, events, sessions, user_states
from tests.reliability._common import URLS

ALLOWED = (
    TypeError,
    ValueError,
    SessionNotFoundError,
    StaleSessionError,
    AlreadyExistsError,
    StateSchemaError,
)
BACKENDS = (
    "memory",
    "sqlite",
    "postgres",
    "postgres-psycopg",
    "mariadb",
    "mariadb-aiomysql",
    "redis",
)


# Hostile values --------------------------------------------------------------------------------

SQL = [
    "x'; DROP TABLE sessions;--",
    "' OR '1'='1",
    '"; DELETE FROM events; --',
    "Robert'); DROP TABLE user_states;--",
    "1; SELECT pg_sleep(10)--",
    "%",
    "_",
    "%_%",
    "\\",
    "\\x00",
    "$where",
    "../../etc/passwd",
]
ODD = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "\u202e\u2066",
    "\ufeff",
    "null",
    "None",
    "🎉" * 128,
    "🎉" * 129,
    "é" * 128,
    "x" * 128,
    "x" * 129,
    "x" * 100_000,
]
TEXT = st.one_of(
    st.sampled_from(SQL + ODD),
    st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=12),
    st.text(alphabet="abc-_", min_size=1, max_size=6),
)


def _nested(depth: int, as_dict: bool) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


SPECIAL = st.one_of(
    st.builds(
        _nested,
        st.sampled_from([50, 150, 190, 195, 197, 198, 199, 250, 256, 300, 999, 2000]),
        st.booleans(),
    ),
    st.sampled_from(
        [
            "x" * 2_000_000,
            {f"k{i}": i for i in range(20_000)},
            b"\xff\xfe",
            b"bytes",
            {1, 2},
            _Opaque(),
            datetime.datetime(2020, 1, 1),
            decimal.Decimal("1e400"),
            (1, "t"),
            complex(1, 2),
            2**64,
            10**100,
            -(2**63),
            float("nan"),
            float("inf"),
            -0.0,
            5e-324,
            1.7976931348623157e308,
            {1: "int key"},
            {None: "none key"},
            {"nested": {2: "int key inside"}},
        ]
    ),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.sampled_from([2**70, -(2**70)])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
KEYS = st.one_of(
    TEXT,
    st.builds(lambda p, t: p + t, st.sampled_from(["app:", "user:", "temp:"]), TEXT),
)
STATE = st.dictionaries(KEYS, st.one_of(VALUES, SPECIAL), max_size=3)
TIMES = st.one_of(
    st.none(),
    st.floats(),
    st.sampled_from(
        [1e300, -1e300, 253402300799.0, 253402300800.0, -62135596800.0, 0.0, 1e10, 4e9, -1.0]
    ),
)
NUMBERS = st.one_of(
    st.none(), st.integers(min_value=-3, max_value=5), st.sampled_from([2**31, 2**63, 2**70, True])
)


def _tokens() -> st.SearchStrategy[Any]:
    crafted = st.builds(
        lambda stamp, user, sid: encode_page_token((stamp, user, sid)),
        st.one_of(st.floats(), st.sampled_from([1e300, -1e300, 0.0])),
        TEXT,
        TEXT,
    )
    return st.one_of(st.none(), TEXT, crafted, st.sampled_from(["bnVsbA", "W10", "WzEsMiwzXQ"]))


def _app(prefix: str) -> st.SearchStrategy[str]:
    # Written app names start with the example's prefix, so its rows can be found again.
    return st.one_of(st.just(prefix + "app"), st.builds(lambda t: prefix + t, TEXT))


def operations(prefix: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    app = _app(prefix)
    any_app = st.one_of(app, TEXT)
    user = st.one_of(st.just("u"), TEXT)
    session = st.one_of(st.just("s"), TEXT)
    op = st.sampled_from
    return st.one_of(
        st.tuples(
            op(["create"]),
            st.fixed_dictionaries(
                {
                    "app_name": app,
                    "user_id": user,
                    "session_id": st.one_of(st.none(), session),
                    "state": st.one_of(st.none(), STATE),
                    "exist_ok": st.booleans(),
                }
            ),
        ),
        st.tuples(
            op(["append"]),
            st.fixed_dictionaries(
                {
                    "id": st.one_of(st.none(), TEXT),
                    "invocation_id": st.one_of(st.just("inv"), TEXT),
                    "author": st.one_of(st.just("user"), TEXT),
                    "text": st.one_of(st.none(), TEXT),
                    "state_delta": STATE,
                    "custom_metadata": st.one_of(st.none(), STATE),
                    "timestamp": TIMES,
                    "partial": st.sampled_from([None, False, True]),
                }
            ),
        ),
        st.tuples(
            op(["get"]),
            st.fixed_dictionaries(
                {
                    "app_name": any_app,
                    "user_id": user,
                    "session_id": session,
                    "num_recent_events": NUMBERS,
                    "after_timestamp": TIMES,
                }
            ),
        ),
        st.tuples(
            op(["list_sessions"]),
            st.fixed_dictionaries(
                {
                    "app_name": any_app,
                    "user_id": st.one_of(st.none(), user),
                    "limit": NUMBERS,
                    "page_token": _tokens(),
                }
            ),
        ),
        st.tuples(
            op(["list_events"]),
            st.fixed_dictionaries(
                {
                    "app_name": any_app,
                    "user_id": user,
                    "session_id": session,
                    "limit": NUMBERS,
                    "page_token": _tokens(),
                }
            ),
        ),
        st.tuples(
            op(["delete"]),
            st.fixed_dictionaries({"app_name": app, "user_id": user, "session_id": session}),
        ),
        st.tuples(
            op(["user_state"]), st.fixed_dictionaries({"app_name": any_app, "user_id": user})
        ),
    )


# Running one call on every backend ---------------------------------------------------------------


async def _snapshot(engine: AsyncEngine, prefix: str) -> list[Any]:
    rows: list[Any] = []
    async with engine.connect() as conn:
        for table in (sessions, events, app_states, user_states):
            query = select(*table.columns).where(table.c.app_name.like(prefix + "%"))
            rows.extend(sorted(repr(tuple(r)) for r in await conn.execute(query)))
    return rows


async def _drop(engine: AsyncEngine, prefix: str) -> None:
    async with engine.begin() as conn:
        for table in (events, sessions, app_states, user_states):
            await conn.execute(delete(table).where(table.c.app_name.like(prefix + "%")))


def _state_view(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith("temp:")}


class Fuzzer:
    """The services, the event loop, and the tallies of one fuzz run."""

    def __init__(self, backends: tuple[str, ...] = BACKENDS) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="openadk-fuzz-")
        self.services: dict[str, BaseSessionService] = {}
        for name in backends:
            if name == "memory":
                self.services[name] = InMemorySessionService()
            elif name == "sqlite":
                self.services[name] = DatabaseSessionService(
                    f"sqlite+aiosqlite:///{self.tmp.name}/fuzz.db"
                )
            elif name == "redis":
                from openadk.sessions import RedisSessionService
                from tests.contract.backends import REDIS

                self.services[name] = RedisSessionService(REDIS, key_prefix="fuzz:")
            else:
                self.services[name] = DatabaseSessionService(URLS[name])
        for service in self.services.values():
            if isinstance(service, DatabaseSessionService):
                self.loop.run_until_complete(service.prepare_tables())
        self.run_id = uuid.uuid4().hex[:8]
        self.examples = 0
        self.calls = 0
        self.outcomes: Counter[str] = Counter()
        self.by_operation: Counter[str] = Counter()
        self.disagreements: Counter[str] = Counter()
        self.problems: list[str] = []
        self.drawn = hashlib.sha256()

    def close(self) -> None:
        for service in self.services.values():
            if isinstance(service, DatabaseSessionService):
                # The servers are shared: leave no 2 MB states behind.
                self.loop.run_until_complete(_drop(service.engine, f"fz{self.run_id}-"))  # type: ignore[arg-type]
            self.loop.run_until_complete(service.close())
        self.loop.close()
        self.tmp.cleanup()

    def check(self, prefix: str, operation: str, args: dict[str, Any]) -> None:
        self.examples += 1
        self.by_operation[operation] += 1
        # A fingerprint of the drawn calls without this run's prefix or object addresses, so a
        # replay from the same seed can be seen to draw the same calls.
        drawn = re.sub(r"0x[0-9a-f]+", "", f"{operation} {_short(_rename(args, prefix, ''))}")
        self.drawn.update(drawn.encode("utf-8", "surrogatepass"))
        # Backends on one server get their own app names, so one's writes are not another's.
        results = {
            name: self.loop.run_until_complete(
                self._one(
                    name, service, f"{prefix}{i}", operation, _rename(args, prefix, f"{prefix}{i}")
                )
            )
            for i, (name, service) in enumerate(self.services.items())
        }
        kinds = {name: r.split(":")[0] for name, r in results.items()}
        if len(set(kinds.values())) > 1:
            self.disagreements[
                f"{operation}: " + ", ".join(f"{k}={v}" for k, v in kinds.items())
            ] += 1

    async def _one(
        self,
        name: str,
        service: BaseSessionService,
        prefix: str,
        operation: str,
        args: dict[str, Any],
    ) -> str:
        self.calls += 1
        engine = service.engine if isinstance(service, DatabaseSessionService) else None
        writes = operation in ("create", "append", "delete")
        before = (
            await _snapshot(engine, prefix) if engine is not None and writes else None  # type: ignore[arg-type]
        )
        handle = None
        try:
            if operation == "append":
                handle = await service.create_session(
                    app_name=prefix + "app", user_id="u", session_id="s"
                )
                if before is not None:
                    before = await _snapshot(engine, prefix)  # type: ignore[arg-type]
            result = await self._call(service, operation, args, handle)
        except ALLOWED as error:
            if type(error) not in ALLOWED:
                return self._leak(name, operation, args, error)
            self.outcomes[f"{operation} refused: {type(error).__name__}"] += 1
            if before is not None and await _snapshot(engine, prefix) != before:  # type: ignore[arg-type]
                self.problems.append(f"{name} {operation} {_short(args)}: refused but rows changed")
            return f"refused:{type(error).__name__}"
        except Exception as error:
            return self._leak(name, operation, args, error)
        self.outcomes[f"{operation} ok"] += 1
        try:
            await self._read_back(service, operation, args, result, handle)
        except Exception as error:
            self.problems.append(
                f"{name} {operation} {_short(args)}: accepted, but reading it back gave "
                f"{type(error).__module__}.{type(error).__name__}: {str(error)[:200]}"
            )
        return "ok"

    def _leak(self, name: str, operation: str, args: dict[str, Any], error: BaseException) -> str:
        kind = f"{type(error).__module__}.{type(error).__name__}"
        self.outcomes[f"{operation} LEAKED {kind}"] += 1
        where = traceback.extract_tb(error.__traceback__)[-1]
        self.problems.append(
            f"{name} {operation} {_short(args)}: {kind}: {str(error)[:200]} "
            f"(at {Path(where.filename).name}:{where.lineno})"
        )
        return f"leak:{kind}"

    async def _call(
        self, service: BaseSessionService, operation: str, args: dict[str, Any], handle: Any
    ) -> Any:
        if operation == "create":
            return await service.create_session(**args)
        if operation == "append":
            from google.genai import types

            try:
                event = Event(
                    author=args["author"],
                    invocation_id=args["invocation_id"],
                    partial=args["partial"],
                    content=None
                    if args["text"] is None
                    else types.Content(role="user", parts=[types.Part(text=args["text"])]),
                    custom_metadata=args["custom_metadata"],
                    actions=EventActions(state_delta=dict(args["state_delta"])),
                    **({} if args["id"] is None else {"id": args["id"]}),
                    **({} if args["timestamp"] is None else {"timestamp": args["timestamp"]}),
                )
            except ValueError:  # pydantic refused it: the API never sees it
                return None
            return await service.append_event(handle, event)
        if operation == "get":
            try:
                config = GetSessionConfig(
                    num_recent_events=args["num_recent_events"],
                    after_timestamp=args["after_timestamp"],
                )
            except ValueError:
                config = None
            return await service.get_session(
                app_name=args["app_name"],
                user_id=args["user_id"],
                session_id=args["session_id"],
                config=config,
            )
        if operation == "list_sessions":
            return await service.list_sessions(**args)
        if operation == "list_events":
            return await service.list_events(**args)
        if operation == "delete":
            return await service.delete_session(**args)
        return await service.get_user_state(**args)

    async def _read_back(
        self,
        service: BaseSessionService,
        operation: str,
        args: dict[str, Any],
        result: Any,
        handle: Any,
    ) -> None:
        if operation == "create":
            got = await service.get_session(
                app_name=result.app_name, user_id=result.user_id, session_id=result.id
            )
            assert got is not None, "the created session is not there"
            assert _state_view(got.state) == _state_view(result.state), "state differs on reload"
        elif operation == "append" and result is not None and not result.partial:
            got = await service.get_session(
                app_name=handle.app_name, user_id=handle.user_id, session_id=handle.id
            )
            assert got is not None, "the session is gone"
            assert got.events and got.events[-1].id == result.id, "the event is not there"
            assert _state_view(got.state) == _state_view(handle.state), "state differs on reload"
            listed = await service.list_events(
                app_name=handle.app_name, user_id=handle.user_id, session_id=handle.id
            )
            assert [e.id for e in listed.events] == [e.id for e in got.events]


def _rename(args: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    app = args.get("app_name")
    if isinstance(app, str) and app.startswith(old):
        return {**args, "app_name": new + app[len(old) :]}
    return args


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 40
_REPR.maxother = 40


def _short(args: dict[str, Any]) -> str:
    return _REPR.repr(args)


def fuzz(
    examples: int = 100, backends: tuple[str, ...] = BACKENDS, seed: int | None = None
) -> dict[str, Any]:
    """Runs ``examples`` hostile calls on each backend; returns the tallies and problems.

    The figures start with the ``seed``: ``fuzz(..., seed=that)`` (or ``--seed``) draws the same
    calls again, so a failure can be replayed. An exception out of the run carries it in a note.
    """
    seed = random.randrange(2**32) if seed is None else seed
    fuzzer = Fuzzer(backends)
    counter = iter(range(10**9))
    started = time.monotonic()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        prefix = f"fz{fuzzer.run_id}-{next(counter)}-"
        operation, args = data.draw(operations(prefix))
        fuzzer.check(prefix, operation, args)

    try:
        with warnings.catch_warnings():
            # Hypothesis warns that a drawn 2 MB string makes a long repr; that is the point.
            warnings.simplefilter("ignore", HypothesisWarning)
            with_seed(seed)(check)()
    except Exception as error:
        error.add_note(f"fuzz seed {seed}: replay with --seed {seed}")
        raise
    finally:
        fuzzer.close()
    return {
        "seed": seed,
        "drawn": fuzzer.drawn.hexdigest()[:16],
        "examples": fuzzer.examples,
        "calls": fuzzer.calls,
        "backends": list(backends),
        "by_operation": dict(fuzzer.by_operation),
        "outcomes": dict(sorted(fuzzer.outcomes.items())),
        "disagreements": dict(fuzzer.disagreements.most_common(12)),
        "seconds": round(time.monotonic() - started, 1),
        "problems": fuzzer.problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--backend", action="append", choices=BACKENDS, default=None)
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    figures = fuzz(options.examples, tuple(options.backend or BACKENDS), options.seed)
    problems = figures.pop("problems")
    print(json.dumps(figures, indent=1), flush=True)
    for problem in problems:
        print("  PROBLEM:", problem, flush=True)
    print(f"{len(problems)} problems (seed {figures['seed']})", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
