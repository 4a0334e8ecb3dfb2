"""``openadk sessions ...`` and ``openadk migrate-from``: operating a session database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

__all__ = ["add_admin_commands", "run_admin"]


def add_admin_commands(commands: Any, db_help: str) -> None:
    """Adds ``sessions`` and ``migrate-from`` to the ``openadk`` parser."""
    sessions = commands.add_parser("sessions", help="list, show, export, import, delete, prune")
    verbs = sessions.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        parser.add_argument("--db", default=None, help=db_help)
        return parser

    listing = verb("list", "list sessions as a table")
    listing.add_argument("--app", required=True)
    listing.add_argument("--user", default=None, help="only this user's sessions")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--page-token", default=None)
    show = verb("show", "a session's events as a transcript, with its state")
    show.add_argument("--app", required=True)
    show.add_argument("--user", required=True)
    show.add_argument("session_id")
    export = verb("export", "write sessions as JSON Lines (google-adk's JSON)")
    export.add_argument("--app", required=True)
    export.add_argument("--user", default=None)
    export.add_argument("-o", "--output", default="-", help="file (default: standard output)")
    imported = verb("import", "read sessions from JSON Lines")
    imported.add_argument("file", help="a .jsonl file, or - for standard input")
    imported.add_argument("--replace", action="store_true", help="replace existing sessions")
    delete = verb("delete", "delete one session and its events")
    delete.add_argument("--app", required=True)
    delete.add_argument("--user", required=True)
    delete.add_argument("session_id")
    trim = verb("trim", "delete a session's old events, keeping the last N (whole invocations)")
    trim.add_argument("--app", required=True)
    trim.add_argument("--user", required=True)
    trim.add_argument("session_id")
    trim.add_argument("--keep-last", type=int, required=True, metavar="N")
    erase = verb("delete-user", "erase a user: sessions, events and user state (privacy)")
    erase.add_argument("--app", required=True)
    erase.add_argument("--user", required=True)
    prune = verb("prune", "delete sessions not updated for a while")
    prune.add_argument("--older-than", default=None, help="e.g. 30d, 12h, 2w")
    prune.add_argument("--expired", action="store_true", help="sessions past their ttl")
    prune.add_argument("--app", default=None)
    prune.add_argument("--dry-run", action="store_true")

    migrate = commands.add_parser(
        "migrate-from",
        help="copy every session between two databases (resumable, verified)",
        description="Copies app/user state, sessions and events from SOURCE to DEST. Rows "
        "already in DEST are skipped, so an interrupted copy can be run again.",
    )
    migrate.add_argument("source", help="source database URL")
    migrate.add_argument("dest", help="destination database URL")
    migrate.add_argument("--batch-size", type=int, default=500)


def run_admin(args: argparse.Namespace, db_url: str) -> int:
    """Runs an admin command; returns the exit code."""
    console = Console(highlight=False, stderr=False)
    errors = Console(highlight=False, stderr=True)
    try:
        if args.command == "migrate-from":
            return asyncio.run(_migrate(console, args.source, args.dest, args.batch_size))
        action: Callable[[Any, Console, argparse.Namespace], Awaitable[int]] = _VERBS[args.verb]
        # Files are opened here, outside the event loop.
        if args.verb == "import":
            source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
            with source:
                args.lines = source.read().splitlines()
        if args.verb == "export":
            args.out = (
                sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
            )
        try:
            return asyncio.run(
                _with_service(db_url, lambda service: action(service, console, args))
            )
        finally:
            if args.verb == "export" and args.out is not sys.stdout:
                args.out.close()
    except (ValueError, OSError, LookupError) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    except Exception as exc:  # a database failure: say what, not a traceback
        from openadk.errors import OpenAdkError

        if isinstance(exc, OpenAdkError):
            errors.print(f"[red]error:[/red] {escape(str(exc))}")
            return 1
        raise


async def _with_service(db_url: str, body: Callable[[Any], Awaitable[int]]) -> int:
    from openadk.sessions import DatabaseSessionService

    service = DatabaseSessionService(db_url)
    try:
        return await body(service)
    finally:
        await service.close()


async def _list(service: Any, console: Console, args: argparse.Namespace) -> int:
    page = await service.list_sessions(
        app_name=args.app, user_id=args.user, limit=args.limit, page_token=args.page_token
    )
    from openadk.sessions._admin import describe_time

    table = Table("user", "session", "last update (UTC)", "state keys")
    for session in page.sessions:
        import datetime

        when = datetime.datetime.fromtimestamp(session.last_update_time, datetime.timezone.utc)
        table.add_row(
            escape(session.user_id),
            escape(session.id),
            describe_time(when),
            escape(", ".join(sorted(session.state)) or "-"),
        )
    console.print(table)
    console.print(f"{len(page.sessions)} session(s)")
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}")
    return 0


async def _show(service: Any, console: Console, args: argparse.Namespace) -> int:
    session = await service.get_session(
        app_name=args.app, user_id=args.user, session_id=args.session_id
    )
    if session is None:
        console.print(f"No session {escape(args.session_id)} for user {escape(args.user)}.")
        return 1
    console.print(f"[bold]Session {escape(session.id)}[/bold] · {len(session.events)} events")
    for event in session.events:
        text = ""
        if event.content and event.content.parts:
            pieces = []
            for part in event.content.parts:
                if part.text:
                    pieces.append(part.text)
                elif part.function_call:
                    pieces.append(f"[calls {part.function_call.name}]")
                elif part.function_response:
                    pieces.append(f"[{part.function_response.name} answered]")
            text = " ".join(pieces)
        if event.error_message:
            text = f"error: {event.error_message}"
        delta = event.actions.state_delta
        suffix = f"  [dim]state {escape(json.dumps(delta, default=str))}[/dim]" if delta else ""
        console.print(f"[bold]{escape(event.author)}>[/bold] {escape(text)}{suffix}")
    console.print("[bold]state[/bold]")
    console.print_json(json.dumps(session.state, default=str))
    return 0


async def _export(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import export_sessions

    count = 0
    async for line in export_sessions(service, app_name=args.app, user_id=args.user):
        args.out.write(line + "\n")
        count += 1
    if args.output != "-":
        console.print(f"exported {count} session(s) to {escape(args.output)}")
    return 0


async def _import(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import import_sessions

    report = await import_sessions(service, args.lines, replace=args.replace)
    console.print(f"imported {report.imported}, skipped {report.skipped} (already there)")
    for error in report.errors:
        console.print(f"[red]{escape(error)}[/red]")
    return 1 if report.errors else 0


async def _delete(service: Any, console: Console, args: argparse.Namespace) -> int:
    found = await service.get_session(
        app_name=args.app,
        user_id=args.user,
        session_id=args.session_id,
        config=_no_events(),
    )
    if found is None:
        console.print(f"No session {escape(args.session_id)} for user {escape(args.user)}.")
        return 1
    await service.delete_session(app_name=args.app, user_id=args.user, session_id=args.session_id)
    console.print(f"deleted session {escape(args.session_id)}")
    return 0


def _no_events() -> Any:
    from openadk.sessions import GetSessionConfig

    return GetSessionConfig(num_recent_events=0)


async def _trim(service: Any, console: Console, args: argparse.Namespace) -> int:
    deleted = await service.trim_events(
        app_name=args.app,
        user_id=args.user,
        session_id=args.session_id,
        keep_last_events=args.keep_last,
    )
    console.print(f"deleted {deleted} event(s) from session {escape(args.session_id)}")
    return 0


async def _delete_user(service: Any, console: Console, args: argparse.Namespace) -> int:
    deleted = await service.delete_user(app_name=args.app, user_id=args.user)
    console.print(
        f"erased user {escape(args.user)}: {deleted} session(s), their events and user state"
    )
    return 0


async def _prune(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import parse_age, prune_sessions

    keys = await prune_sessions(
        service,
        older_than=None if args.older_than is None else parse_age(args.older_than),
        expired=args.expired,
        app_name=args.app,
        dry_run=args.dry_run,
    )
    verb = "would delete" if args.dry_run else "deleted"
    for app, user, session_id in keys:
        console.print(f"{verb} {escape(app)}/{escape(user)}/{escape(session_id)}")
    console.print(f"{verb} {len(keys)} session(s)")
    return 0


async def _migrate(console: Console, source_url: str, dest_url: str, batch_size: int) -> int:
    from openadk.sessions import DatabaseSessionService
    from openadk.sessions._admin import copy_database

    if source_url == dest_url:
        raise ValueError("SOURCE and DEST are the same database; give two different URLs.")
    source = DatabaseSessionService(source_url)
    dest = DatabaseSessionService(dest_url)
    try:
        with Progress(console=console, transient=False) as progress:
            tasks: dict[str, Any] = {}

            def report(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=total)
                progress.update(tasks[table], completed=done)

            result = await copy_database(source, dest, batch_size=batch_size, progress=report)
    finally:
        await source.close()
        await dest.close()
    table = Table("table", "in source", "copied", "already there", "missing after copy")
    for name, count in result.source.items():
        table.add_row(
            name,
            str(count),
            str(result.copied[name]),
            str(result.skipped[name]),
            str(result.missing[name]),
        )
    console.print(table)
    if not result.verified:
        console.print("[red]verification failed: some rows are missing in DEST[/red]")
        return 1
    console.print("verified: every source row is in DEST")
    return 0


_VERBS: dict[str, Callable[[Any, Console, argparse.Namespace], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "export": _export,
    "import": _import,
    "delete": _delete,
    "trim": _trim,
    "delete-user": _delete_user,
    "prune": _prune,
}
