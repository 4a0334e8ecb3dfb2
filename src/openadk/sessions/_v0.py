"""Reading google-adk's V0 ("pickle") events: a restricted unpickler and the row conversion.

google-adk 1.19-1.21 stored each event's ``EventActions`` as a pickle and the rest of the event in
separate columns. Pickles are code, so they are read through an unpickler that resolves only an
allow-list of names and never imports a module a pickle names:

* classes of ``google.adk``, ``google.genai`` and ``fastapi`` become inert stand-ins that only
  record what the pickle gives them (a pydantic model's field values, an enum's value);
* ``datetime``, ``Decimal``, ``UUID``, ``OrderedDict``, ``defaultdict``, ``pathlib`` paths and the
  builtin containers and scalars are the real types (each rebuilt from plain data);
* every other name is refused, so a pickle cannot call anything.

A pickle is also a program that can describe far more data than it holds: a few hundred bytes
of shared references (``L[i+1] = (L[i], L[i])``) expand to gigabytes of JSON, or make a single
dict insertion hash for minutes. So the unpickler is bounded (`UnpickleLimits`): opcodes run,
the size of every tuple a dict or set would hash, the size of what a builtin constructor is
given, the expanded size of the result (values and characters, counting each shared reference
as the copy JSON will make of it) and the time spent. A row past a bound is a bad row.

``allow_unsafe=True`` additionally resolves any other name as plain `pickle` would: only for a
database whose contents you trust.

A converted event is exactly the ``event_data`` google-adk 2.13 writes for the same row after
its own ``adk migrate session``: the event's snake_case JSON without ``None`` values.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import io
import json
import pathlib
import pickle
import time
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from google.genai import types
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from openadk.events import Event, EventActions

__all__ = [
    "ConvertedEvent",
    "RefusedPickleError",
    "TimeRule",
    "UnpickleLimits",
    "V0RowError",
    "convert_row",
    "load_actions",
]

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_SECOND = datetime.timedelta(seconds=1)

# Modules whose classes are replaced by stand-ins (the module itself or any submodule).
_STAND_IN_PACKAGES = ("google.adk", "google.genai", "fastapi")

_PATHS: dict[str, type[pathlib.PurePath]] = {
    "PurePath": pathlib.PurePosixPath,
    "PurePosixPath": pathlib.PurePosixPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
    "Path": pathlib.PurePosixPath,
    "PosixPath": pathlib.PosixPath,
    # A WindowsPath cannot be made on another system; its pure twin holds the same parts.
    "WindowsPath": pathlib.PureWindowsPath,
}


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocols 0 and 1) for the allowed types only."""
    if base is object:
        return cls.__new__(cls)
    if base in _BUILTIN_VALUES.values() and isinstance(cls, type) and issubclass(cls, base):
        return base.__new__(cls, state)
    raise RefusedPickleError(f"refused to rebuild {cls!r} on base {base!r}")


_BUILTIN_VALUES: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in (
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "set",
        "str",
        "tuple",
    )
}

_ALLOWED: dict[tuple[str, str], Any] = {
    **{("builtins", name): value for name, value in _BUILTIN_VALUES.items()},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("decimal", "Decimal"): decimal.Decimal,
    ("uuid", "UUID"): uuid.UUID,
    ("copyreg", "_reconstructor"): _reconstructor,
    **{("pathlib", name): kind for name, kind in _PATHS.items()},
    # Python 3.13 moved the concrete path classes; a pickle names the module it was written by.
    **{("pathlib._local", name): kind for name, kind in _PATHS.items()},
}

# Python 2 era module names that protocols 0-2 may carry.
_OLD_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class StandIn:
    """An inert placeholder for a pickled google-adk, google-genai or fastapi object.

    It records what the pickle hands it: constructor arguments (an enum's value) and the state
    (a pydantic model's field values). Nothing of the named class is imported or run.
    """

    qualified_name: ClassVar[str] = ""
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]
    _state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        self = object.__new__(cls)
        self._args = args
        self._kwargs = kwargs
        self._state = None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __repr__(self) -> str:
        return f"<stand-in {self.qualified_name}>"


_STAND_INS: dict[str, type[StandIn]] = {}


