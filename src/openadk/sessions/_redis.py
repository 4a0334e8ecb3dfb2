"""`RedisSessionService`: sessions in Redis, Redis Cluster or Valkey, one script call per write.

The layout and the scripts are described in `openadk.sessions._redis_scripts`; docs/redis.md says
what it means for users (durability, expiry, cluster).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import inspect
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter

from openadk.errors import (
    AlreadyExistsError,
    CorruptDataError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
)
from openadk.events import Event
from openadk.sessions import _redis_scripts as scripts
from openadk.sessions._base import (
    AppendOutcome,
    AppendPlan,
    BaseSessionService,
    EventKey,
    OnStale,
    PageKey,
    ScopedDelta,
    encode_page_token,
    first_kept_index,
    merge_state,
)
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    Session,
)
from openadk.sessions._urls import normalize_redis_url, redact_redis_url

try:
    import redis.asyncio as redis_asyncio
    from redis.asyncio.cluster import RedisCluster
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    if exc.name not in ("redis", "redis.asyncio"):
        raise
    raise ImportError("RedisSessionService needs redis-py: pip install 'openadk[redis]'") from exc

__all__ = ["RedisSessionService"]

_T = TypeVar("_T")
_EVENT_LIST = TypeAdapter(list[Event])
# Characters escaped in ids inside key names: the key separator, hash-tag braces, glob
# metacharacters (so a SCAN pattern built from a prefix matches only itself) and the escape.
_ESCAPED = re.compile(r"[%:{}*?\[\]\\]")
# Set by create_session for the one call: a per-session ttl, which appends refresh.
_SLIDING: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "openadk_redis_sliding", default=None
)


def _escape(value: str, name: str = "id") -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"{name} {value!r} holds a lone surrogate, which is not text Redis can store; "
            "use valid Unicode."
        ) from None
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()):02X}", value)


def _unescape(value: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def _fmt(value: float) -> str:
    """A float as text that reads back as the same float (and that Lua reads the same way)."""
    return repr(float(value))


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class _Keys:
    """The key names of one user's data (one hash tag) and of its app."""

    __slots__ = ("aidx", "app", "astate", "base", "uidx", "user", "ustate")

    def __init__(self, prefix: str, app_name: str, user_id: str) -> None:
        app, user = _escape(app_name, "app_name"), _escape(user_id, "user_id")
        self.app, self.user = app_name, user_id
        self.base = f"{prefix}{{{app}:{user}}}:"
        self.uidx = self.base + "idx"
        self.ustate = self.base + "user"
        self.aidx = f"{prefix}{{{app}}}:idx"
        self.astate = f"{prefix}{{{app}}}:app"

    def session(self, session_id: str) -> list[str]:
        sid = _escape(session_id, "session_id")
        return [self.base + "s:" + sid, self.base + "e:" + sid, self.base + "t:" + sid]


