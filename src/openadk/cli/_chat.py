"""``openadk chat``: a terminal chat whose sessions persist in a database."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import uuid

from google.genai import types
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openadk.agents import LlmAgent
from openadk.errors import OpenAdkError
from openadk.events import Event
from openadk.models import MODEL_ENV_VAR
from openadk.runners import Runner
from openadk.sessions import BaseSessionService, Session

__all__ = ["run_chat"]

_SHOWN_ON_RESUME = 6
_HELP = "Commands: /state  /history  /sessions  /new  /quit"


def _choose_model(model: str | None, console: Console) -> str:
    if model:
        return model
    if os.environ.get(MODEL_ENV_VAR):
        return os.environ[MODEL_ENV_VAR]
    if os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY"):
        return "gemini-2.0-flash"
    console.print(
        "[yellow]No GOOGLE_API_KEY set: using the offline demo model "
        "(it answers from the conversation; it is not an AI).[/yellow]"
    )
    return "offline"


def _text(event: Event) -> str:
    if event.content is None or not event.content.parts:
        return ""
    return "".join(part.text or "" for part in event.content.parts if not part.thought).strip()


def _print_turn(console: Console, event: Event) -> None:
    if event.error_message:
        console.print(f"[red]{escape(event.author)} error:[/red] {escape(event.error_message)}")
        return
    text = _text(event)
    if event.get_function_calls():
        names = ", ".join(call.name or "?" for call in event.get_function_calls())
        console.print(f"[dim]{escape(event.author)} calls {escape(names)}[/dim]")
    elif text:
        who = "you" if event.author == "user" else event.author
        style = "bold cyan" if event.author == "user" else "bold green"
        console.print(f"[{style}]{escape(who)}>[/{style}] {escape(text)}")


class _Chat:
    def __init__(
        self,
        console: Console,
        service: BaseSessionService,
        runner: Runner,
        app_name: str,
        user_id: str,
    ) -> None:
        self.console = console
        self.service = service
        self.runner = runner
        self.app_name = app_name
        self.user_id = user_id

    async def open(self, session_id: str) -> Session:
        session = await self.service.create_session(
            app_name=self.app_name, user_id=self.user_id, session_id=session_id
        )
        if session.events:
            self.console.print(
                f"Resumed session [bold]{escape(session.id)}[/bold] "
                f"({len(session.events)} events). Last turns:"
            )
            for event in session.events[-_SHOWN_ON_RESUME:]:
                _print_turn(self.console, event)
        else:
            self.console.print(f"New session [bold]{escape(session.id)}[/bold].")
        return session

    async def show_state(self, session_id: str) -> None:
        session = await self._load(session_id)
        self.console.print_json(json.dumps(session.state, ensure_ascii=False, default=str))

    async def show_history(self, session_id: str) -> None:
        session = await self._load(session_id)
        if not session.events:
            self.console.print("(no messages yet)")
        for event in session.events:
            _print_turn(self.console, event)

    async def show_sessions(self, current: str) -> None:
        listed = await self.service.list_sessions(app_name=self.app_name, user_id=self.user_id)
        table = Table("session", "last update (UTC)", "state keys")
        for item in listed.sessions:
            when = datetime.datetime.fromtimestamp(item.last_update_time, datetime.timezone.utc)
            mark = " *" if item.id == current else ""
            table.add_row(
                escape(item.id) + mark,
                when.strftime("%Y-%m-%d %H:%M:%S"),
                escape(", ".join(sorted(item.state)) or "-"),
            )
        self.console.print(table)

    async def _load(self, session_id: str) -> Session:
        session = await self.service.get_session(
            app_name=self.app_name, user_id=self.user_id, session_id=session_id
        )
        if session is None:
            raise OpenAdkError(f"Session {session_id} no longer exists.")
        return session

    async def send(self, session_id: str, text: str) -> None:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for event in self.runner.run_async(
            user_id=self.user_id, session_id=session_id, new_message=message
        ):
            if not event.partial:
                _print_turn(self.console, event)


async def _chat(
    console: Console,
    service: BaseSessionService,
    agent: LlmAgent,
    app_name: str,
    user_id: str,
    session_id: str,
) -> int:
    runner = Runner(app_name=app_name, agent=agent, session_service=service)
    chat = _Chat(console, service, runner, app_name, user_id)
    await chat.open(session_id)
    console.print(f"[dim]{_HELP}[/dim]")
    while True:
        try:
            line = await asyncio.to_thread(console.input, "[bold cyan]you>[/bold cyan] ")
        except EOFError:
            console.print()
            return 0
        line = line.strip()
        if not line:
            continue
        command = line.lower()
        if command in ("/quit", "/exit", "quit"):
            return 0
        if command == "/state":
            await chat.show_state(session_id)
        elif command == "/history":
            await chat.show_history(session_id)
        elif command == "/sessions":
            await chat.show_sessions(session_id)
        elif command == "/new":
            session_id = f"chat-{uuid.uuid4().hex[:8]}"
            await chat.open(session_id)
        elif command.startswith("/"):
            console.print(f"Unknown command {escape(line)}. {_HELP}")
        else:
            await chat.send(session_id, line)


def run_chat(
    *,
    db_url: str,
    app_name: str,
    user_id: str,
    session_id: str,
    model: str | None,
    instruction: str,
) -> int:
    """Runs the interactive chat until /quit or end of input; returns the exit code."""
    console = Console(highlight=False)
    chosen = _choose_model(model, console)

    async def main() -> int:
        from openadk.sessions import DatabaseSessionService

        service = DatabaseSessionService(db_url)
        try:
            agent = LlmAgent(name="assistant", model=chosen, instruction=instruction)
            agent.canonical_model()  # fail now on an unknown model string
            console.print(
                f"[dim]openadk chat · model {escape(chosen)} · {escape(repr(service))}[/dim]"
            )
            return await _chat(console, service, agent, app_name, user_id, session_id)
        finally:
            await service.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    except (ValueError, OpenAdkError, ImportError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
