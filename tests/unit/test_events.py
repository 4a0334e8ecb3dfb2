"""Event and Session JSON compatibility with google-adk 2.13 (recorded fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from openadk.events import Event, EventActions, NodeInfo
from openadk.sessions import Session

FIXTURES = Path(__file__).parent.parent / "fixtures" / "adk"
NAMES = ["event_minimal", "event_full"]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("name", NAMES)
def test_event_snake_form_round_trips(name: str) -> None:
    recorded = load(name)["snake"]
    event = Event.model_validate(recorded)
    assert event.model_dump(mode="json", exclude_none=True) == recorded


@pytest.mark.parametrize("name", NAMES)
def test_event_camel_form_round_trips(name: str) -> None:
    recorded = load(name)["camel"]
    event = Event.model_validate(recorded)
    assert event.model_dump(mode="json", by_alias=True, exclude_none=True) == recorded


@pytest.mark.parametrize("name", NAMES)
def test_event_json_text_is_byte_identical(name: str) -> None:
    text = load(name)["camel_json_text"]
    event = Event.model_validate_json(text)
    assert event.model_dump_json(by_alias=True, exclude_none=True) == text


@pytest.mark.parametrize("name", NAMES)
def test_snake_and_camel_forms_load_to_the_same_event(name: str) -> None:
    fixture = load(name)
    from_snake = Event.model_validate(fixture["snake"])
    from_camel = Event.model_validate(fixture["camel"])
    # requested_auth_configs holds free-form dicts whose keys are data, as in google-adk.
    from_snake.actions.requested_auth_configs = {}
    from_camel.actions.requested_auth_configs = {}
    assert from_snake == from_camel


def test_session_round_trips_both_forms() -> None:
    fixture = load("session_with_events")
    for form, by_alias in (("snake", False), ("camel", True)):
        session = Session.model_validate(fixture[form])
        assert (
            session.model_dump(mode="json", by_alias=by_alias, exclude_none=True) == (fixture[form])
        )
    assert (
        Session.model_validate_json(fixture["camel_json_text"]).model_dump_json(
            by_alias=True, exclude_none=True
        )
        == (fixture["camel_json_text"])
    )


def test_bytes_use_url_safe_base64_and_accept_standard_input() -> None:
    event = Event(
        content=types.Content(
            role="user", parts=[types.Part(inline_data=types.Blob(data=b"\xfb\xff\xfe"))]
        )
    )
    dumped = json.loads(event.model_dump_json(exclude_none=True))
    assert dumped["content"]["parts"][0]["inline_data"]["data"] == "-__-"
    standard = json.dumps({"content": {"parts": [{"inline_data": {"data": "+//+"}}]}})
    loaded = Event.model_validate_json(standard)
    assert loaded.content is not None and loaded.content.parts
    assert loaded.content.parts[0].inline_data is not None
    assert loaded.content.parts[0].inline_data.data == b"\xfb\xff\xfe"


def test_minimal_event_dump_shape() -> None:
    event = Event(invocation_id="e-1", author="user", id="x", timestamp=1700000000.5)
    assert json.loads(event.model_dump_json(by_alias=True, exclude_none=True)) == {
        "invocationId": "e-1",
        "author": "user",
        "actions": {
            "stateDelta": {},
            "artifactDelta": {},
            "requestedAuthConfigs": {},
            "requestedToolConfirmations": {},
        },
        "nodeInfo": {"path": ""},
        "id": "x",
        "timestamp": 1700000000.5,
    }


def test_event_defaults_generate_uuid4_ids_and_timestamps() -> None:
    first, second = Event(), Event()
    assert first.id != second.id
    assert len(first.id) == 36 and first.id.count("-") == 4
    assert first.timestamp > 1.7e9
    assert Event.new_id() != Event.new_id()


def test_unknown_keys_are_ignored_on_events_but_refused_in_actions() -> None:
    event = Event.model_validate({"author": "a", "newerField": 1})
    assert event.author == "a"
    with pytest.raises(ValueError, match="extra"):
        Event.model_validate({"actions": {"unknownAction": 1}})
    with pytest.raises(ValueError, match="extra"):
        Session.model_validate({"id": "s", "appName": "a", "userId": "u", "extra": 1})


def test_input_shortcuts_route_to_nested_fields_and_are_never_emitted() -> None:
    event = Event(message="hello", state={"k": 1}, route="next", node_path="a/b")  # type: ignore[call-arg]
    assert event.content == types.Content(role="user", parts=[types.Part(text="hello")])
    assert event.actions.state_delta == {"k": 1}
    assert event.actions.route == "next"
    assert event.node_info == NodeInfo(path="a/b")
    dumped = event.model_dump(exclude_none=True)
    assert not {"message", "state", "route", "node_path"} & dumped.keys()
    with pytest.raises(ValueError, match="mutually exclusive"):
        Event(message="a", content=types.Content(parts=[types.Part(text="b")]))  # type: ignore[call-arg]


def test_long_running_tool_ids_serialize_sorted() -> None:
    event = Event(long_running_tool_ids={"c", "a", "b"})
    assert json.loads(event.model_dump_json())["long_running_tool_ids"] == ["a", "b", "c"]


def test_is_final_response() -> None:
    text = types.Content(role="model", parts=[types.Part(text="done")])
    call = types.Content(
        role="model", parts=[types.Part(function_call=types.FunctionCall(name="f", args={}))]
    )
    assert Event(content=text).is_final_response()
    assert not Event(content=text, partial=True).is_final_response()
    assert not Event(content=call).is_final_response()
    assert Event(content=call, long_running_tool_ids={"x"}).is_final_response()
    assert Event(error_code="E").is_final_response()
    assert Event(content=call, actions=EventActions(skip_summarization=True)).is_final_response()
    assert [c.name for c in Event(content=call).get_function_calls()] == ["f"]
