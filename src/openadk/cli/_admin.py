"""``openadk apps``, ``openadk sessions ...`` and ``openadk migrate-from``.

Output: a table on a terminal; tab-separated lines, one record a line and no header, when
standard output is a pipe or a file; JSON with ``--json``. Stored values never reach the
terminal raw (see `openadk.cli._output`). Expected failures raise `CliError` (or an error
`describe_error` knows) and `openadk.cli._main` prints them as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openadk.cli._output import (
    EXIT_FAILED,
    CliError,
    clean,
    dumps_json,
    is_terminal,
    tsv_row,
)

__all__ = ["DEFAULT_LIMIT", "add_admin_commands", "run_admin"]

DEFAULT_LIMIT = 50
"""Sessions per page of ``sessions list``."""


def _safe(value: object) -> str:
    """Stored text for rich markup: control characters escaped, then markup escaped."""
    return escape(clean(value))


def add_admin_commands(commands: Any, db_help: str, common: list[argparse.ArgumentParser]) -> None:
    """Adds ``apps``, ``sessions`` and ``migrate-from`` to the ``openadk`` parser.

    Args:
        commands: The subparsers object of the ``openadk`` parser.
        db_help: The help of ``--db``.
        common: Parent parsers with the options every command takes (``--debug``).
    """
    app_help = "the app's name (default: the only app in the database; see `openadk apps`)"
    json_help = "print JSON instead of a table or tab-separated lines"
    apps = commands.add_parser(
        "apps",
        parents=common,
        help="list the apps in a database, with session and user counts",
        description="Lists every app that has sessions, with how many sessions and distinct "
        "users it has. Tab-separated when not a terminal: app, sessions, users.",
    )
    apps.add_argument("--db", default=None, metavar="URL", help=db_help)
    apps.add_argument("--json", action="store_true", help=json_help)

    sessions = commands.add_parser(
        "sessions",
        parents=common,
        help="list, show, search, label, rename, fork, export, import, delete, trim, ...",
        description="Look at and maintain the sessions of a database. See docs/operations.md.",
    )
    verbs = sessions.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(
            name, parents=common, help=help_text, description=description
        )
        parser.add_argument("--db", default=None, metavar="URL", help=db_help)
        return parser

    listing = verb(
        "list",
        "list sessions (oldest update first)",
        "Lists sessions, oldest update first, a page at a time. Tab-separated when not a "
        "terminal: user, session id, last update (UTC), state keys; the next page's token "
        "is then printed on standard error.",
    )
    listing.add_argument("--app", default=None, metavar="NAME", help=app_help)
    listing.add_argument("--user", default=None, metavar="ID", help="only this user's sessions")
    listing.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"sessions per page (default: {DEFAULT_LIMIT})",
    )
    listing.add_argument(
        "--page-token",
        default=None,
        metavar="TOKEN",
        help="the token a previous page printed, for the next page",
    )
    listing.add_argument("--json", action="store_true", help=json_help)

    show = verb(
        "show",
        "a session's events as a transcript, with its state",
        "Prints each session's events as a transcript, with state changes and the state. A "
        "session that cannot be read is reported on standard error and the others are shown; "
        "the exit code is then 1.",
    )
    show.add_argument("--app", default=None, metavar="NAME", help=app_help)
    show.add_argument("--user", required=True, metavar="ID", help="the user the sessions belong to")
    show.add_argument("session_ids", nargs="+", metavar="SESSION_ID", help="session id(s)")
    show.add_argument("--json", action="store_true", help="print each session as google-adk's JSON")

    export = verb(
        "export",
        "write sessions as JSON Lines (google-adk's JSON)",
        "Writes one line of google-adk's camelCase session JSON (events included) per "
        "session. A session that cannot be read is reported on standard error and skipped; "
        "the exit code is then 1.",
    )
    export.add_argument("--app", default=None, metavar="NAME", help=app_help)
    export.add_argument("--user", default=None, metavar="ID", help="only this user's sessions")
    export.add_argument("-o", "--output", default="-", help="file (default: standard output)")

    imported = verb(
        "import",
        "read sessions from JSON Lines",
        "Writes each line's session in one transaction, exactly as exported. Sessions "
        "already there are skipped unless --replace. A bad line is reported with its number "
        "and skipped; the exit code is then 1.",
    )
    imported.add_argument("file", help="a .jsonl file, or - for standard input")
    imported.add_argument(
        "--replace", action="store_true", help="replace sessions that already exist"
    )

    delete = verb(
        "delete", "delete one session and its events", "Deletes a session and its events."
    )
    delete.add_argument("--app", default=None, metavar="NAME", help=app_help)
    delete.add_argument(
        "--user", required=True, metavar="ID", help="the user the session belongs to"
    )
    delete.add_argument("session_id", metavar="SESSION_ID", help="the session to delete")

    trim = verb(
        "trim",
        "delete a session's old events, keeping the last N (whole invocations)",
        "Deletes a session's oldest events, keeping the last N and the rest of the "
        "invocation the oldest kept one belongs to. The state is unchanged.",
    )
    trim.add_argument("--app", default=None, metavar="NAME", help=app_help)
    trim.add_argument("--user", required=True, metavar="ID", help="the user the session belongs to")
    trim.add_argument("session_id", metavar="SESSION_ID", help="the session to trim")
    trim.add_argument("--keep-last", type=int, required=True, metavar="N", help="events to keep")

    erase = verb(
        "delete-user",
        "erase a user: sessions, events and user state (privacy)",
        "Deletes every session, every event and the user state of one user of one app.",
    )
    erase.add_argument("--app", default=None, metavar="NAME", help=app_help)
    erase.add_argument("--user", required=True, metavar="ID", help="the user to erase")

    prune = verb(
        "prune",
        "delete sessions not updated for a while, or expired",
        "Deletes sessions (and their events) last updated longer ago than --older-than, "
        "and/or past their expiry. App and user state stay.",
    )
    prune.add_argument(
        "--older-than", default=None, metavar="AGE", help="e.g. 30d, 12h, 45m, 90s, 2w"
    )
    prune.add_argument("--expired", action="store_true", help="sessions past their ttl")
    prune.add_argument(
        "--app", default=None, metavar="NAME", help="only this app's sessions (default: all)"
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    prune.add_argument("--json", action="store_true", help=json_help)

    search = verb(
        "search",
        "find events by the words in their text (newest first)",
        "Finds events whose text holds every word of QUERY, newest first. Quotes, *, -, "
        "parentheses and NEAR are plain text. Tab-separated when not a terminal: time (UTC), "
        "user, session id, event id, author, snippet (matched words in **).",
    )
    search.add_argument("query", metavar="QUERY", help="the words to look for")
    search.add_argument("--app", default=None, metavar="NAME", help=app_help)
    search.add_argument("--user", default=None, metavar="ID", help="only this user's sessions")
    search.add_argument(
        "--limit", type=int, default=20, metavar="N", help="hits per page (default: 20)"
    )
    search.add_argument("--page-token", default=None, metavar="TOKEN", help="the next page")
    search.add_argument("--json", action="store_true", help=json_help)

    label = verb(
        "label",
        "set or remove a session's labels",
        "Sets labels KEY=VALUE and removes those given with --remove; the others stay. Keys "
        "are 1-63 lowercase letters, digits, '-' or '_' starting with a letter; values 0-63 "
        "of those.",
    )
    label.add_argument("--app", default=None, metavar="NAME", help=app_help)
    label.add_argument("--user", required=True, metavar="ID", help="the session's user")
    label.add_argument("session_id", metavar="SESSION_ID", help="the session to label")
    label.add_argument("changes", nargs="*", metavar="KEY=VALUE", help="labels to set")
    label.add_argument(
        "--remove", action="append", default=[], metavar="KEY", help="remove this label"
    )

    rename = verb("rename", "give a session a title", "Sets (or with '' removes) the title.")
    rename.add_argument("--app", default=None, metavar="NAME", help=app_help)
    rename.add_argument("--user", required=True, metavar="ID", help="the session's user")
    rename.add_argument("session_id", metavar="SESSION_ID", help="the session to title")
    rename.add_argument("title", metavar="TITLE", help="the new title ('' removes it)")

    fork = verb(
        "fork",
        "copy a session into a new one, up to an invocation",
        "Copies the session's events (up to and including --up-to INVOCATION_ID) into a new "
        "session with the state they built, its title and its labels plus forked-from. Prints "
        "the new session's id.",
    )
    fork.add_argument("--app", default=None, metavar="NAME", help=app_help)
    fork.add_argument("--user", required=True, metavar="ID", help="the session's user")
    fork.add_argument("session_id", metavar="SESSION_ID", help="the session to fork")
    fork.add_argument("--new-id", default=None, metavar="ID", help="the fork's id")
    fork.add_argument(
        "--up-to", default=None, metavar="INVOCATION_ID", help="the last invocation to copy"
    )

    migrate = commands.add_parser(
        "migrate-from",
        parents=common,
        help="copy every session between two databases (resumable, verified)",
        description="Copies app/user state, sessions and events from SOURCE to DEST. Rows "
        "already in DEST with the same content are skipped, so an interrupted copy can be "
        "run again. A session DEST already has under the same app/user/id with other "
        "content, and app/user state with other values, is a conflict: it is reported, "
        "nothing is changed for it, and the exit code is 1. SOURCE must exist; DEST is "
        "created if needed. Neither takes $OPENADK_DB or $DATABASE_URL.",
    )
    migrate.add_argument("source", metavar="SOURCE", help="source database URL")
    migrate.add_argument("dest", metavar="DEST", help="destination database URL")
    migrate.add_argument(
        "--batch-size",
        type=int,
        default=500,
        metavar="N",
        help="rows per transaction (default: 500)",
    )
    migrate.add_argument(
        "--rename-conflicts",
        action="store_true",
        help="copy a conflicting session under a new id (ID-<8 hex digits>, the same on "
        "every run) instead of leaving it behind",
    )


def run_admin(args: argparse.Namespace, db_url: str) -> int:
    """Runs an admin command; returns the exit code.

    Raises:
        CliError: And the errors `describe_error` knows, for `main` to print.
    """
    from openadk.sessions._admin import require_existing

    console = Console(highlight=False, soft_wrap=not is_terminal())
    if args.command == "migrate-from":
        return asyncio.run(_migrate(console, args))
    if args.command == "apps":
        require_existing(db_url)
        return asyncio.run(_with_service(db_url, lambda service: _apps(service, console, args)))
    action: Callable[[Any, Console, argparse.Namespace], Awaitable[int]] = _VERBS[args.verb]
    if args.verb != "import":
        # Reading, or deleting from, a file that is not there would create an empty one.
        require_existing(db_url)
    # Files are opened here, outside the event loop.
    if args.verb == "import":
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with source:
            try:
                args.lines = source.read().splitlines()
            except UnicodeDecodeError as error:
                name = "standard input" if args.file == "-" else args.file
                raise CliError(
                    f"{clean(name)} is not UTF-8 text (byte {error.start}), so not a JSON Lines "
                    "file of sessions."
                ) from error
    if args.verb == "export":
        args.out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        return asyncio.run(_with_service(db_url, lambda service: action(service, console, args)))
    finally:
        if args.verb == "export" and args.out is not sys.stdout:
            args.out.close()


async def _with_service(db_url: str, body: Callable[[Any], Awaitable[int]]) -> int:
    from openadk.sessions._urls import open_service

    service = open_service(db_url)
    try:
        return await body(service)
    finally:
        await service.close()


async def _app(service: Any, args: argparse.Namespace) -> str:
    """``--app``, or the only app of the database."""
    if args.app is not None:
        return str(args.app)
    from openadk.sessions._admin import list_apps

    apps = await list_apps(service)
    if len(apps) == 1:
        return apps[0].app_name
    if not apps:
        raise CliError("The database has no sessions, so no app to default to; give --app.")
    names = ", ".join(clean(app.app_name) for app in apps[:10])
    more = ", ..." if len(apps) > 10 else ""
    raise CliError(
        f"--app is needed: the database has {len(apps)} apps ({names}{more}); "
        "`openadk apps` lists them."
    )


def _print_table(console: Console, table: Table) -> None:
    """A table as wide as its content needs: ids are never cut or folded."""
    needed = console.measure(table, options=console.options.update_width(100_000)).maximum
    width = console.width
    if needed <= width:
        console.print(table)
        return
    # Wider than the terminal: the terminal wraps the lines, but every id stays whole and
    # can be copied, which a shortened "abc…" cannot.
    console.width = needed
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


async def _apps(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import list_apps

    apps = await list_apps(service)
    if args.json:
        rows = [{"appName": a.app_name, "sessions": a.sessions, "users": a.users} for a in apps]
        print(dumps_json({"apps": rows}, indent=2))
    elif not is_terminal():
        for app in apps:
            print(tsv_row(app.app_name, app.sessions, app.users))
    else:
        table = Table("app", "sessions", "users")
        for app in apps:
            table.add_row(_safe(app.app_name), str(app.sessions), str(app.users), end_section=False)
        for column in table.columns:
            column.no_wrap = True
        _print_table(console, table)
        console.print(f"{len(apps)} app(s)")
    return 0


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


async def _list(service: Any, console: Console, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1.")
    app = await _app(service, args)
    page = await service.list_sessions(
        app_name=app, user_id=args.user, limit=args.limit, page_token=args.page_token
    )
    if args.json:
        listed = [
            s.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"events"})
            for s in page.sessions
        ]
        print(dumps_json({"sessions": listed, "nextPageToken": page.next_page_token}, indent=2))
        return 0
    if not is_terminal():
        for session in page.sessions:
            keys = ",".join(sorted(session.state))
            print(tsv_row(session.user_id, session.id, _when(session.last_update_time), keys))
        if page.next_page_token:
            print(f"next page: --page-token {page.next_page_token}", file=sys.stderr)
        return 0
    console.print(f"app {_safe(app)}")
    table = Table("user", "session", "last update (UTC)", "state keys")
    for session in page.sessions:
        table.add_row(
            _safe(session.user_id),
            _safe(session.id),
            _when(session.last_update_time),
            _safe(", ".join(sorted(session.state)) or "-"),
        )
    for column in table.columns[:3]:
        column.no_wrap = True
    _print_table(console, table)
    console.print(f"{len(page.sessions)} session(s)")
    if page.next_page_token:
        # Plain print: rich would wrap a long token across lines.
        print(f"more: --page-token {page.next_page_token}", flush=True)
    return 0


def _event_text(event: Any) -> str:
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
    return text


def _unreadable(app: str, user: str, session_id: str, error: Exception) -> None:
    """Reports a session that cannot be read (a corrupt row) on standard error."""
    reason = clean(str(error).splitlines()[0] if str(error) else type(error).__name__)
    print(
        f"error: cannot read session {clean(session_id)} (app {clean(app)}, user "
        f"{clean(user)}): {reason}",
        file=sys.stderr,
        flush=True,
    )


async def _show(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.errors import StorageError

    app = await _app(service, args)
    failed = 0
    for session_id in args.session_ids:
        try:
            session = await service.get_session(
                app_name=app, user_id=args.user, session_id=session_id
            )
        except (ValueError, StorageError) as error:
            _unreadable(app, args.user, session_id, error)
            failed += 1
            continue
        if session is None:
            print(
                f"error: no session {clean(session_id)} for user {clean(args.user)} in app "
                f"{clean(app)}",
                file=sys.stderr,
            )
            failed += 1
            continue
        if args.json:
            data = session.model_dump(mode="json", by_alias=True, exclude_none=True)
            print(dumps_json(data, indent=2))
            continue
        console.print(
            f"[bold]Session {_safe(session.id)}[/bold] · app {_safe(app)} · user "
            f"{_safe(session.user_id)} · {len(session.events)} events"
        )
        for event in session.events:
            delta = event.actions.state_delta
            suffix = f"  [dim]state {escape(dumps_json(delta))}[/dim]" if delta else ""
            text = escape(clean(_event_text(event), keep_newlines=True))
            console.print(f"[bold]{_safe(event.author)}>[/bold] {text}{suffix}")
        console.print("[bold]state[/bold]")
        console.print(dumps_json(session.state, indent=2), markup=False, highlight=False)
    return EXIT_FAILED if failed else 0


async def _export(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import export_sessions

    app = await _app(service, args)
    count = 0
    bad: list[str] = []

    def report(key: tuple[str, str, str], error: Exception) -> None:
        _unreadable(*key, error)
        bad.append(key[2])

    out: TextIO = args.out
    async for line in export_sessions(service, app_name=app, user_id=args.user, on_error=report):
        out.write(line + "\n")
        count += 1
    out.flush()
    summary = f"exported {count} session(s) of app {clean(app)}"
    if args.output != "-":
        summary += f" to {clean(args.output)}"
    if bad:
        summary += f"; {len(bad)} could not be read (see above)"
    if args.output != "-":
        print(summary, flush=True)
    elif bad:
        # The data is on standard output; say what is missing from it on standard error.
        print(summary, file=sys.stderr, flush=True)
    return EXIT_FAILED if bad else 0


async def _import(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.sessions._admin import import_sessions

    report = await import_sessions(service, args.lines, replace=args.replace)
    for error in report.errors:
        print(f"error: {clean(error)}", file=sys.stderr)
    if report.not_carried:
        print(
            f"warning: {report.not_carried} session(s) imported without their title and "
            f"labels: {type(service).__name__} holds none",
            file=sys.stderr,
        )
    bad = f", {len(report.errors)} bad line(s)" if report.errors else ""
    print(
        f"imported {report.imported}, replaced {report.replaced}, skipped {report.skipped} "
        f"(already there){bad}"
    )
    return EXIT_FAILED if report.errors else 0


def _not_found(app: str, user: str, session_id: str) -> CliError:
    return CliError(
        f"No session {clean(session_id)} for user {clean(user)} in app {clean(app)}.",
        EXIT_FAILED,
    )


async def _delete(service: Any, console: Console, args: argparse.Namespace) -> int:
    app = await _app(service, args)
    found = await service.get_session(
        app_name=app, user_id=args.user, session_id=args.session_id, config=_no_events()
    )
    if found is None:
        raise _not_found(app, args.user, args.session_id)
    await service.delete_session(app_name=app, user_id=args.user, session_id=args.session_id)
    console.print(f"deleted session {_safe(args.session_id)}")
    return 0


def _no_events() -> Any:
    from openadk.sessions import GetSessionConfig

    return GetSessionConfig(num_recent_events=0)


async def _trim(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.errors import SessionNotFoundError

    app = await _app(service, args)
    try:
        deleted = await service.trim_events(
            app_name=app,
            user_id=args.user,
            session_id=args.session_id,
            keep_last_events=args.keep_last,
        )
    except SessionNotFoundError:
        raise _not_found(app, args.user, args.session_id) from None
    console.print(f"deleted {deleted} event(s) from session {_safe(args.session_id)}")
    return 0


async def _delete_user(service: Any, console: Console, args: argparse.Namespace) -> int:
    app = await _app(service, args)
    deleted = await service.delete_user(app_name=app, user_id=args.user)
    console.print(
        f"erased user {_safe(args.user)}: {deleted} session(s), their events and user state"
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
    if args.json:
        rows = [{"appName": a, "userId": u, "id": s} for a, u, s in keys]
        print(dumps_json({"dryRun": args.dry_run, "sessions": rows}, indent=2))
        return 0
    for app, user, session_id in keys:
        if is_terminal():
            console.print(f"{verb} {_safe(app)}/{_safe(user)}/{_safe(session_id)}")
        else:
            print(tsv_row(app, user, session_id))
    print(f"{verb} {len(keys)} session(s)", file=sys.stdout if is_terminal() else sys.stderr)
    return 0


async def _migrate(console: Console, args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from openadk.sessions import DatabaseSessionService
    from openadk.sessions._admin import (
        copy_database,
        require_existing,
        same_database,
        sqlite_file,
    )

    if args.batch_size < 1:
        raise CliError("--batch-size must be at least 1.")
    if args.source == args.dest or same_database(args.source, args.dest):
        raise CliError("SOURCE and DEST are the same database; give two different databases.")
    require_existing(args.source, "source database")
    source_file = sqlite_file(args.source)
    if source_file is not None and source_file.stat().st_size == 0:
        # Opening it would write a database header into it: refuse before touching it.
        raise CliError(f"SOURCE {clean(source_file)} is an empty file: there is nothing to copy.")
    from openadk.sessions._urls import is_redis_url

    if is_redis_url(args.dest) or is_redis_url(args.source) or "+redis" in args.source[:20]:
        return await _migrate_with_redis(console, args)
    source = DatabaseSessionService(args.source)
    dest = DatabaseSessionService(args.dest)
    try:
        with Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            tasks: dict[str, Any] = {}

            def report(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=total)
                progress.update(tasks[table], completed=done)

            result = await copy_database(
                source,
                dest,
                batch_size=args.batch_size,
                progress=report,
                rename_conflicts=args.rename_conflicts,
            )
    finally:
        await source.close()
        await dest.close()
    return _copy_summary(console, result)


def _copy_summary(console: Console, result: Any) -> int:
    """Prints the conflicts and the per-table counts of a copy; returns the exit code."""
    for conflict in result.conflicts:
        print(f"conflict: {clean(conflict.describe())}", file=sys.stderr, flush=True)
    for left_out in result.not_carried:
        print(f"warning: not copied: {clean(left_out)}", file=sys.stderr, flush=True)
    table = Table("table", "in source", "copied", "already there", "conflict", "missing")
    for name, count in result.source.items():
        table.add_row(
            name,
            str(count),
            str(result.copied[name]),
            str(result.skipped[name]),
            str(result.conflicted[name]),
            str(result.missing[name]),
        )
    table.columns[0].no_wrap = True
    _print_table(console, table)
    if result.indexed:
        console.print(f"search index: {result.indexed} copied event(s) indexed in DEST")
    if not result.verified:
        console.print("[red]verification failed: some rows are missing in DEST[/red]")
        return EXIT_FAILED
    unresolved = result.unresolved
    if unresolved:
        sessions = sum(1 for c in unresolved if c.table == "sessions")
        hint = " (--rename-conflicts copies the sessions under new ids)" if sessions else ""
        print(
            f"error: {len(unresolved)} conflict(s) left as they were in DEST{hint}; every "
            "other source row is in DEST",
            file=sys.stderr,
        )
        return EXIT_FAILED
    console.print("verified: every source row is in DEST")
    return 0


async def _migrate_with_redis(console: Console, args: argparse.Namespace) -> int:
    """migrate-from with Redis on either side, or google-adk's Redis layout as SOURCE."""
    from openadk.sessions._redis_copy import AdkRedisSource, copy_with_redis, is_adk_redis_url
    from openadk.sessions._urls import open_service

    source: Any = (
        AdkRedisSource(args.source) if is_adk_redis_url(args.source) else open_service(args.source)
    )
    dest = open_service(args.dest)
    try:
        result = await copy_with_redis(source, dest, rename_conflicts=args.rename_conflicts)
    finally:
        await source.close()
        await dest.close()
    return _copy_summary(console, result)


