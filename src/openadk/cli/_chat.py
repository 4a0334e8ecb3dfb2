"""``openadk chat``: a terminal chat whose sessions persist in a database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from google.genai import types
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openadk.agents import LlmAgent, ToolContext, fill_instruction
from openadk.errors import OpenAdkError, StorageError
from openadk.events import Event
from openadk.models import MODEL_ENV_VAR
from openadk.runners import Runner
from openadk.sessions import BaseSessionService, Session

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["history_path", "run_chat"]

_T = TypeVar("_T")
_SHOWN_ON_RESUME = 6
_HELP = "Commands: /state  /history  /sessions  /new  /quit (or Ctrl-D). Ctrl-C cancels."
_HISTORY_LINES = 1000
_FIRST_RETRY_S = 0.5
_LAST_RETRY_S = 8.0


def remember(key: str, value: str, tool_context: ToolContext) -> dict[str, Any]:
    """Saves a fact in the session state, e.g. the user's name under "user:name".

    Args:
        key: The state key. "user:" keys are shared by all of this user's sessions,
            "app:" keys by every user, other keys belong to this session only.
        value: The fact to keep.
        tool_context: Given by the agent, not by the model.
    """
    tool_context.state[key] = value
    return {"key": key, "saved": True}


def recall(key: str, tool_context: ToolContext) -> dict[str, Any]:
    """Looks a fact up in the session state; its value is null when it is not known.

    Args:
        key: The state key, e.g. "user:name".
        tool_context: Given by the agent, not by the model.
    """
    return {"key": key, "value": tool_context.state.get(key)}


def history_path(url: URL | str) -> Path:
    """Where the chat keeps the typed lines for the database at ``url``.

    ``$XDG_STATE_HOME/openadk/chat-history/<digest>`` (``~/.local/state/...`` by default), one file
    per database: the digest is taken of the URL without its password, with a SQLite file's
    path made absolute, so ``./sessions.db`` in two folders are two histories.
    """
    if isinstance(url, str):
        rendered = url  # a Redis URL, its password already hidden
    else:
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            url = url.set(database=str(Path(str(url.database)).resolve()))
        rendered = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(rendered.encode()).hexdigest()[:16]
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "openadk" / "chat-history" / digest


class _LineEditor:
    """Reads lines with GNU readline (arrow keys, Up for history) when the terminal has one."""

    def __init__(self, console: Console, history: Path | None) -> None:
        self._console = console
        self._history = history
        self._readline: Any = None
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return
        try:
            import readline
        except ImportError:  # Windows without pyreadline: plain input() still works
            return
        self._readline = readline
        readline.set_history_length(_HISTORY_LINES)
        if history is not None and history.exists():
            with contextlib.suppress(OSError):
                readline.read_history_file(history)
                # Lines are appended one by one; this keeps the file to the last 1,000.
                readline.write_history_file(history)

    @property
    def can_prefill(self) -> bool:
        """Whether a line can be put back on the prompt for the user to send again."""
        return self._readline is not None

    def prompt(self) -> str:
        if self._readline is not None and self._console.color_system is not None:
            # \001 and \002 tell readline the escape codes take no room on the line.
            return "\001\033[1;36m\002you>\001\033[0m\002 "
        return "you> "

    def read(self, prefill: str = "") -> str:
        """Reads one line; raises EOFError on Ctrl-D and KeyboardInterrupt on Ctrl-C."""
        rl = self._readline
        if rl is not None and prefill:
            rl.set_startup_hook(lambda: rl.insert_text(prefill))
        try:
            line = input(self.prompt())
        finally:
            if rl is not None:
                rl.set_startup_hook(None)
        if rl is not None and line.strip():
            self._save(line)
        return line

    def _save(self, line: str) -> None:
        if self._history is None:
            return
        try:
            self._history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self._history.exists():
                # What a user types may be private: the file is theirs alone.
                self._history.touch(mode=0o600)
            if hasattr(self._readline, "append_history_file"):
                self._readline.append_history_file(1, self._history)
            else:  # macOS's libedit has no append
                self._readline.write_history_file(self._history)
        except OSError as error:
            self._console.print(f"[dim]history not saved: {escape(str(error))}[/dim]")
            self._history = None


class _Loop:
    """One event loop for the whole chat; Ctrl-C cancels the coroutine being run, not the chat."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Runs ``coro``; raises KeyboardInterrupt when Ctrl-C cancelled it."""
        task = self.loop.create_task(coro)
        interrupted = False

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupted
            if interrupted or task.done():
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()
            self.loop.call_soon_threadsafe(lambda: None)  # wake the loop up to see it

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return self.loop.run_until_complete(task)
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


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


def _check_instruction(agent: LlmAgent, state: Mapping[str, Any]) -> None:
    """Raises ValueError with google-adk's message when the instruction needs a missing key."""
    try:
        fill_instruction(agent.instruction, state, agent.name)
    except KeyError as error:
        missing = error.args[0] if error.args else str(error)
        raise ValueError(
            f"{missing} The instruction cannot be filled from this session's state: set the key "
            f"first, or write {{name?}} to make a placeholder optional."
        ) from None


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
        calls = ", ".join(
            f"{call.name}({', '.join(f'{k}={v!r}' for k, v in (call.args or {}).items())})"
            for call in event.get_function_calls()
        )
        console.print(f"[dim]{escape(event.author)} calls {escape(calls)}[/dim]")
    elif event.get_function_responses():
        return
    elif text:
        who = "you" if event.author == "user" else event.author
        style = "bold cyan" if event.author == "user" else "bold green"
        console.print(f"[{style}]{escape(who)}>[/{style}] {escape(text)}")


