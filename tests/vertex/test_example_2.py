"""The user's document's Example 2, unchanged but for its imports, against `openadk serve`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from openadk.sessions import Session, VertexAiSessionService
from tests.vertex.serving import start_server

EXAMPLE = Path(__file__).parents[2] / "examples" / "example_2_vertex_ai.py"


def test_example_2_runs_against_openadk_serve(tmp_path: Path) -> None:
    served = start_server(f"sqlite+aiosqlite:///{tmp_path}/example2.db", api_key="ex2-key")
    try:
        env = dict(
            os.environ,
            OPENADK_MODEL="offline",
            OPENADK_VERTEX_API_ENDPOINT=served.url,
            OPENADK_API_KEY="ex2-key",
        )
        for _ in range(2):  # a second start-up resumes session456
            done = subprocess.run(
                [sys.executable, str(EXAMPLE)],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{done.stderr}\n{served.log()}"
            assert done.stdout.strip()

        async def read() -> Session | None:
            async with VertexAiSessionService(
                api_endpoint=served.url, express_mode_api_key="ex2-key"
            ) as check:
                return await check.get_session(
                    app_name="vertex_app", user_id="user123", session_id="session456"
                )

        session = asyncio.run(read())
        assert session is not None
        assert [e.author for e in session.events] == [
            "user",
            "persistent_agent",
            "user",
            "persistent_agent",
        ]
    finally:
        served.stop()
