"""Turning state values into the JSON values every backend stores, and copying them cheaply."""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = ["copy_json", "to_json_value"]

_SCALARS = (str, int, bool, type(None))


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
        ValueError: A float is NaN or infinite (JSON has no such numbers).
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{where} is {value!r}; JSON has no NaN or infinity. "
                "Store None or a string instead."
            )
        return value
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has a key of type {type(key).__name__} ({key!r}); "
                    f"JSON object keys must be strings."
                )
            result[key] = to_json_value(item, f"{where}[{key!r}]")
        return result
    if isinstance(value, list):
        return [to_json_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    try:
        converted = to_jsonable_python(value, bytes_mode="utf8")
    except (PydanticSerializationError, UnicodeDecodeError, ValueError) as exc:
        raise TypeError(
            f"{where} of type {type(value).__name__} cannot be stored as JSON. Store str, int, "
            f"float, bool, None, or lists and dicts of them (or convert the value first)."
        ) from exc
    return to_json_value(converted, where)


def copy_json(value: Any) -> Any:
    """Returns a copy of a JSON value (dicts and lists copied, scalars shared)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
