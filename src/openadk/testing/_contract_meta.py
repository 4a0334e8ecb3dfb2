"""The contract of openadk's additions: titles and labels, filters (and search, fork).

Each test runs only on a backend that declares the capability it needs
(`BaseSessionService.capabilities`); on others it is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from google.genai import types

from openadk.errors import SessionNotFoundError
from openadk.events import Event
from openadk.sessions import BaseSessionService

__all__ = ["MetadataContract"]


def _needs(service: BaseSessionService, capability: str) -> None:
    if capability not in service.capabilities:
        pytest.skip(f"{type(service).__name__} does not declare the {capability!r} capability")


def _ids() -> tuple[str, str]:
    return f"app-{uuid.uuid4().hex[:12]}", f"user-{uuid.uuid4().hex[:12]}"


def _text(text: str, author: str = "user", invocation_id: str | None = None) -> Event:
    return Event(
        author=author,
        invocation_id=invocation_id or f"e-{uuid.uuid4()}",
        content=types.Content(
            role="user" if author == "user" else "model", parts=[types.Part(text=text)]
        ),
    )


BAD_LABELS: list[tuple[Any, type[Exception], str]] = [
    ({"Team": "a"}, ValueError, "Invalid label key 'Team'"),
    ({"": "a"}, ValueError, "Invalid label key ''"),
    ({"1st": "a"}, ValueError, "Invalid label key '1st'"),
    ({"k" * 64: "a"}, ValueError, "Invalid label key"),
    ({"team": "A"}, ValueError, "Invalid value 'A' of label 'team'"),
    ({"team": "a b"}, ValueError, "Invalid value"),
    ({"team": "v" * 64}, ValueError, "Invalid value"),
    ({"team": 3}, TypeError, "labels must map str to str"),
    ({f"k{i}": "v" for i in range(65)}, ValueError, "at most 64 labels"),
    (["team"], TypeError, "labels must be a dict"),
]


@pytest.mark.asyncio
class MetadataContract:
    """Titles, labels and list filters (capability ``metadata``)."""

    async def test_title_and_labels_round_trip(self, service: BaseSessionService) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        labels = {"team": "support", "tier": "gold", "k_2": ""}
        made = await service.create_session(
            app_name=app, user_id=user, display_name="Refund for order 42 ✓", labels=labels
        )
        assert (made.display_name, made.labels) == ("Refund for order 42 ✓", labels)
        got = await service.get_session(app_name=app, user_id=user, session_id=made.id)
        assert got is not None and (got.display_name, got.labels) == (made.display_name, labels)
        dumped = got.model_dump(mode="json", by_alias=True)
        assert (dumped["displayName"], dumped["labels"]) == (made.display_name, labels)
        listed = (await service.list_sessions(app_name=app)).sessions
        assert [(s.display_name, s.labels) for s in listed] == [(made.display_name, labels)]
        # A session without either keeps google-adk's JSON: no new keys.
        plain = await service.create_session(app_name=app, user_id=user)
        assert (plain.display_name, plain.labels) == (None, {})
        again = await service.get_session(app_name=app, user_id=user, session_id=plain.id)
        assert again is not None
        keys = set(again.model_dump(mode="json", by_alias=True))
        assert keys == {"id", "appName", "userId", "state", "events", "lastUpdateTime"}

    async def test_resuming_with_a_title_replaces_it_and_without_keeps_it(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        await service.create_session(
            app_name=app, user_id=user, session_id="s1", display_name="one", labels={"a": "1"}
        )
        resumed = await service.create_session(app_name=app, user_id=user, session_id="s1")
        assert (resumed.display_name, resumed.labels) == ("one", {"a": "1"})
        renamed = await service.create_session(
            app_name=app, user_id=user, session_id="s1", display_name="two"
        )
        assert (renamed.display_name, renamed.labels) == ("two", {"a": "1"})

    async def test_update_session_changes_only_what_is_given(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        handle = await service.create_session(
            app_name=app, user_id=user, state={"k": 1}, labels={"a": "1"}
        )
        await service.append_event(handle, _text("hello"))
        key: dict[str, Any] = {"app_name": app, "user_id": user, "session_id": handle.id}
        titled = await service.update_session(**key, display_name="Hello chat")
        assert (titled.display_name, titled.labels, titled.state) == (
            "Hello chat",
            {"a": "1"},
            {"k": 1},
        )
        relabelled = await service.update_session(**key, labels={"b": "2", "c": "3"})
        assert (relabelled.display_name, relabelled.labels) == ("Hello chat", {"b": "2", "c": "3"})
        # The handle read before is still current: a rename is not a write to the conversation.
        await service.append_event(handle, _text("still fresh"))
        cleared = await service.update_session(**key, display_name=None, labels=None)
        assert (cleared.display_name, cleared.labels) == (None, {})
        got = await service.get_session(**key)
        assert got is not None and (got.display_name, got.labels) == (None, {})
        assert len(got.events) == 2
        with pytest.raises(SessionNotFoundError, match=r"Session nope not found\."):
            await service.update_session(
                app_name=app, user_id=user, session_id="nope", display_name="x"
            )

    async def test_bad_titles_and_labels_are_refused_and_change_nothing(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        made = await service.create_session(app_name=app, user_id=user, labels={"ok": "1"})
        key: dict[str, Any] = {"app_name": app, "user_id": user, "session_id": made.id}
        for labels, error, message in BAD_LABELS:
            with pytest.raises(error, match=message):
                await service.update_session(**key, labels=labels)
            with pytest.raises(error, match=message):
                await service.create_session(app_name=app, user_id=user, labels=labels)
            with pytest.raises(error, match=message):
                await service.list_sessions(app_name=app, labels=labels)
        bad_names: list[tuple[Any, type[Exception], str]] = [
            ("x" * 257, ValueError, "limit is 256"),
            ("a\x00b", ValueError, "NUL"),
            (5, TypeError, "display_name must be a str"),
        ]
        for name, error, message in bad_names:
            with pytest.raises(error, match=message):
                await service.update_session(**key, display_name=name)
        got = await service.get_session(**key)
        assert got is not None and (got.display_name, got.labels) == (None, {"ok": "1"})
        assert [s.id for s in (await service.list_sessions(app_name=app)).sessions] == [made.id]

    async def test_list_sessions_by_labels_pages_and_needs_every_label(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        made = []
        for i in range(7):
            labels = {"team": "a" if i % 2 == 0 else "b"}
            if i in (2, 4):
                labels["vip"] = "yes"
            made.append(
                await service.create_session(
                    app_name=app, user_id=f"{user}-{i % 3}", session_id=f"s{i}", labels=labels
                )
            )
        everyone = [s.id for s in (await service.list_sessions(app_name=app)).sessions]
        team_a = [i for i in everyone if int(i[1:]) % 2 == 0]
        pages: list[list[str]] = []
        token = None
        while True:
            page = await service.list_sessions(
                app_name=app, labels={"team": "a"}, limit=3, page_token=token
            )
            pages.append([s.id for s in page.sessions])
            token = page.next_page_token
            if token is None:
                break
        assert [i for p in pages for i in p] == team_a and len(pages[0]) == 3
        both = await service.list_sessions(app_name=app, labels={"team": "a", "vip": "yes"})
        assert [s.id for s in both.sessions] == [i for i in everyone if i in ("s2", "s4")]
        mine = await service.list_sessions(app_name=app, user_id=f"{user}-0", labels={"team": "a"})
        assert [s.id for s in mine.sessions] == [i for i in team_a if int(i[1:]) % 3 == 0]
        assert (await service.list_sessions(app_name=app, labels={"team": "c"})).sessions == []
        assert (await service.list_sessions(app_name=app, labels={"vip": "no"})).sessions == []
        # Relabelling moves a session between filters.
        await service.update_session(
            app_name=app, user_id=f"{user}-1", session_id="s1", labels={"team": "a"}
        )
        now_a = await service.list_sessions(app_name=app, labels={"team": "a"})
        assert "s1" in [s.id for s in now_a.sessions]

    async def test_list_sessions_by_update_time(self, service: BaseSessionService) -> None:
        import datetime

        _needs(service, "metadata")
        app, user = _ids()
        first = await service.create_session(app_name=app, user_id=user, session_id="s1")
        await asyncio.sleep(0.01)
        second = await service.create_session(app_name=app, user_id=user, session_id="s2")
        await asyncio.sleep(0.01)
        third = await service.create_session(app_name=app, user_id=user, session_id="s3")
        cut = second.last_update_time

        async def ids(**kwargs: Any) -> list[str]:
            page = await service.list_sessions(app_name=app, **kwargs)
            return [s.id for s in page.sessions]

        assert await ids(updated_after=cut) == ["s2", "s3"]
        assert await ids(updated_before=cut) == ["s1"]
        assert await ids(updated_after=first.last_update_time, updated_before=cut) == ["s1"]
        # Halfway between the second and third (datetimes hold microseconds only).
        middle = (cut + third.last_update_time) / 2
        aware = datetime.datetime.fromtimestamp(middle, datetime.timezone.utc)
        assert await ids(updated_before=aware) == ["s1", "s2"]
        with pytest.raises(ValueError, match="timezone-aware"):
            await ids(updated_after=datetime.datetime(2024, 1, 1))
        with pytest.raises(TypeError, match="updated_before"):
            await ids(updated_before="yesterday")

    async def test_deleting_a_session_deletes_its_labels(self, service: BaseSessionService) -> None:
        _needs(service, "metadata")
        app, user = _ids()
        await service.create_session(
            app_name=app, user_id=user, session_id="s1", display_name="t", labels={"a": "1"}
        )
        await service.create_session(app_name=app, user_id="u2", labels={"a": "1"})
        await service.delete_session(app_name=app, user_id=user, session_id="s1")
        assert [
            s.user_id
            for s in (await service.list_sessions(app_name=app, labels={"a": "1"})).sessions
        ] == ["u2"]
        fresh = await service.create_session(app_name=app, user_id=user, session_id="s1")
        assert (fresh.display_name, fresh.labels) == (None, {})
        await service.delete_user(app_name=app, user_id="u2")
        assert (await service.list_sessions(app_name=app, labels={"a": "1"})).sessions == []
