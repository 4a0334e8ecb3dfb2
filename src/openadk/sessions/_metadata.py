"""A session's title and labels: the rules they follow, checked once for every backend.

The rules are Agent Engine's (and Google Cloud's) label rules, so a session labelled here can be
moved to Agent Engine and back: at most 64 labels; keys 1-63 characters of lowercase letters,
digits, ``-`` and ``_``, starting with a letter; values 0-63 of the same characters.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FORKED_FROM",
    "MAX_DISPLAY_NAME",
    "MAX_LABELS",
    "UNSET",
    "SessionMetadata",
    "Unset",
    "check_display_name",
    "check_labels",
    "check_time_bound",
    "fork_labels",
    "label_value",
]

MAX_LABELS = 64
MAX_LABEL_LENGTH = 63
MAX_DISPLAY_NAME = 256
"""Longest title, in characters (the Sessions REST API's limit)."""
FORKED_FROM = "forked-from"
"""The label a fork gets: the id of the session it was forked from (see `label_value`)."""

_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_NOT_VALUE_CHAR = re.compile(r"[^a-z0-9_-]")
_RULE = (
    "label keys are 1-63 lowercase letters, digits, '-' or '_' starting with a letter; values "
    "are 0-63 of the same characters"
)


class Unset:
    """The type of `UNSET`: an argument that was not given (None means "clear it")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()


@dataclass(frozen=True)
class SessionMetadata:
    """What `create_session` or `update_session` sets; `UNSET` fields stay as they are."""

    display_name: str | Unset | None = UNSET
    labels: dict[str, str] | Unset = UNSET

    @property
    def empty(self) -> bool:
        return isinstance(self.display_name, Unset) and isinstance(self.labels, Unset)


def check_display_name(value: object) -> str | None:
    """Checks a session title; None (no title) is allowed.

    Raises:
        TypeError: Not a string.
        ValueError: Longer than 256 characters, or holding a NUL character.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"display_name must be a str or None, got {type(value).__name__}.")
    if len(value) > MAX_DISPLAY_NAME:
        raise ValueError(
            f"display_name is {len(value)} characters long; the limit is {MAX_DISPLAY_NAME}."
        )
    if "\x00" in value:
        raise ValueError("display_name must not contain NUL characters.")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("display_name holds a lone surrogate, which cannot be stored.")
    return value


def check_labels(value: object) -> dict[str, str]:
    """Checks labels and returns a copy; None means no labels.

    Raises:
        TypeError: Not a dict of strings.
        ValueError: More than 64 labels, or a key or value breaking the rules (named).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"labels must be a dict of str to str, got {type(value).__name__}.")
    if len(value) > MAX_LABELS:
        raise ValueError(f"A session has at most {MAX_LABELS} labels; got {len(value)}.")
    checked: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(
                f"labels must map str to str; got {type(key).__name__} {key!r} -> "
                f"{type(item).__name__}."
            )
        if not _KEY.fullmatch(key):
            raise ValueError(f"Invalid label key {key!r}: {_RULE}.")
        if not _VALUE.fullmatch(item):
            raise ValueError(f"Invalid value {item!r} of label {key!r}: {_RULE}.")
        checked[key] = item
    return checked


def label_value(text: str) -> str:
    """``text`` as a label value: itself when it fits the rules, else a lowercase, cut form.

    Session ids may hold characters labels cannot (``Session_7``, spaces); a fork's
    ``forked-from`` label then holds this form, and the full id is the fork's own metadata.
    """
    if _VALUE.fullmatch(text):
        return text
    return _NOT_VALUE_CHAR.sub("-", text.lower())[:MAX_LABEL_LENGTH]


def fork_labels(labels: Mapping[str, str], source_id: str) -> dict[str, str]:
    """The labels of a fork of a session with ``labels``: the same plus ``forked-from``."""
    result = dict(labels)
    result[FORKED_FROM] = label_value(source_id)
    if len(result) > MAX_LABELS:
        raise ValueError(
            f"The session has {len(labels)} labels; its fork would need one more "
            f"({FORKED_FROM}) than the {MAX_LABELS} allowed. Remove a label first."
        )
    return result


def check_time_bound(value: object, name: str) -> float | None:
    """An ``updated_after``/``updated_before`` bound as Unix seconds (or None).

    Raises:
        TypeError: Neither a number nor an aware datetime.
        ValueError: NaN, or a naive datetime.
    """
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime (or Unix seconds).")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be Unix seconds or an aware datetime, got {type(value).__name__}."
        )
    seconds = float(value)
    if seconds != seconds:
        raise ValueError(f"{name} is NaN; give a time in Unix seconds.")
    return seconds
