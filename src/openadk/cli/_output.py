"""What every ``openadk`` command shares: safe text, output modes, expected errors.

Stored data (ids, state, event text) is written by whoever talks to the agent, so none of it
reaches a terminal raw: control characters (ESC, BEL, C1, bidi overrides, ...) are shown as
escapes in every human-readable output, and JSON output escapes them too.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

__all__ = [
    "EXIT_FAILED",
    "EXIT_USAGE",
    "CliError",
    "clean",
    "database_url",
    "describe_error",
    "dumps_json",
    "is_terminal",
    "tsv_row",
]

EXIT_FAILED = 1
"""The command ran and something failed (a storage error, bad rows, conflicts)."""
EXIT_USAGE = 2
"""The command could not run as asked (bad URL or option, missing file or extra)."""

# C0 controls, DEL, C1 controls, and the invisible characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# What JSON leaves raw (DEL, C1, bidi) inside strings, as \u escapes.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text a terminal shows as written: control characters become escapes.

    Args:
        value: Anything; it is converted with ``str``.
        keep_newlines: Keep line breaks and tabs (a message's text); otherwise they are
            escaped too, so one value stays on one line.
    """
    pattern = _UNSAFE_KEEPING_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, str(value))


def database_url(text: str) -> str:
    """A database argument as the URL every command opens and checks.

    ``--db``, ``$OPENADK_DB``/``$DATABASE_URL`` and migrate-from's SOURCE and DEST all pass
    through here: the one place where the shared URL normalizer (bare ``*.db`` paths,
    ``postgres://``; Redis URLs go to the Redis normalizer) is applied, so the missing-file
    and same-file checks see what the service will open.
    """
    if "://" not in text and not text.lower().endswith((".db", ".sqlite", ".sqlite3")):
        return text  # not a URL nor a SQLite path ("memory" for serve): the caller's error
    from openadk.sessions._urls import is_redis_url, normalize_redis_url

    if is_redis_url(text):
        return normalize_redis_url(text)  # no SQLAlchemy needed for a Redis store
    if text.lower().startswith(("google-adk+redis://", "google-adk+rediss://")):
        return text  # migrate-from's SOURCE: google-adk's own Redis layout
    from openadk.sessions._dialects import normalize_url

    return normalize_url(text).render_as_string(hide_password=False)


def dumps_json(value: Any, *, indent: int | None = None) -> str:
    """JSON with every control or invisible character escaped, non-ASCII text kept."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, default=str)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def tsv_row(*fields: object) -> str:
    """One tab-separated line; tabs and newlines inside a field are escaped."""
    return "\t".join(clean(field) for field in fields)


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (standard output) is an interactive terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class CliError(Exception):
    """An expected failure: printed as one line, without a traceback.

    Attributes:
        exit_code: `EXIT_USAGE` or `EXIT_FAILED`.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# Modules an optional feature needs, and the extra that installs them.
_EXTRAS = {
    "fastapi": "server",
    "uvicorn": "server",
    "starlette": "server",
    "sqlalchemy": "sqlite",
    "alembic": "sqlite",
    "aiosqlite": "sqlite",
    "asyncpg": "postgres",
    "psycopg": "postgres",
    "aiomysql": "mysql",
    "asyncmy": "mysql",
    "pymysql": "mysql",
    "google.cloud.spanner": "spanner",
    "google.auth": "vertex",
    "httpx": "vertex",
}


def _missing_extra(error: ImportError, db_url: str | None) -> str:
    if "pip install" in str(error):
        return str(error)
    name = error.name or ""
    extra = next(
        (
            extra
            for module, extra in _EXTRAS.items()
            if name == module or name.startswith(module + ".")
        ),
        None,
    )
    if extra == "sqlite" and db_url:
        # SQLAlchemy is in every database extra: name the one for this URL.
        scheme = db_url.split(":", 1)[0]
        for prefix, choice in (
            ("postgres", "postgres"),
            ("mysql", "mysql"),
            ("mariadb", "mysql"),
            ("spanner", "spanner"),
        ):
            if scheme.startswith(prefix):
                extra = choice
    if extra is None:
        return f"{name or 'a module'} is not installed ({error}); install it with pip"
    return f'{name} is not installed: pip install "openadk[{extra}]"'


def describe_error(error: BaseException, db_url: str | None = None) -> tuple[str, int] | None:
    """The one line and exit code for an expected error, or None for a bug.

    Args:
        error: What the command raised.
        db_url: The database the command used, to name the right extra.
    """
    from openadk.errors import OpenAdkError

    if isinstance(error, CliError):
        return str(error), error.exit_code
    if isinstance(error, ImportError):
        return _missing_extra(error, db_url), EXIT_USAGE
    if isinstance(error, FileNotFoundError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", EXIT_USAGE
    if isinstance(error, OpenAdkError):
        return str(error), EXIT_FAILED
    if isinstance(error, (ValueError, LookupError)):
        return str(error), EXIT_USAGE
    if isinstance(error, OSError):
        return str(error), EXIT_FAILED
    return None
