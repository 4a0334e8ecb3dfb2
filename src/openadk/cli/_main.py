"""Argument parsing for ``openadk`` and its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from openadk.cli._admin import add_admin_commands, run_admin
from openadk.cli._db import add_db_commands, run_db

__all__ = ["DEFAULT_DB", "default_db_url", "main"]

DEFAULT_DB = "sqlite+aiosqlite:///./sessions.db"


def default_db_url() -> str:
    """``$OPENADK_DB``, else ``$DATABASE_URL``, else ``./sessions.db``."""
    return os.environ.get("OPENADK_DB") or os.environ.get("DATABASE_URL") or DEFAULT_DB


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openadk", description="A session store for AI agents, compatible with google-adk."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chat = commands.add_parser(
        "chat",
        help="chat with an agent whose sessions persist in a database",
        description=(
            "An interactive chat with an agent. Sessions live in ./sessions.db by default; "
            "run it again with the same --session to resume. Slash commands: /state, "
            "/history, /sessions, /new, /quit."
        ),
    )
    chat.add_argument(
        "--db", default=None, help=f"database URL or .db file path (default: {DEFAULT_DB})"
    )
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
        help="serve sessions over the Agent Engine Sessions REST API",
        description=(
            "Serves the sessions of a database over the Vertex AI Agent Engine Sessions REST "
            "API, so VertexAiSessionService(api_endpoint=...) and google-adk's Vertex client "
            "can use it. Without an API key it listens on 127.0.0.1 only."
        ),
    )
    serve.add_argument(
        "--db",
        default=None,
        help=f"database URL, .db file path, or 'memory' (default: {DEFAULT_DB})",
    )
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
    db_help = f"database URL or .db file path (default: $DATABASE_URL or {DEFAULT_DB})"
    add_admin_commands(commands, db_help)
    add_db_commands(commands, db_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "chat":
        from openadk.cli._chat import run_chat

        return run_chat(
            db_url=args.db or default_db_url(),
            app_name=args.app,
            user_id=args.user or os.environ.get("USER") or "user",
            session_id=args.session,
            model=args.model,
            instruction=args.instruction,
        )
    if args.command == "serve":
        from openadk.server import serve

        return serve(
            args.db or default_db_url(),
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
        return run_db(args, args.db or default_db_url())
    if args.command in ("sessions", "migrate-from"):
        return run_admin(args, getattr(args, "db", None) or default_db_url())
    print(f"unknown command {args.command!r}", file=sys.stderr)  # pragma: no cover
    return 2  # pragma: no cover
