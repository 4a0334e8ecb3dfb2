"""Every ```python block of README.md and docs/*.md runs as written, so none can rot.

A block runs in a fresh interpreter in an empty temporary folder (``./sessions.db`` lands there),
offline: model keys and ``OPENADK_MODEL`` are removed from the environment. Top-level ``await``
is allowed, as in an asyncio REPL. A block that cannot run here (it needs a cloud account or a
server) is written as ```text, with a sentence saying why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```python[ \t]*$")

# Runs one block read from stdin; the block keeps its own line numbers in tracebacks.
_RUN_BLOCK = """
import ast, asyncio, sys, types
name, first_line = sys.argv[1], int(sys.argv[2])
source = "\\n" * (first_line - 1) + sys.stdin.read()
code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
result = eval(code, namespace)
if isinstance(result, types.CoroutineType):
    asyncio.run(result)
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the block's first code line, code) for each ```python block of ``path``."""
    blocks: list[tuple[int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        if start is None and _FENCE.match(line):
            start = number + 1
        elif start is not None and line.startswith("```"):
            blocks.append((start, "\n".join(lines[start - 1 : number - 1]) + "\n"))
            start = None
    assert start is None, f"{path.relative_to(ROOT)}:{start - 1}: a ```python block never ends"
    return blocks


BLOCKS = [
    pytest.param(path, line, code, id=f"{path.relative_to(ROOT)}:{line}")
    for path in DOCUMENTS
    for line, code in python_blocks(path)
]


def test_the_documents_have_python_blocks() -> None:
    files = {param.values[0] for param in BLOCKS}
    assert ROOT / "README.md" in files
    assert ROOT / "docs" / "agents.md" in files


@pytest.mark.parametrize(("path", "line", "code"), BLOCKS)
def test_python_block_runs(path: Path, line: int, code: str, tmp_path: Path) -> None:
    name = str(path.relative_to(ROOT))
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENADK_MODEL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "DATABASE_URL")
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), environment.get("PYTHONPATH", "")) if p
    )
    out = subprocess.run(
        [sys.executable, "-c", _RUN_BLOCK, name, str(line)],
        input=code,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    assert out.returncode == 0, (
        f"{name}:{line}: this python block fails (exit {out.returncode}); fix it, or make it a "
        f"```text block saying why it cannot run here.\n{out.stderr[-4000:]}"
    )
