"""Hostile input through the public API of every backend: only clear errors, nothing stored.

The bounded CI run of `tests.reliability._fuzz`; `scripts/reliability_fuzz.py` runs more
examples.
"""

from __future__ import annotations

import json
import os

from tests.reliability import _fuzz

EXAMPLES = int(os.environ.get("OPENADK_FUZZ_EXAMPLES", "150"))


def test_hostile_input_gets_clear_errors_and_stores_nothing() -> None:
    figures = _fuzz.fuzz(EXAMPLES)
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    assert figures["problems"] == [], "\n".join(figures["problems"][:20])
    assert figures["examples"] == EXAMPLES
