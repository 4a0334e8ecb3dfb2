"""``openadk db ...``: versioned, in-place schema migrations of a session database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["add_db_commands", "run_db"]

EXIT_OK = 0
EXIT_BEHIND = 1
"""``db check``: the database needs ``db upgrade``; other commands: they failed."""
EXIT_ERROR = 2
"""``db check`` could not tell (unreachable database, ...); every refused request."""


def add_db_commands(
    commands: Any, db_help: str, common: list[argparse.ArgumentParser] | None = None
) -> None:
    """Adds ``db upgrade|check|current|stamp|downgrade`` to the ``openadk`` parser.

    Args:
        commands: The subparsers object of the ``openadk`` parser.
        db_help: The help of ``--db``.
        common: Parent parsers with the options every command takes (``--debug``).
    """
    common = common or []
    db = commands.add_parser(
        "db",
        parents=common,
        help="schema migrations: upgrade, check, current, stamp",
        description="Versioned, in-place schema migrations of a session database, including "
        "the upgrade of google-adk V0 (pickle) databases. See docs/migrations.md.",
    )
    verbs = db.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(
            name, parents=common, help=help_text, description=description
        )
        parser.add_argument("--db", default=None, metavar="URL", help=db_help)
        return parser

    upgrade = verb(
        "upgrade",
        "upgrade the schema in place (a no-op when current)",
        "Creates google-adk's V1 tables in an empty database, adopts a google-adk V1 database "
        "without changing it, or converts a google-adk V0 (pickle) database to V1 in place. "
        "On SQLite a backup copy of the file is made before converting.",
    )
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    upgrade.add_argument(
        "--v0-times",
        default="local",
        metavar="local|utc|ZONE",
        help="how to read the naive event times google-adk 1.x wrote: 'local' (this "
        "machine's time zone, as google-adk 1.19-1.21 wrote them; the default), 'utc', or "
        "the zone of the machine that wrote them, e.g. Europe/Paris",
    )
    upgrade.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="leave V0 rows that cannot be converted behind (reported, and kept in table "
        "openadk_v0_events) instead of stopping without change",
    )
    upgrade.add_argument(
        "--allow-unsafe-unpickling",
        action="store_true",
        help="let V0 pickles load any Python type: only for a database you trust",
    )
    upgrade.add_argument(
        "--no-backup", action="store_true", help="SQLite: do not copy the file first"
    )
    upgrade.add_argument(
        "--batch-size",
        type=int,
        default=500,
        metavar="N",
        help="V0 events converted per statement (default: 500)",
    )
    check = verb(
        "check",
        "exit 1 if the schema needs `db upgrade` (for deploy pipelines)",
        "Exits 0 when the database is at the newest revision, 1 when an upgrade is pending "
        "(and prints what it would do), 2 when it cannot tell (unreachable database, ...).",
    )
    current = verb(
        "current", "show the database's revision", "Shows the revision and what was found."
    )
    for looking in (check, current):
        looking.add_argument("--json", action="store_true", help="print JSON instead of text")
    stamp = verb(
        "stamp",
        "record a revision without changing any table",
        "Records REVISION in openadk_schema_version without touching the tables ('base' "
        "clears it). For databases whose schema you brought up to date by other means.",
    )
    stamp.add_argument("revision", help="a revision id (see `openadk db current`), or base")
    downgrade = verb(
        "downgrade",
        "refused: openadk does not downgrade",
        "openadk never turns a database back into an older schema; restore a backup.",
    )
    downgrade.add_argument("revision", nargs="?", default="-1", help="ignored: always refused")


def run_db(args: argparse.Namespace, db_url: str) -> int:
    """Runs an ``openadk db`` command; returns the exit code."""
    from openadk.errors import OpenAdkError

    out, err = sys.stdout, sys.stderr
    try:
        if args.verb == "downgrade":
            _print(
                err,
                "error: refusing to downgrade: openadk never turns a database back into an "
                "older schema. Restore the backup taken before the upgrade instead.",
            )
            return EXIT_ERROR
        if args.verb in ("check", "current"):
            from openadk.sessions._admin import require_existing

            # Looking must not create: opening a missing SQLite file would make an empty one.
            require_existing(db_url)
        if args.verb in ("check", "current") and args.json:
            return asyncio.run(_status_json(db_url, args.verb, out))
        if args.verb == "check":
            return asyncio.run(_check(db_url, out))
        if args.verb == "current":
            return asyncio.run(_current(db_url, out))
        if args.verb == "stamp":
            return asyncio.run(_stamp(db_url, args.revision, out))
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1.")
        return asyncio.run(_upgrade(db_url, args, out))
    except FileNotFoundError as error:
        _print(err, f"error: {error.strerror}: {error.filename}")
        return EXIT_ERROR
    except (ValueError, OpenAdkError) as error:
        _print(err, f"error: {error}")
        return EXIT_ERROR


def _print(stream: TextIO, text: str) -> None:
    print(text, file=stream, flush=True)


async def _check(db_url: str, out: TextIO) -> int:
    from openadk.sessions import migrations

    found = await migrations.status(db_url)
    _print(out, f"{found.url}: {found.describe()}")
    if found.problem:
        _print(out, f"cannot upgrade: {found.problem}")
        return EXIT_ERROR
    if not found.pending:
        if not found.recorded:
            _print(out, "up to date (run `openadk db upgrade` to record the revision)")
        else:
            _print(out, "up to date")
        return EXIT_OK
    for revision, what in found.pending:
        _print(out, f"pending: {revision}: {what}")
    _print(out, f"run: {migrations.upgrade_command(db_url)}")
    return EXIT_BEHIND


async def _status_json(db_url: str, verb: str, out: TextIO) -> int:
    from openadk.cli._output import dumps_json
    from openadk.sessions import migrations

    found = await migrations.status(db_url)
    _print(
        out,
        dumps_json(
            {
                "url": found.url,
                "found": found.describe(),
                "current": found.current,
                "recorded": found.recorded,
                "head": found.head,
                "pending": [{"revision": rev, "does": what} for rev, what in found.pending],
                "problem": found.problem,
            },
            indent=2,
        ),
    )
    if verb == "current":
        return EXIT_OK
    if found.problem:
        return EXIT_ERROR
    return EXIT_BEHIND if found.pending else EXIT_OK


async def _current(db_url: str, out: TextIO) -> int:
    from openadk.sessions import migrations

    found = await migrations.status(db_url)
    _print(out, f"{found.url}: {found.describe()}")
    _print(out, f"head: {found.head}")
    if found.problem:
        _print(out, f"cannot upgrade: {found.problem}")
    for revision, what in found.pending:
        _print(out, f"pending: {revision}: {what}")
    return EXIT_OK


async def _stamp(db_url: str, revision: str, out: TextIO) -> int:
    from openadk.sessions import migrations

    found = await migrations.stamp(db_url, revision)
    _print(out, f"stamped {found.url}: {found.describe()}")
    return EXIT_OK


def _progress_bar(stream: TextIO) -> Callable[[int, int], None]:
    """Draws ``indexing events [#####-----] 120/400`` on one line of ``stream``."""

    def draw(done: int, total: int) -> None:
        width = 30
        filled = width if total <= 0 else min(width, done * width // total)
        line = f"\rindexing events [{'#' * filled}{'-' * (width - filled)}] {done}/{total}"
        stream.write(line + ("\n" if done >= total else ""))
        stream.flush()

    return draw


async def _upgrade(db_url: str, args: argparse.Namespace, out: TextIO) -> int:
    from openadk.sessions import migrations

    report = await migrations.upgrade(
        db_url,
        revision=args.revision,
        v0_times=args.v0_times,
        skip_bad_rows=args.skip_bad_rows,
        allow_unsafe_unpickling=args.allow_unsafe_unpickling,
        backup=not args.no_backup,
        batch_size=args.batch_size,
        progress=_progress_bar(sys.stderr),
    )
    _print(out, f"{report.url}:")
    for line in report.summary():
        _print(out, f"  {line}")
    return EXIT_OK
