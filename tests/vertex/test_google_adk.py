"""google-adk 2.13's own VertexAiSessionService against `openadk serve`.

google-adk's service builds its client with the ``google-cloud-agentplatform`` SDK and offers no
constructor argument or environment variable for the endpoint: ``agentplatform.Client`` bypasses
google-genai's ``GOOGLE_VERTEX_BASE_URL`` lookup (``test_the_endpoint_cannot_be_set_from_the_
environment`` shows it). Its documented extension point is the
``_api_client_http_options_override()`` hook ("Subclasses that need custom credentials or an
endpoint should override this method"), so a three-line subclass points it at the server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

# google-cloud-agentplatform is a declared dev dependency (pyproject.toml): when it is missing
# the install is broken, and collecting this module fails instead of skipping it.
import agentplatform  # noqa: F401
import google.auth
import pytest
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions
from google.adk.sessions import VertexAiSessionService as AdkVertexService
from google.genai import types
from google.oauth2.credentials import Credentials

from openadk.events import Event
from openadk.sessions import VertexAiSessionService
from openadk.testing._contract import full_event
from tests.vertex.serving import Served, start_server

API_KEY = "adk-interop-key"

pytestmark = [
    # The agentplatform SDK's own models use a validator form pydantic 2.12 deprecates.
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince212"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("adk") / "sessions.db"
    served = start_server(f"sqlite+aiosqlite:///{db}", api_key=API_KEY)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def express_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "true")
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


async def close(service: AdkVertexService) -> None:
    """Closes google-adk's per-loop SDK client before the test's loop ends."""
    await service._get_api_client().aclose()


def adk_service(url: str, **kwargs: Any) -> AdkVertexService:
    class PointedAtOpenadk(AdkVertexService):
        def _api_client_http_options_override(self) -> types.HttpOptions:
            return types.HttpOptions(base_url=f"{url}/")

    return PointedAtOpenadk(**kwargs)


def say(text: str, **actions: Any) -> AdkEvent:
    return AdkEvent(
        author="user",
        invocation_id=f"e-{uuid.uuid4()}",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=AdkEventActions(**actions),
    )


def same_event(ours: Any, theirs: Any) -> None:
    """Equal JSON, except the timestamp, which google-adk reads back rounded to microseconds."""
    a = json.loads(ours.model_dump_json(by_alias=True, exclude_none=True))
    b = json.loads(theirs.model_dump_json(by_alias=True, exclude_none=True))
    assert a.pop("timestamp") == pytest.approx(b.pop("timestamp"), abs=1e-6)
    assert a == b


@pytest.mark.asyncio
@pytest.mark.usefixtures("express_mode")
async def test_create_append_get_list_delete(server: Served) -> None:
    adk = adk_service(server.url, express_mode_api_key=API_KEY)
    app = "4242"
    session_id = f"s-{uuid.uuid4().hex[:12]}"
    created = await adk.create_session(
        app_name=app, user_id="u1", session_id=session_id, state={"k": 1}, ttl="7200s"
    )
    assert created.id == session_id and created.state == {"k": 1}
    first = say("hello", state_delta={"k": 2, "user:lang": "en", "temp:scratch": 1})
    await adk.append_event(created, first)
    assert created.state["k"] == 2
    got = await adk.get_session(app_name=app, user_id="u1", session_id=session_id)
    assert got is not None
    assert got.state == {"k": 2, "user:lang": "en"}
    assert len(got.events) == 1
    same_event(got.events[0], first)
    listed = await adk.list_sessions(app_name=app, user_id="u1")
    assert session_id in [s.id for s in listed.sessions]
    with pytest.raises(ValueError, match="does not belong to user u2"):
        await adk.get_session(app_name=app, user_id="u2", session_id=session_id)
    generated = await adk.create_session(app_name=app, user_id="u1")
    assert str(uuid.UUID(generated.id)) == generated.id
    await adk.delete_session(app_name=app, user_id="u1", session_id=session_id)
    assert await adk.get_session(app_name=app, user_id="u1", session_id=session_id) is None
    await close(adk)


@pytest.mark.asyncio
@pytest.mark.usefixtures("express_mode")
async def test_sessions_cross_between_google_adk_and_openadk(server: Served) -> None:
    adk = adk_service(server.url, express_mode_api_key=API_KEY)
    ours = VertexAiSessionService(api_endpoint=server.url, express_mode_api_key=API_KEY)
    app, session_id = "4343", f"x-{uuid.uuid4().hex[:12]}"
    async with ours:
        theirs = await adk.create_session(app_name=app, user_id="u1", session_id=session_id)
        their_event = say("from google-adk", state_delta={"by": "adk"})
        await adk.append_event(theirs, their_event)
        mine = await ours.get_session(app_name=app, user_id="u1", session_id=session_id)
        assert mine is not None and mine.state == {"by": "adk"}
        same_event(mine.events[0], their_event)
        # Every field of an openadk event survives google-adk's reader (timestamp aside).
        my_event = full_event()
        await ours.append_event(mine, my_event)
        back = await adk.get_session(app_name=app, user_id="u1", session_id=session_id)
        assert back is not None and len(back.events) == 2
        same_event(
            back.events[1],
            AdkEvent.model_validate(my_event.model_dump(mode="json", exclude_none=True)),
        )
        assert back.state["plain"] == "v" and back.state["app:shared"] == 1
        again = await ours.get_session(app_name=app, user_id="u1", session_id=session_id)
        assert again is not None and again.events[1] == my_event
        assert isinstance(again.events[0], Event)
    await close(adk)


@pytest.mark.asyncio
async def test_project_location_and_a_bearer_token(
    server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google-adk asks google-auth for Application Default Credentials; hand it a static token
    # (the server's key) so nothing reaches Google.
    monkeypatch.delenv("GOOGLE_GENAI_USE_ENTERPRISE", raising=False)
    monkeypatch.setattr(
        google.auth, "default", lambda *a, **k: (Credentials(token=API_KEY), "my-project")
    )
    adk = adk_service(server.url, project="my-project", location="us-central1")
    app = "projects/my-project/locations/us-central1/reasoningEngines/4444"
    session = await adk.create_session(app_name=app, user_id="u1")
    await adk.append_event(session, say("with a token"))
    got = await adk.get_session(app_name="4444", user_id="u1", session_id=session.id)
    assert got is not None and got.events[0].content is not None
    assert server.log().count("Traceback") == 0
    await close(adk)


@pytest.mark.usefixtures("express_mode")
def test_the_endpoint_cannot_be_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "http://127.0.0.1:9/")

    async def base_url() -> str:
        client = AdkVertexService(express_mode_api_key="k")._get_api_client()
        url: str = client._api_client._http_options.base_url
        await client.aclose()
        return url

    assert asyncio.run(base_url()) == "https://aiplatform.googleapis.com/"
