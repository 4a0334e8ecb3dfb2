"""RedisSessionService beyond the contract: layout, ids, expiry, failures, Cluster, durability.

The shared server (127.0.0.1:6379, DB 3 unless ``OPENADK_TEST_REDIS`` says otherwise) is used
with a fresh key prefix per test; tests that stop or kill a server start their own on a port of
7100-7199 (tests/backends/redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from openadk.errors import StorageError
from openadk.events import Event, EventActions
from openadk.sessions import GetSessionConfig, RedisSessionService
from openadk.sessions._urls import is_redis_url, open_service
from tests.backends.redis_cluster import shared_cluster, start_server
from tests.contract.backends import REDIS

pytestmark = pytest.mark.asyncio


def message(text: str, **delta: Any) -> Event:
    from google.genai import types

    return Event(
        author="user",
        invocation_id=f"inv-{uuid.uuid4().hex[:6]}",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )


@pytest_asyncio.fixture
async def service() -> AsyncIterator[RedisSessionService]:
    async with RedisSessionService(REDIS, key_prefix=f"t{uuid.uuid4().hex[:8]}:") as svc:
        yield svc
        keys = [k async for k in svc.client.scan_iter(match=svc.key_prefix + "*")]
        if keys:
            await svc.client.delete(*keys)


@pytest_asyncio.fixture
async def cluster_service() -> AsyncIterator[RedisSessionService]:
    async with RedisSessionService(
        shared_cluster().url, key_prefix=f"c{uuid.uuid4().hex[:8]}:"
    ) as svc:
        yield svc


# Ids and keys ----------------------------------------------------------------------------------

HOSTILE = ["a:b", "a", "b", "{a}", "}{", "*", "?", "[ab]", "a\\:b", "%3A", "é", "🎉", "a:*", ""]


async def test_hostile_ids_stay_separate_and_never_match_each_other(
    service: RedisSessionService,
) -> None:
    ids = [i for i in HOSTILE if i]
    # Every (app, user, session) triple from the hostile ids, each with its own marker.
    triples = [(a, u, s) for a in ids[:6] for u in ids for s in ids[:4]]
    for app, user, sid in triples:
        await service.create_session(
            app_name=app, user_id=user, session_id=sid, state={"who": [app, user, sid]}
        )
    for app, user, sid in triples:
        got = await service.get_session(app_name=app, user_id=user, session_id=sid)
        assert got is not None and got.state == {"who": [app, user, sid]}
    for app in ids[:6]:
        for user in ids:
            listed = await service.list_sessions(app_name=app, user_id=user)
            assert sorted(s.id for s in listed.sessions) == sorted(ids[:4])
            assert all(s.state["who"][:2] == [app, user] for s in listed.sessions)
        everyone = await service.list_sessions(app_name=app)
        assert len(everyone.sessions) == len(ids) * 4
    # A user id that looks like a glob or another user's key prefix deletes only itself.
    assert await service.delete_user(app_name="a", user_id="*") == 4
    assert await service.delete_user(app_name="a", user_id="a:b") == 4
    assert len((await service.list_sessions(app_name="a", user_id="a")).sessions) == 4
    assert len((await service.list_sessions(app_name="a", user_id="b")).sessions) == 4


async def test_key_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="without braces"):
        RedisSessionService(REDIS, key_prefix="x{y}:")


async def test_keys_of_one_user_share_a_hash_tag(service: RedisSessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u:{1}", state={"k": 1})
    await service.append_event(session, message("hi", **{"user:x": 1}))
    keys = [k.decode() async for k in service.client.scan_iter(match=service.key_prefix + "*")]
    tags = {k[k.index("{") : k.index("}") + 1] for k in keys}
    # The user's keys carry the tag {app:u%3A%7B1%7D}; the app's keys {app}.
    assert tags == {"{app:u%3A%7B1%7D}", "{app}"}


# Appends ---------------------------------------------------------------------------------------


async def test_an_append_is_one_script_call(service: RedisSessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u")
    calls: list[str] = []
    original = service.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return await original(*args, **kwargs)

    service.client.execute_command = counting  # type: ignore[method-assign]
    try:
        await service.append_event(session, message("one", k=1, **{"app:a": 1, "user:u": 2}))
    finally:
        del service.client.execute_command
    assert calls == ["EVALSHA"]


async def test_after_a_server_restart_scripts_are_loaded_again(
    service: RedisSessionService,
) -> None:
    session = await service.create_session(app_name="app", user_id="u")
    await service.client.script_flush()  # what a restarted server has: no cached scripts
    await service.append_event(session, message("after flush", k=1))
    got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert got is not None and got.state == {"k": 1} and len(got.events) == 1


async def test_recent_events_and_after_timestamp_at_10000_events(
    service: RedisSessionService,
) -> None:
    session = await service.create_session(app_name="app", user_id="u")
    for i in range(200):
        await service.append_event(session, message(f"m{i}", n=i))
    got = await service.get_session(
        app_name="app",
        user_id="u",
        session_id=session.id,
        config=GetSessionConfig(num_recent_events=10),
    )
    assert got is not None and [e.actions.state_delta["n"] for e in got.events] == list(
        range(190, 200)
    )
    cut = session.events[150].timestamp
    got = await service.get_session(
        app_name="app",
        user_id="u",
        session_id=session.id,
        config=GetSessionConfig(after_timestamp=cut),
    )
    assert got is not None and len(got.events) == 50


# Expiry ----------------------------------------------------------------------------------------


async def test_service_ttl_uses_redis_expiry_and_is_refreshed_by_appends() -> None:
    async with RedisSessionService(
        REDIS, key_prefix=f"ttl{uuid.uuid4().hex[:8]}:", ttl=100
    ) as service:
        session = await service.create_session(app_name="app", user_id="u")
        await service.append_event(session, message("one"))
        keys = [k async for k in service.client.scan_iter(match=service.key_prefix + "*:s:*")]
        first = await service.client.pttl(keys[0])
        assert 0 < first <= 100_000
        events_key = keys[0].replace(b":s:", b":e:")
        assert 0 < await service.client.pttl(events_key) <= 100_000
        # A per-session expire_time is fixed; a per-session ttl slides like the service's.
        fixed = await service.create_session(
            app_name="app", user_id="u", expire_time=time.time() + 5000
        )
        await service.append_event(fixed, message("two"))
        fixed_key = service._keys("app", "u").session(fixed.id)[0]
        assert 4_000_000 < await service.client.pttl(fixed_key) <= 5_000_000


async def test_sessions_redis_expired_vanish_from_the_indexes(
    service: RedisSessionService,
) -> None:
    doomed = await service.create_session(app_name="app", user_id="u", ttl=0.2)
    kept = await service.create_session(app_name="app", user_id="u")
    await service.append_event(doomed, message("short-lived"))
    keys = service._keys("app", "u")
    # Redis's own expiry removes the keys; wait for it (no clock to move: it is the server's).
    for _ in range(100):
        if not await service.client.exists(keys.session(doomed.id)[0]):
            break
        await asyncio.sleep(0.05)
    assert await service.client.zscore(keys.uidx, doomed.id) is not None  # still indexed
    assert [s.id for s in (await service.list_sessions(app_name="app", user_id="u")).sessions] == [
        kept.id
    ]
    assert [s.id for s in (await service.list_sessions(app_name="app")).sessions] == [kept.id]
    # The listings dropped the dead entries.
    assert await service.client.zscore(keys.uidx, doomed.id) is None
    assert await service.client.zscore(keys.aidx, f"u\x00{doomed.id}") is None


# Failures --------------------------------------------------------------------------------------


async def test_redis_down_is_storage_error_and_the_next_call_recovers() -> None:
    server = start_server("--appendonly", "yes", "--appendfsync", "always")
    try:
        async with RedisSessionService(server.url) as service:
            session = await service.create_session(app_name="app", user_id="u")
            await service.append_event(session, message("before", k=1))
            server.kill()
            with pytest.raises(StorageError, match=r"Redis at redis://127\.0\.0\.1:\d+/0"):
                await service.append_event(session, message("while down", k=2))
            with pytest.raises(StorageError):
                await service.get_session(app_name="app", user_id="u", session_id=session.id)
            server.start()  # same directory: the append-only file brings the data back
            got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
            assert got is not None and got.state == {"k": 1}
            assert [e.content.parts[0].text for e in got.events] == ["before"]  # type: ignore[union-attr,index]
            # The failed append left nothing: the handle is current and appends again.
            await service.append_event(session, message("after", k=3))
            got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
            assert got is not None and got.state == {"k": 3} and len(got.events) == 2
    finally:
        server.stop()


async def test_a_password_never_shows_in_errors() -> None:
    service = RedisSessionService("redis://user:s3cret@127.0.0.1:1/0")
    try:
        with pytest.raises(StorageError) as caught:
            await service.get_session(app_name="a", user_id="u", session_id="s")
        assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
        assert "s3cret" not in repr(service)
    finally:
        await service.close()


# URLs ------------------------------------------------------------------------------------------


async def test_open_service_and_the_cli_take_redis_urls(tmp_path: Path) -> None:
    assert (
        is_redis_url("redis://h/0")
        and is_redis_url("REDISS://h")
        and is_redis_url("redis+cluster://h:1")
    )
    assert not is_redis_url("sqlite:///x.db")
    service = open_service(REDIS, key_prefix=f"cli{uuid.uuid4().hex[:6]}:")
    assert isinstance(service, RedisSessionService)
    app = f"cli-{uuid.uuid4().hex[:6]}"
    async with service:
        session = await service.create_session(app_name=app, user_id="u", state={"k": "v"})
        await service.append_event(session, message("hello from redis"))
    prefix = service.key_prefix
    del prefix  # the CLI uses the default prefix; write there too
    async with RedisSessionService(REDIS) as default:
        session = await default.create_session(app_name=app, user_id="u", session_id="cli")
        await default.append_event(session, message("hello from redis"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "openadk", "sessions", "list", "--db", REDIS, "--app", app],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "cli" in listed.stdout
    shown = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "openadk",
            "sessions",
            "show",
            "--db",
            REDIS,
            "--app",
            app,
            "--user",
            "u",
            "cli",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "hello from redis" in shown.stdout
    async with RedisSessionService(REDIS) as default:
        await default.delete_user(app_name=app, user_id="u")


async def test_database_service_refuses_a_redis_url() -> None:
    from openadk.sessions import DatabaseSessionService

    with pytest.raises(ValueError, match="is a Redis URL: use RedisSessionService"):
        DatabaseSessionService("redis://127.0.0.1:6379/3")


# Concurrency -----------------------------------------------------------------------------------


async def _sixteen_writers(service: RedisSessionService, app_state_in_order: bool) -> None:
    writers, per_writer = 16, 8
    app = f"merge-{uuid.uuid4().hex[:8]}"
    created = await service.create_session(app_name=app, user_id="u")
    acked: list[Event] = []

    async def writer(w: int) -> None:
        handle = await service.get_session(app_name=app, user_id="u", session_id=created.id)
        assert handle is not None
        for i in range(per_writer):
            event = message(f"w{w}-{i}", **{f"count_{w}": i + 1, "app:last": f"w{w}-{i}"})
            await service.append_event(handle, event)
            acked.append(event)

    await asyncio.gather(*(writer(w) for w in range(writers)))
    stored = await service.get_session(app_name=app, user_id="u", session_id=created.id)
    assert stored is not None
    ids = [e.id for e in stored.events]
    assert len(ids) == writers * per_writer == len(set(ids))
    assert set(ids) == {e.id for e in acked}
    stamps = [e.timestamp for e in stored.events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    by_id = {e.id: e.timestamp for e in acked}
    assert [by_id[i] for i in ids] == stamps
    folded: dict[str, Any] = {}
    for event in stored.events:
        folded.update(event.actions.state_delta)
    if not app_state_in_order:
        # On a Cluster the app's hash is on another shard, written by a second call after the
        # session's script: the last app write wins, which may be another writer's event.
        assert stored.state.pop("app:last") in {e.actions.state_delta["app:last"] for e in acked}
        folded.pop("app:last")
    assert stored.state == folded


async def test_sixteen_writers_on_one_session_in_merge_mode() -> None:
    async with RedisSessionService(
        REDIS, key_prefix=f"m{uuid.uuid4().hex[:8]}:", on_stale="merge"
    ) as service:
        await _sixteen_writers(service, app_state_in_order=True)


async def test_sixteen_writers_on_one_session_in_merge_mode_on_a_cluster() -> None:
    async with RedisSessionService(
        shared_cluster().url, key_prefix=f"m{uuid.uuid4().hex[:8]}:", on_stale="merge"
    ) as service:
        await _sixteen_writers(service, app_state_in_order=False)


# Cluster ---------------------------------------------------------------------------------------


async def test_cluster_spreads_users_and_shares_app_state_across_slots(
    cluster_service: RedisSessionService,
) -> None:
    service = cluster_service
    app = "shared"
    users = [f"user-{i}" for i in range(12)]
    sessions = {}
    for u in users:
        sessions[u] = await service.create_session(app_name=app, user_id=u)
    slots = {service.client.keyslot(service._keys(app, u).uidx) for u in users}
    nodes = {service.client.get_node_from_key(service._keys(app, u).uidx).name for u in users}
    assert len(slots) == len(users) and len(nodes) == 3  # the users are on every shard
    app_node = service.client.get_node_from_key(service._keys(app, users[0]).astate).name
    for i, u in enumerate(users):
        await service.append_event(sessions[u], message("hi", **{"app:count": i, "user:me": u}))
    # App state, written from every shard's sessions, is one hash on the app's shard.
    for u in users:
        got = await service.get_session(app_name=app, user_id=u, session_id=sessions[u].id)
        assert got is not None
        assert got.state == {"app:count": len(users) - 1, "user:me": u}
    listed = await service.list_sessions(app_name=app)
    assert [s.user_id for s in listed.sessions] == users  # by update time, across shards
    page = await service.list_sessions(app_name=app, limit=5)
    assert len(page.sessions) == 5 and page.next_page_token is not None
    assert app_node in nodes


async def test_concurrent_first_calls_on_a_fresh_cluster_client_never_fail() -> None:
    # The old failure: 8 concurrent creates as a new client's first commands all went to the
    # startup node, got MOVED, and the client closed connections other tasks were using.
    url = shared_cluster().url
    for run in range(10):
        async with RedisSessionService(url, key_prefix=f"f{run}{uuid.uuid4().hex[:6]}:") as svc:
            results = await asyncio.gather(
                *(
                    svc.create_session(app_name=f"a{i % 3}", user_id=f"u{i}", session_id="same")
                    for i in range(32)
                )
            )
            assert len(results) == 32


# Durability ------------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from openadk.events import Event, EventActions
    from openadk.sessions import RedisSessionService

    async def main(url, acks, name):
        async with RedisSessionService(url, on_stale="merge") as service:
            session = await service.create_session(app_name="crash", user_id=name,
                                                   session_id="s")
            with open(acks, "a", buffering=1) as out:
                for i in range(100000):
                    event = Event(author="user", invocation_id="i",
                                  actions=EventActions(state_delta={"n": i}))
                    await service.append_event(session, event)
                    out.write(event.id + "\\n")
                    out.flush()
                    os.fsync(out.fileno())

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.slow
async def test_sigkilled_writers_and_server_lose_no_acknowledged_event(tmp_path: Path) -> None:
    server = start_server("--appendonly", "yes", "--appendfsync", "always")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    acks = {f"w{i}": tmp_path / f"w{i}.acks" for i in range(4)}
    writers = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below
            [sys.executable, "-c", _WRITER, server.url, str(path), name], env=env
        )
        for name, path in acks.items()
    ]
    try:
        # Let every writer acknowledge some appends, then kill them all, and the server.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(  # noqa: ASYNC110 - other processes write
            p.exists() and len(p.read_text().split()) >= 20 for p in acks.values()
        ):
            await asyncio.sleep(0.05)
        for proc in writers:
            proc.send_signal(signal.SIGKILL)
        server.kill()
        for proc in writers:
            proc.wait(10)
        server.start()  # replays the append-only file
        async with RedisSessionService(server.url) as service:
            for name, path in acks.items():
                acked = path.read_text().split()
                assert len(acked) >= 20
                got = await service.get_session(app_name="crash", user_id=name, session_id="s")
                assert got is not None
                stored = [e.id for e in got.events]
                # Every acknowledged event is stored, in order; at most one more (killed
                # between the reply and the acknowledgement).
                assert stored[: len(acked)] == acked
                assert len(stored) - len(acked) in (0, 1)
                assert got.state == {"n": len(stored) - 1}
    finally:
        for proc in writers:
            if proc.poll() is None:
                proc.kill()
        server.stop()


async def test_admin_commands_work_on_redis() -> None:
    src, dst = "redis://127.0.0.1:6379/8", "redis://127.0.0.1:6379/9"
    app = f"admin-{uuid.uuid4().hex[:6]}"
    async with RedisSessionService(src) as service:
        session = await service.create_session(app_name=app, user_id="u", session_id="s")
        await service.append_event(session, message("exported", k=1))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "openadk", *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            check=False,
        )

    apps = await asyncio.to_thread(cli, "apps", "--db", src)
    assert f"{app}\t1\t1" in apps.stdout, apps.stderr
    exported = await asyncio.to_thread(cli, "sessions", "export", "--app", app, "--db", src)
    assert exported.returncode == 0 and "exported" in exported.stdout, exported.stderr
    imported = await asyncio.to_thread(
        cli, "sessions", "import", "-", "--db", dst, stdin=exported.stdout
    )
    assert imported.returncode == 0 and "imported 1" in imported.stdout + imported.stderr
    pruned = await asyncio.to_thread(
        cli, "sessions", "prune", "--older-than", "1s", "--app", app, "--db", dst, "--dry-run"
    )
    assert f"{app}\tu\ts" in pruned.stdout, pruned.stderr
    async with RedisSessionService(dst) as service:
        got = await service.get_session(app_name=app, user_id="u", session_id="s")
        assert got is not None and got.state == {"k": 1} and len(got.events) == 1
        await service.delete_user(app_name=app, user_id="u")
    async with RedisSessionService(src) as service:
        await service.delete_user(app_name=app, user_id="u")


async def test_chat_keeps_its_session_in_redis() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop("OPENADK_MODEL", None)
    session = f"chat-{uuid.uuid4().hex[:6]}"

    def chat(lines: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "openadk",
                "chat",
                "--db",
                REDIS,
                "--model",
                "offline",
                "--session",
                session,
                "--user",
                "redis-chat",
            ],
            capture_output=True,
            text=True,
            env=env,
            input=lines,
            check=False,
            timeout=120,
        )

    first = await asyncio.to_thread(chat, "remember my name is Ada\n/quit\n")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "RedisSessionService('redis://127.0.0.1:6379/" in first.stdout
    again = await asyncio.to_thread(chat, "/state\n/quit\n")
    assert again.returncode == 0, again.stdout + again.stderr
    assert '"user:name": "Ada"' in again.stdout
    async with RedisSessionService(REDIS) as service:
        await service.delete_user(app_name="openadk_chat", user_id="redis-chat")


async def test_key_prefix_can_come_from_the_url() -> None:
    prefix = f"url{uuid.uuid4().hex[:6]}:"
    async with RedisSessionService(f"{REDIS}?key_prefix={prefix}") as service:
        assert service.key_prefix == prefix
        session = await service.create_session(app_name="a", user_id="u")
        keys = [k async for k in service.client.scan_iter(match=prefix + "*")]
        assert keys
        await service.delete_user(app_name="a", user_id="u")
        await service.delete_session(app_name="a", user_id="u", session_id=session.id)


async def test_serve_builds_a_redis_service_from_its_db_url() -> None:
    from openadk.server._serve import build_service

    service = build_service("redis+cluster://127.0.0.1:7000")
    assert isinstance(service, RedisSessionService) and service.is_cluster
    await service.close()
    service = build_service(REDIS)
    assert isinstance(service, RedisSessionService) and not service.is_cluster
    await service.close()
    with pytest.raises(ValueError, match="names no host"):
        build_service("redis://")


async def test_lone_surrogates_in_ids_and_huge_limits_are_clear_errors_or_fine(
    service: RedisSessionService,
) -> None:
    # Found by the fuzzer: redis-py's encoder raised UnicodeEncodeError, Redis refused LIMIT.
    with pytest.raises(ValueError, match="lone surrogate"):
        await service.create_session(app_name="a\ud83d", user_id="u")
    with pytest.raises(ValueError, match="lone surrogate"):
        await service.delete_session(app_name="a", user_id="u", session_id="\ud800")
    await service.create_session(app_name="a", user_id="u", session_id="s")
    page = await service.list_sessions(app_name="a", user_id="u", limit=2**63)
    assert [s.id for s in page.sessions] == ["s"] and page.next_page_token is None
