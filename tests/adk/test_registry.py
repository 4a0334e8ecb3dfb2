"""`openadk.adk.register`: openadk+ schemes in google-adk's service registry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from google.adk.cli.service_registry import ServiceRegistry

import openadk.sessions
from openadk.adk import AdkSessionService, register, schemes, service_for_uri
from openadk.sessions import DatabaseSessionService, InMemorySessionService


@pytest.mark.asyncio
async def test_register_adds_every_scheme_to_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ServiceRegistry()
    names = register(registry)
    assert names == schemes()
    for name in (
        "openadk+memory",
        "openadk+sqlite",
        "openadk+sqlite+aiosqlite",
        "openadk+postgresql+asyncpg",
        "openadk+mysql+aiomysql",
        "openadk+mariadb",
    ):
        assert name in names
    memory = registry.create_session_service("openadk+memory://", agents_dir=str(tmp_path))
    assert isinstance(memory, AdkSessionService)
    assert isinstance(memory.service, InMemorySessionService)

    # openadk+sqlite:///x.db is x.db in the working directory, as google-adk's sqlite:///x.db.
    monkeypatch.chdir(tmp_path)
    service = registry.create_session_service("openadk+sqlite:///rel.db", agents_dir=str(tmp_path))
    assert isinstance(service, AdkSessionService)
    assert isinstance(service.service, DatabaseSessionService)
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    assert session.id == "s"
    await service.close()
    assert (tmp_path / "rel.db").exists()


@pytest.mark.asyncio
async def test_the_global_registry_is_used_by_default() -> None:
    from google.adk.cli.service_registry import get_service_registry

    register()
    service = get_service_registry().create_session_service("openadk+memory://")
    assert isinstance(service, AdkSessionService)


def test_a_uri_without_the_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with 'openadk\\+'"):
        service_for_uri("sqlite:///x.db")


def test_redis_schemes_follow_the_redis_service() -> None:
    has_redis = getattr(openadk.sessions, "RedisSessionService", None) is not None
    for name in ("openadk+redis", "openadk+rediss", "openadk+redis+cluster"):
        assert (name in schemes()) is has_redis
    if not has_redis:
        with pytest.raises(ValueError, match="no RedisSessionService"):
            service_for_uri("openadk+redis://127.0.0.1:6379/2")


@pytest.mark.asyncio
async def test_the_redis_scheme_serves_a_redis_session_service() -> None:
    from openadk.sessions import RedisSessionService

    prefix = f"adk-registry-{uuid.uuid4().hex[:8]}:"
    async with service_for_uri(f"openadk+redis://127.0.0.1:6379/2?key_prefix={prefix}") as adapter:
        assert isinstance(adapter.service, RedisSessionService)
        made = await adapter.create_session(app_name="a", user_id="u", state={"user:k": 1})
        got = await adapter.get_session(app_name="a", user_id="u", session_id=made.id)
        assert got is not None and got.state == {"user:k": 1}
        await adapter.delete_session(app_name="a", user_id="u", session_id=made.id)


@pytest.mark.asyncio
async def test_services_yaml_can_name_the_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from google.adk.cli.service_registry import get_service_registry, load_services_module

    (tmp_path / "services.yaml").write_text(
        "services:\n"
        "  - scheme: openadk+sqlite\n"
        "    type: session\n"
        "    class: openadk.adk.service_for_uri\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_services_module adds the folder
    load_services_module(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    service = get_service_registry().create_session_service(
        "openadk+sqlite:///yaml.db", agents_dir=str(tmp_path)
    )
    assert isinstance(service, AdkSessionService)
    await service.create_session(app_name="a", user_id="u")
    await service.close()
    assert (tmp_path / "yaml.db").exists()
