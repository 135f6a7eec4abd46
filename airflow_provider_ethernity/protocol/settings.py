"""Everything a client needs to reach a network, validated up front (no Airflow here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.ipfs import normalize_api_url
from airflow_provider_ethernity.protocol.networks import Network, get_network

_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _check_address(name: str, value: str | None, required: bool) -> str | None:
    if not value:
        if required:
            raise ConfigurationError(f"{name} is required for this network (a 0x-prefixed 20-byte hex address)")
        return None
    if not _ADDRESS.fullmatch(value.strip()):
        raise ConfigurationError(f"{name}={value!r} is not a 0x-prefixed 20-byte hex address")
    from eth_utils import to_checksum_address

    return to_checksum_address(value.strip())


#: Default and upper bound of the connection's ``max_input_mb``: sealing makes an input about 2.7x larger
#: (AES-GCM, hex, base64), and a sealed artefact may be at most 256 MiB (``client.MAX_ARTEFACT_BYTES``).
DEFAULT_MAX_INPUT_MB = 90
MAX_INPUT_MB_LIMIT = 90


def _max_input_bytes(value: int | str | None) -> int:
    if value in (None, ""):
        return DEFAULT_MAX_INPUT_MB * 1024**2
    try:
        megabytes = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        megabytes = 0
    if isinstance(value, bool) or not 1 <= megabytes <= MAX_INPUT_MB_LIMIT:
        raise ConfigurationError(
            f"max_input_mb={value!r} is invalid: allowed an integer from 1 to {MAX_INPUT_MB_LIMIT}"
        )
    return megabytes * 1024**2


@dataclass(frozen=True)
class ClientSettings:
    """A resolved network plus the wallet and storage to use. The key and token never appear in ``repr``."""

    network: Network
    rpc_url: str
    private_key: str | None = field(default=None, repr=False)
    ipfs_api_url: str | None = None
    ipfs_token: str | None = field(default=None, repr=False)
    trustedzone: str | None = None
    rpc_timeout: float = 30.0
    ipfs_timeout: float = 60.0
    #: Largest input dataset accepted (bytes of UTF-8); the enclave reads the whole dataset into memory.
    max_input_bytes: int = DEFAULT_MAX_INPUT_MB * 1024**2

    @classmethod
    def build(
        cls,
        network: str = "bloxberg_testnet",
        *,
        rpc_url: str | None = None,
        private_key: str | None = None,
        ipfs_api_url: str | None = None,
        ipfs_token: str | None = None,
        trustedzone: str | None = None,
        protocol_address: str | None = None,
        token_address: str | None = None,
        image_registry_address: str | None = None,
        chain_id: int | str | None = None,
        rpc_timeout: float | None = None,
        ipfs_timeout: float | None = None,
        max_input_mb: int | str | None = None,
        **_ignored: Any,
    ) -> ClientSettings:
        """Resolve a network name and overrides into validated settings; raises ConfigurationError."""
        base = get_network(network)
        custom = base.name in ("devnet", "custom")
        if chain_id not in (None, ""):
            try:
                chain_id = int(chain_id)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigurationError(f"chain_id={chain_id!r} is not an integer") from None
        protocol = _check_address("protocol_address", protocol_address, custom)
        # Without a separate token (bloxberg style) the protocol contract is the token.
        token = _check_address("token_address", token_address, False) or (protocol if custom else None)
        resolved = base.with_overrides(
            rpc_url=rpc_url,
            protocol_address=protocol,
            token_address=token,
            image_registry_address=_check_address("image_registry_address", image_registry_address, custom),
            trustedzone=trustedzone,
            chain_id=chain_id,
        )
        if not resolved.rpc_url:
            raise ConfigurationError(f"rpc_url is required for network {base.name!r}")
        if not resolved.rpc_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"rpc_url={resolved.rpc_url!r} is not an http(s) URL")
        if private_key is not None and private_key != "" and not _KEY.fullmatch(private_key.strip()):
            raise ConfigurationError(
                "the wallet private key (connection password) is malformed: expected 64 hex characters, "
                "optionally 0x-prefixed"
            )
        return cls(
            max_input_bytes=_max_input_bytes(max_input_mb),
            network=resolved,
            rpc_url=resolved.rpc_url,
            private_key=(private_key or "").strip() or None,
            ipfs_api_url=normalize_api_url(ipfs_api_url) if ipfs_api_url else None,
            ipfs_token=ipfs_token or None,
            trustedzone=trustedzone or resolved.trustedzone,
            rpc_timeout=float(rpc_timeout or 30.0),
            ipfs_timeout=float(ipfs_timeout or 60.0),
        )
