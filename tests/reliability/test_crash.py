"""A writer process killed with SIGKILL at random points: nothing acknowledged is lost.

The bounded CI run of `tests.reliability._crash`; `scripts/reliability_crash.py` runs more
rounds.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability import _crash


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkilled_writer_loses_nothing_acknowledged(backend: str) -> None:
    figures = _crash.run(backend, rounds=4, min_delay=0.05, max_delay=0.5)
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    assert figures["problems"] == [], figures
    assert figures["lost"] == 0
    assert figures["acknowledged"] > 0
