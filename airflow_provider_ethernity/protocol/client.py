"""The synchronous Ethernity client: one task's whole life on chain and IPFS, from the requester's side.

No Airflow here: the hook builds this from a connection; the devnet, benchmarks and scripts use it directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.abi import IMAGE_REGISTRY, PROTOCOL, TOKEN, load_abi
from airflow_provider_ethernity.protocol.crypto import (
    HexDecoder,
    open_result_buffer,
    requester_public_key_hex,
    seal_for_enclave_into,
)
from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    ConfigurationError,
    EnclaveLookupError,
    InsufficientFundsError,
    OperatorFaultError,
    OrderTimeoutError,
    ResultVerificationError,
    StorageError,
    TransientError,
)
from airflow_provider_ethernity.protocol.events import (
    ORDER_CLOSED_TOPIC,
    ORDER_PLACED_TOPIC,
    OrderStatus,
    RequestStatus,
    decode_order_closed,
    decode_order_placed,
)
from airflow_provider_ethernity.protocol.ipfs import IpfsClient
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.results import (
    TaskResult,
    build_task_result,
    decode_result_transaction,
    parse_order_result,
    verify_binding,
    verify_checksum,
    verify_signer,
)
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.task_codes import is_operator_fault

log = logging.getLogger("airflow_provider_ethernity")

#: Gas floors per call (the official runner's), used when the node's estimate is lower.
GAS_FLOORS = {"_addDORequest": 1_000_000, "_approveOrder": 100_000, "approve": 100_000, "_cancelDORequest": 200_000}
#: How far back the ``_getOrder`` fallback scan looks when no anchor is known.
ORDER_SCAN_LIMIT = 256
#: How often a submission re-approves when a concurrent one (another machine, same wallet) took the allowance
ALLOWANCE_RACE_ATTEMPTS = 5
#: Maximum sealed size of one artefact (code or input) the client uploads.
MAX_ARTEFACT_BYTES = 256 * 1024 * 1024
_NONCE_RETRY_PHRASES = (
    "nonce too low",
    "already known",
    "replacement transaction underpriced",
    "same nonce in the queue",
    "transaction with same nonce",
    "nonce has already been used",
)
_nonce_locks: dict[tuple[str, str], threading.Lock] = {}
_next_nonce: dict[tuple[str, str], int] = {}
_nonce_registry_lock = threading.Lock()
#: Where the per-wallet lock files live (one per chain + address + purpose; they hold no data).
LOCK_DIR_ENV = "ETHERNITY_LOCK_DIR"


@contextlib.contextmanager
def wallet_lock(chain_id: int, address: str, purpose: str) -> Iterator[None]:
    """An exclusive lock of one wallet on one chain, across threads and processes of this machine.

    Mapped Airflow tasks sharing a wallet run in separate processes: their nonce choice and their
    allowance-then-request sequence must not interleave. ``flock`` on a per-wallet file does it (the
    lock goes with the process, so a killed task never leaves it held).
    """
    lock_dir = os.environ.get(LOCK_DIR_ENV) or os.path.join(tempfile.gettempdir(), "ethernity-wallet-locks")
    os.makedirs(lock_dir, exist_ok=True)
    name = hashlib.sha256(f"{chain_id}:{address.lower()}:{purpose}".encode()).hexdigest()[:24]
    with open(os.path.join(lock_dir, f"{name}.lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class EnclaveDetails:
    image_cid: str
    certificate_pem: str
    compose_cid: str


@dataclass(frozen=True)
class Order:
    order_id: int
    downer: str
    dproc: str
    do_request_id: int
    dp_request_id: int
    status: int

    @property
    def status_name(self) -> str:
        return OrderStatus(self.status).name if self.status in OrderStatus._value2member_map_ else str(self.status)


@dataclass(frozen=True)
class SubmittedTask:
    """What a submission leaves behind; enough to re-attach to the task later (no secret inside)."""

    do_request_id: int
    tx_hash: str
    from_block: int
    challenge: str
    order_count_anchor: int
    requester: str
    trustedzone: str
    node_address: str
    code_cid: str
    input_cid: str
    resources: dict[str, int] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return bool(self.node_address)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_input_size(input_data: str | None, limit: int) -> None:
    """Refuse an input dataset over the connection's ``max_input_mb`` before anything is uploaded or paid."""
    if input_data is None:
        return
    size = len(input_data) if input_data.isascii() else len(input_data.encode("utf-8"))
    if size > limit:
        raise ConfigurationError(
            f"input_data is {size / 1024**2:.1f} MiB: allowed at most {limit / 1024**2:g} MiB "
            "(the connection's max_input_mb)"
        )