def _stand_in(module: str, name: str) -> type[StandIn]:
    qualified = f"{module}.{name}"
    kind = _STAND_INS.get(qualified)
    if kind is None:
        kind = type(name.rpartition(".")[2], (StandIn,), {"qualified_name": qualified})
        _STAND_INS[qualified] = kind
    return kind


def _looks_like_class(name: str) -> bool:
    parts = name.split(".")
    return all(part.isidentifier() for part in parts) and parts[-1][:1].isupper()


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle names a type outside the allow-list; nothing of it was run."""


def _refusal(module: str, name: str) -> RefusedPickleError:
    return RefusedPickleError(
        f"refused to load {module}.{name}: not a type an EventActions pickle can hold "
        "(only a database you trust may be read with allow_unsafe_unpickling / "
        "--allow-unsafe-unpickling)"
    )


@dataclass(frozen=True)
class UnpickleLimits:
    """Bounds on what one V0 ``actions`` pickle may make the reader do.

    The defaults are far above anything google-adk wrote (an ``EventActions`` with its state
    delta) and far below what hurts a migration.
    """

    max_operations: int = 1_000_000
    """Pickle opcodes run."""
    max_values: int = 500_000
    """Values in the result counted as JSON will write them (a shared value once per use);
    also the most elements a tuple that may be hashed, or a builtin constructor's arguments,
    may expand to."""
    max_chars: int = 32 * 1024 * 1024
    """Characters (and bytes) of text in the result, counted the same way; also the largest
    size a pickle may ask ``bytes(n)`` / ``bytearray(n)`` to allocate."""
    max_work: int = 5_000_000
    """Values visited while building: each dict key or set member hashed (a tuple costs every
    value it holds, as hashing it does) and each constructor's arguments measured."""
    max_seconds: float = 5.0
    """Time spent unpickling one row."""


DEFAULT_LIMITS = UnpickleLimits()

# Opcodes after which the top of the stack is a new tuple (which a dict key or set may hash).
_TUPLE_OPCODES = frozenset(b"t\x85\x86\x87")
# Opcodes that call a constructor with arguments from the stack: REDUCE, NEWOBJ, NEWOBJ_EX.
_CALL_OPCODES = {ord("R"): 2, 0x81: 2, 0x92: 3}
_FROZENSET = 0x91
# Opcodes that hash what is on the stack: SETITEM (one key), SETITEMS and DICT (every other
# item since the mark), ADDITEMS and FROZENSET (every item since the mark).
_SETITEM, _SETITEMS, _DICT, _ADDITEMS = ord("s"), ord("u"), ord("d"), 0x90


class LimitExceededError(RefusedPickleError):
    """The pickle would take more work or produce more data than `UnpickleLimits` allow."""


def _hash_size(value: tuple[Any, ...], known: dict[int, int]) -> int:
    """Elements ``hash(value)`` visits: nested tuples are re-hashed on every use."""
    size = 1
    for item in value:
        size += known.get(id(item), 1) if isinstance(item, tuple) else 1
    return size


_SCALARS = (int, float, bool, type(None), complex)
_TEXTS = (str, bytes, bytearray)


def _children(obj: Any) -> list[Any] | None:
    if isinstance(obj, StandIn):
        return [obj._args, obj._kwargs, obj._state]
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    return None


