"""The ``filter`` and ``orderBy`` expressions the list methods accept."""

from __future__ import annotations

import math
import re

from openadk.server._errors import ApiError
from openadk.sessions._vertex import parse_time

__all__ = ["check_order", "parse_time_filter", "parse_user_filter"]

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
