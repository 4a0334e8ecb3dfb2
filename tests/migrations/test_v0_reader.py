"""The restricted unpickler and the V0 row conversion, without a database."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import os
import pickle
import re
import sqlite3
import uuid
from typing import Any

import pytest

from openadk.sessions._v0 import (
    LimitExceededError,
    StandIn,
    TimeRule,
    UnpickleLimits,
    V0RowError,
    actions_fields,
    convert_row,
    load_actions,
)
from tests.migrations.conftest import EXPECTED, V0_FILE


def fixture_actions() -> dict[str, bytes]:
    with sqlite3.connect(V0_FILE) as conn:
        return dict(conn.execute("SELECT id, actions FROM events"))


def pickle_naming(module: str, name: str, args: tuple[Any, ...] = ()) -> bytes:
    """A protocol-4 pickle that calls ``module.name(*args)``, written opcode by opcode."""
    body = pickle.dumps(args, protocol=4)[2:-1]  # the args tuple without PROTO/STOP
    head = b"\x80\x04" + pickle.dumps(module, 4)[2:-1] + pickle.dumps(name, 4)[2:-1]
    return head + b"\x93" + body + b"R."


def test_fixture_pickles_load_into_stand_ins() -> None:
    # What google-adk 2.13 read from each event after its own migration of the same file.
    expected = {e["id"]: e["actions"] for s in EXPECTED["sessions"] for e in s["events"]}
    loaded_ids = []
    for event_id, data in fixture_actions().items():
        loaded = load_actions(data)
        assert isinstance(loaded, StandIn), event_id
        assert loaded.qualified_name == "google.adk.events.event_actions.EventActions"
        fields = actions_fields(loaded)
        assert fields["state_delta"] == expected[event_id]["state_delta"], event_id
        loaded_ids.append(event_id)
    assert sorted(loaded_ids) == sorted(expected)
    # The fixture has deltas to compare, not only empty ones.
    assert any(expected[i]["state_delta"] for i in loaded_ids)


def test_real_values_and_enums_are_rebuilt() -> None:
    data = fixture_actions()
    # The raw values; actions_fields then serializes this dict as google-adk 2.13 does (its
    # PurePosixPath makes pydantic fall back to plain JSON for the whole dict).
    agent_state = load_actions(data["ev-10"])._state["__dict__"]["agent_state"]
    assert actions_fields(load_actions(data["ev-10"]))["agent_state"]["price"] == "19.99"
    assert agent_state["price"] == decimal.Decimal("19.99")
    assert agent_state["ref"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert agent_state["when"] == datetime.datetime(
        2024, 6, 1, 12, 30, tzinfo=datetime.timezone.utc
    )
    assert agent_state["ordered"] == collections.OrderedDict([("b", 1), ("a", 2)])
    auth = actions_fields(load_actions(data["ev-06"]))["requested_auth_configs"]["fc-4"]
    assert auth["auth_scheme"]["type_"] == "oauth2"  # an enum, read as its value
    assert auth["raw_auth_credential"]["auth_type"] == "oauth2"
    assert "exchanged_auth_credential" not in auth  # None fields left out, like exclude_none


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("google.adk.events.event_actions", "_make_json_serializable"),
        ("pickle", "loads"),
    ],
)
def test_anything_else_is_refused(module: str, name: str) -> None:
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"refused to load {module}.{name}")):
        load_actions(pickle_naming(module, name, ("echo pwned",)))


def test_a_refused_pickle_never_runs(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    payload = pickle_naming("os", "system", (f"touch {marker}",))
    with pytest.raises(pickle.UnpicklingError):
        load_actions(payload)
    assert not marker.exists()


def test_unsafe_mode_resolves_other_names() -> None:
    class Color(enum.Enum):
        RED = "red"

    payload = pickle.dumps({"when": datetime.timedelta(days=1), "path": os.path.join})
    assert load_actions(payload, allow_unsafe=True)["path"] is os.path.join
    with pytest.raises(pickle.UnpicklingError):
        load_actions(payload)


def test_stand_ins_never_import_their_module() -> None:
    payload = pickle_naming("google.adk.not_a_module", "Thing", (1,))
    assert isinstance(load_actions(payload), StandIn)


def test_corrupt_pickles_are_row_errors() -> None:
    base = {"id": "e1", "timestamp": datetime.datetime(2024, 1, 1), "author": "a"}
    rule = TimeRule.parse("utc")
    with pytest.raises(V0RowError, match="not a readable pickle"):
        convert_row({**base, "actions": b"\x80\x04garbage"}, times=rule)
    with pytest.raises(V0RowError, match=r"refused to load os\.system"):
        convert_row({**base, "actions": pickle_naming("os", "system", ("x",))}, times=rule)
    with pytest.raises(V0RowError, match="not an EventActions"):
        convert_row({**base, "actions": pickle.dumps([1, 2])}, times=rule)
    with pytest.raises(V0RowError, match="content is not valid JSON"):
        convert_row({**base, "actions": None, "content": "{nope"}, times=rule)
    with pytest.raises(V0RowError, match="column content"):
        convert_row({**base, "content": '{"parts": [], "bogus": 1}'}, times=rule)
    with pytest.raises(V0RowError, match="long_running_tool_ids_json"):
        convert_row({**base, "long_running_tool_ids_json": "{}"}, times=rule)
    with pytest.raises(V0RowError, match="no id"):
        convert_row({**base, "id": ""}, times=rule)
    with pytest.raises(V0RowError, match="actions"):
        convert_row({**base, "actions": pickle.dumps({"no_such_field": 1})}, times=rule)


def test_non_object_json_columns_read_as_absent() -> None:
    row = {
        "id": "e1",
        "timestamp": datetime.datetime(2024, 1, 1),
        "author": "a",
        "content": "null",
        "custom_metadata": "[1, 2]",
    }
    data = convert_row(row, times=TimeRule.parse("utc")).event_data
    assert "content" not in data
    assert "custom_metadata" not in data
    assert data["long_running_tool_ids"] == []  # as google-adk's migration writes it


def test_time_rules() -> None:
    naive = datetime.datetime(2024, 6, 1, 5, 30, 0, 125)
    assert TimeRule.parse("utc").to_epoch(naive) == 1717219800.000125
    assert TimeRule.parse("Asia/Kolkata").to_epoch(naive) == 1717200000.000125
    assert TimeRule.parse("UTC").name == "utc"
    assert TimeRule.parse("local").zone is None
    aware = naive.replace(tzinfo=datetime.timezone.utc)
    assert TimeRule.parse("Asia/Kolkata").to_epoch(aware) == aware.timestamp()
    with pytest.raises(ValueError, match="Unknown V0 time rule"):
        TimeRule.parse("Mars/Olympus")


def test_time_rule_matches_naive_local_arithmetic() -> None:
    """A zone rule gives the very float a naive ``.timestamp()`` gives in that zone."""
    rule = TimeRule.parse("Asia/Kolkata")
    offset = datetime.timedelta(hours=5, minutes=30)
    for micros in (0, 1, 125, 499_999, 500_000, 999_999, 123_457):
        naive = datetime.datetime(2024, 6, 1, 5, 30, 17, micros)
        whole = (naive - offset - datetime.datetime(1970, 1, 1)) // datetime.timedelta(seconds=1)
        assert rule.to_epoch(naive) == whole + micros / 1e6


def test_self_referencing_actions_are_a_row_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    row = {
        "id": "e1",
        "timestamp": datetime.datetime(2024, 1, 1),
        "author": "a",
        "actions": pickle.dumps({"state_delta": {"loop": loop}}),
    }
    with pytest.raises(V0RowError, match="nested too deeply"):
        convert_row(row, times=TimeRule.parse("utc"))


def _text(value: str) -> bytes:
    """SHORT_BINUNICODE, not memoized, so memo slots are only the ones a bomb sets."""
    return b"\x8c" + bytes([len(value)]) + value.encode()


def shared_tuple_bomb(depth: int, *, as_key: bool) -> bytes:
    """``{"state_delta": {"k": L[depth]}}`` (or ``{L[depth]: None}``), ``L[i+1] = (L[i], L[i])``.

    Written opcode by opcode: memo slot i holds L[i], each level is two memo reads and a
    TUPLE2, so the pickle grows by 7 bytes a level while its expansion doubles.
    """
    out = bytearray(b"\x80\x04}" + _text("state_delta") + b"}")
    if not as_key:
        out += _text("k")
    out += b"N\x940"  # None, MEMOIZE, POP
    for level in range(depth):
        out += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86\x940"
    out += b"h" + bytes([depth])
    if as_key:
        out += b"N"
    return bytes(out + b"ss.")


def v0_row(actions: bytes) -> dict[str, Any]:
    return {
        "id": "e1",
        "timestamp": datetime.datetime(2024, 1, 1),
        "author": "a",
        "actions": actions,
    }


def test_shared_reference_bombs_are_row_errors() -> None:
    """Before the bounds, a 168-byte pickle became 8 MB of JSON in 5 s (depth 20), the
    254-byte one 25 MB, and a dict keyed by a depth-60 tuple hashed for longer than anyone
    waits."""
    rule = TimeRule.parse("utc")
    expands = shared_tuple_bomb(32, as_key=False)
    assert len(expands) <= 254
    with pytest.raises(V0RowError, match="more than 500,000 values"):
        convert_row(v0_row(expands), times=rule)
    hashes = shared_tuple_bomb(60, as_key=True)
    with pytest.raises(V0RowError, match="more than 500,000 values"):
        convert_row(v0_row(hashes), times=rule)
    lists = pickle.dumps({"state_delta": {"k": _shared_lists(40)}}, protocol=4)
    assert len(lists) < 600
    with pytest.raises(V0RowError, match="more than 500,000 values"):
        convert_row(v0_row(lists), times=rule)


def _shared_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value, value]
    return value


def test_a_shared_structure_within_the_bounds_converts() -> None:
    shared = {"n": 1}
    data = pickle.dumps({"state_delta": {"a": shared, "b": shared, "t": (1, 2)}})
    converted = convert_row(v0_row(data), times=TimeRule.parse("utc"))
    assert converted.event_data["actions"]["state_delta"] == {
        "a": {"n": 1},
        "b": {"n": 1},
        "t": [1, 2],
    }


def test_constructors_cannot_allocate_huge_values() -> None:
    # bytes(10**12) through REDUCE, and through NEWOBJ (bytes.__new__(bytes, 10**12)).
    reduce = pickle_naming("builtins", "bytes", (10**12,))
    newobj = (
        b"\x80\x04"
        + _text("builtins")
        + _text("bytes")
        + b"\x93"
        + (pickle.dumps((10**12,), 4)[2:-1] + b"\x81.")
    )
    for payload in (reduce, newobj):
        with pytest.raises(LimitExceededError, match="asks a constructor for 1,000,000,000,000"):
            load_actions(payload)


def test_long_text_is_bounded() -> None:
    data = pickle.dumps({"state_delta": {"k": ["x" * 1000] * 100}})
    limits = UnpickleLimits(max_chars=50_000)
    with pytest.raises(LimitExceededError, match="more than 50,000 characters"):
        load_actions(data, limits=limits)
    assert load_actions(data)["state_delta"]["k"][0] == "x" * 1000


def test_operations_and_time_are_bounded() -> None:
    data = pickle.dumps({"state_delta": {str(i): i for i in range(100)}})
    with pytest.raises(LimitExceededError, match="more than 50 operations"):
        load_actions(data, limits=UnpickleLimits(max_operations=50))
    # A zero time budget is past on the first opcode (no clock is waited on).
    with pytest.raises(LimitExceededError, match="longer than 0 s"):
        load_actions(data, limits=UnpickleLimits(max_seconds=0))
    assert len(load_actions(data)["state_delta"]) == 100


def test_error_messages_stay_short() -> None:
    # A value pydantic refuses is quoted in the error; the message must not quote 1 MB.
    data = pickle.dumps({"state_delta": {("x" * 1_000_000,): 1}})
    with pytest.raises(V0RowError) as caught:
        convert_row(v0_row(data), times=TimeRule.parse("utc"))
    assert len(str(caught.value)) < 400


def test_values_json_cannot_hold_are_row_errors() -> None:
    # Bytes that are not UTF-8 (found by the mutation test below): a UnicodeDecodeError
    # escaped from the conversion and stopped the whole upgrade.
    data = pickle.dumps({"state_delta": {"k": b"\xd0\xff"}})
    with pytest.raises(V0RowError, match="cannot be written as JSON"):
        convert_row(v0_row(data), times=TimeRule.parse("utc"))


def test_mutated_fixture_pickles_are_converted_or_row_errors() -> None:
    """Random byte edits of real google-adk pickles: nothing but V0RowError ever escapes."""
    import random

    rng = random.Random(20261202)
    pickles = list(fixture_actions().values())
    outcomes = {"converted": 0, "row error": 0}
    for _ in range(600):
        data = bytearray(rng.choice(pickles))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            roll = rng.random()
            if roll < 0.5:
                data[at] = rng.randrange(256)
            elif roll < 0.75:
                del data[at]
            else:
                data[at:at] = bytes([rng.randrange(256)])
        try:
            convert_row(v0_row(bytes(data)), times=TimeRule.parse("utc"))
            outcomes["converted"] += 1
        except V0RowError:
            outcomes["row error"] += 1
    assert outcomes["row error"] > 0 and outcomes["converted"] > 0


def test_hashing_work_is_bounded_across_keys() -> None:
    """Each key is a tuple under the per-tuple bound, but 2,000 of them would make SETITEMS
    hash half a billion values in one opcode."""
    depth = 17  # a tuple that hashes 2**18 values, below the 500,000 bound
    out = bytearray(b"\x80\x04}" + _text("state_delta") + b"}(")  # EMPTY_DICT ... MARK
    out += b"N\x940"
    for level in range(depth):
        out += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86\x940"
    out += (b"h" + bytes([depth]) + b"N") * 2000
    data = bytes(out + b"us.")  # SETITEMS, SETITEM
    with pytest.raises(LimitExceededError, match="hash or measure more than 5,000,000 values"):
        load_actions(data)
