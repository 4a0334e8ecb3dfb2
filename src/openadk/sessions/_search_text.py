"""Search without a database: words, queries, snippets, and the in-memory service's index.

Imports nothing optional, so the in-memory service can use it without SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_QUERY_WORDS",
    "IndexRow",
    "MemoryIndex",
    "SearchKey",
    "event_text",
    "parse_query",
    "snippet",
    "text_of",
    "words",
]

MAX_QUERY_WORDS = 32
_WORD = re.compile(r"[^\W_]+")
_SNIPPET_WORDS = 12

IndexRow = tuple[str, str, float, str]
"""An event to index: (event id, author, timestamp, text)."""
SearchKey = tuple[float, str, str]
"""A position in search order: (timestamp, session id, event id), newest first."""


# Words, queries, snippets ------------------------------------------------------------------


def words(value: str) -> list[str]:
    """The words of ``value``, case-folded, in order."""
    return [w.casefold() for w in _WORD.findall(value)]


def event_text(data: Mapping[str, Any]) -> str:
    """The searchable text of a stored event (its JSON as a dict): its text parts, joined."""
    content = data.get("content")
    if not isinstance(content, Mapping):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, Mapping) and isinstance(part.get("text"), str) and part["text"]
    ]
    return "\n".join(texts)


def text_of(event: Any) -> str:
    """`event_text` of an `Event` object, read from its content without dumping it to JSON."""
    content = getattr(event, "content", None)
    parts = None if content is None else content.parts
    if not parts:
        return ""
    return "\n".join(part.text for part in parts if isinstance(part.text, str) and part.text)


def parse_query(query: object) -> list[str]:
    """The words a query asks for (all must occur).

    Raises:
        TypeError: ``query`` is not a string.
        ValueError: It has no word (empty, or only punctuation), or more than 32.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}.")
    found = list(dict.fromkeys(words(query)))
    if not found:
        raise ValueError(
            f"The search query {query!r} has no word to look for; give one or more words "
            "(letters or digits)."
        )
    if len(found) > MAX_QUERY_WORDS:
        raise ValueError(
            f"The search query has {len(found)} different words; the limit is {MAX_QUERY_WORDS}."
        )
    return found


def snippet(body: str, terms: Sequence[str]) -> str:
    """Up to a dozen words of ``body`` around the first match, matched words in ``**``."""
    wanted = set(terms)
    matches = list(_WORD.finditer(body))
    if not matches:
        return body[:200]
    first = next((i for i, m in enumerate(matches) if m.group().casefold() in wanted), 0)
    start = max(0, first - _SNIPPET_WORDS // 3)
    end = min(len(matches), start + _SNIPPET_WORDS)
    pieces: list[str] = []
    position = matches[start].start()
    for m in matches[start:end]:
        pieces.append(body[position : m.start()])
        word = m.group()
        pieces.append(f"**{word}**" if word.casefold() in wanted else word)
        position = m.end()
    if end == len(matches):
        pieces.append(body[position:])
    text_ = "".join(pieces)
    text_ = " ".join(text_.split())
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(matches) else ""
    return f"{prefix}{text_}{suffix}"


# In memory ---------------------------------------------------------------------------------


@dataclass
class _Entry:
    app_name: str
    user_id: str
    session_id: str
    event_id: str
    author: str
    ts: float
    body: str


@dataclass
class MemoryIndex:
    """The in-memory service's index: word -> entries, kept in step with its appends."""

    postings: dict[str, set[tuple[str, str, str, str]]] = field(default_factory=dict)
    entries: dict[tuple[str, str, str, str], _Entry] = field(default_factory=dict)

    def add(self, app_name: str, user_id: str, session_id: str, row: IndexRow) -> None:
        event_id, author, ts, body = row
        if not body:
            return
        key = (app_name, user_id, session_id, event_id)
        self.entries[key] = _Entry(app_name, user_id, session_id, event_id, author, ts, body)
        for word in set(words(body)):
            self.postings.setdefault(word, set()).add(key)

    def remove(self, keys: Iterable[tuple[str, str, str, str]]) -> None:
        for key in keys:
            entry = self.entries.pop(key, None)
            if entry is None:
                continue
            for word in set(words(entry.body)):
                found = self.postings.get(word)
                if found is not None:
                    found.discard(key)
                    if not found:
                        del self.postings[word]

    def remove_where(self, app_name: str, user_id: str, session_id: str | None = None) -> None:
        self.remove(
            [
                k
                for k in self.entries
                if k[0] == app_name
                and k[1] == user_id
                and (session_id is None or k[2] == session_id)
            ]
        )

    def search(
        self,
        app_name: str,
        terms: Sequence[str],
        user_id: str | None,
        limit: int,
        after: SearchKey | None,
    ) -> list[_Entry]:
        sets = [self.postings.get(term, set()) for term in terms]
        if not sets:
            return []
        keys = set.intersection(*sorted(sets, key=len))
        found = [
            self.entries[k]
            for k in keys
            if k[0] == app_name and (user_id is None or k[1] == user_id)
        ]
        found.sort(key=lambda e: (e.ts, e.session_id, e.event_id), reverse=True)
        if after is not None:
            found = [e for e in found if (e.ts, e.session_id, e.event_id) < after]
        return found[: limit + 1]
