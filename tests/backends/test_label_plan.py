"""PostgreSQL answers a label-filtered listing through indexes, not by scanning the sessions."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from openadk.sessions import DatabaseSessionService
from openadk.sessions._metadata_sql import PG_LABEL_LIST_SETUP, label_conditions
from openadk.sessions._schema import sessions

pytestmark = pytest.mark.asyncio

POSTGRES = os.environ.get("OPENADK_TEST_POSTGRES", "postgres@127.0.0.1:5432/test")


async def test_label_filter_uses_the_label_index() -> None:
    url = f"postgresql+asyncpg://{POSTGRES}"
    app = f"plan-{uuid.uuid4().hex[:8]}"
    service = DatabaseSessionService(url)
    await service.prepare_tables()
    await service.close()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            # 100,000 sessions, 1 in 100 labelled team=t7 (1,000 matching), built in SQL.
            await conn.execute(
                text(
                    "INSERT INTO sessions (app_name, user_id, id, state, create_time, "
                    "update_time) SELECT :app, 'u' || (i % 1000), 's' || i, '{}'::jsonb, "
                    "now(), now() - (i || ' seconds')::interval FROM generate_series(1, 100000) i"
                ),
                {"app": app},
            )
            await conn.execute(
                text(
                    "INSERT INTO openadk_session_labels (app_name, user_id, session_id, key, "
                    "value) SELECT :app, 'u' || (i % 1000), 's' || i, 'team', 't' || (i % 100) "
                    "FROM generate_series(1, 100000) i"
                ),
                {"app": app},
            )
            await conn.execute(text("ANALYZE sessions"))
            await conn.execute(text("ANALYZE openadk_session_labels"))
            query = (
                select(sessions.c.user_id, sessions.c.id)
                .where(sessions.c.app_name == app, *label_conditions({"team": "t7"}))
                .order_by(sessions.c.update_time, sessions.c.user_id, sessions.c.id)
                .limit(101)
            )
            compiled = query.compile(
                dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
            )
            # What the service runs in a label-filtered listing's transaction first.
            await conn.execute(text(PG_LABEL_LIST_SETUP))
            plan = "\n".join(
                row[0] for row in (await conn.execute(text(f"EXPLAIN {compiled}"))).all()
            )
        assert "Seq Scan" not in plan, plan
        assert (
            "idx_openadk_session_labels_find" in plan or "idx_openadk_sessions_app_update" in plan
        ), plan
        service = DatabaseSessionService(url)
        statements: list[str] = []

        def seen(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(service.engine.sync_engine, "before_cursor_execute", seen)
        page = await service.list_sessions(app_name=app, labels={"team": "t7"}, limit=100)
        assert len(page.sessions) == 100 and page.next_page_token is not None
        # The service's listing runs the same setting in its transaction, before the query.
        assert PG_LABEL_LIST_SETUP in statements, statements
        await service.close()
    finally:
        async with engine.begin() as conn:
            for table, column in (("openadk_session_labels", "app_name"), ("sessions", "app_name")):
                await conn.execute(text(f"DELETE FROM {table} WHERE {column} = :app"), {"app": app})
        await engine.dispose()
