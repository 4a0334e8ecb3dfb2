"""Argument parsing for ``openadk`` and its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

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
    chat.add_argument("--db", default=None, help=f"database URL (default: {DEFAULT_DB})")
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
    print(f"unknown command {args.command!r}", file=sys.stderr)  # pragma: no cover
    return 2  # pragma: no cover
