"""A writer process SIGKILLed at random points, round after round (SQLite, PostgreSQL).

The longer run of the check in `tests/reliability/_crash.py` (CI runs a bounded one under
pytest); see docs/reliability.md. Prints one JSON line of figures per run and every problem
found; exits 1 if there was any. Example::

    python scripts/reliability_crash.py run --rounds 50

Uses the databases of `.ci/services.sh` (or `OPENADK_TEST_POSTGRES` / `OPENADK_TEST_MYSQL`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability._crash import main

if __name__ == "__main__":
    sys.exit(main())
