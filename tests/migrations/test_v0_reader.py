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
    StandIn,
    TimeRule,
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