def _describe_rpc_error(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message)


class EthernityClient:
    """Requester-side protocol client over web3 (sync) and the IPFS HTTP API."""

    def __init__(
        self, settings: ClientSettings, retry: RetryPolicy = DEFAULT_RETRY, logger: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.network = settings.network
        self.retry = retry
        self.log = logger or log
        self._chain_verified = False

    def __repr__(self) -> str:
        return f"EthernityClient(network={self.network.name!r}, rpc={self.settings.rpc_url!r})"

    # ------------------------------------------------------------------ connections
    @cached_property
    def w3(self) -> Any:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(self.settings.rpc_url, request_kwargs={"timeout": self.settings.rpc_timeout}))
        if self.network.poa:
            from web3.middleware import ExtraDataToPOAMiddleware

            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return w3

    @cached_property
    def account(self) -> Any:
        if not self.settings.private_key:
            raise ConfigurationError("the connection has no wallet private key (set it in the password field)")
        from eth_account import Account

        try:
            return Account.from_key(self.settings.private_key)
        except Exception:
            raise ConfigurationError("the wallet private key (connection password) is not a valid key") from None

    @property
    def address(self) -> str:
        return self.account.address

    @cached_property
    def ipfs(self) -> IpfsClient:
        if not self.settings.ipfs_api_url:
            raise ConfigurationError("ipfs_api_url is required: the connection names no IPFS API to upload to")
        return IpfsClient(
            self.settings.ipfs_api_url, self.settings.ipfs_token, self.settings.ipfs_timeout, retry=self.retry
        )

    def _contract(self, address: str | None, abi_name: str, label: str) -> Any:
        if not address:
            raise ConfigurationError(f"{label} is not set for network {self.network.name!r}")
        return self.w3.eth.contract(address=address, abi=load_abi(abi_name))

    @cached_property
    def protocol(self) -> Any:
        return self._contract(self.network.protocol_address, PROTOCOL, "protocol_address")

    @cached_property
    def token(self) -> Any:
        return self._contract(self.network.token_address, TOKEN, "token_address")

    @cached_property
    def image_registry(self) -> Any:
        return self._contract(self.network.image_registry_address, IMAGE_REGISTRY, "image_registry_address")

    def _rpc(self, fn: Any, *args: Any) -> Any:
        """Run an RPC read with bounded retries of transient faults; a dead endpoint becomes TransientError."""
        try:
            return self.retry.call(fn, *args)
        except Exception as exc:
            from airflow_provider_ethernity.protocol.retry import is_transient

            if is_transient(exc):
                raise TransientError(f"RPC {self.settings.rpc_url} unreachable: {type(exc).__name__}") from None
            raise

    def _view(self, call: Any) -> Any:
        return self._rpc(lambda: call.call())

    # ------------------------------------------------------------------ checks
    def chain_id(self) -> int:
        return int(self._rpc(lambda: self.w3.eth.chain_id))

    def block_number(self) -> int:
        return int(self._rpc(lambda: self.w3.eth.block_number))

    def verify_chain(self) -> None:
        """The RPC serves the expected chain and every contract address holds code (checked once per client)."""
        actual = self.chain_id()
        expected = self.network.chain_id
        if expected is not None and actual != expected:
            raise ConfigurationError(
                f"chain_id={expected} does not match the RPC: {self.settings.rpc_url} serves chain id {actual} "
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
        return int(self._rpc(lambda: self.w3.eth.get_balance(address or self.address)))

    def allowance(self, block: str = "latest") -> int:
        """What the protocol contract may still take from this wallet, at ``block`` ("latest" or "pending")."""
        call = self.token.functions.allowance(self.address, self.network.protocol_address)
        return int(self._rpc(lambda: call.call(block_identifier=block)))

    def get_enclave(self, trustedzone: str | None = None) -> EnclaveDetails:
        """Look the trustedzone image up in the image registry (v3)."""
        name = trustedzone or self.settings.trustedzone
        if not name:
            raise ConfigurationError("trustedzone is not set (connection field or operator parameter)")
        try:
            image_cid, cert, compose_cid = self._view(
                self.image_registry.functions.getLatestTrustedZoneImageCertPublicKey(name, metadata.VERSION)
            )
        except (TransientError, ConfigurationError):
            raise
        except Exception as exc:
            raise EnclaveLookupError(
                f"trustedzone={name!r} is not in the image registry {self.network.image_registry_address}: "
                f"{_describe_rpc_error(exc)}"
            ) from None
        if not cert or not image_cid:
            raise EnclaveLookupError(f"trustedzone={name!r} is not in the image registry")
        return EnclaveDetails(image_cid, cert, compose_cid)

    def is_node(self, node_address: str) -> bool:
        """Whether ``node_address`` has registered as a node (has DP requests), as the official runner checks."""
        requests = self._rpc(lambda: self.protocol.functions._getMyDPRequests().call({"from": node_address}))
        return len(requests) > 0

    def preflight(
        self, resources: Resources, trustedzone: str | None = None, node_address: str | None = None
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
        enclave = self.get_enclave(trustedzone)
        if node_address and not self.is_node(node_address):
            raise ConfigurationError(f"node_address={node_address} is not a registered node (it has no DP request)")
        return enclave

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

    def _nonce_key(self) -> tuple[str, str]:
        return (self.settings.rpc_url, self.address)

    @cached_property
    def _lock_chain_id(self) -> int:
        return int(self.network.chain_id or self.chain_id())

    def _wallet_lock(self, purpose: str) -> contextlib.AbstractContextManager[None]:
        return wallet_lock(self._lock_chain_id, self.address, purpose)

    def transact(self, call: Any, label: str) -> str:
        """Sign locally and send ``call``; returns the tx hash. Safe for concurrent use from one wallet.

        Nonces come from the pending count and a process-wide counter, chosen and sent under the wallet's
        cross-process lock (:func:`wallet_lock`); "nonce too low", "already known" and "replacement
        underpriced" (a sender outside this machine took the nonce) still move to the next nonce.
        """
        from web3.exceptions import ContractLogicError, Web3RPCError

        key = self._nonce_key()
        with _nonce_registry_lock:
            lock = _nonce_locks.setdefault(key, threading.Lock())
        with lock, self._wallet_lock("nonce"):
            nonce: int | None = None
            for _attempt in range(20):
                pending = int(self._rpc(lambda: self.w3.eth.get_transaction_count(self.address, "pending")))
                nonce = max(pending, _next_nonce.get(key, 0), (nonce + 1) if nonce is not None else 0)
                params = {"from": self.address, "nonce": nonce, "chainId": self.w3.eth.chain_id, **self._fee_fields()}
                try:
                    tx = self._rpc(lambda p=params: call.build_transaction(p))
                except ContractLogicError as exc:
                    raise ChainError(f"{label} would revert: {_describe_rpc_error(exc)}") from None
                tx["gas"] = max(int(tx["gas"] * 1.25), GAS_FLOORS.get(label, 0))
                signed = self.account.sign_transaction(tx)
                try:
                    tx_hash = self._rpc(lambda s=signed: self.w3.eth.send_raw_transaction(s.raw_transaction))
                except Web3RPCError as exc:
                    text = _describe_rpc_error(exc).lower()
                    if "already known" in text:
                        tx_hash = signed.hash
                    elif any(phrase in text for phrase in _NONCE_RETRY_PHRASES):
                        self.log.debug("nonce %s taken (%s); retrying with the next one", nonce, text)
                        continue
                    else:
                        raise ChainError(f"{label} rejected by the node: {_describe_rpc_error(exc)}") from None
                _next_nonce[key] = nonce + 1
                return "0x" + bytes(tx_hash).hex()
        raise ChainError(f"{label}: could not find a free nonce after 20 attempts")

    def wait_receipt(self, tx_hash: str, label: str, timeout: float = 300.0) -> Any:
        receipt = self._rpc(
            lambda: self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=timeout, poll_latency=min(1.0, self.network.block_time / 2)
            )
        )
        if receipt["status"] != 1:
            raise ChainError(f"{label} transaction {tx_hash} reverted (block {receipt['blockNumber']})")
        return receipt

    # ------------------------------------------------------------------ submission
    def ensure_allowance(self, amount_wei: int) -> str | None:
        """Approve the protocol to take ``amount_wei`` when a separate token needs it; returns the tx hash.

        Exactly the price is approved (least privilege, as the official runner does). The allowance is read
        at the pending state: a request this wallet already sent but is not mined yet has consumed its part.
        Call it under the wallet's "submit" lock, up to sending the request.
        """
        if self.network.token_is_protocol:
            return None
        if self.allowance("pending") >= amount_wei:
            return None
        tx_hash = self.transact(self.token.functions.approve(self.network.protocol_address, amount_wei), "approve")
        self.wait_receipt(tx_hash, "approve")
        self.log.info("Token allowance of %s approved (tx %s)", amount_wei, tx_hash)
        return tx_hash

    def _seal_and_add(self, data: str | bytes, certificate_pem: str, what: str) -> str:
        """Seal into a temporary file and upload it from there: a large input is never held sealed in memory."""
        with tempfile.TemporaryFile(prefix="etny-sealed-") as sealed:
            size = seal_for_enclave_into(data, certificate_pem, sealed)
            if size > MAX_ARTEFACT_BYTES:
                raise ConfigurationError(
                    f"{what} is {len(data)} characters; sealed it would be {size} bytes, over the limit of "
                    f"{MAX_ARTEFACT_BYTES} bytes"
                )
            try:
                return self.ipfs.add(sealed)
            except TransientError as exc:
                raise StorageError(f"could not upload the {what} to IPFS ({exc}); no transaction was sent") from None

    def submit_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
    ) -> SubmittedTask:
        """Seal and upload the artefacts, then place the DO request. Validation and uploads come first:
        a bad parameter, missing funds or an unreachable IPFS fail before any transaction is sent."""
        if not isinstance(code, str) or not code.strip():
            raise ConfigurationError("code is empty: give the Python source of the task")
        if input_data is not None and not isinstance(input_data, str):
            raise ConfigurationError(f"input_data must be a string, got {type(input_data).__name__}")
        check_input_size(input_data, self.settings.max_input_bytes)
        spec = Resources.from_value(resources)
        node = metadata.normalize_node_address(node_address)
        zone = trustedzone or self.settings.trustedzone or ""
        if not self._chain_verified:
            self.verify_chain()
        enclave = self.preflight(spec, zone, node)

        challenge = metadata.new_challenge()
        challenge_cid = self._seal_and_add(challenge, enclave.certificate_pem, "challenge")
        code_cid = self._seal_and_add(code, enclave.certificate_pem, "code")
        input_cid = self._seal_and_add(input_data, enclave.certificate_pem, "input dataset") if input_data else ""
        m1 = metadata.image_metadata(
            enclave.image_cid,
            zone,
            enclave.compose_cid,
            challenge_cid,
            requester_public_key_hex(self.settings.private_key or ""),
        )
        m2 = metadata.code_metadata(code_cid, code)
        m3 = metadata.input_metadata(input_cid, input_data)

        call = self.protocol.functions._addDORequest(*spec.contract_args(), m1, m2, m3, node)
        for attempt in range(1, ALLOWANCE_RACE_ATTEMPTS + 1):
            anchor = int(self._view(self.protocol.functions._getOrdersCount()))
            from_block = self.block_number()
            # approve (when needed) and request back to back: another task of this wallet on this machine must
            # not spend the allowance in between (``approve`` sets it; the wallet's transactions run in nonce order)
            with self._wallet_lock("submit"):
                self.ensure_allowance(spec.price_wei)
                try:
                    tx_hash = self.transact(call, "_addDORequest")
                    break
                except ChainError as exc:
                    # a submission from another machine with the same wallet spent the allowance in between
                    if "allowance" not in str(exc).lower() or attempt == ALLOWANCE_RACE_ATTEMPTS:
                        raise
            self.log.info("the token allowance was used by a concurrent submission; approving again")
        receipt = self.wait_receipt(tx_hash, "_addDORequest")
        from web3.logs import DISCARD

        events = self.protocol.events._addDORequestEV().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError(f"_addDORequest {tx_hash} succeeded but emitted no _addDORequestEV event")
        do_request_id = int(events[0]["args"]["_rowNumber"])
        self.log.info(
            "Task created: DO request %s (tx %s, %s %s escrowed)",
            do_request_id,
            tx_hash,
            spec.taskPrice,
            self.network.token_name,
        )
        return SubmittedTask(
            do_request_id=do_request_id,
            tx_hash=tx_hash,
            from_block=from_block,
            challenge=challenge,
            order_count_anchor=anchor,
            requester=self.address,
            trustedzone=zone,
            node_address=node,
            code_cid=code_cid,
            input_cid=input_cid,
            resources=spec.as_dict(),
        )

    # ------------------------------------------------------------------ orders
    def get_order(self, order_id: int) -> Order:
        downer, dproc, do_request, dp_request, status = self._view(self.protocol.functions._getOrder(int(order_id)))
        return Order(int(order_id), downer, dproc, int(do_request), int(dp_request), int(status))

    def get_order_status(self, order_id: int) -> OrderStatus:
        return OrderStatus(self.get_order(order_id).status)

    def get_request_status(self, do_request_id: int) -> RequestStatus:
        row = self._view(self.protocol.functions._getDORequest(int(do_request_id)))
        return RequestStatus(int(row[7]))

    def _logs(self, topic: str, from_block: int, to_block: int | str = "latest") -> list[Any]:
        return self._rpc(
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.network.protocol_address,
                    "fromBlock": int(from_block),
                    "toBlock": to_block,
                    "topics": [topic],
                }
            )
        )

    def find_order(self, do_request_id: int, from_block: int, order_count_anchor: int | None = None) -> int | None:
        """The order placed for a DO request, from ``_orderPlacedEV`` logs (stateless ``eth_getLogs``);
        falls back to scanning ``_getOrder`` when logs are unavailable."""
        try:
            for entry in self._logs(ORDER_PLACED_TOPIC, from_block):
                order_id, do_request, _dp = decode_order_placed(entry["data"])
                if do_request == int(do_request_id):
                    return order_id
            return None
        except Exception as exc:
            self.log.warning("Order log scan failed (%s); scanning orders instead", type(exc).__name__)
        count = int(self._view(self.protocol.functions._getOrdersCount()))
        floor = order_count_anchor if order_count_anchor is not None else max(0, count - ORDER_SCAN_LIMIT)
        for index in range(count - 1, floor - 1, -1):
            if self.get_order(index).do_request_id == int(do_request_id):
                return index
        return None

    def approve_order(self, order_id: int) -> str:
        tx_hash = self.transact(self.protocol.functions._approveOrder(int(order_id)), "_approveOrder")
        self.wait_receipt(tx_hash, "_approveOrder")
        self.log.info("Order %s approved (tx %s)", order_id, tx_hash)
        return tx_hash

    def cancel_task(self, do_request_id: int) -> str | None:
        """Cancel a DO request no node has booked (the escrow comes back); None when it is not cancellable."""
        if self.get_request_status(do_request_id) != RequestStatus.AVAILABLE:
            return None
        tx_hash = self.transact(self.protocol.functions._cancelDORequest(int(do_request_id)), "_cancelDORequest")
        self.wait_receipt(tx_hash, "_cancelDORequest")
        self.log.info("DO request %s cancelled, escrow returned (tx %s)", do_request_id, tx_hash)
        return tx_hash

    def is_order_closed(self, order_id: int, from_block: int) -> bool:
        """TASK_COMPLETED: ``_orderClosedEV`` for the order, or its status when logs are unavailable."""
        try:
            return any(
                decode_order_closed(e["data"]) == int(order_id) for e in self._logs(ORDER_CLOSED_TOPIC, from_block)
            )
        except Exception as exc:
            self.log.debug("Closed-order log scan failed (%s); probing the order", type(exc).__name__)
            return self.get_order_status(order_id) == OrderStatus.CLOSED

    # ------------------------------------------------------------------ results
    def get_result(self, order_id: int, challenge: str, max_result_bytes: int | None = None) -> TaskResult:
        """Fetch, verify and decrypt the result of a closed order.

        Raises :class:`OperatorFaultError` for operator-fault task codes and :class:`ResultVerificationError`
        when the result does not verify (both mean: resubmit). A task error is a result with ``success=False``.
        """
        text = self._view(self.protocol.functions._getResultFromOrder(int(order_id)))
        order_result = parse_order_result(text)
        tx = decode_result_transaction(order_result.transaction_bytes)
        verify_binding(tx, order_id, self.network.protocol_address or "", self.chain_id())
        if is_operator_fault(tx.task_code):
            raise OperatorFaultError(
                f"order {order_id} failed on the operator side: {tx.task_code_name} ({tx.task_code})"
            )
        verify_signer(tx, order_id, challenge)
        try:
            blob = self.ipfs.cat_into(order_result.result_cid, HexDecoder, max_bytes=max_result_bytes)
        except (TransientError, StorageError) as exc:
            raise StorageError(
                f"order {order_id}: the result {order_result.result_cid} could not be read from IPFS: {exc}"
            ) from None
        except ValueError:
            raise ResultVerificationError(
                f"order {order_id}: the result {order_result.result_cid} is not hex"
            ) from None
        opened = open_result_buffer(blob.finish(), self.settings.private_key or "")
        del blob  # decrypted in place: drop the ciphertext before decoding (a large result is held ~2x, not 5x)
        try:
            plaintext = opened.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultVerificationError(f"order {order_id}: the decrypted result is not UTF-8") from None
        del opened
        verify_checksum(tx, order_id, plaintext)
        result = build_task_result(tx, order_id, plaintext, order_result.result_cid)
        self.log.info("Result of order %s verified: %s (%s)", order_id, result.task_code_name, result.task_code)
        return result

    # ------------------------------------------------------------------ waiting
    def wait_for_order_id(
        self,
        do_request_id: int,
        from_block: int,
        order_count_anchor: int | None = None,
        *,
        timeout: float,
        poll_interval: float | None = None,
    ) -> int | None:
        """Poll until a node places an order for the DO request; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = poll_interval or min(self.network.block_time, 2.0)
        while True:
            order_id = self.find_order(do_request_id, from_block, order_count_anchor)
            if order_id is not None:
                return order_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    def wait_for_order(self, task: SubmittedTask, timeout: float, poll_interval: float | None = None) -> int | None:
        return self.wait_for_order_id(
            task.do_request_id, task.from_block, task.order_count_anchor, timeout=timeout, poll_interval=poll_interval
        )

    def wait_closed(self, order_id: int, from_block: int, timeout: float, poll_interval: float | None = None) -> bool:
        """Poll until TASK_COMPLETED (the order closed); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = poll_interval or min(self.network.block_time, 2.0)
        while not self.is_order_closed(order_id, from_block):
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    def wait_for_completion(
        self, order_id: int, from_block: int, timeout: float, poll_interval: float | None = None
    ) -> None:
        if not self.wait_closed(order_id, from_block, timeout, poll_interval):
            status = self.get_order(order_id).status_name
            raise OperatorFaultError(f"order {order_id} was not completed within {timeout:g} s (order status {status})")

    def run_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        *,
        timeout: float | None = None,
        order_wait_timeout: float = 1800.0,
        max_resubmits: int = 2,
        poll_interval: float | None = None,
    ) -> TaskResult:
        """Run one task end to end: submit, wait for an order, approve, wait for TASK_COMPLETED, verify.

        No order within ``order_wait_timeout``: the request is cancelled (escrow back), OrderTimeoutError.
        Operator faults (fault codes, unverifiable results, no completion within ``timeout``, default the
        task's duration + 15 min) resubmit up to ``max_resubmits`` times. A task error returns a result with
        ``success=False``.
        """
        spec = Resources.from_value(resources)
        completion_timeout = timeout if timeout is not None else spec.duration * 3600 + 900
        last_fault: Exception | None = None
        for attempt in range(max_resubmits + 1):
            if attempt:
                self.log.warning(
                    "Resubmitting after an operator fault (%s of %s): %s", attempt, max_resubmits, last_fault
                )
            task = self.submit_task(code, input_data, spec, trustedzone, node_address)
            order_id = self.wait_for_order(task, order_wait_timeout, poll_interval)
            if order_id is None:
                self.cancel_task(task.do_request_id)
                raise OrderTimeoutError(
                    f"no node placed an order for DO request {task.do_request_id} within {order_wait_timeout:g} s; "
                    "the request was cancelled and the escrow returned"
                )
            self.log.info("Order placed: order %s for DO request %s", order_id, task.do_request_id)
            if not task.pinned:
                self.approve_order(order_id)
            else:
                self.log.info(
                    "Order %s was delegated to the pinned node %s: no approval needed", order_id, task.node_address
                )
            try:
                self.wait_for_completion(order_id, task.from_block, completion_timeout, poll_interval)
                self.log.info("Task completed: order %s closed", order_id)
                return self.get_result(order_id, task.challenge)
            except (OperatorFaultError, ResultVerificationError) as exc:
                last_fault = exc
                self.log.error("Operator fault on order %s: %s", order_id, exc)
        raise OperatorFaultError(f"the task failed on {max_resubmits + 1} attempts; last fault: {last_fault}")
