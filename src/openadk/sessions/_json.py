"""Turning state values into the JSON values every backend stores, and copying them cheaply."""

from __future__ import annotations

import copy
import decimal
import enum
import json
import math
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = [
    "MAX_INT_DIGITS",
    "check_storable",
    "copy_json",
    "copy_model",
    "dumps_keeping_floats",
    "keep_floats",
    "to_json_value",
]

_SCALARS = (str, int, bool, type(None))

MAX_INT_DIGITS = 4300
"""Most digits a stored integer may have: Python's ``json`` (used by the database drivers and
the REST server) refuses to write or read a longer one (``sys.get_int_max_str_digits``)."""

_INT_LIMIT = 10**MAX_INT_DIGITS


def to_json_value(value: Any, where: str) -> Any:
    """Returns a fresh JSON-compatible copy of ``value``, as every backend stores it.

    Plain JSON values are copied as they are. Other values go through pydantic's JSON conversion,
    as google-adk's database service does: ``datetime`` becomes an ISO string, tuples and sets
    lists, pydantic models dicts, UTF-8 ``bytes`` a string. The result is what a reload returns,
    so the live session holds it too.

    Args:
        value: The value to convert.
        where: How to name the value in an error, e.g. ``"state['key']"``.

    Raises:
        TypeError: The value cannot be represented as JSON.
        ValueError: A float is NaN or infinite (JSON has no such numbers), or the value is
            nested more than `MAX_DEPTH` levels deep.
    """
    try:
        return _to_json_value(value, where, 0)
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be stored as JSON.") from None


MAX_DEPTH = 150
"""How deeply a state value may nest. Deeper values would pass here but fail later: copying
them, parsing them back (pydantic's JSON parser stops at 200 levels), or Python's recursion
limit."""


def _to_json_value(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(
                f"{where} contains a NUL character (\\x00), which PostgreSQL cannot store; "
                f"remove it or encode the value (e.g. base64)."
            )
        return value
    if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
        raise ValueError(_too_long_int(where))
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{where} is {value!r}; JSON has no NaN or infinity. "
                "Store None or a string instead."
            )
        return value
    if depth >= MAX_DEPTH and isinstance(value, (dict, list)):
        shown = where if len(where) < 60 else where[:50] + "...]"
        raise ValueError(
            f"{shown} is nested more than {MAX_DEPTH} levels deep; flatten it or store it as a "
            f"JSON string."
        )
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has a key of type {type(key).__name__} ({key!r}); "
                    f"JSON object keys must be strings."
                )
            if "\x00" in key:
                raise ValueError(f"{where} has a key with a NUL character: {key!r}.")
            result[key] = _to_json_value(item, f"{where}[{key!r}]", depth + 1)
        return result
    if isinstance(value, list):
        return [
            _to_json_value(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)
        ]
    try:
        converted = to_jsonable_python(value, bytes_mode="utf8")
    except (PydanticSerializationError, UnicodeDecodeError, ValueError) as exc:
        raise TypeError(
            f"{where} of type {type(value).__name__} cannot be stored as JSON. Store str, int, "
            f"float, bool, None, or lists and dicts of them (or convert the value first)."
        ) from exc
    return _to_json_value(converted, where, depth)


def _too_long_int(where: str) -> str:
    return (
        f"{where} is an integer of more than {MAX_INT_DIGITS} digits, which JSON readers refuse; "
        f"store it as a string."
    )


def check_storable(value: Any, where: str, max_depth: int, original: Any = None) -> None:
    """Refuses a JSON value that a backend would store but no reader could give back intact.

    ``value`` is already JSON-shaped (dicts, lists, str, int, float, bool, None), e.g. an
    event's ``model_dump(mode="json")``. Refused: NaN and infinity (JSON has neither; pydantic
    and the drivers write them as ``null`` or as invalid JSON), integers of more than
    `MAX_INT_DIGITS` digits, text that is not valid Unicode (a lone surrogate: PostgreSQL
    refuses it, and the JSON written elsewhere does not parse back), and nesting deeper than
    ``max_depth``.

    Pydantic's JSON mode turns a lone surrogate in a dict key into U+FFFD characters; when
    ``value`` is such a dump, pass the dumped object as ``original``, and a key holding U+FFFD
    has that object searched for the key it came from.

    Raises:
        ValueError: Naming where in ``value`` the problem is.
    """
    # The path is only worked out, by `_locate`, once something is known to be wrong.
    if _all_storable(value, 1, max_depth):
        return
    problem = _locate(value, where, 1, max_depth)
    if problem is None and original is not None:
        problem = _find_surrogate_key(original, where)
    if problem is not None:
        raise ValueError(problem)


