"""Argument parsing for ``openadk`` and its subcommands, and how every error is printed."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from openadk.cli._admin import add_admin_commands, run_admin
from openadk.cli._db import add_db_commands, run_db
from openadk.cli._output import EXIT_FAILED, clean, database_url, describe_error

__all__ = ["DEFAULT_DB", "default_db_url", "main"]

DEFAULT_DB = "sqlite+aiosqlite:///./sessions.db"
DB_HELP = (
    "database URL or .db/.sqlite file path (default: $OPENADK_DB, else $DATABASE_URL, else "
    f"{DEFAULT_DB}; $OPENADK_DB wins when both are set)"
)
EXIT_INTERRUPTED = 130

_EPILOG = """\
commands:
  openadk chat                    chat with an agent whose sessions persist
  openadk serve                   serve sessions over the Agent Engine Sessions REST API
  openadk apps                    the apps in a database, with session and user counts
  openadk sessions list           list sessions (tab-separated when piped; --json)
  openadk sessions show           a session's transcript and state (--json)
  openadk sessions export         sessions as JSON Lines
  openadk sessions import         sessions from JSON Lines
  openadk sessions delete         delete a session
  openadk sessions trim           delete a session's old events
  openadk sessions delete-user    erase a user (privacy)
  openadk sessions prune          delete old or expired sessions
  openadk db upgrade|check|current|stamp|downgrade
                                  schema migrations
  openadk migrate-from SOURCE DEST
                                  copy every session to another database

Every command but migrate-from takes --db; without it the database is $OPENADK_DB, else
$DATABASE_URL, else ./sessions.db. Errors are one line on standard error: exit code 2 when
the command could not run as asked (bad option or URL, missing file or extra), 1 when it
ran and failed. --debug (anywhere on the line) shows the traceback. `openadk COMMAND --help`
describes each command.
"""


def default_db_url() -> str:
    """``$OPENADK_DB``, else ``$DATABASE_URL``, else ``./sessions.db``."""
    return os.environ.get("OPENADK_DB") or os.environ.get("DATABASE_URL") or DEFAULT_DB


def _version() -> str:
    from importlib import metadata

    import openadk

    try:
        return metadata.version("openadk")
    except metadata.PackageNotFoundError:
        return openadk.__version__


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    parser = argparse.ArgumentParser(
        prog="openadk",
        description="A session store for AI agents, compatible with google-adk.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"openadk {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chat = commands.add_parser(
        "chat",
        parents=[common],
        help="chat with an agent whose sessions persist in a database",
        description=(
            "An interactive chat with an agent. Sessions live in ./sessions.db by default; "
            "run it again with the same --session to resume. Slash commands: /state, "
            "/history, /sessions, /new, /quit."
        ),
    )
    chat.add_argument("--db", default=None, metavar="URL", help=DB_HELP)
    chat.add_argument("--app", default="openadk_chat", help="app name (default: openadk_chat)")
    chat.add_argument("--user", default=None, help="user id (default: $USER)")
    chat.add_argument("--session", default="main", help="session id to resume (default: main)")
    chat.add_argument(
        "--model",
        default=None,
        help="model string, e.g. gemini-2.0-flash, openai/llama3, offline "
        "(default: gemini-2.0-flash with GOOGLE_API_KEY, else offline)",
    )
    chat.add_argument(
        "--instruction",
        default="You are a helpful assistant. Keep answers short.",
        help="the agent's instruction",
    )
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve sessions over the Agent Engine Sessions REST API",
        description=(
            "Serves the sessions of a database over the Vertex AI Agent Engine Sessions REST "
            "API, so VertexAiSessionService(api_endpoint=...) and google-adk's Vertex client "
            "can use it. Without an API key it listens on 127.0.0.1 only. Needs the server "
            'extra: pip install "openadk[server]".'
        ),
    )
    serve.add_argument("--db", default=None, metavar="URL", help=f"{DB_HELP}; or 'memory'")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument(
        "--api-key",
        default=None,
        help="require this key as a bearer token or x-goog-api-key (default: $OPENADK_API_KEY)",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=None, help="largest request body (default: 8 MiB)"
    )
    serve.add_argument(
        "--max-requests-in-flight",
        type=int,
        default=None,
        help="concurrent requests; more get 429 (default: no limit)",
    )
    serve.add_argument(
        "--max-bodies-in-flight",
        type=int,
        default=None,
        help="request bodies read or handled at once; more get 503 (default: 64)",
    )
    serve.add_argument(
        "--max-body-bytes-in-flight",
        type=int,
        default=None,
        help="body bytes read or handled at once; more get 503 (default: 64 MiB)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    add_admin_commands(commands, DB_HELP, [common])
    add_db_commands(commands, DB_HELP, [common])
    return parser


def _database(args: argparse.Namespace) -> str:
    """The database a command works on: ``--db``, else the environment, else the default."""
    return database_url(getattr(args, "db", None) or default_db_url())


def _run(args: argparse.Namespace) -> int:
    if args.command == "migrate-from":
        args.source, args.dest = database_url(args.source), database_url(args.dest)
    if args.command == "chat":
        from openadk.cli._chat import run_chat

        return run_chat(
            db_url=_database(args),
            app_name=args.app,
            user_id=args.user or os.environ.get("USER") or "user",
            session_id=args.session,
            model=args.model,
            instruction=args.instruction,
        )
    if args.command == "serve":
        from openadk.server import serve

        return serve(
            args.db or default_db_url(),  # serve also takes "memory"
            host=args.host,
            port=args.port,
            # An explicit --api-key '' is refused by serve; an empty variable counts as unset.
            api_key=(
                args.api_key
                if args.api_key is not None
                else os.environ.get("OPENADK_API_KEY") or None
            ),
            max_body_bytes=args.max_body_bytes,
            max_requests_in_flight=args.max_requests_in_flight,
            max_bodies_in_flight=args.max_bodies_in_flight,
            max_body_bytes_in_flight=args.max_body_bytes_in_flight,
            log_level=args.log_level,
        )
    if args.command == "db":
        return run_db(args, _database(args))
    return run_admin(args, _database(args))


def _quiet_broken_pipe() -> int:
    """The reader went away (``export | head``): stop without a message.

    Standard output is pointed at /dev/null so the interpreter's final flush cannot fail
    again; the exit code is the shell's for a command killed by SIGPIPE.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code.

    An expected error (bad URL or option, missing file or extra, storage failure) is one
    line on standard error, exit code 2 or 1; ``--debug`` adds the traceback.
    """
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    db_url = getattr(args, "db", None) or getattr(args, "source", None)
    try:
        return _run(args)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        try:
            if debug:
                traceback.print_exc()
            known = describe_error(error, db_url or default_db_url())
            if known is None:
                message = f"unexpected {type(error).__name__}: {error}"
                if not debug:
                    message += " (run again with --debug for the traceback)"
                print(f"error: {clean(message)}", file=sys.stderr)
                return EXIT_FAILED
            message, code = known
            # Our messages may span lines (a refusal with the command to run); what they quote
            # from storage is still escaped.
            print(f"error: {clean(message, keep_newlines=True)}", file=sys.stderr)
            return code
        except BrokenPipeError:
            return _quiet_broken_pipe()