def _expanded_size(value: Any, limits: UnpickleLimits, what: str) -> tuple[int, int]:
    """(values, characters) of ``value`` with every shared reference counted at each use.

    Iterative, and each distinct container is measured once, so the cost is that of the
    distinct objects even when the expansion is astronomically large.

    Raises:
        LimitExceededError: Past ``limits``, or ``value`` contains itself.
    """

    def check(values: int, chars: int) -> None:
        if values > limits.max_values:
            raise LimitExceededError(
                f"{what} expands to more than {limits.max_values:,} values "
                "(shared references are copied once per use)"
            )
        if chars > limits.max_chars:
            raise LimitExceededError(
                f"{what} expands to more than {limits.max_chars:,} characters of text"
            )

    top = _children(value)
    if top is None:
        size = (1, len(value) if isinstance(value, _TEXTS) else 0)
        check(*size)
        return size
    sizes: dict[int, tuple[int, int]] = {}
    on_path = {id(value)}
    # Frames: [container, its children, next child, values so far, characters so far].
    stack: list[list[Any]] = [[value, top, 0, 1, 0]]
    while stack:
        frame = stack[-1]
        children, index, values, chars = frame[1], frame[2], frame[3], frame[4]
        descended = False
        while index < len(children):
            child = children[index]
            index += 1
            if isinstance(child, _TEXTS):
                values += 1
                chars += len(child)
                continue
            if isinstance(child, _SCALARS):
                values += 1
                continue
            known = sizes.get(id(child))
            if known is not None:
                values += known[0]
                chars += known[1]
                continue
            grand = _children(child)
            if grand is None:
                values += 1
                continue
            if id(child) in on_path:
                raise LimitExceededError(f"{what} refers to itself (nested too deeply)")
            frame[2], frame[3], frame[4] = index, values, chars
            stack.append([child, grand, 0, 1, 0])
            on_path.add(id(child))
            descended = True
            break
        if descended:
            continue
        check(values, chars)
        stack.pop()
        on_path.discard(id(frame[0]))
        sizes[id(frame[0])] = (values, chars)
        if stack:
            stack[-1][3] += values
            stack[-1][4] += chars
    return sizes[id(value)]


_TIME_CHECK_EVERY = 256


def _bounded(code: int, step: Any) -> Any:
    """``step`` (one opcode of the pure-Python unpickler) with the bounds checked around it."""
    calls = code in _CALL_OPCODES
    builds_hashable = code in _TUPLE_OPCODES or calls or code == _FROZENSET
    hashes = code in (_SETITEM, _SETITEMS, _DICT, _ADDITEMS, _FROZENSET)

    def run(unpickler: _RestrictedUnpickler) -> None:
        unpickler._operations += 1
        limits = unpickler._limits
        if unpickler._operations > limits.max_operations:
            raise LimitExceededError(
                f"the pickle runs more than {limits.max_operations:,} operations"
            )
        if (
            unpickler._operations % _TIME_CHECK_EVERY == 1
            and time.monotonic() > unpickler._deadline
        ):
            raise LimitExceededError(f"unpickling took longer than {limits.max_seconds:g} s")
        if calls:
            unpickler._check_call(code)
        elif hashes:
            unpickler._charge_hashing(code)
        step(unpickler)
        if builds_hashable:
            unpickler._check_hashable(unpickler._stack()[-1])

    return run


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, so every opcode can be counted, timed and checked.

    (The C unpickler runs a whole pickle in one call that cannot be bounded from outside.)
    """

    def __init__(self, data: bytes, *, allow_unsafe: bool, limits: UnpickleLimits) -> None:
        super().__init__(io.BytesIO(data))
        self._allow_unsafe = allow_unsafe
        self._limits = limits
        self._operations = 0
        self._deadline = time.monotonic() + limits.max_seconds
        self._work = 0
        # Hash sizes of the tuples built so far, by id; the tuples are kept alive so an id
        # is never reused for another object.
        self._tuple_sizes: dict[int, int] = {}
        self._tuples: list[tuple[Any, ...]] = []

    def _stack(self) -> list[Any]:
        """The unpickler's value stack (set by load())."""
        stack: list[Any] = vars(self)["stack"]
        return stack

    def _check_call(self, code: int) -> None:
        """A constructor's arguments: bounded in size, and no ``bytes(10**12)``."""
        arguments = self._stack()[-_CALL_OPCODES[code] + 1 :]
        self._charge(_expanded_size(arguments, self._limits, "a constructor's arguments")[0])
        given: list[Any] = []
        for part in arguments:
            if isinstance(part, tuple):
                given.extend(part)
            elif isinstance(part, dict):
                given.extend(part.values())
        for item in given:
            if type(item) is int and abs(item) > self._limits.max_chars:
                raise LimitExceededError(
                    f"the pickle asks a constructor for {item:,} (more than "
                    f"{self._limits.max_chars:,})"
                )

    def _charge(self, work: int) -> None:
        self._work += work
        if self._work > self._limits.max_work:
            raise LimitExceededError(
                f"the pickle makes the reader hash or measure more than "
                f"{self._limits.max_work:,} values"
            )

    def _charge_hashing(self, code: int) -> None:
        stack = self._stack()
        if code == _SETITEM:
            keys = stack[-2:-1]
        elif code in (_SETITEMS, _DICT):
            keys = stack[0::2]
        else:
            keys = stack
        sizes = self._tuple_sizes
        self._charge(sum(sizes.get(id(k), 1) if isinstance(k, tuple) else 1 for k in keys))

    def _check_hashable(self, value: Any) -> None:
        if isinstance(value, tuple):
            size = _hash_size(value, self._tuple_sizes)
            if size > self._limits.max_values:
                raise LimitExceededError(
                    f"the pickle builds a tuple of more than {self._limits.max_values:,} "
                    "values through shared references"
                )
            self._tuple_sizes[id(value)] = size
            self._tuples.append(value)

    def find_class(self, module: str, name: str) -> Any:
        module = _OLD_MODULES.get(module, module)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        in_package = any(module == p or module.startswith(p + ".") for p in _STAND_IN_PACKAGES)
        if in_package and _looks_like_class(name):
            return _stand_in(module, name)
        if self._allow_unsafe:
            return super().find_class(module, name)
        raise _refusal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError("refused a persistent id: not written by google-adk")


