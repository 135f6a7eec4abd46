"""Run ONE task with the OFFICIAL ``ethernity-cloud-runner-py`` against the devnet (run with .venv-ref's python).

    ETHERNITY_BENCH_KEY=0x... .venv-ref/bin/python benchmarks/official_runner_adapter.py CONFIG_JSON

Nothing of the runner is copied here: it is imported from the reference venv. The adapter only adds the
devnet to the runner's network table (``ECNetwork.DEVNET.LOCAL``, a subclass of BLOXBERG TESTNET whose RPC,
chain id, contract addresses, trustedzone, block time and gas pricing are the devnet's) and points the
runner's storage at the devnet's IPFS API with ``set_storage_ipfs``. The network is not named BLOXBERG, so
the runner takes its separate-token path (allowance check and ``approve``), as the devnet's token is a
separate ERC-20. The key comes from the environment (never argv); stdout carries one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time


def main(config_path: str) -> dict:
    with open(config_path) as fh:
        config = json.loads(fh.read())
    with contextlib.redirect_stdout(sys.stderr):  # the runner prints diagnostics
        from ethernity_cloud_runner_py.enums import ECNetwork, ECStatus
        from ethernity_cloud_runner_py.runner import EthernityCloudRunner

        class LOCAL(ECNetwork.BLOXBERG.TESTNET):
            RPC_URL = config["rpc_url"]
            CHAIN_ID = config["chain_id"]
            PROTOCOL_ADDRESS = config["protocol_address"]
            TOKEN_ADDRESS = config["token_address"]
            IMAGE_REGISTRY_CONTRACT_ADDRESS = config["image_registry_address"]
            TOKEN_NAME = "tETNY"
            MIDDLEWARE = ""
            BLOCK_TIME = config["block_time"]
            TRUSTEDZONE_IMAGE = config["trustedzone"]
            INTEGRATION_TEST_IMAGE = config["trustedzone"]
            EIP1559 = False  # legacy pricing at 2 gwei (anvil's base fee starts at 1 gwei)
            GAS_PRICE = 2
            GAS_PRICE_MEASURE = "gwei"

        class DEVNET:
            pass

        DEVNET.LOCAL = LOCAL  # type: ignore[attr-defined]
        ECNetwork.DEVNET = DEVNET  # type: ignore[attr-defined]

        started = time.perf_counter()
        runner = EthernityCloudRunner("DEVNET", "LOCAL")
        runner.set_log_level("ERROR")
        runner.set_private_key(os.environ["ETHERNITY_BENCH_KEY"])
        runner.set_storage_ipfs(config["ipfs_api_url"])
        runner.connect()
        zone = config["trustedzone"]
        runner.run(config["resources"], zone, "v3", config["code"], "", zone, 0, 1, None)
        deadline = time.monotonic() + config.get("timeout", 300)
        while runner.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        result = runner.get_result() or {}
        status = runner.get_state().get("status")
    return {
        "ok": status in (ECStatus.SUCCESS, ECStatus.SUCCESS.name, ECStatus.SUCCESS.value),
        "status": str(status),
        "value": result.get("value"),
        "error": runner.last_error,
        "seconds": elapsed,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), default=str))
