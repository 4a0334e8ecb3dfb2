"""Writer processes (not tasks) appending to one session and to many, on every database.

The bounded CI run of `tests.reliability._concurrency`; `scripts/reliability_concurrency.py`
runs the same check longer.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability import _concurrency


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mariadb"])
def test_writer_processes_lose_nothing_and_keep_commit_order(backend: str) -> None:
    runs = _concurrency.run(backend, ("error", "merge"), workers=4, appends=40, sessions=4)
    print(json.dumps(runs, default=str))  # the figures: pytest -s shows them
    for figures in runs:
        assert figures["problems"] == [], figures
        assert figures["acknowledged"] == figures["attempted"] == figures["stored"]
        if figures["mode"] == "merge":
            assert figures["stale_errors"] == 0
    # With four writers on one session, default mode really does meet stale handles.
    assert runs[0]["stale_errors"] > 0