# load() looks each opcode up in self.dispatch: every step of the pure-Python unpickler, wrapped.
_RestrictedUnpickler.dispatch = {
    code: _bounded(code, step) for code, step in pickle._Unpickler.dispatch.items()
}


def load_actions(
    data: bytes, *, allow_unsafe: bool = False, limits: UnpickleLimits = DEFAULT_LIMITS
) -> Any:
    """Unpickles a V0 ``actions`` value into stand-ins and plain Python data.

    Raises:
        RefusedPickleError: The pickle names a type outside the allow-list.
        LimitExceededError: The pickle goes past ``limits`` (work, size or time).
        Exception: Whatever a corrupt pickle raises (``EOFError``, ``ValueError``, ...).
    """
    loaded = _RestrictedUnpickler(data, allow_unsafe=allow_unsafe, limits=limits).load()
    _expanded_size(loaded, limits, "the pickle")
    return loaded


class _ModelDict(dict[str, Any]):
    """The field values of a pickled model (a dict, so pydantic serializes it as one)."""


def _fields(obj: StandIn) -> dict[str, Any] | None:
    """A stand-in's field values, or None when it is not a model (an enum, say)."""
    state = obj._state
    if state is None:
        return None
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots)
        merged: dict[str, Any] = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        state = merged
    if not isinstance(state, dict):
        raise V0RowError(f"{obj.qualified_name} has state of type {type(state).__name__}")
    if "__dict__" in state:  # pydantic v2: __dict__, __pydantic_extra__, fields set, private
        fields = dict(state["__dict__"] or {})
        fields.update(state.get("__pydantic_extra__") or {})
        return fields
    return dict(state)


def _plain(value: Any, *, drop_none: bool) -> Any:
    """Stand-ins to plain data, as pydantic's ``model_dump()`` of the real objects would give.

    A model becomes a dict of its fields (``None`` fields left out when ``drop_none``, as
    ``exclude_none`` does where the value is parsed back into a model); an enum its value.
    """
    if isinstance(value, StandIn):
        fields = _fields(value)
        if fields is None:
            if len(value._args) == 1 and not value._kwargs:
                return _plain(value._args[0], drop_none=drop_none)
            if not value._args and not value._kwargs:
                return _ModelDict()
            raise V0RowError(f"cannot read {value.qualified_name} built from arguments")
        return _ModelDict(
            {
                key: _plain(item, drop_none=drop_none)
                for key, item in fields.items()
                if not (drop_none and item is None)
            }
        )
    if isinstance(value, dict):
        return {key: _plain(item, drop_none=drop_none) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, drop_none=drop_none) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item, drop_none=drop_none) for item in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_plain(item, drop_none=drop_none) for item in value)
    return value


