"""Faults: PostgreSQL connections terminated under load, a read-only and a full SQLite file.

The bounded CI run of `tests.reliability._faults`; `scripts/reliability_faults.py` runs the
PostgreSQL part longer.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability import _faults


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_terminated_postgres_connections(driver: str) -> None:
    figures = _faults.pg_terminate(driver, writers=4, seconds=2.0)
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    assert figures["problems"] == [], figures
    assert figures["terminated_connections"] > 0
    # A call whose connection was terminated is rerun on a new connection, so the faults may
    # surface as no error at all; what did surface was a StorageError (checked in "problems").
    assert figures["acknowledged"] > 0, figures
    assert figures["lost"] == 0


def test_read_only_sqlite() -> None:
    figures = _faults.sqlite_read_only()
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    assert figures["problems"] == [], figures


def test_full_disk_sqlite() -> None:
    figures = _faults.sqlite_full_disk()
    print(json.dumps(figures, default=str))  # the figures: pytest -s shows them
    assert figures["problems"] == [], figures
    assert figures["acknowledged_before_full"] > 0
