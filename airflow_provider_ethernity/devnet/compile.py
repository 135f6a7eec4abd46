"""Compile the devnet contracts with the pinned solc-js and (re)write the committed build.

    python -m airflow_provider_ethernity.devnet.compile          # rewrite contracts/build/*.json
    python -m airflow_provider_ethernity.devnet.compile --check  # exit 1 if the build is stale

The build is committed so that starting the devnet needs no compiler; a test checks it matches a
fresh compile of the sources.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.tools import find_solcjs

CONTRACTS_DIR = Path(__file__).with_name("contracts")
BUILD_DIR = CONTRACTS_DIR / "build"
CONTRACTS = {
    "EthernityToken": "EthernityToken.sol",
    "EthernityProtocol": "EthernityProtocol.sol",
    "ImageRegistry": "ImageRegistry.sol",
    "EthernityProtocolToken": "EthernityProtocolToken.sol",
}
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}


def standard_json_input() -> dict[str, Any]:
    sources = {name: {"content": (CONTRACTS_DIR / name).read_text()} for name in sorted(set(CONTRACTS.values()))}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def compile_contracts() -> dict[str, dict[str, Any]]:
    """Contract name -> {"abi": [...], "bytecode": "0x..."} from a fresh compile."""
    solcjs = find_solcjs()
    # stdout goes to a file: node exits before a pipe has taken more than 64 KiB of its output (a truncated JSON)
    with tempfile.TemporaryFile(mode="w+") as out:
        subprocess.run(
            ["node", str(solcjs), "--standard-json"],
            input=json.dumps(standard_json_input()),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
            timeout=600,
        )
        out.seek(0)
        text = out.read()
    output = json.loads(text[text.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise RuntimeError("solc failed:\n" + "\n".join(e.get("formattedMessage", str(e)) for e in errors))
    built = {}
    for name, source in CONTRACTS.items():
        contract = output["contracts"][source][name]
        built[name] = {"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}
    return built


def load_build(name: str) -> dict[str, Any]:
    return json.loads((BUILD_DIR / f"{name}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed build")
    args = parser.parse_args(argv)
    built = compile_contracts()
    stale = [
        name for name, data in built.items() if not (BUILD_DIR / f"{name}.json").exists() or load_build(name) != data
    ]
    if args.check:
        print("stale: " + ", ".join(stale) if stale else "build is up to date")
        return 1 if stale else 0
    BUILD_DIR.mkdir(exist_ok=True)
    for name, data in built.items():
        (BUILD_DIR / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(built)} contracts to {BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
