"""Record JSON fixtures produced by the real google-adk package.

These fixtures pin down the exact JSON that google-adk emits for ``Event`` and
``Session`` objects, so openadk's contract tests can check compatibility without
having google-adk installed.

Run it with a Python that has google-adk installed (NOT openadk's venv)::

    /work/venvs/adk/bin/python scripts/record_adk_fixtures.py

It writes ``tests/fixtures/adk/*.json`` (relative to the repository root) and
``tests/fixtures/adk/README.md``. Every fixture file holds three renderings of
the same object::

    {
      "snake": obj.model_dump(mode="json", exclude_none=True),
      "camel": obj.model_dump(mode="json", by_alias=True, exclude_none=True),
      "camel_json_text": obj.model_dump_json(by_alias=True, exclude_none=True)
    }

All ids and timestamps are fixed, so re-running the script is deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from google.adk.events import Event, EventActions
from google.adk.events.event import NodeInfo
from google.adk.events.event_actions import EventCompaction
from google.adk.events.ui_widget import UiWidget
from google.adk.sessions import Session
from google.adk.tools.tool_confirmation import ToolConfirmation
from google.genai import types
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "adk"

# Bytes whose standard base64 encoding contains '+' and '/' (and whose
# URL-safe encoding contains '-' and '_'), so the fixtures reveal the alphabet.
# b"\xfb\xff\xfe" -> standard "+//+", URL-safe "-__-".
INLINE_BYTES = b"\xfb\xff\xfe"
# Also a longer blob that needs '=' padding: 5 bytes -> 8 chars with one '='.
INLINE_BYTES_PADDED = b"\xfb\xef\xbe\xff\x00"


def build_event_minimal() -> Event:
    return Event(
        id="evt-minimal-0001",
        timestamp=1742000000.5,
        invocation_id="e-1",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="hi")]),
    )


def build_event_full() -> Event:
    content = types.Content(
        role="model",
        parts=[
            types.Part(text="Here is the weather report you asked for."),
            types.Part(
                inline_data=types.Blob(
                    mime_type="application/octet-stream",
                    data=INLINE_BYTES,
                    display_name="raw.bin",
                )
            ),
            types.Part(inline_data=types.Blob(mime_type="image/png", data=INLINE_BYTES_PADDED)),
            types.Part(
                function_call=types.FunctionCall(
                    id="call-42",
                    name="get_weather",
                    args={"city": "Paris", "unitSystem": "metric", "days_ahead": 2},
                )
            ),
            types.Part(
                function_response=types.FunctionResponse(
                    id="call-42",
                    name="get_weather",
                    response={"tempC": 21.5, "condition": "sunny", "wind_kph": 12},
                )
            ),
        ],
    )
    grounding_metadata = types.GroundingMetadata(
        web_search_queries=["weather paris today"],
        grounding_chunks=[
            types.GroundingChunk(
                web=types.GroundingChunkWeb(
                    uri="https://example.com/paris-weather",
                    title="Paris weather",
                    domain="example.com",
                )
            )
        ],
        grounding_supports=[
            types.GroundingSupport(
                segment=types.Segment(
                    start_index=0, end_index=41, part_index=0, text="Here is the weather"
                ),
                grounding_chunk_indices=[0],
                confidence_scores=[0.93],
            )
        ],
        search_entry_point=types.SearchEntryPoint(
            rendered_content="<div>search</div>", sdk_blob=INLINE_BYTES
        ),
    )
    usage_metadata = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=120,
        candidates_token_count=45,
        total_token_count=180,
        thoughts_token_count=15,
        cached_content_token_count=10,
        prompt_tokens_details=[
            types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=120)
        ],
    )
    citation_metadata = types.CitationMetadata(
        citations=[
            types.Citation(
                start_index=0,
                end_index=20,
                uri="https://example.com/source",
                title="Source",
                license="CC-BY-4.0",
                publication_date=types.GoogleTypeDate(year=2024, month=5, day=17),
            )
        ]
    )
    actions = EventActions(
        skip_summarization=True,
        state_delta={
            "plain": "value",
            "app:x": 1,
            "user:y": "why",
            "temp:scratch": "t",
            "big_int": 2**63 + 1,
            "float_val": 0.1,
            "none_val": None,
            "bool_val": True,
            "list_val": [1, "two", 3.0, None, {"innerKey": 1}],
            "nested": {
                "fooBar": 1,
                "foo_bar": 2,
                "deeper": {"someKey": [1, 2], "other_key": None},
            },
            "unicode": "héllo ✓ 日本",
        },
        artifact_delta={"report.pdf": 3, "image_0.png": 0},
        transfer_to_agent="weather_agent",
        transfer_reason="user asked about weather",
        escalate=False,
        requested_auth_configs={
            "call-auth-1": {
                "auth_scheme": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "raw_auth_credential": {"auth_type": "apiKey", "api_key": "fake-key"},
                "credential_key": "weather_api_key",
            }
        },
        requested_tool_confirmations={
            "call-42": ToolConfirmation(
                hint="Allow fetching the weather?",
                confirmed=False,
                payload={"maxCalls": 3, "dry_run": True},
            )
        },
        compaction=EventCompaction(
            start_timestamp=1741999000.0,
            end_timestamp=1741999900.25,
            compacted_content=types.Content(
                role="model", parts=[types.Part(text="Summary of earlier turns.")]
            ),
        ),
        end_of_agent=True,
        agent_state={"stepIndex": 2, "pending_calls": ["call-42"]},
        rewind_before_invocation_id="inv-000",
        route=["sunny", 2, True],
        render_ui_widgets=[
            UiWidget(
                id="widget-1",
                provider="mcp",
                payload={"resource_uri": "ui://weather/card", "toolArgs": {"city": "Paris"}},
            )
        ],
        set_model_response={"answer": "sunny", "confidence": 0.9},
    )
    return Event(
        id="evt-full-0001",
        timestamp=1742000123.456,
        invocation_id="inv-full-1",
        author="weather_agent",
        branch="root_agent.weather_agent",
        content=content,
        grounding_metadata=grounding_metadata,
        usage_metadata=usage_metadata,
        citation_metadata=citation_metadata,
        input_transcription=types.Transcription(text="what's the weather", finished=True),
        output_transcription=types.Transcription(text="it is sunny", finished=True),
        finish_reason=types.FinishReason.STOP,
        model_version="gemini-2.5-flash-001",
        long_running_tool_ids={"call-zeta", "call-alpha", "call-42", "call-Mid"},
        error_code="RESOURCE_EXHAUSTED",
        error_message="quota exceeded (simulated)",
        interrupted=False,
        partial=False,
        turn_complete=True,
        custom_metadata={
            "someKey": {"innerCamel": 1, "inner_snake": [1, 2, {"deepKey": None}]},
            "snake_key": "s",
            "ALLCAPS": True,
        },
        avg_logprobs=-0.125,
        output={"resultKey": "sunny", "result_value": 21.5},
        actions=actions,
        node_info=NodeInfo(
            path="root_agent/weather_agent@1",
            output_for=["root_agent/weather_agent@1", "root_agent"],
            message_as_output=True,
        ),
    )


def build_session_with_events() -> Session:
    first = Event(
        id="evt-s-0001",
        timestamp=1742000200.0,
        invocation_id="inv-s-1",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="Remember my name is Ada.")]),
    )
    second = Event(
        id="evt-s-0002",
        timestamp=1742000201.5,
        invocation_id="inv-s-1",
        author="assistant",
        content=types.Content(role="model", parts=[types.Part(text="Got it, Ada.")]),
        actions=EventActions(state_delta={"user:name": "Ada", "app:greeting_count": 7, "turns": 1}),
    )
    return Session(
        id="sess-0001",
        app_name="my_app",
        user_id="user-123",
        state={
            "app:greeting_count": 7,
            "user:name": "Ada",
            "turns": 1,
            "nested": {"camelKey": True, "snake_key": None},
        },
        events=[first, second],
        last_update_time=1742000201.5,
    )


def three_forms(obj: BaseModel) -> dict[str, Any]:
    return {
        "snake": obj.model_dump(mode="json", exclude_none=True),
        "camel": obj.model_dump(mode="json", by_alias=True, exclude_none=True),
        "camel_json_text": obj.model_dump_json(by_alias=True, exclude_none=True),
    }


def write_readme(out_dir: Path, files: list[str]) -> None:
    adk_version = metadata.version("google-adk")
    genai_version = metadata.version("google-genai")
    pydantic_version = metadata.version("pydantic")
    listing = "\n".join(f"- `{name}`" for name in files)
    text = f"""# google-adk recorded fixtures