class RedisSessionService(BaseSessionService):
    """Stores sessions in Redis (or Valkey), standalone or Cluster.

    Every write is one Lua script call, atomic on the server: an append checks the handle's
    revision, stores the event, applies session and user state (and app state, but on a
    Cluster, where the app's keys live on another shard), moves the session in the indexes and
    refreshes its expiry, in one round trip. Events are a list per session, so an append costs
    the same at 10 or 10,000 events; ``list_sessions`` pages an index sorted by update time.

    Expiry is Redis's own: a session with a ttl gets ``PEXPIREAT`` on its keys, and vanishes
    from the indexes the first time a listing meets it.

    Example::

        service = RedisSessionService("redis://127.0.0.1:6379/0", ttl=86400)
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        key_prefix: str = "openadk:",
        ttl: float | datetime.timedelta | None = None,
        on_stale: OnStale = "error",
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
        event_cache_size: int = 50_000,
    ) -> None:
        """Connects (lazily) to Redis.

        Args:
            url: ``redis://[:password@]host:port/db``, ``rediss://`` (TLS), ``unix://path``, or
                ``redis+cluster://host:port`` (``rediss+cluster://``) for a Redis Cluster, whose
                other nodes are discovered from the one given. Ignored when ``client`` is given.
                A ``?key_prefix=...`` query parameter sets ``key_prefix``.
            client: A ``redis.asyncio.Redis`` or ``RedisCluster`` built by the caller, who owns
                it (`close` leaves it open). It must not decode responses.
            key_prefix: Prefix of every key; several services can share a database with
                different prefixes. It may not contain ``{`` or ``}`` (they make hash tags).
            ttl: Seconds (or a timedelta) a session lives after its last write, refreshed on
                every append; None keeps sessions until deleted.
            on_stale: ``"error"`` raises `StaleSessionError` for a stale handle; ``"merge"``
                appends on top of the latest state.
            clock: Returns the current Unix time; expiry is computed with it.
            max_connections: Connections the service's own pool opens (per node on a Cluster).
            event_cache_size: How many parsed events to keep in memory (0 turns it off).
                Events of returned sessions are shared with this cache: treat them as
                read-only.

        Raises:
            ValueError: A URL that is not a Redis URL, or a bad prefix or ttl.
        """
        super().__init__(on_stale=on_stale, clock=clock)
        if client is None and isinstance(url, str):
            # ?key_prefix=... in the URL (the CLI's --db has no other way to say it).
            url, from_url = _take_prefix(url)
            if from_url is not None:
                key_prefix = from_url
        if not isinstance(key_prefix, str) or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"key_prefix must be a string without braces, got {key_prefix!r}.")
        self._prefix = key_prefix
        self._ttl: float | None = None
        if ttl is not None:
            seconds = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else ttl
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
                raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}.")
            self._ttl = float(seconds)
        if not isinstance(event_cache_size, int) or event_cache_size < 0:
            raise ValueError(f"event_cache_size must be an int >= 0, got {event_cache_size!r}.")
        self._parsed = _ParsedEvents(event_cache_size) if event_cache_size else None
        self._owned = client is None
        if client is None:
            if not isinstance(url, str):
                raise TypeError(f"url must be a str, got {type(url).__name__}.")
            url = normalize_redis_url(url)
            self._url = redact_redis_url(url)
            client = _connect(url, max_connections)
        else:
            self._url = repr(client)
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._closed = False
        # redis-py's cluster client loads the slot map on its first command; commands issued
        # concurrently before it has one all go to the startup node, get MOVED, and after a few
        # MOVED replies the client closes every connection, in-flight ones included (another
        # task then writes to a closed transport). So the map is loaded once, up front.
        self._ready = not self._cluster
        self._ready_lock = asyncio.Lock()
        self._scripts = {
            name: client.register_script(getattr(scripts, name))
            for name in (
                "CREATE",
                "APPEND",
                "APP_SIDE",
                "GET",
                "LIST_EVENTS",
                "DELETE",
                "DELETE_USER",
                "TRIM",
                "PUT",
            )
        }

    def __repr__(self) -> str:
        return f"RedisSessionService({self._url!r})"

    @property
    def client(self) -> Any:
        """The redis-py client (``Redis`` or ``RedisCluster``)."""
        return self._client

    @property
    def key_prefix(self) -> str:
        """The prefix of every key this service writes."""
        return self._prefix

    @property
    def is_cluster(self) -> bool:
        """Whether the client talks to a Redis Cluster."""
        return self._cluster

    async def close(self) -> None:
        """Closes the connections the service opened (a client passed in stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self._client.aclose()

    # Plumbing ----------------------------------------------------------------------------------

    async def _call(self, call: Awaitable[_T]) -> _T:
        """Awaits a Redis call; driver errors become `StorageError` (chained)."""
        try:
            if not self._ready:
                try:
                    await self._load_slots()
                except BaseException:
                    if inspect.iscoroutine(call):
                        call.close()  # never started: no "never awaited" warning
                    raise
            return await call
        except RedisError as error:
            raise StorageError(f"Redis at {self._url} failed: {error}") from error
        except OSError as error:
            raise StorageError(f"Redis at {self._url} is unreachable: {error}") from error

    async def _load_slots(self) -> None:
        async with self._ready_lock:
            if not self._ready:
                await self._client.initialize()
                self._ready = True

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(self._scripts[name](keys=keys, args=args))

    def _keys(self, app_name: str, user_id: str) -> _Keys:
        return _Keys(self._prefix, app_name, user_id)

    def _scope_keys(self, keys: _Keys) -> list[str]:
        """The user-slot keys every write script takes, plus the app's when on one server."""
        return [keys.uidx, keys.ustate] + ([] if self._cluster else [keys.aidx, keys.astate])

    @staticmethod
    def _member(user_id: str, session_id: str) -> str:
        # NUL sorts before every character, so members order by (user, session) exactly.
        return f"{user_id}\x00{session_id}"

    async def _app_side(
        self, keys: _Keys, ut: str, member: str, app_delta: dict[str, Any]
    ) -> dict[bytes, bytes]:
        """On a Cluster, the app's index and state (another shard): a second script call."""
        args: list[Any] = [ut, member, len(app_delta)]
        for key, value in app_delta.items():
            args += [key, _dump(value)]
        flat = await self._script("APP_SIDE", [keys.aidx, keys.astate], args)
        return _pairs(flat)

    def _decode_state(self, flat: dict[bytes, bytes], where: str, key: dict[str, str]) -> Any:
        state: dict[str, Any] = {}
        for field, value in flat.items():
            name = field.decode()
            if where == "sessions":
                if not name.startswith("="):
                    continue
                name = name[1:]
            try:
                state[name] = json.loads(value)
            except ValueError as error:
                raise CorruptDataError(
                    f"Cannot read the {where} entry {key}: state key {name!r} is not valid JSON "
                    f"({error}). Fix or delete the key.",
                    table=where,
                    key=key,
                ) from error
        return state

    def _session(
        self,
        keys: _Keys,
        session_id: str,
        meta: dict[bytes, bytes],
        user_flat: dict[bytes, bytes],
        app_flat: dict[bytes, bytes],
        events: list[bytes],
    ) -> Session:
        app_state = self._decode_state(app_flat, "app_states", {"app_name": keys.app})
        user_state = self._decode_state(
            user_flat, "user_states", {"app_name": keys.app, "user_id": keys.user}
        )
        return self._build(keys, session_id, meta, app_state, user_state, events)

    def _build(
        self,
        keys: _Keys,
        session_id: str,
        meta: dict[bytes, bytes],
        app_state: dict[str, Any],
        user_state: dict[str, Any],
        events: list[bytes],
    ) -> Session:
        where = {"app_name": keys.app, "user_id": keys.user, "id": session_id}
        try:
            marker = meta[b"gen"].decode() + ":" + meta[b"rev"].decode()
            updated = float(meta[b"ut"])
        except (KeyError, ValueError) as error:
            raise CorruptDataError(
                f"Cannot read the session {where}: its hash lacks gen/rev/ut. Delete the key.",
                table="sessions",
                key=where,
            ) from error
        return Session._from_storage(
            id=session_id,
            app_name=keys.app,
            user_id=keys.user,
            state=merge_state(self._decode_state(meta, "sessions", where), app_state, user_state),
            events=_parse_events(events, where)
            if self._parsed is None or not events
            else self._parsed.parse(events, where),
            last_update_time=updated,
            marker=marker,
        )

    def _expiry_args(self, expire_time: float | None) -> tuple[str, str, str]:
        """(exp, sliding ttl, mode) for the create script."""
        sliding = _SLIDING.get()
        if expire_time is not None:
            return _fmt(expire_time), "" if sliding is None else _fmt(sliding), "set"
        if self._ttl is not None:
            return _fmt(self._clock() + self._ttl), _fmt(self._ttl), "default"
        return "", "", "none"

    # Hooks -------------------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        exist_ok: bool = True,
        ttl: float | datetime.timedelta | None = None,
        expire_time: float | datetime.datetime | None = None,
        display_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Creates a session, or resumes the one with ``session_id`` (see the base class).

        A ``ttl`` given here slides: every append moves the expiry ``ttl`` seconds ahead. An
        ``expire_time`` is fixed. Without either, the service's ``ttl`` applies (sliding).
        """
        sliding: float | None = None
        if ttl is not None and expire_time is None:
            seconds = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else ttl
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                sliding = float(seconds)
        token = _SLIDING.set(sliding)
        try:
            return await super().create_session(
                app_name=app_name,
                user_id=user_id,
                state=state,
                session_id=session_id,
                exist_ok=exist_ok,
                ttl=ttl,
                expire_time=expire_time,
                display_name=display_name,
                labels=labels,
            )
        finally:
            _SLIDING.reset(token)

    async def _create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: ScopedDelta,
        exist_ok: bool,
        expire_time: float | None = None,
    ) -> Session:
        if session_id is None:
            session_id = str(uuid.uuid4())
        keys = self._keys(app_name, user_id)
        member = self._member(user_id, session_id)
        exp, sliding, mode = self._expiry_args(expire_time)
        args: list[Any] = [
            _fmt(self._clock()),
            _fmt(time.time()),
            uuid.uuid4().hex[:12],
            "1" if exist_ok else "0",
            exp,
            sliding,
            mode,
            session_id,
            member,
            app_name,
            user_id,
            len(state.session),
            len(state.user),
            len(state.app),
        ]
        for part in (state.session, state.user, state.app):
            for key, value in part.items():
                args += [key, _dump(value)]
        result = await self._script(
            "CREATE", keys.session(session_id) + self._scope_keys(keys), args
        )
        if result[0] == b"exists":
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        meta = _pairs(result[1])
        app_flat = _pairs(result[3])
        if self._cluster:
            app_flat = await self._app_side(keys, meta[b"ut"].decode(), member, state.app)
        return self._session(keys, session_id, meta, _pairs(result[2]), app_flat, result[4])

    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        keys = self._keys(app_name, user_id)
        after = recent = ""
        if config is not None:
            if config.after_timestamp is not None:
                after = _fmt(config.after_timestamp)
            if config.num_recent_events is not None:
                recent = str(config.num_recent_events)
        script_keys = [*keys.session(session_id), keys.ustate]
        args = [_fmt(self._clock()), after, recent]
        if self._cluster:
            result, app_flat = await self._call(
                _gather(
                    self._scripts["GET"](keys=script_keys, args=args),
                    self._client.hgetall(keys.astate),
                )
            )
        else:
            result = await self._script("GET", [*script_keys, keys.astate], args)
            app_flat = _pairs(result[3]) if result[0] == b"ok" else {}
        if result[0] == b"missing":
            return None
        return self._session(
            keys, session_id, _pairs(result[1]), _pairs(result[2]), app_flat, result[4]
        )

    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
    ) -> ListSessionsResponse:
        app_keys = self._keys(app_name, user_id or "-")
        by_app = user_id is None
        index = app_keys.aidx if by_app else app_keys.uidx
        cursor: tuple[float, bytes] | None = None
        if after is not None:
            member = self._member(after[1], after[2]) if by_app else after[2]
            cursor = (after[0], member.encode())
        now = self._clock()
        wanted = None if limit is None else limit + 1
        found: list[tuple[str, str, dict[bytes, bytes]]] = []
        user_states: dict[str, dict[bytes, bytes]] = {}
        batch = 1000 if wanted is None else min(max(wanted, 16), 1000)
        while wanted is None or len(found) < wanted:
            # Keyset over (score, member): entries removed meanwhile cannot shift a page.
            low: Any = "-inf" if cursor is None else cursor[0]
            page = await self._call(
                self._client.zrangebyscore(index, low, "+inf", start=0, num=batch, withscores=True)
            )
            fresh = [
                (member, score)
                for member, score in page
                if cursor is None or (score, member) > cursor
            ]
            if not fresh:
                if len(page) < batch:
                    break
                batch *= 2  # a page of ties at one score: look further
                continue
            cursor = (fresh[-1][1], fresh[-1][0])
            entries = []
            for member, _ in fresh:
                if by_app:
                    user, _, sid = member.decode().partition("\x00")
                else:
                    user, sid = user_id or "", member.decode()
                entries.append((user, sid, member))
            metas = await self._fetch(app_name, entries, user_states)
            dead = []
            for (user, sid, member), meta in zip(entries, metas, strict=True):
                if not meta:
                    dead.append(member)
                    continue
                exp = meta.get(b"exp")
                if exp is not None and float(exp) <= now:
                    continue
                found.append((user, sid, meta))
            if dead:
                # Redis expired them (or they were deleted): drop them from the index.
                await self._call(self._client.zrem(index, *dead))
            if len(page) < batch:
                break
        token = None
        if limit is not None and len(found) > limit:
            found = found[:limit]
            token = "more"
        app_flat = await self._call(self._client.hgetall(app_keys.astate))
        # Each scope is decoded once for the page, not once per session.
        app_state = self._decode_state(app_flat, "app_states", {"app_name": app_name})
        decoded = {
            user: self._decode_state(
                user_states[user], "user_states", {"app_name": app_name, "user_id": user}
            )
            for user in {user for user, _, _ in found}
        }
        sessions = [
            self._build(self._keys(app_name, user), sid, meta, app_state, decoded[user], [])
            for user, sid, meta in found
        ]
        if token is not None:
            last = sessions[-1]
            token = encode_page_token((last.last_update_time, last.user_id, last.id))
        return ListSessionsResponse(sessions=sessions, next_page_token=token)

    async def _fetch(
        self,
        app_name: str,
        entries: list[tuple[str, str, bytes]],
        user_states: dict[str, dict[bytes, bytes]],
    ) -> list[dict[bytes, bytes]]:
        """Each entry's session hash, and the state of each user not fetched yet, pipelined."""
        users = sorted({user for user, _, _ in entries} - user_states.keys())
        pipe = self._client.pipeline(transaction=False)
        for user, sid, _ in entries:
            pipe.hgetall(self._keys(app_name, user).session(sid)[0])
        for user in users:
            pipe.hgetall(self._keys(app_name, user).ustate)
        results = await self._call(pipe.execute()) if entries or users else []
        for user, flat in zip(users, results[len(entries) :], strict=True):
            user_states[user] = flat
        return list(results[: len(entries)])

    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        keys = self._keys(app_name, user_id)
        result = await self._script(
            "LIST_EVENTS",
            keys.session(session_id),
            [
                _fmt(self._clock()),
                "" if after is None else _fmt(after[0]),
                "" if limit is None else str(limit),
            ],
        )
        if result[0] == b"missing":
            raise SessionNotFoundError(f"Session {session_id} not found.")
        where = {"app_name": app_name, "user_id": user_id, "id": session_id}
        events = _parse_events(result[1], where)
        token = None
        if limit is not None and len(events) > limit:
            events = events[:limit]
            token = encode_page_token((events[-1].timestamp, events[-1].id, ""))
        return ListEventsResponse(events=events, next_page_token=token)

    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        keys = self._keys(app_name, user_id)
        member = self._member(user_id, session_id)
        script_keys = [*keys.session(session_id), keys.uidx]
        if not self._cluster:
            script_keys.append(keys.aidx)
        await self._script("DELETE", script_keys, [session_id, member])
        if self._cluster:
            await self._call(self._client.zrem(keys.aidx, member))

    async def _delete_user(self, *, app_name: str, user_id: str) -> int:
        keys = self._keys(app_name, user_id)
        sids = [m.decode() for m in await self._call(self._client.zrange(keys.uidx, 0, -1))]
        script_keys = [keys.uidx, keys.ustate]
        for sid in sids:
            script_keys += keys.session(sid)
        deleted = await self._script("DELETE_USER", script_keys, [_fmt(self._clock())])
        if sids:
            await self._call(
                self._client.zrem(keys.aidx, *(self._member(user_id, s) for s in sids))
            )
        return int(deleted)

    async def _trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        keys = self._keys(app_name, user_id)
        session_keys = keys.session(session_id)
        while True:
            page = await self._list_events(
                app_name=app_name, user_id=user_id, session_id=session_id, limit=None, after=None
            )
            invocations = [e.invocation_id for e in page.events]
            drop = first_kept_index(invocations, keep_last_events)
            first = page.events[0].id if page.events else ""
            result = await self._script(
                "TRIM",
                session_keys,
                [_fmt(self._clock()), str(len(page.events)), first, str(drop)],
            )
            if result[0] == b"missing":
                raise SessionNotFoundError(f"Session {session_id} not found.")
            if result[0] == b"ok":
                return drop
            # An append landed between the read and the trim: read again.

    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        keys = self._keys(app_name, user_id)
        flat = await self._call(self._client.hgetall(keys.ustate))
        return self._decode_state(  # type: ignore[no-any-return]
            flat, "user_states", {"app_name": app_name, "user_id": user_id}
        )

    # Administration (openadk.sessions._admin, openadk.sessions._redis_copy) ------------------

    async def _session_keys(
        self, app_name: str, user_id: str | None
    ) -> AsyncIterator[tuple[str, str]]:
        """(user, session id) of every indexed session of an app, oldest update first."""
        keys = self._keys(app_name, user_id or "-")
        index = keys.aidx if user_id is None else keys.uidx
        for member in await self._call(self._client.zrange(index, 0, -1)):
            if user_id is None:
                user, _, sid = member.decode().partition("\x00")
                yield user, sid
            else:
                yield user_id, member.decode()

    async def _apps(self) -> list[str]:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._prefix) + "{*}:idx"
        apps = set()
        async for raw in self._client.scan_iter(match=pattern, count=1000):
            key = raw.decode()
            tag = key[len(self._prefix) + 1 : key.index("}", len(self._prefix))]
            if ":" not in tag:
                apps.add(_unescape(tag))
        return sorted(apps)

    async def _list_apps(self) -> list[tuple[str, int, int]]:
        """(app, live sessions, users with live sessions) of every app, by name."""
        found = []
        for app in await self._call(self._apps()):
            page = await self._list_sessions(app_name=app, user_id=None, limit=None, after=None)
            if page.sessions:
                found.append((app, len(page.sessions), len({s.user_id for s in page.sessions})))
        return found

    async def _prune(
        self,
        *,
        older_than: float | None,
        expired: bool,
        app_name: str | None,
        dry_run: bool,
    ) -> list[tuple[str, str, str]]:
        now = self._clock()
        chosen = []
        for app in [app_name] if app_name is not None else await self._call(self._apps()):
            index = self._keys(app, "-").aidx
            for user, sid in [
                m.decode().partition("\x00")[::2]
                for m in await self._call(self._client.zrange(index, 0, -1))
            ]:
                meta = await self._call(
                    self._client.hmget(self._keys(app, user).session(sid)[0], "ut", "exp")
                )
                if meta[0] is None:
                    continue
                old = older_than is not None and float(meta[0]) < time.time() - older_than
                gone = expired and meta[1] is not None and float(meta[1]) <= now
                if old or gone:
                    chosen.append((app, user, sid))
        if not dry_run:
            for app, user, sid in chosen:
                await self.delete_session(app_name=app, user_id=user, session_id=sid)
        return chosen

    async def _import_session(self, session: Session, replace: bool) -> str:
        """An exported session, written as it was (ids, times): imported/replaced/skipped."""
        from openadk.sessions._redis_copy import Record

        scoped = ScopedDelta.partition(
            {k: v for k, v in session.state.items() if not k.startswith("temp:")}
        )
        exists = await self._record(session.app_name, session.user_id, session.id)
        if exists is not None and not replace:
            return "skipped"
        if exists is not None:
            await self.delete_session(
                app_name=session.app_name, user_id=session.user_id, session_id=session.id
            )
        await self._put_scope(session.app_name, None, scoped.app)
        await self._put_scope(session.app_name, session.user_id, scoped.user)
        first = session.events[0].timestamp if session.events else session.last_update_time
        record = Record(
            session.app_name,
            session.user_id,
            session.id,
            scoped.session,
            first,
            session.last_update_time,
            None,
            list(session.events),
        )
        if not await self._put_record(record, None):
            return "skipped"  # created meanwhile
        return "imported" if exists is None else "replaced"

    # migrate-from (openadk.sessions._redis_copy) ---------------------------------------------

    async def _get_app_state(self, app_name: str) -> dict[str, Any]:
        flat = await self._call(self._client.hgetall(self._keys(app_name, "-").astate))
        return self._decode_state(flat, "app_states", {"app_name": app_name})  # type: ignore[no-any-return]

    async def _put_scope(self, app_name: str, user_id: str | None, delta: dict[str, Any]) -> None:
        keys = self._keys(app_name, user_id or "-")
        if delta:
            mapping = {key: _dump(value) for key, value in delta.items()}
            target = keys.astate if user_id is None else keys.ustate
            await self._call(self._client.hset(target, mapping=mapping))

    async def _record(self, app_name: str, user_id: str, session_id: str) -> Any:
        """The session as migrate-from copies it (own state, times, expiry), or None."""
        from openadk.sessions._redis_copy import Record

        keys = self._keys(app_name, user_id)
        result = await self._script(
            "GET", [*keys.session(session_id), keys.ustate], [_fmt(self._clock()), "", ""]
        )
        if result[0] == b"missing":
            return None
        meta = _pairs(result[1])
        where = {"app_name": app_name, "user_id": user_id, "id": session_id}
        exp = meta.get(b"exp")
        return Record(
            app_name,
            user_id,
            session_id,
            self._decode_state(meta, "sessions", where),
            float(meta.get(b"ct", meta[b"ut"])),
            float(meta[b"ut"]),
            None if exp is None else float(exp),
            _parse_events(result[4], where),
        )

    async def _put_record(self, record: Any, expected: Any) -> bool:
        """Writes ``record`` (the events ``expected`` lacks) if DEST is still ``expected``."""
        keys = self._keys(record.app_name, record.user_id)
        member = self._member(record.user_id, record.id)
        already = 0 if expected is None else len(expected.events)
        args: list[Any] = [
            -1 if expected is None else already,
            uuid.uuid4().hex[:12],
            _fmt(record.create_time),
            _fmt(record.update_time),
            "" if record.expire_time is None else _fmt(record.expire_time),
            record.app_name,
            record.user_id,
            record.id,
            member,
            len(record.state),
        ]
        for key, value in record.state.items():
            args += [key, _dump(value)]
        new = record.events[already:]
        args.append(len(new))
        for event in new:
            args += [event.id, _fmt(event.timestamp), event.model_dump_json(exclude_none=True)]
        script_keys = [*keys.session(record.id), keys.uidx]
        if not self._cluster:
            script_keys.append(keys.aidx)
        result = await self._script("PUT", script_keys, args)
        if result != b"ok":
            return False
        if self._cluster:
            await self._app_side(keys, _fmt(record.update_time), member, {})
        return True

    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        keys = self._keys(session.app_name, session.user_id)
        data = dict(plan.data)
        data.pop("timestamp", None)
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))[1:]
        local_last = session.events[-1].id if session.events else ""
        member = self._member(session.user_id, session.id)
        scoped = plan.scoped
        args: list[Any] = [
            _fmt(self._clock()),
            event.id,
            _fmt(event.timestamp),
            body,
            session._storage_update_marker or "",
            local_last,
            self._on_stale,
            session.id,
            member,
            len(scoped.session),
            len(scoped.user),
            0 if self._cluster else len(scoped.app),
        ]
        for part in (scoped.session, scoped.user, {} if self._cluster else scoped.app):
            for key, value in part.items():
                args += [key, _dump(value)]
        result = await self._script(
            "APPEND", keys.session(session.id) + self._scope_keys(keys), args
        )
        status = result[0]
        if status == b"missing":
            raise SessionNotFoundError(f"Session {session.id} not found.")
        if status == b"stale":
            raise StaleSessionError()
        if status == b"duplicate":
            where = {"app_name": session.app_name, "user_id": session.user_id, "id": session.id}
            previous = _parse_events([result[1]], where)[0]
            if previous != plan.stored_event(event, previous.timestamp):
                raise ValueError(
                    f"Event id {event.id} is already stored in session {session.id} with "
                    f"different content; give the new event a new id."
                )
            return AppendOutcome(
                timestamp=previous.timestamp,
                last_update_time=float(result[2]),
                marker=result[3].decode(),
                duplicate=True,
            )
        ut = result[1].decode()
        if self._cluster:
            # Cross-slot: the app's index and app state are on the app's shard.
            await self._app_side(keys, ut, member, scoped.app)
        stamp = float(ut)
        return AppendOutcome(timestamp=stamp, last_update_time=stamp, marker=result[2].decode())


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _ParsedEvents:
    """Parsed events by their stored JSON, least recently used evicted first.

    A stored event's JSON never changes (the list is only appended to, or trimmed), so the same
    bytes are the same event: a session read every turn parses only its new events.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._events: OrderedDict[bytes, Event] = OrderedDict()

    def parse(self, items: list[bytes], where: dict[str, str]) -> list[Event]:
        cache = self._events
        found: list[Event | None] = [cache.get(item) for item in items]
        missing = [i for i, event in enumerate(found) if event is None]
        if missing:
            parsed = _parse_events([items[i] for i in missing], where)
            for i, event in zip(missing, parsed, strict=True):
                found[i] = event
                cache[items[i]] = event
            while len(cache) > self._size:
                cache.popitem(last=False)
        for item in items:
            cache.move_to_end(item)
        return found  # type: ignore[return-value]


def _parse_events(items: list[bytes], where: dict[str, str]) -> list[Event]:
    if not items:
        return []
    try:
        parsed = _EVENT_LIST.validate_json(b"[" + b",".join(items) + b"]")
        if len(parsed) == len(items):
            return parsed
    except ValueError:
        pass
    events = []
    for position, item in enumerate(items):
        try:
            events.append(Event.model_validate_json(item))
        except ValueError as error:
            detail = "; ".join(line.strip() for line in str(error).splitlines()[:3])
            key = {**where, "position": str(position)}
            raise CorruptDataError(
                f"Cannot read event {position} of session {where}: not a valid event "
                f"({detail}). Fix or delete it.",
                table="events",
                key=key,
            ) from error
    return events


async def _gather(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls))


def _take_prefix(url: str) -> tuple[str, str | None]:
    """``url`` without its ``key_prefix`` query parameter, and that parameter's value."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "key_prefix"]
    if not prefixes:
        return url, None
    rest = urlencode([(key, value) for key, value in query if key != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefixes[-1]


def _connect(url: str, max_connections: int) -> Any:
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    # No automatic retry: a write whose reply was lost would run twice (harmlessly, the event
    # id makes it a duplicate, but the caller would not learn its own append succeeded).
    # A failed call raises StorageError, and the next call reconnects.
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "decode_responses": False}
    if scheme.endswith("+cluster"):
        plain = scheme[: -len("+cluster")] + "://" + rest
        # reinitialize_steps=0: on MOVED (a resharding) patch the one slot instead of closing
        # every connection of the client, which would break other tasks' commands in flight.
        return RedisCluster.from_url(
            plain, max_connections=max_connections, reinitialize_steps=0, **options
        )
    return redis_asyncio.from_url(url, max_connections=max_connections, **options)
