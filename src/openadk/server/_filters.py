"""The ``filter`` and ``orderBy`` expressions the list methods accept."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from openadk.server._errors import ApiError
from openadk.sessions._vertex import parse_time

__all__ = [
    "SessionsFilter",
    "check_order",
    "parse_sessions_filter",
    "parse_time_filter",
    "parse_user_filter",
]

_VALUE = r'(?:"((?:[^"\\]|\\.)*)"|([^\s"=<>]+))'
_USER = re.compile(rf"^\s*(?:user_id|userId)\s*=\s*{_VALUE}\s*$", re.DOTALL)
_TIME = re.compile(rf"^\s*timestamp\s*(>=|>)\s*{_VALUE}\s*$", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _value(match: re.Match[str]) -> str:
    quoted, bare = match.group(match.re.groups - 1), match.group(match.re.groups)
    return _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare


def parse_user_filter(text: str | None) -> str | None:
    """The user id of a sessions filter ``user_id="..."`` (or ``userId=...``); None for none.

    Raises:
        ApiError: Any other filter (400).
    """
    if text is None or not text.strip():
        return None
    match = _USER.match(text)
    if match is None:
        raise ApiError(
            400,
            f'Unsupported filter {text!r}: sessions can be filtered by user_id="..." only.',
        )
    return _value(match)


@dataclass
class SessionsFilter:
    """What a sessions ``filter`` asks for; every term must hold."""

    user_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    updated_after: float | None = None
    """At or after (Unix seconds)."""
    updated_before: float | None = None
    """Before (Unix seconds)."""


def _value_groups(name: str) -> str:
    return rf'(?:"(?P<{name}q>(?:[^"\\]|\\.)*)"|(?P<{name}b>[^\s"=<>]+))'


_TERM = re.compile(
    rf"""\s*(?:
        (?P<user>user_id|userId)\s*=\s*{_value_groups("u")}
      | labels\.(?P<label>[A-Za-z0-9_-]+)\s*=\s*{_value_groups("l")}
      | (?P<time>update_time|updateTime)\s*(?P<op>>=|<=|>|<|=)\s*{_value_groups("t")}
    )\s*""",
    re.VERBOSE | re.DOTALL,
)
_AND = re.compile(r"AND\s+")
_ONE_MICROSECOND = 1e-6
_SESSIONS_HELP = (
    'sessions can be filtered by user_id="...", labels.KEY="VALUE" and update_time with '
    ">=, >, <, <= or = and an RFC 3339 time, joined with AND"
)


def _group_value(match: re.Match[str], quoted: str, bare: str) -> str:
    text = match.group(quoted)
    return _ESCAPE.sub(r"\1", text) if text is not None else match.group(bare)


def parse_sessions_filter(text: str | None) -> SessionsFilter:
    """The terms of a sessions filter, e.g. ``user_id="u" AND labels.team="a"``.

    ``update_time`` takes ``>=``, ``>``, ``<``, ``<=`` and ``=``; stored times have microseconds,
    so ``>`` and ``<=`` move the bound by one microsecond.

    Raises:
        ApiError: Any other term, a time that is not RFC 3339, or a term given twice (400).
    """
    result = SessionsFilter()
    if text is None or not text.strip():
        return result
    position = 0
    while True:
        match = _TERM.match(text, position)
        if match is None:
            raise ApiError(400, f"Unsupported filter {text!r}: {_SESSIONS_HELP}.")
        if match.group("user") is not None:
            if result.user_id is not None:
                raise ApiError(400, f"Invalid filter {text!r}: user_id is given twice.")
            result.user_id = _group_value(match, "uq", "ub")
        elif match.group("label") is not None:
            key = match.group("label")
            if key in result.labels:
                raise ApiError(400, f"Invalid filter {text!r}: labels.{key} is given twice.")
            result.labels[key] = _group_value(match, "lq", "lb")
        else:
            _time_term(text, match, result)
        position = match.end()
        if position == len(text):
            return result
        joined = _AND.match(text, position)
        if joined is None:
            raise ApiError(400, f"Unsupported filter {text!r}: {_SESSIONS_HELP}.")
        position = joined.end()


def _time_term(text: str, match: re.Match[str], result: SessionsFilter) -> None:
    try:
        seconds = parse_time(_group_value(match, "tq", "tb"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter {text!r}: {exc}") from exc
    op = match.group("op")
    after = {">=": seconds, ">": seconds + _ONE_MICROSECOND, "=": seconds}.get(op)
    before = {"<": seconds, "<=": seconds + _ONE_MICROSECOND, "=": seconds + _ONE_MICROSECOND}.get(
        op
    )
    if after is not None:
        result.updated_after = (
            after if result.updated_after is None else max(result.updated_after, after)
        )
    if before is not None:
        result.updated_before = (
            before if result.updated_before is None else min(result.updated_before, before)
        )


def parse_time_filter(text: str | None) -> float | None:
    """The smallest timestamp an events filter ``timestamp>="RFC 3339"`` lets through.

    Raises:
        ApiError: Any other filter, or a time that is not RFC 3339 (400).
    """
    if text is None or not text.strip():
        return None
    match = _TIME.match(text)
    if match is None:
        raise ApiError(
            400,
            f"Unsupported filter {text!r}: events can be filtered by "
            'timestamp>="<RFC 3339 time>" only.',
        )
    try:
        seconds = parse_time(_value(match))
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter {text!r}: {exc}") from exc
    return math.nextafter(seconds, math.inf) if match.group(1) == ">" else seconds


def check_order(text: str | None, allowed: tuple[str, ...], what: str) -> None:
    """Accepts an ``orderBy`` naming the one order the server lists in.

    Raises:
        ApiError: Any other order (400).
    """
    if text is None or not text.strip():
        return
    words = text.split()
    if len(words) <= 2 and words[0] in allowed and words[1:] in ([], ["asc"]):
        return
    raise ApiError(
        400, f"Unsupported orderBy {text!r}: {what} are listed by {allowed[0]}, ascending."
    )