# Fields typed Any: google-adk dumps models found there to dicts that keep their None values.
_ANY_FIELDS = ("state_delta", "agent_state", "route", "set_model_response")
_JSON_DICT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def _jsonable(value: Any) -> Any:
    """A state dict as google-adk 2.13 serializes it: values it cannot serialize as strings."""
    if not isinstance(value, dict):
        return value
    try:
        _JSON_DICT.dump_python(value, mode="json", warnings=False)
    except PydanticSerializationError:
        return to_jsonable_python(value, serialize_unknown=True)
    return value


def actions_fields(raw: Any) -> dict[str, Any]:
    """The ``EventActions`` fields of an unpickled V0 ``actions`` value.

    Raises:
        V0RowError: The value is not an ``EventActions``.
    """
    if isinstance(raw, StandIn):
        if not raw.qualified_name.endswith(".EventActions"):
            raise V0RowError(f"actions holds a {raw.qualified_name}, not an EventActions")
        fields = _fields(raw)
        if fields is None:
            raise V0RowError("actions holds an EventActions without field values")
    elif isinstance(raw, dict):
        fields = dict(raw)
    else:
        raise V0RowError(f"actions holds a {type(raw).__name__}, not an EventActions")
    result: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in _ANY_FIELDS:
            result[key] = _jsonable(_plain(value, drop_none=False))
        elif key == "requested_tool_confirmations" and isinstance(value, dict):
            confirmations = {}
            for call_id, confirmation in value.items():
                plain = _plain(confirmation, drop_none=True)
                if isinstance(confirmation, StandIn) and isinstance(plain, dict):
                    payload = (_fields(confirmation) or {}).get("payload")
                    if payload is not None:
                        plain["payload"] = _plain(payload, drop_none=False)
                confirmations[call_id] = plain
            result[key] = confirmations
        else:
            result[key] = _plain(value, drop_none=True)
    return result


class V0RowError(ValueError):
    """A V0 event row that cannot be converted; the message says why."""


@dataclass(frozen=True)
class TimeRule:
    """How to read the naive times google-adk 1.x wrote into V0 ``events.timestamp``.

    google-adk 1.19-1.21 wrote ``datetime.fromtimestamp(t)``: the *local* time of the process
    that wrote the event, without a zone. ``local`` reads them in this machine's zone (what
    google-adk's own migration does), ``utc`` as UTC, and a zone name (``Europe/Paris``) in that
    zone, for a database written on a machine set to another zone.
    """

    name: str
    zone: datetime.tzinfo | None
    """None: the local zone of this process."""

    @classmethod
    def parse(cls, value: str) -> TimeRule:
        """``local``, ``utc`` or an IANA zone name.

        Raises:
            ValueError: An unknown zone.
        """
        lowered = value.strip().lower()
        if lowered == "local":
            return cls("local", None)
        if lowered == "utc":
            return cls("utc", _UTC)
        try:
            return cls(value.strip(), zoneinfo.ZoneInfo(value.strip()))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"Unknown V0 time rule {value!r}: use 'local', 'utc' or a time zone name "
                "such as 'Europe/Paris'."
            ) from error

    def to_epoch(self, value: datetime.datetime | str) -> float:
        """Unix seconds of a stored V0 time, computed as google-adk's migration does."""
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value)
        if value.tzinfo is not None:
            return value.timestamp()
        if self.zone is None:
            return value.timestamp()
        # Whole seconds plus the microseconds, the same float a naive .timestamp() makes.
        whole = value.replace(microsecond=0, tzinfo=self.zone)
        seconds = (whole - _EPOCH) // _ONE_SECOND
        return seconds + value.microsecond / 1e6


@dataclass(frozen=True)
class ConvertedEvent:
    """A V0 row in V1 form: the ``events`` columns it needs and its ``event_data``."""

    timestamp: float
    stored_time: datetime.datetime
    """The V1 ``timestamp`` column: naive UTC."""
    event_data: dict[str, Any]


_JSON_COLUMNS: dict[str, type[BaseModel] | None] = {
    "content": types.Content,
    "grounding_metadata": types.GroundingMetadata,
    "custom_metadata": None,
    "usage_metadata": types.GenerateContentResponseUsageMetadata,
    "citation_metadata": types.CitationMetadata,
    "input_transcription": types.Transcription,
    "output_transcription": types.Transcription,
}


