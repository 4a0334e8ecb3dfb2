"""Model-based test: random operation sequences run on every backend at once must agree.

A hypothesis state machine drives create/append/get/list/delete (with app/user/temp state,
partial events, recent-N reads, stale handles) against the in-memory service and the database
service on SQLite, PostgreSQL and MariaDB, and fails on the first difference. CI runs a bounded
number of examples; `OPENADK_SOAK_EXAMPLES=500 pytest tests/reliability` soaks longer.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, rule

from openadk.errors import SessionNotFoundError, StaleSessionError
from openadk.events import Event, EventActions
from openadk.sessions import (
    BaseSessionService,
    DatabaseSessionService,
    GetSessionConfig,
    InMemorySessionService,
    RedisSessionService,
    Session,
)
from tests.contract.backends import MYSQL, POSTGRES, REDIS, SQLITE_DIR

EXAMPLES = int(os.environ.get("OPENADK_SOAK_EXAMPLES", "40"))

USERS = st.sampled_from(["ann", "bob"])
KEYS = st.sampled_from(["a", "b", "app:a", "app:b", "user:a", "user:b", "temp:a"])
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
DELTAS = st.dictionaries(KEYS, VALUES, max_size=4)


# One event loop and one set of services for every example (each example uses its own app
# name), so the examples spend their time on operations rather than on connecting.
_LOOP: asyncio.AbstractEventLoop | None = None
_SERVICES: list[BaseSessionService] = []


def _shared() -> tuple[asyncio.AbstractEventLoop, list[BaseSessionService]]:
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        _SERVICES.extend(
            [
                InMemorySessionService(),
                DatabaseSessionService(f"sqlite+aiosqlite:///{SQLITE_DIR}/model-based.db"),
                DatabaseSessionService(f"postgresql+asyncpg://{POSTGRES}"),
                DatabaseSessionService(f"mysql+asyncmy://{MYSQL}?charset=utf8mb4"),
                RedisSessionService(REDIS, key_prefix="model-based:"),
            ]
        )
    return _LOOP, _SERVICES


@pytest.fixture(scope="module", autouse=True)
def _close_shared() -> Any:
    yield
    if _LOOP is not None:
        for service in _SERVICES:
            _LOOP.run_until_complete(service.close())
        _LOOP.close()


def _view(session: Session | None) -> Any:
    if session is None:
        return None
    return (session.id, session.user_id, session.state, [e.id for e in session.events])


class BackendsAgree(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.loop, self.services = _shared()
        self.app = f"model-{uuid.uuid4().hex[:10]}"
        # Per backend, the latest handle of each session (what a careful caller keeps).
        self.handles: list[dict[tuple[str, str], Session]] = [{} for _ in self.services]

    def run(self, make: Any) -> list[Any]:
        async def one(service: BaseSessionService, index: int) -> Any:
            try:
                return ("ok", await make(service, index))
            except (StaleSessionError, SessionNotFoundError, ValueError, TypeError) as exc:
                return ("error", type(exc).__name__)

        return [
            self.loop.run_until_complete(one(service, i)) for i, service in enumerate(self.services)
        ]

    def agree(self, results: list[Any]) -> Any:
        first = results[0]
        for service, result in zip(self.services[1:], results[1:], strict=True):
            assert result == first, f"{type(service).__name__} differs: {result!r} != {first!r}"
        return first

    @initialize()
    def start(self) -> None:
        pass

    @rule(target=sessions, user=USERS, state=DELTAS, explicit=st.booleans())
    def create(self, user: str, state: dict[str, Any], explicit: bool) -> tuple[str, str]:
        session_id = f"s-{uuid.uuid4().hex[:8]}"

        async def make(service: BaseSessionService, index: int) -> Any:
            made = await service.create_session(
                app_name=self.app, user_id=user, session_id=session_id, state=state
            )
            self.handles[index][(user, session_id)] = made
            return _view(made)

        self.agree(self.run(make))
        return (user, session_id)

    @rule(key=sessions, delta=DELTAS, partial=st.booleans(), stale=st.booleans())
    def append(
        self, key: tuple[str, str], delta: dict[str, Any], partial: bool, stale: bool
    ) -> None:
        event_id = str(uuid.uuid4())

        async def make(service: BaseSessionService, index: int) -> Any:
            handle = self.handles[index].get(key)
            if handle is None:
                return "no handle"
            target = handle.model_copy(deep=True) if stale else handle
            if stale:
                # Somebody else writes first, so this handle is stale.
                other = Event(id=f"{event_id}-other", author="other", invocation_id="o")
                await service.append_event(handle, other)
            event = Event(
                id=event_id,
                author="user",
                invocation_id="inv",
                partial=partial or None,
                actions=EventActions(state_delta=dict(delta)),
            )
            await service.append_event(target, event)
            return _view(target)

        self.agree(self.run(make))

    @rule(key=sessions, recent=st.one_of(st.none(), st.integers(min_value=0, max_value=4)))
    def get(self, key: tuple[str, str], recent: int | None) -> None:
        async def make(service: BaseSessionService, index: int) -> Any:
            got = await service.get_session(
                app_name=self.app,
                user_id=key[0],
                session_id=key[1],
                config=GetSessionConfig(num_recent_events=recent),
            )
            if got is not None and recent is None:
                self.handles[index][key] = got
            return _view(got)

        self.agree(self.run(make))

    @rule(user=st.one_of(st.none(), USERS))
    def listing(self, user: str | None) -> None:
        async def make(service: BaseSessionService, index: int) -> Any:
            listed = await service.list_sessions(app_name=self.app, user_id=user)
            # A dict, not a repr: PostgreSQL JSONB does not keep the key order of nested dicts.
            return {s.id: (s.user_id, s.state) for s in listed.sessions}

        self.agree(self.run(make))

    @rule(user=USERS)
    def user_state(self, user: str) -> None:
        async def make(service: BaseSessionService, index: int) -> Any:
            return await service.get_user_state(app_name=self.app, user_id=user)

        self.agree(self.run(make))

    @rule(key=consumes(sessions))
    def delete(self, key: tuple[str, str]) -> None:
        async def make(service: BaseSessionService, index: int) -> Any:
            await service.delete_session(app_name=self.app, user_id=key[0], session_id=key[1])
            return await service.get_session(app_name=self.app, user_id=key[0], session_id=key[1])

        self.agree(self.run(make))


BackendsAgree.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_backends_agree = BackendsAgree.TestCase