These JSON files were produced by the real google-adk package, not by openadk.
Do not edit them by hand; re-record them instead.

- google-adk: {adk_version}
- google-genai: {genai_version}
- pydantic: {pydantic_version}
- Python: {sys.version.split()[0]}

Command (run from the repository root, with a Python that has google-adk installed):

```bash
/work/venvs/adk/bin/python scripts/record_adk_fixtures.py
```

Files:

{listing}

Each file is a JSON object with three renderings of the same google-adk object:

- `snake`: `obj.model_dump(mode="json", exclude_none=True)`
- `camel`: `obj.model_dump(mode="json", by_alias=True, exclude_none=True)`
- `camel_json_text`: the string returned by
  `obj.model_dump_json(by_alias=True, exclude_none=True)` (kept verbatim, so
  key order and number formatting can be compared byte for byte)

Ids and timestamps are fixed, so recording is deterministic (except for the
version numbers above).
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    fixtures: dict[str, BaseModel] = {
        "event_minimal.json": build_event_minimal(),
        "event_full.json": build_event_full(),
        "session_with_events.json": build_session_with_events(),
    }
    for name, obj in fixtures.items():
        path = out_dir / name
        path.write_text(
            json.dumps(three_forms(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {path}")
    write_readme(out_dir, list(fixtures))
    print(f"wrote {out_dir / 'README.md'}")


if __name__ == "__main__":
    main()
