"""Provider metadata read by Airflow (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_ethernity import __version__

NETWORK_CHOICES = [
    "bloxberg_testnet",
    "bloxberg_testnet_unsafe",
    "bloxberg_mainnet",
    "polygon_mainnet",
    "polygon_amoy",
    "iotex_testnet",
    "ethereum_sepolia",
    "ethereum_sepolia_unsafe",
    "litvm_liteforge",
    "litvm_liteforge_unsafe",
    "devnet_bloxberg",
    "devnet_polygon",
    "devnet",
    "custom",
]

_ADDRESS_SCHEMA = {"type": ["string", "null"], "pattern": "^(0x[0-9a-fA-F]{40})?$"}

CONN_FIELDS: dict[str, Any] = {
    "network": {
        "label": "Network",
        "description": "Ethernity network. 'devnet' is the local one (ethernity-devnet up); "
        "'custom' takes every address below from this connection.",
        "schema": {"type": ["string", "null"], "enum": NETWORK_CHOICES, "default": "bloxberg_testnet"},
    },
    "rpc_url": {
        "label": "RPC URL",
        "description": "JSON-RPC endpoint; overrides the network's default.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "ipfs_api_url": {
        "label": "IPFS API URL",
        "description": "Kubo RPC API the sealed code, input and results go through, e.g. http://127.0.0.1:5001/api/v0",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "ipfs_token": {
        "label": "IPFS token",
        "description": "Sent verbatim in the 'authorization' header of IPFS API calls (optional).",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "trustedzone": {
        "label": "Default trustedzone image",
        "description": "Image registry name of the enclave; defaults to the network's (e.g. etny-pynithy-testnet).",
        "schema": {"type": ["string", "null"]},
    },
    "securelock": {
        "label": "Default securelock image",
        "description": "Image registry name of a dApp image (securelock) to run inside the trustedzone; its "
        "image and compose file go into the request, the payload is sealed for the trustedzone. Empty: the "
        "trustedzone's own image.",
        "schema": {"type": ["string", "null"]},
    },
    "protocol_address": {
        "label": "Protocol contract address",
        "description": "Required for devnet/custom; optional override otherwise.",
        "schema": _ADDRESS_SCHEMA,
    },
    "token_address": {
        "label": "Token contract address",
        "description": "ERC-20 the tasks are paid in; defaults to the network's (the protocol address on bloxberg).",
        "schema": _ADDRESS_SCHEMA,
    },
    "image_registry_address": {
        "label": "Image registry address",
        "description": "Required for devnet/custom; optional override otherwise.",
        "schema": _ADDRESS_SCHEMA,
    },
    "chain_id": {
        "label": "Chain id",
        "description": "Expected chain id (checked against the RPC); needed for 'custom'.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "ipfs_public": {
        "label": "IPFS API reachable by nodes",
        "description": "Whether nodes can fetch what is added through the IPFS API. Unset: false for a loopback or "
        "private address. False: artefacts go through the network's public intake, or the task fails before paying.",
        "schema": {"type": ["boolean", "null"]},
    },
    "ipfs_intake_url": {
        "label": "IPFS intake URL",
        "description": "Public intake used when the IPFS API is private; defaults to the network's "
        "(https://ipfs.ethernity.cloud/payload on bloxberg testnet, LitVM and Sepolia).",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "ipfs_gateway_url": {
        "label": "IPFS gateway URL",
        "description": "Gateway tried after the IPFS API when reading a result (default https://ipfs.io).",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "result_read_seconds": {
        "label": "Result read window (s)",
        "description": "How long after its order closed a result not yet readable is waited for (default 120).",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-ethernity",
        "name": "Ethernity Cloud",
        "description": "Run confidential compute tasks on Ethernity Cloud (EVM + IPFS + SGX enclaves) from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Ethernity Cloud",
                "external-doc-url": "https://ethernity.cloud",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "Ethernity Cloud",
                "python-modules": ["airflow_provider_ethernity.operators.ethernity"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Ethernity Cloud",
                "python-modules": ["airflow_provider_ethernity.sensors.ethernity"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Ethernity Cloud",
                "python-modules": ["airflow_provider_ethernity.triggers.ethernity"],
            }
        ],
        "asset-uris": [
            {
                "schemes": ["ipfs"],
                "handler": "airflow_provider_ethernity.assets.sanitize_uri",
                "factory": "airflow_provider_ethernity.assets.create_asset",
                "to_openlineage_converter": "airflow_provider_ethernity.assets.convert_asset_to_openlineage",
            }
        ],
        "extra-links": [
            "airflow_provider_ethernity.links.ethernity.EthernityRequestLink",
            "airflow_provider_ethernity.links.ethernity.EthernityOrderLink",
        ],
        "hooks": [
            {
                "integration-name": "Ethernity Cloud",
                "python-modules": ["airflow_provider_ethernity.hooks.ethernity"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_ethernity.hooks.ethernity.EthernityHook",
                "hook-name": "Ethernity Cloud",
                "connection-type": "ethernity",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "port", "login", "schema", "extra"],
                    "relabeling": {"password": "Wallet private key"},
                    "placeholders": {
                        "password": "0x… private key of the paying wallet (64 hex characters)",
                        "rpc_url": "https://bloxberg.ethernity.cloud",
                        "ipfs_api_url": "http://127.0.0.1:5001/api/v0",
                        "trustedzone": "etny-pynithy-testnet",
                    },
                },
            }
        ],
    }
