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

__all__ = ["MetadataContract", "SearchForkContract"]


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


@pytest.mark.asyncio
class SearchForkContract:
    """Full-text search (capability ``search``) and forks (capability ``fork``)."""

    async def test_search_finds_every_word_newest_first_with_snippets(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "search")
        app, user = _ids()
        first = await service.create_session(app_name=app, user_id=user)
        await service.append_event(first, _text("The quick brown fox jumps"))
        await service.append_event(first, _text("A lazy dog sleeps", author="agent"))
        await service.append_event(first, Event(author="agent", invocation_id="e-none"))
        other = await service.create_session(app_name=app, user_id=f"{user}-2")
        await service.append_event(other, _text("Quick thinking saves the day"))
        elsewhere = await service.create_session(app_name=f"{app}-other", user_id=user)
        await service.append_event(elsewhere, _text("quick elsewhere"))

        found = await service.search_events(app_name=app, query="QUICK")
        assert [(h.session_id, h.user_id) for h in found.hits] == [
            (other.id, f"{user}-2"),
            (first.id, user),
        ]
        assert found.next_page_token is None
        hit = found.hits[1]
        assert (hit.event_id, hit.author) == (first.events[0].id, "user")
        assert hit.timestamp == first.events[0].timestamp
        assert "**quick**" in hit.snippet.lower() and "fox" in hit.snippet
        both = await service.search_events(app_name=app, query="fox quick")
        assert [h.event_id for h in both.hits] == [first.events[0].id]
        mine = await service.search_events(app_name=app, query="quick", user_id=user)
        assert [h.session_id for h in mine.hits] == [first.id]
        assert (await service.search_events(app_name=app, query="quick cat")).hits == []
        page = await service.search_events(app_name=app, query="quick", limit=1)
        assert [h.session_id for h in page.hits] == [other.id] and page.next_page_token
        rest = await service.search_events(
            app_name=app, query="quick", limit=1, page_token=page.next_page_token
        )
        assert [h.session_id for h in rest.hits] == [first.id]
        assert rest.next_page_token is None

    async def test_search_query_syntax_is_plain_text(self, service: BaseSessionService) -> None:
        _needs(service, "search")
        app, user = _ids()
        session = await service.create_session(app_name=app, user_id=user)
        await service.append_event(session, _text('He said "refund" (order-42) near the end'))
        for query in [
            '"refund',
            "refund*",
            "-refund",
            "(refund",
            "refund)",
            'NEAR("refund" order)',
            "order-42",
            "refund:",
            "{refund}",
            "'refund'",
            "refund^",
        ]:
            found = await service.search_events(app_name=app, query=query)
            assert [h.event_id for h in found.hits] == [session.events[0].id], query
        none = await service.search_events(app_name=app, query="NEAR(refund missing)")
        assert none.hits == []
        for empty in ["", "   ", '"" * - ( )', "***"]:
            with pytest.raises(ValueError, match="no word to look for"):
                await service.search_events(app_name=app, query=empty)
        with pytest.raises(ValueError, match="limit"):
            await service.search_events(app_name=app, query="refund", limit=0)
        with pytest.raises(ValueError, match="page_token"):
            await service.search_events(app_name=app, query="refund", page_token="nope")

    async def test_search_forgets_deleted_and_trimmed_events(
        self, service: BaseSessionService
    ) -> None:
        _needs(service, "search")
        app, user = _ids()
        kept = await service.create_session(app_name=app, user_id=user)
        for i in range(3):
            await service.append_event(kept, _text(f"marmalade number{i}"))
        gone = await service.create_session(app_name=app, user_id=user)
        await service.append_event(gone, _text("marmalade in the deleted session"))
        erased = await service.create_session(app_name=app, user_id=f"{user}-erased")
        await service.append_event(erased, _text("marmalade of an erased user"))
        assert len((await service.search_events(app_name=app, query="marmalade")).hits) == 5
        await service.delete_session(app_name=app, user_id=user, session_id=gone.id)
        await service.delete_user(app_name=app, user_id=f"{user}-erased")
        try:
            await service.trim_events(
                app_name=app, user_id=user, session_id=kept.id, keep_last_events=1
            )
            trimmed = True
        except NotImplementedError:
            trimmed = False
        found = await service.search_events(app_name=app, query="marmalade")
        expected = [kept.events[2].id] if trimmed else [e.id for e in reversed(kept.events)]
        assert [h.event_id for h in found.hits] == expected

    async def test_fork_copies_events_up_to_an_invocation_and_folds_state(
        self, service: BaseSessionService
    ) -> None:
        from openadk.events import EventActions

        _needs(service, "fork")
        app, user = _ids()
        source = await service.create_session(
            app_name=app, user_id=user, display_name="Trip", labels={"team": "a"}
        )
        for n, invocation in enumerate(["inv-1", "inv-1", "inv-2", "inv-3"]):
            event = _text(f"turn {n}", invocation_id=invocation)
            event.actions = EventActions(
                state_delta={"step": n, f"k{n}": n, "app:seen": n, "user:last": n}
            )
            await service.append_event(source, event)
        fork = await service.fork_session(
            app_name=app,
            user_id=user,
            session_id=source.id,
            new_session_id="fork-1",
            up_to_invocation_id="inv-2",
        )
        assert fork.id == "fork-1"
        assert [e.id for e in fork.events] == [e.id for e in source.events[:3]]
        assert [e.timestamp for e in fork.events] == [e.timestamp for e in source.events[:3]]
        # Session keys from the copied deltas; app and user state are shared and current.
        assert fork.state == {"step": 2, "k0": 0, "k1": 1, "k2": 2, "app:seen": 3, "user:last": 3}
        assert fork.display_name == "Trip"
        assert fork.labels == {"team": "a", "forked-from": source.id}
        got = await service.get_session(app_name=app, user_id=user, session_id="fork-1")
        assert got is not None and got.state == fork.state
        assert [e.id for e in got.events] == [e.id for e in fork.events]
        # The fork is a session like any other; the source is unchanged.
        await service.append_event(got, _text("a new branch"))
        again = await service.get_session(app_name=app, user_id=user, session_id=source.id)
        assert again is not None and len(again.events) == 4 and again.state["step"] == 3
        whole = await service.fork_session(app_name=app, user_id=user, session_id=source.id)
        assert len(whole.events) == 4 and whole.state["step"] == 3 and whole.id != source.id
        listed = await service.list_sessions(app_name=app, labels={"forked-from": source.id})
        assert sorted(s.id for s in listed.sessions) == sorted(["fork-1", whole.id])

    async def test_fork_refuses_bad_requests_and_changes_nothing(
        self, service: BaseSessionService
    ) -> None:
        from openadk.errors import AlreadyExistsError

        _needs(service, "fork")
        app, user = _ids()
        source = await service.create_session(app_name=app, user_id=user, session_id="src")
        await service.append_event(source, _text("hello", invocation_id="inv-1"))
        taken = await service.create_session(app_name=app, user_id=user, session_id="taken")
        with pytest.raises(SessionNotFoundError, match=r"Session nope not found\."):
            await service.fork_session(app_name=app, user_id=user, session_id="nope")
        with pytest.raises(AlreadyExistsError, match="taken"):
            await service.fork_session(
                app_name=app, user_id=user, session_id="src", new_session_id="taken"
            )
        with pytest.raises(ValueError, match="Invocation inv-9 is not in the session"):
            await service.fork_session(
                app_name=app,
                user_id=user,
                session_id="src",
                new_session_id="never",
                up_to_invocation_id="inv-9",
            )
        assert await service.get_session(app_name=app, user_id=user, session_id="never") is None
        still = await service.get_session(app_name=app, user_id=user, session_id="taken")
        assert still is not None and still.events == [] and still.labels == taken.labels
        listed = await service.list_sessions(app_name=app)
        assert sorted(s.id for s in listed.sessions) == ["src", "taken"]