class _Chat:
    def __init__(
        self,
        console: Console,
        service: BaseSessionService,
        agent: LlmAgent,
        app_name: str,
        user_id: str,
    ) -> None:
        self.console = console
        self.service = service
        self.agent = agent
        self.runner = Runner(app_name=app_name, agent=agent, session_service=service)
        self.app_name = app_name
        self.user_id = user_id
        self.stored = False
        """Whether the message being sent is stored (so a retry must not store it again)."""

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

    async def shared_state(self, session_id: str) -> dict[str, Any]:
        """The app: and user: state a new session of this user would start with."""
        session = await self._load(session_id)
        return {k: v for k, v in session.state.items() if k.startswith(("app:", "user:"))}

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
        """Sends one message and prints the answer, retrying while the database is down.

        The message is stored at most once: after it is stored, a retry only asks the agent
        again to answer it.
        """
        self.stored = False
        delay = _FIRST_RETRY_S
        failed = False
        while True:
            try:
                await self._turn(session_id, text, failed)
                return
            except StorageError as error:
                kept = "stored" if self.stored else "kept, not sent yet"
                if not failed:
                    self.console.print(
                        f"[yellow]The database is not answering: {escape(str(error))}[/yellow]"
                    )
                failed = True
                self.console.print(
                    f"[yellow]Retrying in {delay:g} s; your message is {kept} "
                    "(Ctrl-C to stop).[/yellow]"
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LAST_RETRY_S)

    async def _turn(self, session_id: str, text: str, recovering: bool) -> None:
        message = None
        if not self.stored:
            message = types.Content(role="user", parts=[types.Part(text=text)])
        async for event in self.runner.run_async(
            user_id=self.user_id,
            session_id=session_id,
            new_message=message,
            yield_user_message=True,
        ):
            if recovering:
                self.console.print("[dim](the database answers again)[/dim]")
                recovering = False
            if event.author == "user":
                # The runner yields the user's event once it is stored.
                self.stored = True
                continue
            if not event.partial:
                _print_turn(self.console, event)


def _run_loop(loop: _Loop, chat: _Chat, editor: _LineEditor, session_id: str) -> int:
    console = chat.console
    prefill = ""
    while True:
        try:
            line = editor.read(prefill)
        except EOFError:
            console.print()
            return 0
        except KeyboardInterrupt:
            # Ctrl-C at the prompt drops the line being typed; only Ctrl-D or /quit leave.
            console.print()
            prefill = ""
            continue
        prefill = ""
        line = line.strip()
        if not line:
            continue
        command = line.lower()
        if command in ("/quit", "/exit", "quit"):
            return 0
        try:
            if command == "/state":
                loop.run(chat.show_state(session_id))
            elif command == "/history":
                loop.run(chat.show_history(session_id))
            elif command == "/sessions":
                loop.run(chat.show_sessions(session_id))
            elif command == "/new":
                new_id = f"chat-{uuid.uuid4().hex[:8]}"
                _check_instruction(chat.agent, loop.run(chat.shared_state(session_id)))
                loop.run(chat.open(new_id))
                session_id = new_id
            elif command.startswith("/"):
                console.print(f"Unknown command {escape(line)}. {_HELP}")
            else:
                loop.run(chat.send(session_id, line))
        except KeyboardInterrupt:
            console.print()
            if command.startswith("/"):
                console.print("[dim](cancelled)[/dim]")
            elif chat.stored:
                console.print("[dim](answer cancelled; your message is stored)[/dim]")
            elif editor.can_prefill:
                console.print(
                    "[dim](cancelled; your message was not sent: it is back on the line)[/dim]"
                )
                prefill = line
            else:
                console.print("[dim](cancelled; your message was not sent)[/dim]")
        except (StorageError, ValueError, KeyError, OpenAdkError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            console.print(f"[red]error:[/red] {escape(str(message))}")
            if not command.startswith("/") and not chat.stored:
                prefill = line


@contextlib.contextmanager
def _quiet_runner_log() -> Iterator[None]:
    # The chat prints a turn's error itself; the Runner's warning would say it twice.
    logger = logging.getLogger("openadk.runners")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


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
    loop = _Loop()
    service: BaseSessionService | None = None
    try:
        from openadk.sessions._urls import is_redis_url, open_service, redact_redis_url

        service = open_service(db_url)
        agent = LlmAgent(
            name="assistant", model=chosen, instruction=instruction, tools=[remember, recall]
        )
        agent.canonical_model()  # fail now on an unknown model string
        console.print(
            f"[dim]openadk chat · app {escape(app_name)} · user {escape(user_id)} · "
            f"model {escape(chosen)} · {escape(repr(service))}[/dim]"
        )
        chat = _Chat(console, service, agent, app_name, user_id)
        session = loop.run(chat.open(session_id))
        _check_instruction(agent, session.state)
        console.print(f"[dim]{_HELP}[/dim]")
        where: Any = redact_redis_url(db_url) if is_redis_url(db_url) else service.engine.url  # type: ignore[attr-defined]
        editor = _LineEditor(console, history_path(where))
        with _quiet_runner_log():
            return _run_loop(loop, chat, editor, session_id)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OpenAdkError, ImportError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    finally:
        if service is not None:
            with contextlib.suppress(Exception):
                loop.run(service.close())
        loop.close()
