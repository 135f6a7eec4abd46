"""Run ONE task with the OFFICIAL ``ethernity-cloud-runner-py`` against the devnet (run with .venv-ref's python).

    ETHERNITY_BENCH_KEY=0x... .venv-ref/bin/python benchmarks/official_runner_adapter.py CONFIG_JSON

Nothing of the runner is copied here: it is imported from the reference venv. The adapter only adds the
devnet to the runner's network table (``ECNetwork.DEVNET.LOCAL``, a subclass of BLOXBERG TESTNET whose RPC,
chain id, contract addresses, trustedzone, block time and gas pricing are the devnet's) and points the
runner's storage at the devnet's IPFS API with ``set_storage_ipfs``. The network is not named BLOXBERG, so
the runner takes its separate-token path (allowance check and ``approve``), as the devnet's token is a
separate ERC-20. The key comes from the environment (never argv); stdout carries one JSON line.

On a devnet profile (``network`` ``devnet_bloxberg`` or ``devnet_polygon`` in the config) the entry is a child of
the real network the profile reproduces instead, so the runner takes that network's own paths:
``ECNetwork.BLOXBERG.DEVNET`` (legacy 2,000,000 wei gas price, the protocol contract as token: no ``approve``;
storage through the devnet's public intake with ``set_public_intake``) or ``ECNetwork.POLYGON.DEVNET``
(EIP-1559 with Amoy's caps, a separate token; storage: the devnet's public IPFS API with ``set_storage_ipfs``).
Two names the runner has no setter for are pointed at the devnet: the intake route's network key (the runner
derives ``<network>_<type>``; the devnet's intake serves the profile's network name) and the public gateway
(``ipfs.PUBLIC_GATEWAY``, read after the API, is the devnet's gateway as on the provider's connection).
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
        from ethernity_cloud_runner_py import ipfs as runner_ipfs
        from ethernity_cloud_runner_py.enums import ECNetwork, ECStatus
        from ethernity_cloud_runner_py.runner import EthernityCloudRunner

        network = config.get("network") or "devnet"
        addresses = {
            "RPC_URL": config["rpc_url"],
            "CHAIN_ID": config["chain_id"],
            "PROTOCOL_ADDRESS": config["protocol_address"],
            "TOKEN_ADDRESS": config["token_address"],
            "IMAGE_REGISTRY_CONTRACT_ADDRESS": config["image_registry_address"],
            "BLOCK_TIME": config["block_time"],
            "TRUSTEDZONE_IMAGE": config["trustedzone"],
            "INTEGRATION_TEST_IMAGE": config["trustedzone"],
        }
        if network == "devnet_bloxberg":  # bloxberg's own entry: legacy 2,000,000 wei, token == protocol
            family, entry = "BLOXBERG", type("DEVNET", (ECNetwork.BLOXBERG.TESTNET,), addresses)
        elif network == "devnet_polygon":  # Amoy's entry: EIP-1559 and its caps, a separate ERC-20
            family, entry = "POLYGON", type("DEVNET", (ECNetwork.POLYGON.AMOY,), addresses)
        else:
            # legacy pricing at 2 gwei (anvil's base fee starts at 1 gwei)
            legacy = {"TOKEN_NAME": "tETNY", "MIDDLEWARE": "", "EIP1559": False, "GAS_PRICE": 2}
            entry = type("LOCAL", (ECNetwork.BLOXBERG.TESTNET,), {**addresses, **legacy, "GAS_PRICE_MEASURE": "gwei"})
            family = "DEVNET"

            class DEVNET:
                pass

            ECNetwork.DEVNET = DEVNET  # type: ignore[attr-defined]
        setattr(getattr(ECNetwork, family), entry.__name__, entry)
        if config.get("ipfs_gateway_url"):
            runner_ipfs.PUBLIC_GATEWAY = config["ipfs_gateway_url"].rstrip("/") + "/ipfs"

        class DevnetRunner(EthernityCloudRunner):
            def _intake_network(self) -> str:
                return network if network != "devnet" else super()._intake_network()

        started = time.perf_counter()
        runner = DevnetRunner(family, entry.__name__)
        runner.set_log_level("ERROR")
        runner.set_private_key(os.environ["ETHERNITY_BENCH_KEY"])
        if config.get("ipfs_intake_url"):  # the requester's IPFS is private: the public intake (bloxberg)
            runner.set_public_intake(config["ipfs_intake_url"].removesuffix("/payload"))
        else:
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