def _json_column(row: Mapping[Any, Any], column: str) -> dict[str, Any] | None:
    value = row.get(column)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise V0RowError(f"column {column} is not valid JSON: {error}") from error
    # google-adk reads a column holding anything but an object as absent.
    return value if isinstance(value, dict) else None


def convert_row(
    row: Mapping[Any, Any], *, times: TimeRule, allow_unsafe: bool = False
) -> ConvertedEvent:
    """Converts one V0 ``events`` row (columns by name) into its V1 form.

    Raises:
        V0RowError: The row cannot be converted; the message gives the reason.
    """
    event_id = row.get("id")
    if not event_id:
        raise V0RowError("the event has no id")
    stored = row.get("timestamp")
    if stored is None:
        raise V0RowError("the event has no timestamp")
    raw_actions = row.get("actions")
    fields: dict[str, Any] = {}
    if raw_actions is not None:
        if isinstance(raw_actions, (bytes, bytearray, memoryview)):
            try:
                loaded = load_actions(bytes(raw_actions), allow_unsafe=allow_unsafe)
            except RefusedPickleError as error:
                raise V0RowError(f"actions: {error}") from error
            except Exception as error:  # a corrupt pickle raises almost anything
                raise V0RowError(
                    f"actions is not a readable pickle: {type(error).__name__}: {error}"
                ) from error
        else:
            loaded = raw_actions
        try:
            fields = actions_fields(loaded)
        except V0RowError:
            raise
        except RecursionError as error:
            raise V0RowError("actions is nested too deeply (or refers to itself)") from error
        except (ValueError, TypeError, PydanticSerializationError) as error:
            # Values JSON cannot hold: bytes that are not UTF-8, unhashable set members, ...
            reason = _short(f"{type(error).__name__}: {error}", 200)
            raise V0RowError(f"actions cannot be written as JSON: {reason}") from error
    try:
        actions = EventActions.model_validate(fields)
    except ValidationError as error:
        raise V0RowError(f"actions: {_first_error(error)}") from error
    ids_json = row.get("long_running_tool_ids_json")
    long_running: set[str] = set()
    if ids_json:
        try:
            ids = json.loads(ids_json)
        except json.JSONDecodeError as error:
            raise V0RowError(f"long_running_tool_ids_json is not valid JSON: {error}") from error
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise V0RowError("long_running_tool_ids_json is not a list of strings")
        long_running = set(ids)
    try:
        timestamp = times.to_epoch(stored)
    except (ValueError, OverflowError, OSError) as error:
        raise V0RowError(f"timestamp {stored!r} cannot be read: {error}") from error
    values: dict[str, Any] = {}
    for column, model in _JSON_COLUMNS.items():
        data = _json_column(row, column)
        if data is None:
            continue
        try:
            values[column] = data if model is None else model.model_validate(data)
        except ValidationError as error:
            raise V0RowError(f"column {column}: {_first_error(error)}") from error
    try:
        event = Event(
            id=event_id,
            invocation_id=row.get("invocation_id") or "",
            author=row.get("author", "agent"),
            branch=row.get("branch"),
            actions=actions,
            timestamp=timestamp,
            long_running_tool_ids=long_running,
            partial=row.get("partial"),
            turn_complete=row.get("turn_complete"),
            error_code=row.get("error_code"),
            error_message=row.get("error_message"),
            interrupted=row.get("interrupted"),
            **values,
        )
        data = event.model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise V0RowError(_first_error(error)) from error
    except (PydanticSerializationError, TypeError, ValueError, RecursionError) as error:
        raise V0RowError(f"the event cannot be written as JSON: {error}") from error
    stored_time = datetime.datetime.fromtimestamp(timestamp, tz=_UTC).replace(tzinfo=None)
    return ConvertedEvent(timestamp=timestamp, stored_time=stored_time, event_data=data)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    # A location can hold a dict key of any size (a bad row's, say); keep messages short.
    where = ".".join(_short(str(part), 60) for part in first.get("loc", ()))
    count = error.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    message = _short(str(first.get("msg")), 200)
    return f"{where}: {message}{more}" if where else f"{message}{more}"
