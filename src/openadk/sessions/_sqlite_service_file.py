"""`SqliteServiceFileReader`: reads, in place, a file google-adk's SqliteSessionService wrote.

google-adk 2.13's ``SqliteSessionService`` (``adk web``'s default ``.adk/session.db``) keeps the
V1 table names but its own layout: REAL Unix-time columns, TEXT JSON, cascading foreign keys.
openadk reads such a file as it is (opened read-only, never changed) and copies it into a
database it can write with ``openadk migrate-from``; writing openadk's rows into the file would
make it unreadable to google-adk, so this service refuses every write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from openadk.errors import CorruptDataError, SessionNotFoundError
from openadk.events import Event
from openadk.sessions._base import (
    AppendOutcome,
    AppendPlan,
    BaseSessionService,
    EventKey,
    PageKey,
    ScopedDelta,
    encode_page_token,
    merge_state,
)
from openadk.sessions._session import (
    GetSessionConfig,
    ListEventsResponse,
    ListSessionsResponse,
    Session,
)

__all__ = ["SqliteServiceFileReader"]

_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite")


def service_file_path(location: str | PathLike[str]) -> Path:
    """The file a path or ``sqlite:`` URL names, as google-adk's CLI reads it.

    ``sqlite:///x.db`` is ``x.db`` relative to the working directory, ``sqlite:////abs/x.db``
    the absolute path; a query is ignored.
    """
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text)
    if scheme.lower() not in _SQLITE_SCHEMES:
        raise ValueError(
            f"A SqliteSessionService file is a path or a sqlite:/// URL, not {scheme}://."
        )
    path = urllib.parse.unquote(rest.partition("?")[0])
    if not path.startswith("/") or path == "/":
        raise ValueError(f"{text!r} names no file; use sqlite:///relative.db or sqlite:////abs.db.")
    return Path(path[1:])


class SqliteServiceFileReader(BaseSessionService):
    """A read-only session service over a google-adk ``SqliteSessionService`` file.

    Every read of the `BaseSessionService` API works (``get_session`` with its config,
    ``list_sessions`` and ``list_events`` with paging, ``get_user_state``), ordered as
    google-adk orders them (ties in append order). Writes raise ``ValueError`` saying to copy
    the file with ``openadk migrate-from``. The file is opened read-only: nothing in it changes.
    """

    def __init__(
        self, path: str | PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        """Opens nothing yet; the file is checked on first use.

        Args:
            path: The file: a path, or a ``sqlite:///`` URL as google-adk's CLI takes it.
            clock: As for every service (unused: the file has no expiry).

        Raises:
            ValueError: ``path`` is a URL of another database.
        """
        super().__init__(clock=clock)
        self._path = service_file_path(path)
        self._checked = False

    @property
    def path(self) -> Path:
        """The file read."""
        return self._path

    # Reading ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self._path.is_file():
            raise ValueError(f"{self._path} does not exist (or is not a file).")
        uri = f"file:{urllib.parse.quote(str(self._path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        if not self._checked:
            columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(sessions)")}
            if str(columns.get("update_time", "")).upper() not in ("REAL", "FLOAT"):
                conn.close()
                raise ValueError(
                    f"{self._path} is not a google-adk SqliteSessionService file (its sessions "
                    f"table has no REAL update_time); open it with DatabaseSessionService."
                )
            self._checked = True
        return conn

    async def _read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            conn = self._connect()
            try:
                return work(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    def _state(self, raw: str, table: str, key: dict[str, str]) -> dict[str, Any]:
        try:
            value = json.loads(raw)
        except ValueError as error:
            raise CorruptDataError(
                f"Cannot read the {table} row {key}: its state is not JSON ({error}).",
                table=table,
                key=key,
            ) from error
        if not isinstance(value, dict):
            raise CorruptDataError(
                f"Cannot read the {table} row {key}: its state is not a JSON object.",
                table=table,
                key=key,
            )
        return value

    def _scopes(
        self, conn: sqlite3.Connection, app_name: str, user_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        app = conn.execute(
            "SELECT state FROM app_states WHERE app_name = ?", (app_name,)
        ).fetchone()
        user = conn.execute(
            "SELECT state FROM user_states WHERE app_name = ? AND user_id = ?", (app_name, user_id)
        ).fetchone()
        return (
            {} if app is None else self._state(app[0], "app_states", {"app_name": app_name}),
            {}
            if user is None
            else self._state(user[0], "user_states", {"app_name": app_name, "user_id": user_id}),
        )

    def _event(self, raw: str, key: dict[str, str]) -> Event:
        try:
            return Event.model_validate_json(raw)
        except ValueError as error:
            raise CorruptDataError(
                f"Cannot read the events row {key}: its event_data is not a valid event.",
                table="events",
                key=key,
            ) from error

    async def _get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None,
    ) -> Session | None:
        def work(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(
                "SELECT state, update_time FROM sessions "
                "WHERE app_name = ? AND user_id = ? AND id = ?",
                (app_name, user_id, session_id),
            ).fetchone()
            if row is None:
                return None
            key = {"app_name": app_name, "user_id": user_id, "id": session_id}
            state = self._state(row[0], "sessions", key)
            app, user = self._scopes(conn, app_name, user_id)
            events: list[Event] = []
            limit = None if config is None else config.num_recent_events
            after = None if config is None else config.after_timestamp
            if limit != 0:
                sql = (
                    "SELECT id, event_data FROM events WHERE app_name = ? AND user_id = ? "
                    "AND session_id = ?"
                )
                args: list[Any] = [app_name, user_id, session_id]
                if after is not None:
                    sql += " AND timestamp >= ?"
                    args.append(after)
                # As google-adk: newest first (ties: last appended first), then reversed.
                sql += " ORDER BY timestamp DESC, rowid DESC"
                if limit is not None:
                    sql += " LIMIT ?"
                    args.append(limit)
                rows = conn.execute(sql, args).fetchall()
                events = [self._event(data, {**key, "event": eid}) for eid, data in rows[::-1]]
            return Session._from_storage(
                id=session_id,
                app_name=app_name,
                user_id=user_id,
                state=merge_state(state, app, user),
                events=events,
                last_update_time=float(row[1]),
                marker=None,
            )

        result: Session | None = await self._read(work)
        return result

    async def _list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        after: PageKey | None,
    ) -> ListSessionsResponse:
        def work(conn: sqlite3.Connection) -> ListSessionsResponse:
            sql = "SELECT user_id, id, state, update_time FROM sessions WHERE app_name = ?"
            args: list[Any] = [app_name]
            if user_id is not None:
                sql += " AND user_id = ?"
                args.append(user_id)
            if after is not None:
                sql += " AND (update_time, user_id, id) > (?, ?, ?)"
                args.extend(after)
            sql += " ORDER BY update_time, user_id, id"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit + 1)
            rows = conn.execute(sql, args).fetchall()
            token = None
            if limit is not None and len(rows) > limit:
                rows = rows[:limit]
                last = rows[-1]
                token = encode_page_token((float(last[3]), last[0], last[1]))
            scopes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
            sessions = []
            for user, sid, raw, updated in rows:
                if user not in scopes:
                    scopes[user] = self._scopes(conn, app_name, user)
                app, own = scopes[user]
                state = self._state(raw, "sessions", {"app_name": app_name, "user_id": user})
                sessions.append(
                    Session._from_storage(
                        id=sid,
                        app_name=app_name,
                        user_id=user,
                        state=merge_state(state, app, own),
                        events=[],
                        last_update_time=float(updated),
                        marker=None,
                    )
                )
            return ListSessionsResponse(sessions=sessions, next_page_token=token)

        result: ListSessionsResponse = await self._read(work)
        return result

    async def _list_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        limit: int | None,
        after: EventKey | None,
    ) -> ListEventsResponse:
        def work(conn: sqlite3.Connection) -> ListEventsResponse:
            found = conn.execute(
                "SELECT 1 FROM sessions WHERE app_name = ? AND user_id = ? AND id = ?",
                (app_name, user_id, session_id),
            ).fetchone()
            if found is None:
                raise SessionNotFoundError(f"Session {session_id} not found.")
            sql = (
                "SELECT id, timestamp, event_data FROM events WHERE app_name = ? AND user_id = ? "
                "AND session_id = ?"
            )
            args: list[Any] = [app_name, user_id, session_id]
            if after is not None:
                sql += " AND (timestamp, id) > (?, ?)"
                args.extend(after)
            sql += " ORDER BY timestamp, id"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit + 1)
            rows = conn.execute(sql, args).fetchall()
            token = None
            if limit is not None and len(rows) > limit:
                rows = rows[:limit]
                token = encode_page_token((float(rows[-1][1]), rows[-1][0], ""))
            key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
            events = [self._event(data, {**key, "id": eid}) for eid, _, data in rows]
            return ListEventsResponse(events=events, next_page_token=token)

        result: ListEventsResponse = await self._read(work)
        return result

    async def _get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            return self._scopes(conn, app_name, user_id)[1]

        result: dict[str, Any] = await self._read(work)
        return result

    # Writing: refused -------------------------------------------------------------------------

    def _refuse(self) -> ValueError:
        return ValueError(
            f"{self._path} is google-adk's SqliteSessionService file; openadk reads it but does "
            f"not write to it (its REAL time columns would get openadk's rows and google-adk "
            f"could no longer read them). Copy it into a database openadk writes with: openadk "
            f"migrate-from sqlite:///{self._path} sqlite:///sessions.db"
        )

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
        raise self._refuse()

    async def _append_event(
        self, session: Session, event: Event, plan: AppendPlan
    ) -> AppendOutcome:
        raise self._refuse()

    async def _delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        raise self._refuse()

    async def _trim_events(
        self, *, app_name: str, user_id: str, session_id: str, keep_last_events: int
    ) -> int:
        raise self._refuse()

    async def _delete_user(self, *, app_name: str, user_id: str) -> int:
        raise self._refuse()
