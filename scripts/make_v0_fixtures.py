"""Writes the google-adk V0 ("pickle") fixtures under tests/fixtures/v0/.

Two interpreters take part:

1. An old google-adk (1.19.x-1.21.x, the releases whose DatabaseSessionService writes the V0
   schema with pickled ``EventActions``) writes ``adk_v0.sqlite`` through its own service, in a
   throwaway virtualenv outside the repository::

       python3.11 -m venv /tmp/adk-v0
       /tmp/adk-v0/bin/pip install 'google-adk==1.21.0' aiosqlite

2. The development venv's google-adk 2.13 converts a copy with its own ``adk migrate session``
   code into a V1 database and reads every session back through its DatabaseSessionService.
   What it reads is ``expected_v1.json``: the result openadk's in-place upgrade must equal.

Both run with ``TZ=Asia/Kolkata`` (UTC+05:30, no daylight saving): google-adk 1.x wrote naive
*local* event times, and a non-UTC zone makes the fixtures catch a wrong time rule.

Run from the repository root::

    .venv/bin/python scripts/make_v0_fixtures.py --old-python /tmp/adk-v0/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

WRITER_TZ = "Asia/Kolkata"
BASE = 1717200000.0  # 2024-06-01 00:00:00 UTC
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "v0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-python", help="python of a venv with google-adk 1.19-1.21")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--write-v0", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--expect", nargs=2, metavar=("V0", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_v0:
        path = Path(args.write_v0)
        written = asyncio.run(write_v0(path))
        path.with_suffix(".writer.json").write_text(
            json.dumps(written, indent=1, sort_keys=True) + "\n"
        )
        return 0
    if args.expect:
        v0, out = Path(args.expect[0]), Path(args.expect[1])
        writer = json.loads(v0.with_suffix(".writer.json").read_text())
        result = asyncio.run(expect(v0, writer))
        out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return 0
    if not args.old_python:
        parser.error("--old-python is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    v0 = out / "adk_v0.sqlite"
    v0.unlink(missing_ok=True)
    env = {**os.environ, "TZ": WRITER_TZ, "PYTHONHASHSEED": "0"}
    script = str(Path(__file__).resolve())
    subprocess.run([args.old_python, script, "--write-v0", str(v0)], check=True, env=env)
    subprocess.run(
        [sys.executable, script, "--expect", str(v0), str(out / "expected_v1.json")],
        check=True,
        env=env,
    )
    print(f"wrote {v0} and {out / 'expected_v1.json'}")
    return 0


# Writing with the old google-adk -----------------------------------------------------------


async def write_v0(path: Path) -> dict[str, Any]:
    import collections
    import datetime
    import decimal
    import pathlib
    import uuid
    from importlib.metadata import version

    from fastapi.openapi.models import OAuth2, OAuthFlowAuthorizationCode, OAuthFlows
    from google.adk.auth.auth_credential import AuthCredential, AuthCredentialTypes, OAuth2Auth
    from google.adk.auth.auth_tool import AuthConfig
    from google.adk.events import Event, EventActions
    from google.adk.events.event_actions import EventCompaction
    from google.adk.sessions import DatabaseSessionService
    from google.adk.tools.tool_confirmation import ToolConfirmation
    from google.genai import types

    adk_version = version("google-adk")
    major, minor = (int(x) for x in adk_version.split(".")[:2])
    if (major, minor) < (1, 19) or (major, minor) > (1, 21):
        raise SystemExit(f"google-adk {adk_version} does not write the V0 schema; use 1.19-1.21")

    service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
    clock = iter(range(1000))

    def at(offset: float | None = None) -> float:
        return BASE + (offset if offset is not None else next(clock) * 1.25 + 0.000125)

    def text(value: str, role: str = "model") -> types.Content:
        return types.Content(role=role, parts=[types.Part(text=value)])

    originals: dict[str, float] = {}

    async def add(session: Any, **fields: Any) -> None:
        fields.setdefault("timestamp", at())
        fields.setdefault("invocation_id", "e-inv-1")
        fields.setdefault("author", "travel_agent")
        event = Event(**fields)
        originals[event.id] = event.timestamp
        await service.append_event(session, event)

    # App travel_agent, user alice: a full conversation.
    s1 = await service.create_session(
        app_name="travel_agent",
        user_id="alice",
        session_id="s-trip",
        state={"app:currency": "EUR", "user:name": "Alice", "trip": "Paris"},
    )
    await add(s1, id="ev-01", author="user", content=text("Find me a flight to Paris", "user"))
    await add(
        s1,
        id="ev-02",
        branch="travel_agent",
        content=types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(
                        id="fc-1", name="search_flights", args={"to": "CDG", "pax": 1}
                    )
                )
            ],
        ),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=42, candidates_token_count=7, total_token_count=49
        ),
    )
    await add(
        s1,
        id="ev-03",
        author="travel_agent",
        branch="travel_agent",
        content=types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id="fc-1", name="search_flights", response={"flights": ["AF123", "LH9"]}
                    )
                )
            ],
        ),
        actions=EventActions(
            state_delta={
                "last_search": "CDG",
                "app:searches": 1,
                "user:home": "NYC",
                "temp:scratch": "gone",
                "nested": {"a": [1, 2.5, None, True]},
            },
            artifact_delta={"itinerary.pdf": 0},
        ),
    )
    await add(
        s1,
        id="ev-04",
        content=types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(
                        id="fc-2", name="request_approval", args={"amount": 420}
                    )
                )
            ],
        ),
        long_running_tool_ids={"fc-2"},
    )
    await add(
        s1,
        id="ev-05",
        actions=EventActions(
            requested_tool_confirmations={
                "fc-3": ToolConfirmation(
                    hint="Book AF123 for 420 EUR?", payload={"amount": 420, "seat": "12A"}
                )
            }
        ),
    )
    await add(
        s1,
        id="ev-06",
        actions=EventActions(
            requested_auth_configs={
                "fc-4": AuthConfig(
                    auth_scheme=OAuth2(
                        flows=OAuthFlows(
                            authorizationCode=OAuthFlowAuthorizationCode(
                                authorizationUrl="https://auth.example.com/authorize",
                                tokenUrl="https://auth.example.com/token",
                                scopes={"calendar": "read your calendar"},
                            )
                        )
                    ),
                    raw_auth_credential=AuthCredential(
                        auth_type=AuthCredentialTypes.OAUTH2,
                        oauth2=OAuth2Auth(client_id="cid", client_secret="csecret"),
                    ),
                    credential_key="travel-oauth",
                )
            }
        ),
    )
    await add(
        s1,
        id="ev-07",
        actions=EventActions(
            transfer_to_agent="booking_agent", skip_summarization=True, escalate=False
        ),
    )
    await add(
        s1,
        id="ev-08",
        author="booking_agent",
        branch="travel_agent.booking_agent",
        content=types.Content(
            role="model",
            parts=[
                types.Part(text="Booked AF123. Ünïcödé ✈ works too."),
                types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG\r\n\x00")),
            ],
        ),
        grounding_metadata=types.GroundingMetadata(web_search_queries=["paris flights"]),
        citation_metadata=types.CitationMetadata(
            citations=[types.Citation(start_index=0, end_index=6, uri="https://example.com")]
        ),
        custom_metadata={"trace": "abc", "n": 3, "nested": {"ok": True}},
        turn_complete=True,
    )
    await add(
        s1,
        id="ev-09",
        error_code="RESOURCE_EXHAUSTED",
        error_message="Quota exceeded for model; retry later.",
        interrupted=True,
    )
    await add(
        s1,
        id="ev-10",
        actions=EventActions(
            end_of_agent=True,
            agent_state={
                "step": 3,
                "when": datetime.datetime(2024, 6, 1, 12, 30, tzinfo=datetime.timezone.utc),
                "day": datetime.date(2024, 6, 2),
                "price": decimal.Decimal("19.99"),
                "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
                "file": pathlib.PurePosixPath("/tmp/boarding-pass.pdf"),
                "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
                "counts": collections.defaultdict(int, {"x": 2}),
                "pair": (1, 2),
                "ids": {3, 1, 2},
                "blob": b"raw bytes",
            },
            rewind_before_invocation_id="e-inv-0",
        ),
    )
    await add(
        s1,
        id="ev-11",
        actions=EventActions(
            compaction=EventCompaction(
                start_timestamp=BASE,
                end_timestamp=BASE + 10,
                compacted_content=text("Alice booked AF123 to Paris."),
            )
        ),
    )
    await add(
        s1,
        id="ev-12",
        author="user",
        invocation_id="e-inv-2",
        input_transcription=types.Transcription(text="what time is boarding", finished=True),
    )
    await add(
        s1,
        id="ev-13",
        invocation_id="e-inv-2",
        output_transcription=types.Transcription(text="Boarding is at 9:40.", finished=True),
    )
    # Two events with the same timestamp: readers order them by id.
    same = at()
    await add(s1, id="ev-15", invocation_id="e-inv-3", content=text("tie b"), timestamp=same)
    await add(s1, id="ev-14", invocation_id="e-inv-3", content=text("tie a"), timestamp=same)

    # A second session of alice, and sessions of other users and apps.
    s2 = await service.create_session(
        app_name="travel_agent", user_id="alice", session_id="s-hotel", state={"stars": 4}
    )
    await add(s2, id="ev-21", author="user", invocation_id="e-h1", content=text("Hotel?", "user"))
    await add(
        s2,
        id="ev-22",
        invocation_id="e-h1",
        content=text("Le Meurice has a room."),
        actions=EventActions(state_delta={"user:loyalty": "gold", "stars": 5}),
    )
    await service.create_session(
        app_name="travel_agent", user_id="bob", session_id="s-empty", state={}
    )
    s4 = await service.create_session(
        app_name="support_bot", user_id="carol", session_id="s-ticket", state={"app:tier": 2}
    )
    await add(
        s4,
        id="ev-41",
        author="user",
        invocation_id="e-t1",
        content=text("My order is late", "user"),
    )
    await add(
        s4,
        id="ev-42",
        author="support_bot",
        invocation_id="e-t1",
        content=text("Sorry! Escalating."),
        actions=EventActions(escalate=True, state_delta={"app:open_tickets": 7}),
    )
    await service.db_engine.dispose()
    return {"google_adk": adk_version, "tz": os.environ.get("TZ"), "event_timestamps": originals}


# What google-adk 2.13 reads after its own migration -----------------------------------------


async def expect(v0: Path, writer: dict[str, Any]) -> dict[str, Any]:
    from importlib.metadata import version

    from google.adk.sessions import DatabaseSessionService
    from google.adk.sessions.migration import migrate_from_sqlalchemy_pickle

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "v0.sqlite"
        shutil.copy(v0, source)
        dest = Path(tmp) / "v1.sqlite"
        migrate_from_sqlalchemy_pickle.migrate(f"sqlite:///{source}", f"sqlite:///{dest}")
        service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{dest}")
        sessions: list[dict[str, Any]] = []
        for app in ("travel_agent", "support_bot"):
            listed = await service.list_sessions(app_name=app)
            for found in sorted(listed.sessions, key=lambda s: (s.user_id, s.id)):
                session = await service.get_session(
                    app_name=app, user_id=found.user_id, session_id=found.id
                )
                assert session is not None
                sessions.append(json.loads(session.model_dump_json()))
        await service.close()
    return {
        "written_by": f"google-adk {writer['google_adk']} (TZ={writer['tz']})",
        "read_by": f"google-adk {version('google-adk')} after its `adk migrate session`",
        "counts": {
            "sessions": len(sessions),
            "events": sum(len(s["events"]) for s in sessions),
        },
        "sessions": sessions,
    }


if __name__ == "__main__":
    sys.exit(main())
