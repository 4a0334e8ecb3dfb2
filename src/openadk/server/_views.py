"""What the session browser shows of a session and its events, as plain data for the templates.

Nothing here writes HTML: the templates escape every value. What is decided here is what people
read: a message's text, a tool call with its arguments, a result, an error, a state change, and
how much of a long value is shown before the rest is left to the event's raw JSON.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openadk.events import Event
from openadk.sessions import State

__all__ = [
    "MAX_JSON",
    "MAX_TEXT",
    "EventView",
    "PartView",
    "StateView",
    "clip",
    "event_view",
    "exact_time",
    "pretty",
    "relative_time",
    "state_view",
    "visible",
]

MAX_TEXT = 4000
"""Characters of a message shown before "N more characters"."""
MAX_JSON = 3000
"""Characters of a JSON value (arguments, a result, a state value) shown before the rest."""
MAX_TITLE = 120

# C0 and C1 control characters but tab and newline, and the bidirectional embeddings,
# overrides and isolates: shown as escapes (``\x1b``, ``\u202e``), so a terminal escape
# sequence reads as text and moves nothing, and no text can reverse what follows it.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_control(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with control characters and bidi overrides shown as escapes (backslash x1b)."""
    return _CONTROLS.sub(_escape_control, text)


def clip(text: str, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``text`` and how many were left out."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def pretty(value: Any) -> str:
    """A JSON value for people: indented, non-ASCII kept."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (ValueError, RecursionError):
        return repr(value)


def exact_time(stamp: float) -> str:
    """Unix seconds as ``2026-12-02 14:05:09.123 UTC``."""
    try:
        moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return repr(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


def relative_time(stamp: float, now: float) -> str:
    """``just now``, ``12 s ago``, ``5 min ago``, ``3 h ago``, ``4 d ago``, then the date."""
    ago = now - stamp
    if ago < -1:
        return "in the future"
    if ago < 2:
        return "just now"
    if ago < 60:
        return f"{int(ago)} s ago"
    if ago < 3600:
        return f"{int(ago // 60)} min ago"
    if ago < 86400:
        return f"{int(ago // 3600)} h ago"
    if ago < 30 * 86400:
        return f"{int(ago // 86400)} d ago"
    return exact_time(stamp)[:10]


@dataclass
class PartView:
    """One part of an event's content.

    ``kind`` is ``text``, ``thought``, ``call``, ``result``, ``code``, ``code-result``,
    ``data`` or ``other``.
    """

    kind: str
    title: str = ""
    text: str = ""
    more: int = 0
    """Characters of ``text`` left out (the raw JSON has them)."""


@dataclass
class DeltaItem:
    scope: str
    key: str
    value: str
    more: int = 0


@dataclass
class EventView:
    """An event as the conversation shows it."""

    id: str
    author: str
    role: str
    """``user``, ``agent`` or ``system`` (no author): the bubble's side and colour."""
    timestamp: float
    invocation_id: str
    parts: list[PartView] = field(default_factory=list)
    error: str | None = None
    delta: list[DeltaItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Actions worth a line: a transfer, an escalation, artifacts, a rewind, partial."""


def _json_part(kind: str, title: str, value: Any) -> PartView:
    text, more = clip(pretty(value), MAX_JSON)
    return PartView(kind, title, text, more)


def event_view(event: Event) -> EventView:
    """What the page shows of ``event``."""
    author = event.author or ""
    role = "user" if author == "user" else ("agent" if author else "system")
    view = EventView(
        id=event.id, author=author, role=role, timestamp=event.timestamp,
        invocation_id=event.invocation_id,
    )  # fmt: skip
    content = event.content
    for part in (content.parts or []) if content is not None else []:
        if part.function_call is not None:
            call = part.function_call
            view.parts.append(_json_part("call", call.name or "(unnamed tool)", call.args or {}))
        elif part.function_response is not None:
            result = part.function_response
            view.parts.append(
                _json_part("result", result.name or "(unnamed tool)", result.response or {})
            )
        elif part.executable_code is not None:
            code, more = clip(part.executable_code.code or "", MAX_TEXT)
            language = str(part.executable_code.language or "code").lower()
            view.parts.append(PartView("code", language, code, more))
        elif part.code_execution_result is not None:
            output, more = clip(part.code_execution_result.output or "", MAX_TEXT)
            outcome = str(part.code_execution_result.outcome or "")
            view.parts.append(PartView("code-result", outcome, output, more))
        elif part.text is not None:
            text, more = clip(part.text, MAX_TEXT)
            view.parts.append(PartView("thought" if part.thought else "text", "", text, more))
        elif part.inline_data is not None:
            blob = part.inline_data
            size = len(blob.data or b"")
            view.parts.append(PartView("data", blob.mime_type or "data", f"{size} bytes"))
        elif part.file_data is not None:
            view.parts.append(
                PartView("data", part.file_data.mime_type or "file", part.file_data.file_uri or "")
            )
        else:
            dumped = part.model_dump(mode="json", exclude_none=True)
            view.parts.append(_json_part("other", ", ".join(sorted(dumped)) or "part", dumped))
    if event.error_code or event.error_message:
        message = " ".join(x for x in (event.error_code, event.error_message) if x)
        view.error, _ = clip(message, MAX_TEXT)
    actions = event.actions
    for key, value in actions.state_delta.items():
        scope, name = "session", key
        for prefix, label in ((State.APP_PREFIX, "app"), (State.USER_PREFIX, "user")):
            if key.startswith(prefix):
                scope, name = label, key[len(prefix) :]
        text, more = clip(pretty(value), MAX_JSON)
        view.delta.append(DeltaItem(scope, name, text, more))
    if actions.transfer_to_agent:
        view.notes.append(f"transfer to {actions.transfer_to_agent}")
    if actions.escalate:
        view.notes.append("escalate")
    if actions.artifact_delta:
        names = ", ".join(sorted(actions.artifact_delta))
        view.notes.append(f"artifacts: {clip(names, 300)[0]}")
    if actions.rewind_before_invocation_id:
        view.notes.append(f"rewind before invocation {actions.rewind_before_invocation_id}")
    if event.interrupted:
        view.notes.append("interrupted")
    return view


@dataclass
class StateItem:
    key: str
    value: str
    more: int = 0


@dataclass
class StateView:
    """A session's merged state split by scope (prefixes removed)."""

    app: list[StateItem] = field(default_factory=list)
    user: list[StateItem] = field(default_factory=list)
    session: list[StateItem] = field(default_factory=list)


def state_view(state: Mapping[str, Any]) -> StateView:
    """``state`` split into app, user and session keys, each value as clipped JSON."""
    view = StateView()
    for key in sorted(state):
        value, more = clip(pretty(state[key]), MAX_JSON)
        if key.startswith(State.APP_PREFIX):
            view.app.append(StateItem(key[len(State.APP_PREFIX) :], value, more))
        elif key.startswith(State.USER_PREFIX):
            view.user.append(StateItem(key[len(State.USER_PREFIX) :], value, more))
        else:
            view.session.append(StateItem(key, value, more))
    return view


def title_of(display_name: str | None, first_message: str | None, session_id: str) -> str:
    """A session's name in a list: its display name, else its first user message, else its id."""
    for candidate in (display_name, first_message):
        if candidate and candidate.strip():
            text = " ".join(candidate.split())
            return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "\u2026"
    return session_id
