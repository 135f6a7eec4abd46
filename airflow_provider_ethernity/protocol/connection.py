"""The client's connections and checks: web3, the wallet, IPFS, the contracts, bounded RPC reads, the preflight
and the transaction sender. The first layer of :class:`~.client.EthernityClient`; sends nothing by itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.abi import IMAGE_REGISTRY, PROTOCOL, TOKEN
from airflow_provider_ethernity.protocol.contracts import EnclaveDetails, contract_at, log_filter, named_outputs
from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    ConfigurationError,
    EnclaveLookupError,
    InsufficientFundsError,
    TransientError,
)
from airflow_provider_ethernity.protocol.ipfs import IpfsClient
from airflow_provider_ethernity.protocol.logs import Log
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy, is_transient
from airflow_provider_ethernity.protocol.rpc_errors import rpc_failure_error
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.transactions import (
    SignedTx,
    TransactionSender,
    describe_rpc_error,
    wallet_lock,
)

log = logging.getLogger("airflow_provider_ethernity")

T = TypeVar("T")

#: Reads right after an event may hit a replica that has not seen it yet: how often such a read is repeated.
LAGGING_READ_ATTEMPTS = 5


class ClientConnection:
    """Connections (web3, wallet, IPFS, contracts), RPC reads with bounded retries, the preflight, the sender."""

    def __init__(self, settings: ClientSettings, retry: RetryPolicy = DEFAULT_RETRY, logger: Log | None = None) -> None:
        self.settings = settings
        self.network = settings.network
        self.retry = retry
        self.log = logger or log
        self._chain_verified = False

    # ------------------------------------------------------------------ connections
    @cached_property
    def w3(self) -> Any:
        """The web3 connection to the RPC (with the connection's ``rpc_timeout``)."""
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(self.settings.rpc_url, request_kwargs={"timeout": self.settings.rpc_timeout}))
        if self.network.poa:
            from web3.middleware import ExtraDataToPOAMiddleware

            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return w3

    @cached_property
    def account(self) -> Any:
        """The wallet (an eth-account ``LocalAccount``); ConfigurationError without a valid key."""
        if not self.settings.private_key:
            raise ConfigurationError("the connection has no wallet private key (set it in the password field)")
        from eth_account import Account

        try:
            return Account.from_key(self.settings.private_key)
        except Exception:
            raise ConfigurationError("the wallet private key (connection password) is not a valid key") from None

    @property
    def address(self) -> str:
        """The wallet's checksum address."""
        return str(self.account.address)

    @cached_property
    def ipfs(self) -> IpfsClient:
        """The IPFS HTTP API client (uploads and result downloads)."""
        if not self.settings.ipfs_api_url:
            raise ConfigurationError("ipfs_api_url is required: the connection names no IPFS API to upload to")
        return IpfsClient(
            self.settings.ipfs_api_url, self.settings.ipfs_token, self.settings.ipfs_timeout, retry=self.retry
        )

    def _contract(self, address: str | None, abi_name: str, label: str) -> Any:
        return contract_at(self.w3.eth, address, abi_name, label, f"network {self.network.name!r}")

    @cached_property
    def protocol(self) -> Any:
        """The protocol contract."""
        return self._contract(self.network.protocol_address, PROTOCOL, "protocol_address")

    @cached_property
    def token(self) -> Any:
        """The ERC-20 token contract (on bloxberg the protocol contract itself)."""
        return self._contract(self.network.token_address, TOKEN, "token_address")

    @cached_property
    def image_registry(self) -> Any:
        """The image registry contract (trustedzone images and their certificates)."""
        return self._contract(self.network.image_registry_address, IMAGE_REGISTRY, "image_registry_address")

    def _rpc(self, fn: Callable[..., T], *args: Any) -> T:
        """Run an RPC read with bounded retries of transient faults; a dead endpoint becomes TransientError."""
        try:
            return self.retry.call(fn, *args)
        except Exception as exc:
            if is_transient(exc):
                raise TransientError(f"RPC {self.settings.rpc_url_shown} unreachable: {type(exc).__name__}") from None
            error = rpc_failure_error(exc, self.settings.rpc_url)
            if error is not None:
                raise error from None
            raise

    def _view(self, call: Any) -> Any:
        return self._rpc(lambda: call.call())

    def _view_named(self, call: Any) -> dict[str, Any]:
        """A view's answer decoded by the output names of its ABI."""
        return named_outputs(call.abi, self._view(call))

    def _logs(self, topic: str, from_block: int, to_block: int | str = "latest") -> list[Any]:
        params = log_filter(self.network.protocol_address, topic, from_block, to_block)
        return list(self._rpc(lambda: self.w3.eth.get_logs(params)))

    def _lagging_read(self, read: Callable[[], T], what: str, stale: Callable[[T], bool] | None = None) -> T:
        """A read that may revert on a replica that has not seen the latest block yet, or (``stale``) answer
        from before it: tried a few blocks; a value still stale after that is returned as it is."""
        for attempt in range(LAGGING_READ_ATTEMPTS):
            last = attempt == LAGGING_READ_ATTEMPTS - 1
            try:
                value = read()
            except TransientError:
                raise
            except Exception:
                if last:
                    raise
            else:
                if stale is None or last or not stale(value):
                    return value
            self.log.debug("%s not readable yet; asking again", what)
            time.sleep(min(2.0, self.network.block_time))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ checks
    def chain_id(self) -> int:
        """The chain id the RPC serves."""
        return int(self._rpc(lambda: self.w3.eth.chain_id))

    def block_number(self) -> int:
        """The RPC's latest block number."""
        return int(self._rpc(lambda: self.w3.eth.block_number))

    def verify_chain(self) -> None:
        """The RPC serves the expected chain and every contract address holds code (checked once per client)."""
        actual = self.chain_id()
        expected = self.network.chain_id
        if expected is not None and actual != expected:
            raise ConfigurationError(
                f"chain_id={expected} does not match the RPC: {self.settings.rpc_url_shown} serves chain id {actual} "
                f"(network {self.network.name!r})"
            )
        for label, address in (
            ("protocol_address", self.network.protocol_address),
            ("token_address", self.network.token_address),
            ("image_registry_address", self.network.image_registry_address),
        ):
            if not address:
                raise ConfigurationError(f"{label} is not set for network {self.network.name!r}")
            code = self._rpc(lambda a=address: self.w3.eth.get_code(a))
            if not code or bytes(code) in (b"", b"\x00"):
                raise ConfigurationError(f"{label}={address} holds no contract on chain {actual}")
        self._chain_verified = True

    def token_balance(self, address: str | None = None) -> int:
        """Token balance in wei (18 decimals)."""
        return int(self._view(self.token.functions.balanceOf(address or self.address)))

    def gas_balance(self, address: str | None = None) -> int:
        """Native coin balance in wei."""
        return int(self._rpc(lambda: self.w3.eth.get_balance(address or self.address)))

    def allowance(self, block: str = "latest") -> int:
        """What the protocol contract may still take from this wallet, at ``block`` ("latest" or "pending")."""
        call = self.token.functions.allowance(self.address, self.network.protocol_address)
        return int(self._rpc(lambda: call.call(block_identifier=block)))

    def _registry_row(self, function: str, name: str, field: str) -> tuple[str, str, str]:
        """One v3 lookup of the image registry (``getLatestTrustedZoneImageCertPublicKey`` or
        ``getLatestImageVersionPublicKey``): (image CID, certificate PEM, compose CID); EnclaveLookupError naming
        ``field`` when the call fails."""
        try:
            row = self._view(getattr(self.image_registry.functions, function)(name, metadata.VERSION))
        except (TransientError, ConfigurationError):
            raise
        except Exception as exc:
            raise EnclaveLookupError(
                f"{field}={name!r} is not in the image registry {self.network.image_registry_address}: "
                f"{describe_rpc_error(exc)}"
            ) from None
        image_cid, certificate_pem, compose_cid = row
        return str(image_cid), str(certificate_pem), str(compose_cid)

    def get_enclave(self, trustedzone: str | None = None, securelock: str | None = None) -> EnclaveDetails:
        """Look the enclave up in the image registry (v3), as the official runner does.

        No securelock (or the trustedzone's own name): the trustedzone's latest image, certificate and compose
        file. A securelock: the certificate stays the trustedzone's (the payload is sealed for it), the image and
        compose file are the securelock's latest (``getLatestImageVersionPublicKey``). An unknown name fails
        with an EnclaveLookupError naming the ``trustedzone`` or ``securelock`` field; nothing is sent.
        """
        name = trustedzone or self.settings.trustedzone
        if not name:
            raise ConfigurationError("trustedzone is not set (connection field or operator parameter)")
        image_cid, certificate_pem, compose_cid = self._registry_row(
            "getLatestTrustedZoneImageCertPublicKey", name, "trustedzone"
        )
        if not certificate_pem or not image_cid:
            raise EnclaveLookupError(
                f"trustedzone={name!r} is not in the image registry {self.network.image_registry_address} "
                "(no v3 trustedzone image of that name)"
            )
        if securelock and securelock != name:
            image_cid, _cert, compose_cid = self._registry_row(
                "getLatestImageVersionPublicKey", securelock, "securelock"
            )
            if not image_cid:
                raise EnclaveLookupError(
                    f"securelock={securelock!r} is not in the image registry {self.network.image_registry_address} "
                    f"(no v3 image of that name); check the securelock field (operator parameter or connection), "
                    f"or leave it unset to run the trustedzone {name!r} itself"
                )
        return EnclaveDetails(image_cid, certificate_pem, compose_cid)

    def is_node(self, node_address: str) -> bool:
        """Whether ``node_address`` has registered as a node (has DP requests), as the official runner checks."""
        requests = self._rpc(lambda: self.protocol.functions._getMyDPRequests().call({"from": node_address}))
        return len(requests) > 0

    def preflight(
        self,
        resources: Resources,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> EnclaveDetails:
        """Everything checkable before spending: wallet, funds, enclave, pinned node. Sends nothing."""
        _ = self.account
        token_balance = self.token_balance()
        if token_balance < resources.price_wei:
            raise InsufficientFundsError(
                f"wallet {self.address} holds {token_balance / 10**18:g} {self.network.token_name}; "
                f"resources.taskPrice={resources.taskPrice} needs {resources.taskPrice} {self.network.token_name}"
            )
        if self.gas_balance() == 0:
            raise InsufficientFundsError(f"wallet {self.address} has no native coin to pay for gas")
        enclave = self.get_enclave(trustedzone, securelock)
        if node_address and not self.is_node(node_address):
            raise ConfigurationError(f"node_address={node_address} is not a registered node (it has no DP request)")
        return enclave

    def challenge_for(self, salt: str) -> str:
        """The secret client challenge of a submission, re-derived from the wallet key and its public salt."""
        return metadata.derive_challenge(self.settings.private_key or "", salt)

    # ------------------------------------------------------------------ transactions
    def _fee_fields(self) -> dict[str, int]:
        gas = self.network.gas
        if not gas.eip1559:
            return {"gasPrice": gas.gas_price_wei or int(self._rpc(lambda: self.w3.eth.gas_price))}
        base = int(self._rpc(lambda: self.w3.eth.get_block("latest"))["baseFeePerGas"])
        priority = gas.max_priority_fee_per_gas_wei
        if base + priority > gas.max_fee_per_gas_wei:
            raise ChainError(
                f"network base fee {base / 1e9:g} gwei plus tip exceeds the cap of "
                f"{gas.max_fee_per_gas_wei / 1e9:g} gwei; try again later"
            )
        return {"maxFeePerGas": min(gas.max_fee_per_gas_wei, 2 * base + priority), "maxPriorityFeePerGas": priority}

    @cached_property
    def _lock_chain_id(self) -> int:
        return int(self.network.chain_id or self.chain_id())

    @cached_property
    def sender(self) -> TransactionSender:
        """Signs with the wallet key and sends idempotently (see :mod:`.transactions`)."""
        return TransactionSender(
            self.w3,
            self.account,
            self._lock_chain_id,
            self._fee_fields,
            self._rpc,
            block_time=self.network.block_time,
            confirmations=self.network.confirmations,
            logger=self.log,
        )

    def transact(self, call: Any, label: str) -> str:
        """Sign and send ``call`` (no write-ahead record); returns the tx hash. For callers outside a task's
        lifecycle, such as the devnet's node agent."""
        return self.sender.send(call, label).tx_hash

    def wait_receipt(self, tx_hash: str | SignedTx, label: str, timeout: float = 300.0) -> Any:
        """The receipt of a sent transaction (ChainError when it reverted)."""
        return self.sender.wait_receipt(tx_hash, label, timeout)

    def submit_lock(self) -> contextlib.AbstractContextManager[Any]:
        """The wallet's "submit" lock: allowance and request back to back, one submission at a time per machine."""
        return wallet_lock(self._lock_chain_id, self.address, "submit")
