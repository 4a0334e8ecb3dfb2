"""The adapter converts field for field with google-adk 2.13, titles and labels included."""

from __future__ import annotations

import pytest
from google.adk.sessions import Session as AdkSession

from openadk.adk import AdkSessionService, _convert
from openadk.sessions import InMemorySessionService


def test_google_adk_2_13_takes_the_field_for_field_path() -> None:
    # openadk's Session has a title and labels google-adk's lacks; they must not send every
    # event through JSON (slower, and it loses the auth schemes' aliases).
    assert _convert._SAME_SHAPE


@pytest.mark.asyncio
async def test_a_titled_session_reads_as_a_plain_google_adk_session() -> None:
    service = InMemorySessionService()
    await service.create_session(
        app_name="a", user_id="u", session_id="s", display_name="Trip", labels={"team": "t1"}
    )
    adapter = AdkSessionService(service)
    got = await adapter.get_session(app_name="a", user_id="u", session_id="s")
    assert isinstance(got, AdkSession)
    assert "display_name" not in got.__dict__ and "labels" not in got.__dict__
    assert got.model_dump() == AdkSession.model_validate(got.model_dump()).model_dump()
