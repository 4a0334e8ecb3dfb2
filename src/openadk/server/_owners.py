"""Finding a session by id alone within an app.

The REST API names a session by engine and id; openadk's services key sessions by (app, user,
id). The owner of an id is remembered in a bounded cache, and every cached answer is checked
against the service before use, so the cache can be wrong (another process deleted or created the
session) without the server being wrong. On a miss, the app's sessions are listed page by page:
correct whatever else writes to the store, at a cost linear in the app's session count.
"""

from __future__ import annotations

from collections import OrderedDict

from openadk.sessions import BaseSessionService, GetSessionConfig, Session

__all__ = ["Owners"]

_SCAN_PAGE = 1000
_NO_EVENTS = GetSessionConfig(num_recent_events=0)


class AmbiguousSessionId(Exception):
    """More than one user of the app has a session with this id."""

    def __init__(self, users: set[str]) -> None:
        super().__init__(users)
        self.users = users


class Owners:
    """Maps (app, session id) to the session's user, and fetches the session."""

    def __init__(self, service: BaseSessionService, max_cached: int = 100_000) -> None:
        self._service = service
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._max = max_cached

    def remember(self, app_name: str, session_id: str, user_id: str) -> None:
        """Records that ``user_id`` owns the session."""
        key = (app_name, session_id)
        self._cache[key] = user_id
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)

    def known_apps(self) -> list[str]:
        """The apps of the sessions in the cache, sorted."""
        return sorted({app_name for app_name, _ in self._cache})

    def forget(self, app_name: str, session_id: str) -> None:
        """Drops what is known about the session."""
        self._cache.pop((app_name, session_id), None)

    async def find(self, app_name: str, session_id: str, claimed: str | None) -> Session | None:
        """Returns the session with this id in the app (no events), or None.

        ``claimed`` (the user the caller says it is) is tried first, then the cached owner, then
        every session of the app is listed.

        Raises:
            AmbiguousSessionId: Several users have a session with this id and ``claimed`` is
                none of them.
        """
        tried: set[str] = set()
        for user_id in (claimed, self._cache.get((app_name, session_id))):
            if user_id is None or user_id in tried:
                continue
            tried.add(user_id)
            session = await self._service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=_NO_EVENTS
            )
            if session is not None:
                self.remember(app_name, session_id, user_id)
                return session
        self.forget(app_name, session_id)
        owners = await self._scan(app_name, session_id) - tried
        if not owners:
            return None
        if len(owners) > 1:
            raise AmbiguousSessionId(owners)
        (user_id,) = owners
        session = await self._service.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id, config=_NO_EVENTS
        )
        if session is not None:
            self.remember(app_name, session_id, user_id)
        return session

    async def _scan(self, app_name: str, session_id: str) -> set[str]:
        owners: set[str] = set()
        token: str | None = None
        while True:
            page = await self._service.list_sessions(
                app_name=app_name, limit=_SCAN_PAGE, page_token=token
            )
            for session in page.sessions:
                if session.id == session_id:
                    owners.add(session.user_id)
                elif len(self._cache) < self._max:
                    self._cache.setdefault((app_name, session.id), session.user_id)
            token = page.next_page_token
            if token is None:
                return owners
