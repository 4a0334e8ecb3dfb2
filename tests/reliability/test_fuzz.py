"""Hostile input through the public API of every backend: only clear errors, nothing stored.

The bounded CI run of `tests.reliability._fuzz`; `scripts/reliability_fuzz.py` runs more
examples.
"""

from __future__ import annotations

import json
import os

from tests.reliability import _fuzz

EXAMPLES = int(os.environ.get("OPENADK_FUZZ_EXAMPLES", "150"))
SEED = int(os.environ["OPENADK_FUZZ_SEED"]) if os.environ.get("OPENADK_FUZZ_SEED") else None
"""Set OPENADK_FUZZ_SEED to the seed a failed run printed to draw the same calls again."""


def test_hostile_input_gets_clear_errors_and_stores_nothing() -> None:
    figures = _fuzz.fuzz(EXAMPLES, seed=SEED)
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    replay = f"seed {figures['seed']} (replay: OPENADK_FUZZ_SEED={figures['seed']})"
    assert figures["problems"] == [], replay + "\n" + "\n".join(figures["problems"][:20])
    assert figures["examples"] == EXAMPLES, replay


def test_a_run_can_be_replayed_from_its_seed() -> None:
    first = _fuzz.fuzz(25, backends=("memory",))
    again = _fuzz.fuzz(25, backends=("memory",), seed=first["seed"])
    other = _fuzz.fuzz(25, backends=("memory",), seed=first["seed"] + 1)
    drawn = ("drawn", "calls", "by_operation", "outcomes")
    assert {k: again[k] for k in drawn} == {k: first[k] for k in drawn}
    assert other["drawn"] != first["drawn"]
