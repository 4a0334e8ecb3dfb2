from __future__ import annotations

import datetime
import decimal

import pytest
from pydantic import BaseModel

from openadk.errors import StateSchemaError
from openadk.sessions import State
from openadk.sessions._base import ScopedDelta, next_timestamp
from openadk.sessions._json import copy_json, to_json_value


def test_prefix_constants() -> None:
    assert (State.APP_PREFIX, State.USER_PREFIX, State.TEMP_PREFIX) == ("app:", "user:", "temp:")


def test_reads_prefer_delta_and_writes_go_to_both() -> None:
    value = {"a": 1, "b": 2}
    delta = {"b": 3}
    state = State(value, delta)
    assert state["a"] == 1
    assert state["b"] == 3
    assert "a" in state and "b" in state and "c" not in state
    with pytest.raises(KeyError):
        state["c"]
    assert state.get("c", 7) == 7
    state["c"] = 4
    assert value["c"] == 4 and delta["c"] == 4
    state.update({"d": 5})
    assert delta == {"b": 3, "c": 4, "d": 5}
    assert state.setdefault("a", 9) == 1
    assert state.setdefault("e", 9) == 9
    assert state.to_dict() == {"a": 1, "b": 3, "c": 4, "d": 5, "e": 9}
    assert state.has_delta()
    assert not State({}, {}).has_delta()
    assert sorted(state) == ["a", "b", "c", "d", "e"]
    assert len(state) == 5


def test_in_place_container_changes_reach_the_delta() -> None:
    value = {"prefs": {"theme": "dark"}, "items": [1]}
    delta: dict[str, object] = {}
    state = State(value, delta)
    state["prefs"]["theme"] = "light"
    state["items"].append(2)
    assert state.has_delta()
    assert delta == {"prefs": {"theme": "light"}, "items": [1, 2]}


def test_unchanged_containers_are_not_copied_into_the_delta() -> None:
    delta: dict[str, object] = {}
    state = State({"prefs": {"theme": "dark"}}, delta)
    assert state["prefs"] == {"theme": "dark"}
    assert not state.has_delta()
    assert delta == {}


def test_schema_checks_unprefixed_keys() -> None:
    class Schema(BaseModel):
        count: int
        name: str

    state = State({}, {}, schema=Schema)
    state["count"] = 1
    state["app:anything"] = object()
    with pytest.raises(StateSchemaError, match="count"):
        state["count"] = "one"
    with pytest.raises(StateSchemaError, match="not declared"):
        state["unknown"] = 1
    assert isinstance(StateSchemaError("x"), TypeError)


def test_split_drops_temp_and_strips_prefixes() -> None:
    scoped = ScopedDelta.split(
        {"app:a": 1, "user:u": 2, "s": 3, "temp:t": 4, "other:x": 5}, "state"
    )
    assert scoped.app == {"a": 1}
    assert scoped.user == {"u": 2}
    assert scoped.session == {"s": 3, "other:x": 5}
    assert not ScopedDelta.split({"temp:only": 1}, "state")


def test_to_json_value_converts_like_google_adk_and_refuses_the_rest() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    assert to_json_value(when, "v") == "2024-05-06T07:08:09"
    assert to_json_value((1, {"x": (2,)}), "v") == [1, {"x": [2]}]
    assert to_json_value(decimal.Decimal("1.50"), "v") == "1.50"
    assert to_json_value(b"abc", "v") == "abc"
    assert to_json_value(2**80, "v") == 2**80
    with pytest.raises(TypeError, match=r"v\['k'\] of type object"):
        to_json_value({"k": object()}, "v")
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        to_json_value(b"\xff\xfe", "v")
    with pytest.raises(ValueError, match="NaN"):
        to_json_value([float("nan")], "v")
    with pytest.raises(TypeError, match="keys must be strings"):
        to_json_value({1: 2}, "v")
    with pytest.raises(ValueError, match="NUL character"):
        to_json_value({"k": ["a\x00b"]}, "v")
    with pytest.raises(ValueError, match="NUL character"):
        to_json_value({"k\x00": 1}, "v")


def test_to_json_value_and_copy_json_return_independent_copies() -> None:
    original = {"a": [1, {"b": 2}]}
    for copied in (to_json_value(original, "v"), copy_json(original)):
        assert copied == original
        copied["a"][1]["b"] = 3
        assert original == {"a": [1, {"b": 2}]}


def test_next_timestamp_keeps_commit_order() -> None:
    assert next_timestamp(5.0, None) == 5.0
    assert next_timestamp(5.0, 4.0) == 5.0
    assert next_timestamp(4.0, 5.0) > 5.0
    assert next_timestamp(5.0, 5.0) > 5.0
    big = 1.8e9
    assert next_timestamp(big, big) > big


def test_copy_model_is_a_deep_independent_equal_copy() -> None:
    from openadk.sessions._json import copy_model
    from openadk.testing._contract import full_event

    event = full_event()
    copied = copy_model(event)
    assert copied == event
    assert copied is not event
    assert copied.model_dump_json() == event.model_dump_json()
    assert copied.content is not None and event.content is not None
    assert copied.content.parts is not None and event.content.parts is not None
    copied.content.parts[0].text = "changed"
    copied.actions.state_delta["plain"] = "changed"
    assert copied.long_running_tool_ids is not None
    copied.long_running_tool_ids.add("new")
    assert event.content.parts[0].text == "hello"
    assert event.actions.state_delta["plain"] == "v"
    assert event.long_running_tool_ids == {"fc-1", "fc-2", "fc-3"}
    assert copy_model(b"x") == b"x"


def test_a_delta_edited_to_hold_a_non_string_key_is_refused() -> None:
    from openadk.events import Event
    from openadk.sessions._base import AppendPlan

    event = Event()
    event.actions.state_delta[1] = "x"  # type: ignore[index]
    with pytest.raises(TypeError, match="keys must be strings"):
        AppendPlan.for_event(event)