async def _search(service: Any, console: Console, args: argparse.Namespace) -> int:
    app = await _app(service, args)
    found = await service.search_events(
        app_name=app,
        query=args.query,
        user_id=args.user,
        limit=args.limit,
        page_token=args.page_token,
    )
    if args.json:
        print(dumps_json(found.model_dump(mode="json"), indent=2))
        return 0
    if not is_terminal():
        for hit in found.hits:
            print(
                tsv_row(
                    _when(hit.timestamp),
                    hit.user_id,
                    hit.session_id,
                    hit.event_id,
                    hit.author,
                    hit.snippet,
                )
            )
        if found.next_page_token:
            print(f"next page: --page-token {found.next_page_token}", file=sys.stderr)
        return 0
    table = Table("time (UTC)", "user", "session", "author", "snippet")
    for hit in found.hits:
        table.add_row(
            _when(hit.timestamp),
            _safe(hit.user_id),
            _safe(hit.session_id),
            _safe(hit.author),
            _safe(hit.snippet).replace("**", ""),
        )
    _print_table(console, table)
    if found.next_page_token:
        console.print(f"next page: --page-token {escape(found.next_page_token)}")
    return 0


async def _label(service: Any, console: Console, args: argparse.Namespace) -> int:
    app = await _app(service, args)
    found = await service.get_session(
        app_name=app, user_id=args.user, session_id=args.session_id, config=_no_events()
    )
    if found is None:
        raise _not_found(app, args.user, args.session_id)
    labels = dict(found.labels)
    if not args.changes and not args.remove:
        raise CliError("Give labels to set (KEY=VALUE) or to remove (--remove KEY).")
    for change in args.changes:
        key, equals, value = change.partition("=")
        if not equals:
            raise CliError(f"{clean(change)!r}: give KEY=VALUE (or --remove KEY).")
        labels[key] = value
    for key in args.remove:
        labels.pop(key, None)
    updated = await service.update_session(
        app_name=app, user_id=args.user, session_id=args.session_id, labels=labels
    )
    shown = ", ".join(f"{k}={v}" for k, v in sorted(updated.labels.items())) or "(none)"
    console.print(f"labels of {_safe(args.session_id)}: {_safe(shown)}")
    return 0


