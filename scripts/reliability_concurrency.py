"""Writer processes appending to one session and to many (SQLite, PostgreSQL, MariaDB).

The longer run of the check in `tests/reliability/_concurrency.py` (CI runs a bounded one under
pytest); see docs/reliability.md. Prints one JSON line of figures per run and every problem
found; exits 1 if there was any. Example::

    python scripts/reliability_concurrency.py run --workers 8 --appends 500

Uses the databases of `.ci/services.sh` (or `OPENADK_TEST_POSTGRES` / `OPENADK_TEST_MYSQL`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability._concurrency import main

if __name__ == "__main__":
    sys.exit(main())
