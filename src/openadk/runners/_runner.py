"""`Runner`: drives an agent through one session turn by turn."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections import ChainMap
from collections.abc import AsyncIterator, Iterator
from typing import Any

from google.genai import types

from openadk.agents import InvocationContext, LlmAgent
from openadk.errors import SessionNotFoundError
from openadk.events import Event, EventActions
from openadk.sessions import BaseSessionService

__all__ = ["Runner"]

logger = logging.getLogger(__name__)

_DONE = object()


class Runner:
    """Runs an agent against sessions stored in a session service.

    Each `run_async` call is one invocation: the user's message is appended to the session as an
    event, the agent runs on the session's history, and every complete (non-partial) event it
    produces is appended before it is yielded. One live `Session` object is used throughout.
    """

    def __init__(
        self,
        *,
        app_name: str | None = None,
        agent: LlmAgent,
        session_service: BaseSessionService,
        auto_create_session: bool = False,
    ) -> None:
        """Creates a runner.

        Args:
            app_name: The application's name in the session service.
            agent: The agent to run.
            session_service: Where sessions live.
            auto_create_session: Create a missing session instead of raising.

        Raises:
            ValueError: ``app_name`` is missing.
            TypeError: ``session_service`` is not a session service.
        """
        if not app_name:
            raise ValueError("app_name is required when agent is provided without app.")
        if not isinstance(session_service, BaseSessionService):
            raise TypeError(
                "session_service must be a BaseSessionService, "
                f"got {type(session_service).__name__}."
            )
        self.app_name = app_name
        self.agent = agent
        self.session_service = session_service
        self.auto_create_session = auto_create_session

    async def run_async(
        self,
        *,
        user_id: str,
        session_id: str,
        invocation_id: str | None = None,
        new_message: types.Content | None = None,
        state_delta: dict[str, Any] | None = None,
        yield_user_message: bool = False,
    ) -> AsyncIterator[Event]:
        """Runs one turn of the agent and yields its events.

        Args:
            user_id: The user's id.
            session_id: The session to continue.
            invocation_id: Id for this invocation; ``"e-" + uuid4`` when None.
            new_message: The user's message; its role is set to ``"user"``.
            state_delta: State changes stored with the user's event.
            yield_user_message: Also yield the user's event.

        Yields:
            The agent's events, each already stored unless it is partial.

        Raises:
            SessionNotFoundError: The session does not exist and ``auto_create_session`` is off.
            KeyError: The agent's instruction needs a state key the session does not have
                (google-adk's message); raised before the user's message is stored.
            ValueError: ``new_message`` has no parts or contains function calls.
            TypeError: ``new_message`` is not a ``google.genai.types.Content``.
        """
        if new_message is not None:
            _check_message(new_message)
        session = await self.session_service.get_session(
            app_name=self.app_name, user_id=user_id, session_id=session_id
        )
        if session is None:
            if not self.auto_create_session:
                raise SessionNotFoundError(f"Session not found: {session_id}")
            session = await self.session_service.create_session(
                app_name=self.app_name, user_id=user_id, session_id=session_id
            )
        invocation_id = invocation_id or f"e-{uuid.uuid4()}"
        # A turn the agent cannot start must not leave the user's message stored unanswered.
        self.agent.render_instruction(ChainMap(dict(state_delta or {}), session.state))
        if new_message is not None:
            message = new_message.model_copy(update={"role": "user"})
            user_event = Event(
                invocation_id=invocation_id,
                author="user",
                content=message,
                actions=EventActions(state_delta=dict(state_delta or {})),
            )
            await self.session_service.append_event(session=session, event=user_event)
            if yield_user_message:
                yield user_event
        ctx = InvocationContext(
            invocation_id=invocation_id,
            session=session,
            session_service=self.session_service,
            user_content=new_message,
        )
        async for event in self.agent.run_async(ctx):
            if not event.partial:
                await self.session_service.append_event(session=session, event=event)
                if event.error_code or event.error_message:
                    # Scripts that print only text would otherwise show nothing at all.
                    logger.warning(
                        "Agent %r answered with an error (%s): %s",
                        event.author,
                        event.error_code,
                        event.error_message,
                    )
            yield event

    def run(
        self,
        *,
        user_id: str,
        session_id: str,
        new_message: types.Content | None = None,
        state_delta: dict[str, Any] | None = None,
    ) -> Iterator[Event]:
        """Runs `run_async` on a private event loop in a thread and yields its events.

        For scripts without an event loop. The session service must be usable from that loop
        (the in-memory service and services built from a URL are).
        """
        results: queue.Queue[Any] = queue.Queue()

        async def pump() -> None:
            async for event in self.run_async(
                user_id=user_id,
                session_id=session_id,
                new_message=new_message,
                state_delta=state_delta,
            ):
                results.put(event)

        def target() -> None:
            try:
                asyncio.run(pump())
            except BaseException as exc:  # handed to the caller's thread below
                results.put(exc)
            finally:
                results.put(_DONE)

        thread = threading.Thread(target=target, name="openadk-runner", daemon=True)
        thread.start()
        while (item := results.get()) is not _DONE:
            if isinstance(item, BaseException):
                thread.join()
                raise item
            yield item
        thread.join()

    async def rewind_async(
        self, *, user_id: str, session_id: str, rewind_before_invocation_id: str
    ) -> None:
        """Rewinds a session to just before an invocation, as google-adk 2.13 does.

        Appends one event (author ``user``) with ``actions.rewind_before_invocation_id`` and a
        state delta restoring the session-scoped keys to their values before the invocation's
        first event (``app:``, ``user:`` and ``temp:`` keys are untouched). The events stay
        stored; the agent leaves the rewound ones out of the model's history. Rewinding again
        to an earlier invocation rewinds further.

        Raises:
            SessionNotFoundError: The session does not exist.
            InvocationNotFoundError: No event of the session has that invocation id.
            StaleSessionError: Another writer changed the session meanwhile (nothing written).
        """
        from openadk.errors import InvocationNotFoundError
        from openadk.events._rewind import rewind_state_delta

        session = await self.session_service.get_session(
            app_name=self.app_name, user_id=user_id, session_id=session_id
        )
        if session is None:
            raise SessionNotFoundError(f"Session not found: {session_id}")
        index = next(
            (
                i
                for i, event in enumerate(session.events)
                if event.invocation_id == rewind_before_invocation_id
            ),
            None,
        )
        if index is None:
            raise InvocationNotFoundError(f"Invocation ID not found: {rewind_before_invocation_id}")
        delta = rewind_state_delta(session.events, index, session.state)
        await self.session_service.append_event(
            session,
            Event(
                invocation_id=f"e-{uuid.uuid4()}",
                author="user",
                actions=EventActions(
                    rewind_before_invocation_id=rewind_before_invocation_id, state_delta=delta
                ),
            ),
        )

    async def close(self) -> None:
        """Flushes the session service and releases the agent's model."""
        await self.session_service.flush()
        await self.agent.canonical_model().close()


def _check_message(message: object) -> None:
    if not isinstance(message, types.Content):
        raise TypeError(
            f"new_message must be a google.genai.types.Content, got {type(message).__name__}; "
            f"for text use types.UserContent(parts=[types.Part(text=...)])."
        )
    if not message.parts:
        raise ValueError("No parts in the new_message.")
    if any(part.function_call for part in message.parts):
        raise ValueError("User message cannot contain function calls.")
