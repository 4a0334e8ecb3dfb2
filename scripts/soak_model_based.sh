#!/usr/bin/env bash
# The longer soak of the model-based test (tests/reliability/test_model_based.py): a hypothesis
# state machine driving the in-memory service and the database service on SQLite, PostgreSQL and
# MariaDB at once. CI runs 40 examples; this runs ${1:-500}.
#   bash scripts/soak_model_based.sh [EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
OPENADK_SOAK_EXAMPLES="${1:-500}" exec "${OPENADK_VENV:-.venv}/bin/pytest" -q -p no:cacheprovider \
  tests/reliability/test_model_based.py
