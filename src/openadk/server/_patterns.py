"""Regular expressions for the OpenAPI schema: what the server accepts, written down exactly.

Each pattern describes values the server takes (it may be a little narrower, never wider), so a
client, or a schema-driven fuzzer, that follows the schema is not refused. They are ECMA-262
compatible, as JSON Schema requires, and Python's ``re`` reads them the same way.
"""

from __future__ import annotations

__all__ = [
    "EVENTS_FILTER",
    "EVENTS_ORDER",
    "EVENT_TIME",
    "HEADER_KEY",
    "JSON_VALUE",
    "JSON_VALUE_SCHEMA",
    "KEY",
    "NO_NUL",
    "RFC3339",
    "SESSIONS_FILTER",
    "SESSIONS_ORDER",
    "STATE_SCHEMA",
    "TTL",
]


def _date(year: str) -> str:
    """``YYYY-MM-DD`` for years matching ``year``: real days only, 29 February in leap years."""
    month_day = (
        "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
        "|(?:0[13-9]|1[0-2])-(?:29|30)"
        "|(?:0[13578]|1[02])-31)"
    )
    leap = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
    return f"(?:(?:{year})-{month_day}|(?=(?:{year})-)(?:{leap})-02-29)"


_CLOCK = "[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"

RFC3339 = f"^{_date('[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000')}{_CLOCK}{_OFFSET}$"
"""An RFC 3339 date-time (years 0001 to 9999, any offset, up to nanoseconds)."""

EVENT_TIME = (
    "^(?:"
    # 1970 with an offset that cannot move it before the epoch,
    f"{_date('1970')}{_CLOCK}(?:[Zz]|\\+00:00|-(?:[01][0-9]|2[0-3]):[0-5][0-9])"
    f"|{_date('19[7-9][1-9]|19[89]0|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-7]')}"
    f"{_CLOCK}{_OFFSET}"
    # and 9998 with one that cannot move it past the end of the year.
    f"|{_date('9998')}{_CLOCK}(?:[Zz]|-00:00|\\+(?:[01][0-9]|2[0-3]):[0-5][0-9])"
    ")$"
)
"""An event's RFC 3339 timestamp: from the Unix epoch to the end of 9998."""

TTL = "^(?![0.]*s$)[0-9]{1,12}(?:\\.[0-9]{1,9})?s$"
"""A positive protobuf Duration in seconds, e.g. ``7200s`` or ``0.5s``."""

# A header value, percent-encoded UTF-8 (ASCII escapes and two-byte sequences), not blank.
_TWO_BYTES = "%(?:[Cc][2-9A-Fa-f]|[Dd][0-9A-Fa-f])%[89ABab][0-9A-Fa-f]"
_HEADER_CHAR = f"(?:[!-$&-~]|%[2-7][0-9A-Fa-f]|{_TWO_BYTES})"
_HEADER_START = f"(?:[!-$&-~]|%2[1-9A-Fa-f]|%[3-7][0-9A-Fa-f]|{_TWO_BYTES})"
HEADER_KEY = f"^{_HEADER_START}(?: |%20|{_HEADER_CHAR})*$"
"""A user id in a header: printable ASCII or percent-encoded UTF-8, not blank."""

# A filter value: a quoted string (backslash escapes) or a bare word; not blank, no NUL.
_QUOTED = r'"(?:[^"\\\x00\s]|\\[^\x00\s])(?:[^"\\\x00]|\\[^\x00]){0,127}"'
_BARE = r'[^\s"=<>\x00]{1,128}'
_SESSIONS_TERM = (
    rf"(?:(?:user_id|userId)\s*=\s*(?:{_QUOTED}|{_BARE})"
    r'|labels\.[a-z][a-z0-9_-]{0,62}\s*=\s*(?:"[a-z0-9_-]{0,63}"|[a-z0-9_-]{1,63})'
    rf'|(?:update_time|updateTime)\s*(?:>=|<=|>|<|=)\s*"{RFC3339[1:-1]}")'
)
SESSIONS_FILTER = rf"^\s*(?:{_SESSIONS_TERM}(?:\s+AND\s+{_SESSIONS_TERM})*\s*)?$"
"""Terms joined with AND: ``user_id="..."``, ``labels.KEY="VALUE"``, ``update_time>="..."``."""

EVENTS_FILTER = rf'^\s*(?:timestamp\s*>=?\s*"{RFC3339[1:-1]}"\s*)?$'
"""``timestamp>="<RFC 3339>"`` (or ``>``), or nothing."""

SESSIONS_ORDER = r"^\s*(?:(?:updateTime|update_time)(?:\s+asc)?\s*)?$"
EVENTS_ORDER = r"^\s*(?:timestamp(?:\s+asc)?\s*)?$"

KEY = r"^[^\x00]*[^\s\x00][^\x00]*$"
"""An app name, user id or session id: not blank, no NUL (the length is checked apart)."""
NO_NUL = "^[^\\x00]*$"
JSON_VALUE = "JsonValue"
"""The name of the schema component for state values."""
JSON_VALUE_SCHEMA = {
    "description": "Any JSON value without NUL characters in its strings or keys "
    "(PostgreSQL cannot store them), nested at most 150 levels.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": f"#/components/schemas/{JSON_VALUE}"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": f"#/components/schemas/{JSON_VALUE}"},
        },
    ],
}
"""A state value, as the session services accept it."""
STATE_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": {"$ref": f"#/components/schemas/{JSON_VALUE}"},
}
"""A state or state delta: an object of state values."""
