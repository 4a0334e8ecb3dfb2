"""`State`: a dict-like view of a session's state plus the pending delta of one event."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from openadk.errors import StateSchemaError

__all__ = ["State"]

_MISSING = object()


class State:
    """A view of ``session.state`` (the value) and an event's pending ``state_delta`` (the delta).

    Reads look in the delta first, then the value. Writes go to both, so the live session sees a
    change at once and the event carries it to storage. Key prefixes choose the scope: ``app:``
    (every user of the app), ``user:`` (every session of the user), ``temp:`` (this invocation
    only, never stored); keys without a prefix belong to the session.

    A container (dict or list) handed out by a read may be changed in place; `has_delta` notices
    such changes and copies them into the delta.
    """

    APP_PREFIX: ClassVar[str] = "app:"
    USER_PREFIX: ClassVar[str] = "user:"
    TEMP_PREFIX: ClassVar[str] = "temp:"

    def __init__(
        self,
        value: dict[str, Any],
        delta: dict[str, Any],
        schema: type[BaseModel] | None = None,
    ) -> None:
        """Creates a view.

        Args:
            value: The session's current state; written to in place.
            delta: The pending event's state delta; written to in place.
            schema: Optional pydantic model; writes to unprefixed keys are checked against its
                fields.
        """
        self._value = value
        self._delta = delta
        self._schema = schema
        self._snapshots: dict[str, Any] = {}

    def _read(self, key: str) -> Any:
        if key in self._delta:
            result = self._delta[key]
        elif key in self._value:
            result = self._value[key]
        else:
            return _MISSING
        if isinstance(result, (dict, list)) and key not in self._snapshots:
            self._snapshots[key] = copy.deepcopy(result)
        return result

    def __getitem__(self, key: str) -> Any:
        result = self._read(key)
        if result is _MISSING:
            raise KeyError(key)
        return result

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_schema(key, value)
        self._value[key] = value
        self._delta[key] = value
        self._snapshots.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._delta or key in self._value

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __repr__(self) -> str:
        return f"State({self.to_dict()!r})"

    def get(self, key: str, default: Any = None) -> Any:
        """Returns the value of ``key``, or ``default`` when it is absent."""
        result = self._read(key)
        return default if result is _MISSING else result

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Returns the value of ``key``, first setting it to ``default`` when it is absent."""
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, delta: Mapping[str, Any]) -> None:
        """Sets every key of ``delta``."""
        for key, value in delta.items():
            self[key] = value

    def has_delta(self) -> bool:
        """Returns whether the view holds pending changes, including in-place container edits."""
        for key, before in list(self._snapshots.items()):
            current = self._delta.get(key, self._value.get(key, _MISSING))
            if current is not _MISSING and current != before:
                self._delta[key] = current
                self._snapshots[key] = copy.deepcopy(current)
        return bool(self._delta)

    def to_dict(self) -> dict[str, Any]:
        """Returns a new dict of the current state with the pending delta applied."""
        self.has_delta()
        return {**self._value, **self._delta}

    def _check_schema(self, key: str, value: Any) -> None:
        if self._schema is None or ":" in key:
            return
        field = self._schema.model_fields.get(key)
        if field is None:
            raise StateSchemaError(
                f"State key {key!r} is not declared in schema {self._schema.__name__}; "
                f"add it to the schema or use a prefixed key."
            )
        try:
            TypeAdapter(field.annotation if field.annotation is not None else Any).validate_python(
                value, strict=True
            )
        except ValidationError as exc:
            raise StateSchemaError(
                f"State key {key!r} does not match schema {self._schema.__name__}: {exc}"
            ) from exc
