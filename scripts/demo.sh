#!/usr/bin/env bash
# The main job on a fresh machine: install, start the local Ethernity devnet, run the hello-world
# confidential task through EthernityHook, print the verified result, stop the devnet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export ETHERNITY_DEVNET_HOME="${ETHERNITY_DEVNET_HOME:-$PWD/.devnet}"
devnet=".venv/bin/ethernity-devnet"
trap '$devnet down >/dev/null || true' EXIT

$devnet up
$devnet hello