def _all_storable(item: Any, depth: int, max_depth: int) -> bool:
    # This runs on every append: ASCII strings (most leaves) are checked without a call.
    if isinstance(item, str):
        return item.isascii() or _is_unicode(item)
    if isinstance(item, dict):
        if depth > max_depth:
            return False
        for key, child in item.items():
            if not key.isascii() and ("\ufffd" in key or not _is_unicode(key)):
                return False
            if (child.__class__ is not str or not child.isascii()) and not _all_storable(
                child, depth + 1, max_depth
            ):
                return False
        return True
    if isinstance(item, list):
        if depth > max_depth:
            return False
        for child in item:
            if (child.__class__ is not str or not child.isascii()) and not _all_storable(
                child, depth + 1, max_depth
            ):
                return False
        return True
    if isinstance(item, float):
        return math.isfinite(item)
    if isinstance(item, int):
        return bool(-_INT_LIMIT < item < _INT_LIMIT)
    return True


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _locate(value: Any, where: str, depth: int, max_depth: int) -> str | None:
    """The message for the first unstorable part of ``value``, or None when there is none."""
    if isinstance(value, str):
        if _is_unicode(value):
            return None
        shown = value.encode("utf-8", "backslashreplace")[:60].decode("utf-8", "replace")
        return (
            f"{where} holds text that is not valid Unicode (a lone surrogate, in {shown!r}), "
            f"which cannot be stored; fix or encode it."
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{where} is {value!r}; JSON has no NaN or infinity. Store None or a string instead."
    if isinstance(value, bool) or not isinstance(value, (int, dict, list)):
        return None
    if isinstance(value, int):
        return None if -_INT_LIMIT < value < _INT_LIMIT else _too_long_int(where)
    if depth > max_depth:
        shown = where if len(where) < 80 else where[:70] + "..."
        return (
            f"{shown} is nested more than {max_depth} levels deep; stored that deep it could "
            f"not be read back. Flatten it, or store it as a JSON string."
        )
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        if isinstance(key, str) and not _is_unicode(key):
            return _locate(key, f"a key of {where}", depth, max_depth)
        found = _locate(child, f"{where}[{key!r}]", depth + 1, max_depth)
        if found is not None:
            return found
    return None


def _find_surrogate_key(value: Any, where: str) -> str | None:
    """The message for a dict key with a lone surrogate anywhere in an object tree, or None."""
    if isinstance(value, BaseModel):
        items: Any = value.__dict__.items()
        for name, child in items:
            found = _find_surrogate_key(child, f"{where}.{name}")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, child in value.items():
            if isinstance(key, str) and not _is_unicode(key):
                shown = key.encode("utf-8", "backslashreplace")[:60].decode()
                return (
                    f"{where} has a key that is not valid Unicode (a lone surrogate, in "
                    f"{shown!r}), which cannot be stored; fix or encode it."
                )
            found = _find_surrogate_key(child, f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for index, child in enumerate(value):
            found = _find_surrogate_key(child, f"{where}[{index}]")
            if found is not None:
                return found
    return None


_IMMUTABLE = (str, int, float, bool, bytes, type(None), enum.Enum)


def copy_model(value: Any) -> Any:
    """A deep copy of a pydantic model tree (or any value), much faster than ``copy.deepcopy``.

    Models are copied field by field without validation; immutable leaves (strings, numbers,
    bytes, enums, None) are shared; containers are rebuilt; anything else falls back to
    ``copy.deepcopy``.

    Raises:
        ValueError: The value is nested too deeply to copy (Python's recursion limit).
    """
    try:
        return _copy_model(value)
    except RecursionError:
        raise ValueError(
            "The value is nested too deeply to copy (a temp: state value, or another free-form "
            "field, hundreds of levels deep); flatten it."
        ) from None


def _copy_model(value: Any) -> Any:
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, BaseModel):
        cls = type(value)
        new = cls.__new__(cls)
        object.__setattr__(
            new, "__dict__", {key: _copy_model(item) for key, item in value.__dict__.items()}
        )
        object.__setattr__(new, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
        extra = value.__pydantic_extra__
        object.__setattr__(new, "__pydantic_extra__", None if extra is None else _copy_model(extra))
        private = value.__pydantic_private__
        object.__setattr__(
            new, "__pydantic_private__", None if private is None else _copy_model(private)
        )
        return new
    if isinstance(value, dict):
        return {key: _copy_model(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_model(item) for item in value]
    if isinstance(value, (set, frozenset, tuple)):
        return type(value)(_copy_model(item) for item in value)
    return copy.deepcopy(value)


def copy_json(value: Any) -> Any:
    """Returns a copy of a JSON value (dicts and lists copied, scalars shared)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


# A JSON string literal (left alone) or a number in exponent form (rewritten).
_STRING_OR_EXPONENT = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?[eE][-+]?\d+')


def _plain_float(match: re.Match[str]) -> str:
    token = match.group(0)
    if token.startswith('"'):
        return token
    digits = format(decimal.Decimal(token), "f")
    return digits if "." in digits else digits + ".0"


# A number in exponent form where a JSON value starts (after ``:``, ``,`` or ``[``). Searching
# for it (in C) lets the string-aware rewrite, which calls back into Python per literal, run
# only when there may be something to rewrite; text inside strings can match, never miss.
_EXPONENT_HINT = re.compile(r"[:,\[]\s*-?\d+(?:\.\d+)?[eE]")


def keep_floats(text: str) -> str:
    """JSON text with every number in exponent form rewritten in plain decimal notation.

    PostgreSQL's JSONB stores numbers as ``numeric`` and prints ``1e+16`` back as
    ``10000000000000000``, which reads as an int. Written as ``10000000000000000.0`` it keeps its
    scale and reads back as the same float, so values survive JSONB exactly.
    """
    if _EXPONENT_HINT.search(text) is None:
        return text
    return _STRING_OR_EXPONENT.sub(_plain_float, text)


def dumps_keeping_floats(value: Any) -> str:
    """``json.dumps``, writing every float with a decimal point and no exponent (`keep_floats`)."""
    return keep_floats(json.dumps(value))
