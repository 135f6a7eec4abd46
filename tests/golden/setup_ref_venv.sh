#!/usr/bin/env bash
# Create the reference venv holding the OFFICIAL Ethernity Cloud packages. Only the golden-vector scripts
# (tests/golden/make_golden.py, tests/golden/official_open.py) run in it; the provider never imports them.
# Idempotent (does nothing when the pinned versions are already importable) and quiet (pip's log is shown
# only when the install fails).
#
#   tests/golden/setup_ref_venv.sh                     # -> <repo>/.venv-ref
#   REF_VENV=/tmp/venv-ref tests/golden/setup_ref_venv.sh
# A relative REF_VENV is taken from the repository root, as tests/unit/test_golden.py does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REF_VENV="${REF_VENV:-.venv-ref}"
case "$REF_VENV" in /*) ;; *) REF_VENV="$ROOT/$REF_VENV" ;; esac
PYTHON="${PYTHON:-python3.11}"
RUNNER_VERSION="0.5.26" # ethernity-cloud-runner-py: requester side (pins web3==7.6.0)
SDK_VERSION="0.9.23"    # ethernity-cloud-sdk-py: enclave side (securelock src: etny_crypto, models, etny_exec)
# The SDK's enclave modules import ecdsa (etny_crypto) and pycryptodome, which neither wheel declares.
EXTRA=("ecdsa==0.19.1" "pycryptodome==3.24.1")

check() {
    "$REF_VENV/bin/python" - "$RUNNER_VERSION" "$SDK_VERSION" <<'PY'
import sys
from importlib.metadata import version

assert version("ethernity-cloud-runner-py") == sys.argv[1]
assert version("ethernity-cloud-sdk-py") == sys.argv[2]
import Crypto, ecdsa, nacl, tinyec  # noqa: E401,F401
import ethernity_cloud_runner_py.crypto  # noqa: F401
PY
}

if [ -x "$REF_VENV/bin/python" ] && check >/dev/null 2>&1; then
    exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! {
    { [ -x "$REF_VENV/bin/python" ] || "$PYTHON" -m venv "$REF_VENV"; } &&
        "$REF_VENV/bin/python" -m pip install -q --disable-pip-version-check \
            "ethernity-cloud-runner-py==$RUNNER_VERSION" "ethernity-cloud-sdk-py==$SDK_VERSION" "${EXTRA[@]}" &&
        check
} >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup_ref_venv.sh: could not create the reference venv $REF_VENV" >&2
    exit 1
fi
echo "reference venv ready: $REF_VENV"
