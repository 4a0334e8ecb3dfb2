"""Which events are live after rewinds (google-adk 2.13's semantics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openadk.events._event import Event

__all__ = ["live_events", "rewind_state_delta"]

_SHARED_PREFIXES = ("app:", "user:", "temp:")


def live_events(events: Sequence[Event]) -> list[Event]:
    """``events`` (oldest first) without rewound invocations.

    Walking back from the newest, an event with ``actions.rewind_before_invocation_id == X``
    removes itself and every event back to the first event of invocation ``X``; the walk goes on
    before that. A rewind to an invocation not before it removes only itself. Events written by
    google-adk's own rewind read the same.
    """
    first_index: dict[str, int] | None = None
    kept: list[Event] = []
    i = len(events) - 1
    while i >= 0:
        event = events[i]
        target = event.actions.rewind_before_invocation_id if event.actions else None
        if target:
            if first_index is None:
                first_index = {}
                for index, other in enumerate(events):
                    first_index.setdefault(other.invocation_id, index)
            start = first_index.get(target)
            if start is not None and start < i:
                i = start
        else:
            kept.append(event)
        i -= 1
    kept.reverse()
    return kept


def rewind_state_delta(
    events: Sequence[Event], before_index: int, current: dict[str, Any]
) -> dict[str, Any]:
    """The delta restoring the session-scoped keys to their values before an event.

    The event is ``events[before_index]``.

    Changed keys get their old value, keys that did not exist then get None. ``app:``,
    ``user:`` and ``temp:`` keys are left alone.
    """
    then: dict[str, Any] = {}
    for event in events[:before_index]:
        for key, value in event.actions.state_delta.items():
            if key.startswith(_SHARED_PREFIXES):
                continue
            if value is None:
                then.pop(key, None)
            else:
                then[key] = value
    delta = {key: value for key, value in then.items() if current.get(key, _MISSING) != value}
    for key in current:
        if not key.startswith(_SHARED_PREFIXES) and key not in then:
            delta[key] = None
    return delta


_MISSING = object()