async def _rename(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.errors import SessionNotFoundError

    app = await _app(service, args)
    try:
        await service.update_session(
            app_name=app,
            user_id=args.user,
            session_id=args.session_id,
            display_name=args.title or None,
        )
    except SessionNotFoundError as error:
        raise _not_found(app, args.user, args.session_id) from error
    console.print(f"title of {_safe(args.session_id)}: {_safe(args.title or '(none)')}")
    return 0


async def _fork(service: Any, console: Console, args: argparse.Namespace) -> int:
    from openadk.errors import SessionNotFoundError

    app = await _app(service, args)
    try:
        fork = await service.fork_session(
            app_name=app,
            user_id=args.user,
            session_id=args.session_id,
            new_session_id=args.new_id,
            up_to_invocation_id=args.up_to,
        )
    except SessionNotFoundError as error:
        raise _not_found(app, args.user, args.session_id) from error
    print(fork.id)
    return 0


_VERBS: dict[str, Callable[[Any, Console, argparse.Namespace], Awaitable[int]]] = {
    "search": _search,
    "label": _label,
    "rename": _rename,
    "fork": _fork,
    "list": _list,
    "show": _show,
    "export": _export,
    "import": _import,
    "delete": _delete,
    "trim": _trim,
    "delete-user": _delete_user,
    "prune": _prune,
}
