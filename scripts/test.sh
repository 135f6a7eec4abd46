#!/usr/bin/env bash
# Everything the tests need, then the whole test suite (unit, golden vectors, devnet integration, the real
# Airflow services and the browser test).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh
bash tests/golden/setup_ref_venv.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy airflow_provider_ethernity
.venv/bin/python -m pytest -p no:cacheprovider "$@"
