"""Benchmark 4: one hello-world task through ``EthernityHook.run_task`` and through the official runner.

Both run on the same automine devnet from the same requester wallet, one after the other. Transactions and
gas are read from the chain: every transaction the requester sent in the blocks of that run, and their
receipts' ``gasUsed``. A warm-up task runs first (the first request on a fresh chain writes storage
from zero and costs more gas, whoever sends it). The official runner runs in the reference venv (web3 7.6) through
``official_runner_adapter.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import HELLO
from benchmarks.table import Figure

ROOT = Path(__file__).resolve().parent.parent
REF_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
ADAPTER = Path(__file__).with_name("official_runner_adapter.py")
RESOURCES = {"taskPrice": 1, "cpu": 1, "memory": 1, "storage": 40, "bandwidth": 1, "duration": 1, "validators": 1}
EXPECTED = "Hello, Python World!"


def requester_txs(w3: Any, address: str, first: int, last: int) -> tuple[int, int]:
    """(transactions, gas used) the requester sent in blocks first..last."""
    count = gas = 0
    for number in range(first, last + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"].lower() == address.lower():
                count += 1
                gas += int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
    return count, gas


def run_ours(net: Any) -> dict[str, Any]:
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    started = time.perf_counter()
    result = EthernityHook().run_task(HELLO, resources=RESOURCES, order_wait_timeout=120, timeout=300)
    return {"ok": result.value == EXPECTED, "seconds": time.perf_counter() - started, "error": ""}


def run_official(net: Any) -> dict[str, Any]:
    if not REF_PYTHON.exists():
        raise RuntimeError(f"{REF_PYTHON} is missing: run tests/golden/setup_ref_venv.sh")
    state = net.state
    config = {
        **{k: getattr(state, k) for k in ("rpc_url", "chain_id", "protocol_address", "token_address",
                                            "image_registry_address", "ipfs_api_url", "trustedzone", "network",
                                            "ipfs_intake_url", "ipfs_gateway_url")},
        "block_time": state.block_time or 1,
        "resources": RESOURCES,
        "code": HELLO,
    }  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(config, fh)
    try:
        env = {**os.environ, "ETHERNITY_BENCH_KEY": net.requester_key}
        out = subprocess.run([str(REF_PYTHON), str(ADAPTER), fh.name], capture_output=True, text=True,
                             timeout=600, env=env)  # fmt: skip
    finally:
        os.unlink(fh.name)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = out.stderr[-1500:].replace(net.requester_key, "***").replace(net.requester_key[2:], "***")
        raise RuntimeError(f"the official runner failed ({out.returncode}): {tail}")
    answer = json.loads(lines[-1])
    answer["ok"] = bool(answer["ok"]) and answer.get("value") == EXPECTED
    return answer


def measure(net: Any, runner: Any) -> dict[str, Any]:
    from web3 import Web3

    # the chain itself, not the profile's lagging replica in front of it: every block of the run is counted
    w3 = Web3(Web3.HTTPProvider(net.state.anvil_rpc_url or net.state.rpc_url))
    first = w3.eth.block_number + 1
    outcome = runner(net)
    txs, gas = requester_txs(w3, net.state.requester_address, first, w3.eth.block_number)
    return {**outcome, "txs": txs, "gas": gas}


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running automine devnet registered as ``ethernity_default``."""
    # a first task writes storage slots from zero (request lists, escrow balance: ~14k gas more), so a
    # warm-up task goes first and neither measured run pays for it
    run_ours(net)
    ours = measure(net, run_ours)
    theirs = measure(net, run_official)
    figures = [
        Figure("vs_runner", "results correct (ours / official runner)",
               f"{'yes' if ours['ok'] else 'no'} / {'yes' if theirs['ok'] else 'no'}", "", "yes / yes",
               bool(ours["ok"] and theirs["ok"]), str(theirs.get("error") or "")[:200]),
    ]  # fmt: skip
    for metric, key, unit, fmt in (("wall time", "seconds", "s", "{:.2f}"), ("transactions sent", "txs", "", "{}"),
                                   ("gas used", "gas", "", "{:,}")):  # fmt: skip
        met = ours[key] <= theirs[key]
        figures.append(
            Figure("vs_runner", f"{metric}: ours / official runner",
                   f"{fmt.format(ours[key])} / {fmt.format(theirs[key])}", unit, "ours <= runner", met)
        )  # fmt: skip
    return figures
