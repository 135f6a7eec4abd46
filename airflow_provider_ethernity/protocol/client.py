"""The synchronous Ethernity client: the requester's side of the protocol over web3 and the IPFS HTTP API.

No Airflow here: the hook builds this from a connection; the devnet, benchmarks and scripts use it directly.
Spending transactions go through :class:`~.transactions.TransactionSender` (idempotent by hash); one task's
whole life is :class:`~.lifecycle.TaskLifecycle`, which :meth:`EthernityClient.run_task` drives.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.abi import IMAGE_REGISTRY, PROTOCOL, TOKEN, load_abi
from airflow_provider_ethernity.protocol.crypto import (
    requester_public_key_hex,
    seal_for_enclave_into,
)
from airflow_provider_ethernity.protocol.errors import (
    ChainError,
    ConfigurationError,
    EnclaveLookupError,
    InsufficientFundsError,
    OperatorFaultError,
    ResultNotReadyError,
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
from airflow_provider_ethernity.protocol.inputs import validate_code, validate_input_data
from airflow_provider_ethernity.protocol.ipfs import IpfsClient
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.results import (
    TaskResult,
    build_task_result,
    decode_result_transaction,
    open_order_result,
    parse_order_result,
    verify_binding,
    verify_checksum,
    verify_signer,
)
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_ethernity.protocol.settings import ClientSettings
from airflow_provider_ethernity.protocol.storage import IntakeUploads, read_result_blob, require_reachable_storage
from airflow_provider_ethernity.protocol.submission import MemorySubmissionStore, TaskSpec
from airflow_provider_ethernity.protocol.task_codes import is_operator_fault
from airflow_provider_ethernity.protocol.transactions import (
    SignedTx,
    TransactionSender,
    describe_rpc_error,
    wallet_lock,
)

log = logging.getLogger("airflow_provider_ethernity")

#: How far back the ``_getOrder`` fallback scan looks when no anchor is known.
ORDER_SCAN_LIMIT = 256
#: Maximum sealed size of one artefact (code or input) the client uploads.
MAX_ARTEFACT_BYTES = 256 * 1024 * 1024
#: Reads right after an event may hit a replica that has not seen it yet: how often such a read is repeated.
LAGGING_READ_ATTEMPTS = 5
#: Allowance approvals carry a few wei of dust derived from the submission, so two machines approving for the
#: same wallet at the same nonce never sign byte-identical transactions.
APPROVAL_DUST_WEI = 10**6


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
    """What :meth:`EthernityClient.submit_task` leaves behind (no secret inside: the challenge is derived from
    the wallet key and ``challenge_salt``)."""

    do_request_id: int
    tx_hash: str
    from_block: int
    challenge_salt: str
    order_count_anchor: int | None
    requester: str
    node_address: str
    resources: dict[str, int] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return bool(self.node_address)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        return f"EthernityClient(network={self.network.name!r}, rpc={self.settings.rpc_url_shown!r})"

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

    # ------------------------------------------------------------------ profiles: public intake (storage.py)
    @cached_property
    def intake(self) -> IntakeUploads:
        return IntakeUploads(self.settings, logger=self.log)

    def _flush_intake(self, do_request_id: int) -> None:
        """POST the request's held artefacts to the intake; if that fails, cancel the request (escrow back)."""
        try:
            self.intake.flush(self, do_request_id)
        except StorageError as exc:
            cancelled = self.cancel_task(do_request_id)
            raise StorageError(
                f"{exc}; DO request {do_request_id} "
                + ("cancelled, its escrow returned" if cancelled else "could not be cancelled: run `ethernity reclaim`")
            ) from None

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
                raise TransientError(f"RPC {self.settings.rpc_url_shown} unreachable: {type(exc).__name__}") from None
            from airflow_provider_ethernity.protocol.rpc_errors import rpc_failure_error

            error = rpc_failure_error(exc, self.settings.rpc_url)
            if error is not None:
                raise error from None
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
                f"{describe_rpc_error(exc)}"
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
            logger=self.log,
        )

    def transact(self, call: Any, label: str) -> str:
        """Sign and send ``call`` (no write-ahead record); returns the tx hash. For callers outside a task's
        lifecycle, such as the devnet's node agent."""
        return self.sender.send(call, label).tx_hash

    def wait_receipt(self, tx_hash: str | SignedTx, label: str, timeout: float = 300.0) -> Any:
        return self.sender.wait_receipt(tx_hash, label, timeout)

    def submit_lock(self) -> contextlib.AbstractContextManager[Any]:
        """The wallet's "submit" lock: allowance and request back to back, one submission at a time per machine."""
        return wallet_lock(self._lock_chain_id, self.address, "submit")

    # ------------------------------------------------------------------ submission
    def challenge_for(self, salt: str) -> str:
        """The secret client challenge of a submission, re-derived from the wallet key and its public salt."""
        return metadata.derive_challenge(self.settings.private_key or "", salt)

    def ensure_allowance(
        self, amount_wei: int, salt: str = "", record: Callable[[SignedTx], None] | None = None
    ) -> str | None:
        """Approve the protocol to take ``amount_wei`` when a separate token needs it; returns the tx hash.

        The price plus a few wei of dust unique to the submission is approved (least privilege, and never the
        same bytes from two machines). The allowance is read at the pending state: a request this wallet
        already sent but is not mined yet has consumed its part. Call it under :meth:`submit_lock`.
        """
        if self.network.token_is_protocol:
            return None
        if self.allowance("pending") >= amount_wei:
            return None
        dust = int(salt[:12] or "0", 16) % APPROVAL_DUST_WEI if salt else 0
        call = self.token.functions.approve(self.network.protocol_address, amount_wei + dust)
        signed = self.sender.send(call, "approve", record=record)
        self.sender.wait_receipt(signed, "approve")
        self.log.info(
            "Token allowance of %g %s approved (tx %s)", amount_wei / 10**18, self.network.token_name, signed.tx_hash
        )
        return signed.tx_hash

    def allowance_short(self, amount_wei: int) -> bool:
        """Whether the allowance no longer covers ``amount_wei`` (a concurrent submission used it)."""
        return not self.network.token_is_protocol and self.allowance("latest") < amount_wei

    def orders_count(self) -> int:
        return int(self._view(self.protocol.functions._getOrdersCount()))

    def _seal_and_add(self, data: str | bytes, certificate_pem: str, what: str) -> str:
        """Seal into a temporary file and upload it from there: a large input is never held sealed in memory."""
        with tempfile.TemporaryFile(prefix="etny-sealed-") as sealed:
            size = seal_for_enclave_into(data, certificate_pem, sealed)
            if size > MAX_ARTEFACT_BYTES:
                raise ConfigurationError(
                    f"{what} is {len(data)} characters; sealed it would be {size} bytes, over the limit of "
                    f"{MAX_ARTEFACT_BYTES} bytes"
                )
            if self.settings.uses_intake:  # profiles: held for the public intake, POSTed after the receipt
                return self.intake.queue(sealed, what)
            try:
                return self.ipfs.add(sealed)
            except TransientError as exc:
                raise StorageError(f"could not upload the {what} to IPFS ({exc}); no transaction was sent") from None

    def task_spec(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
    ) -> TaskSpec:
        """Validate a task's parameters (errors name the field) into the spec its fingerprint covers."""
        return TaskSpec(
            code=validate_code(code),
            input_data=validate_input_data(input_data, self.settings.max_input_bytes),
            resources=Resources.from_value(resources),
            trustedzone=trustedzone or self.settings.trustedzone or "",
            node_address=metadata.normalize_node_address(node_address),
        )

    def prepare_submission(self, spec: TaskSpec) -> EnclaveDetails:
        """Everything checkable before spending: the chain, the wallet and its funds, the enclave, the node."""
        require_reachable_storage(self.settings)  # profiles: a private IPFS nodes cannot read fails before paying
        if not self._chain_verified:
            self.verify_chain()
        return self.preflight(spec.resources, spec.trustedzone, spec.node_address)

    def do_request_call(self, spec: TaskSpec, enclave: EnclaveDetails, challenge: str) -> Any:
        """Seal and upload challenge, code and input; the ``_addDORequest`` call that names them."""
        challenge_cid = self._seal_and_add(challenge, enclave.certificate_pem, "challenge")
        code_cid = self._seal_and_add(spec.code, enclave.certificate_pem, "code")
        input_cid = (
            self._seal_and_add(spec.input_data, enclave.certificate_pem, "input dataset") if spec.input_data else ""
        )
        m1 = metadata.image_metadata(
            enclave.image_cid,
            spec.trustedzone,
            enclave.compose_cid,
            challenge_cid,
            requester_public_key_hex(self.settings.private_key or ""),
        )
        m2 = metadata.code_metadata(code_cid, spec.code)
        m3 = metadata.input_metadata(input_cid, spec.input_data)
        return self.protocol.functions._addDORequest(*spec.resources.contract_args(), m1, m2, m3, spec.node_address)

    def do_request_id_from(self, receipt: Any, tx_hash: str) -> int:
        from web3.logs import DISCARD

        events = self.protocol.events._addDORequestEV().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError(f"_addDORequest {tx_hash} succeeded but emitted no _addDORequestEV event")
        do_request_id = int(events[0]["args"]["_rowNumber"])
        if self.settings.uses_intake:  # profiles: the intake takes only CIDs of a request it can see
            self._flush_intake(do_request_id)
        return do_request_id

    def submit_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
    ) -> SubmittedTask:
        """Seal and upload the artefacts, then place the DO request (written ahead in a memory store). Validation
        and uploads come first: a bad parameter, missing funds or an unreachable IPFS fail before any send."""
        from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle

        spec = self.task_spec(code, input_data, resources, trustedzone, node_address)
        sub = TaskLifecycle(self, MemorySubmissionStore()).submit(spec)
        assert sub.do_request_id is not None and sub.request_tx is not None
        return SubmittedTask(
            do_request_id=sub.do_request_id,
            tx_hash=sub.request_tx,
            from_block=sub.from_block,
            challenge_salt=sub.challenge_salt,
            order_count_anchor=sub.order_count_anchor,
            requester=self.address,
            node_address=sub.node_address,
            resources=spec.resources.as_dict(),
        )

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

    def approve_order(self, order_id: int) -> str | None:
        """Approve an open order; idempotent: an order already approved (or delegated, closed) is left as it is
        and None is returned. Reads are repeated a few times: a lagging replica may not show the order yet."""
        order = self._lagging_read(lambda: self.get_order(order_id), f"order {order_id}")
        if order.status != OrderStatus.OPEN:
            self.log.info("Order %s is %s: no approval needed", order_id, order.status_name)
            return None
        try:
            signed = self.sender.send(self.protocol.functions._approveOrder(int(order_id)), "_approveOrder")
            self.sender.wait_receipt(signed, "_approveOrder")
        except ChainError:
            status = self.get_order_status(order_id)
            if status in (OrderStatus.PROCESSING, OrderStatus.CLOSED):  # approved meanwhile (another try)
                self.log.info("Order %s was approved meanwhile (%s)", order_id, status.name)
                return None
            raise
        self.log.info("Order %s approved (tx %s)", order_id, signed.tx_hash)
        return signed.tx_hash

    def _lagging_read(self, read: Callable[[], Any], what: str) -> Any:
        """A read that may revert on a replica that has not seen the latest block yet: tried a few blocks."""
        for attempt in range(LAGGING_READ_ATTEMPTS):
            try:
                return read()
            except TransientError:
                raise
            except Exception:
                if attempt == LAGGING_READ_ATTEMPTS - 1:
                    raise
                self.log.debug("%s not readable yet; asking again", what)
                time.sleep(min(2.0, self.network.block_time))
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel_task(self, do_request_id: int) -> str | None:
        """Cancel a DO request no node has booked (the escrow comes back); None when it is not cancellable."""
        if self.get_request_status(do_request_id) != RequestStatus.AVAILABLE:
            return None
        try:
            signed = self.sender.send(self.protocol.functions._cancelDORequest(int(do_request_id)), "_cancelDORequest")
            self.sender.wait_receipt(signed, "_cancelDORequest")
        except ChainError:
            if self.get_request_status(do_request_id) == RequestStatus.CANCELED:
                return None  # cancelled meanwhile (another try, a reclaim)
            if self.get_request_status(do_request_id) == RequestStatus.BOOKED:
                return None  # a node booked it at the edge
            raise
        self.log.info("DO request %s cancelled, escrow returned (tx %s)", do_request_id, signed.tx_hash)
        return signed.tx_hash

    def settle_unplaced_request(
        self, do_request_id: int, from_block: int, order_count_anchor: int | None = None
    ) -> int | None:
        """At the order timeout: cancel the request (None: escrow back), or return the order of a node that
        booked it at the edge (then the task carries on, as the official runner does)."""
        if self.cancel_task(do_request_id):
            return None
        status = self.get_request_status(do_request_id)
        if status == RequestStatus.CANCELED:
            return None
        for _ in range(LAGGING_READ_ATTEMPTS):
            order_id = self.find_order(do_request_id, from_block, order_count_anchor)
            if order_id is not None:
                self.log.warning(
                    "A node booked DO request %s at the order timeout: carrying on with order %s",
                    do_request_id,
                    order_id,
                )
                return order_id
            time.sleep(min(2.0, self.network.block_time))
        raise ChainError(
            f"DO request {do_request_id} is {status.name} but its order cannot be found; its escrow stays in the "
            "request: run `ethernity reclaim` to see it"
        )

    def is_order_closed(self, order_id: int, from_block: int) -> bool:
        """TASK_COMPLETED: ``_orderClosedEV`` for the order, or its status when logs are unavailable."""
        try:
            if any(decode_order_closed(e["data"]) == int(order_id) for e in self._logs(ORDER_CLOSED_TOPIC, from_block)):
                return True
        except Exception as exc:
            self.log.debug("Closed-order log scan failed (%s); probing the order", type(exc).__name__)
        return self.get_order_status(order_id) == OrderStatus.CLOSED

    # ------------------------------------------------------------------ results
    def get_result(
        self,
        order_id: int,
        challenge: str | None = None,
        max_result_bytes: int | None = None,
        *,
        challenge_salt: str | None = None,
    ) -> TaskResult:
        """Fetch, verify and decrypt the result of a closed order.

        Give the submission's ``challenge_salt`` (the challenge is re-derived from the wallet key) or the
        ``challenge`` itself. Raises :class:`ResultNotReadyError` while the order is not closed (never a
        fault), :class:`ResultReplayError` for a result of another order/contract/chain (refused, never
        resubmitted), :class:`OperatorFaultError` / :class:`ResultVerificationError` for a confirmed fault
        of this order (resubmit). A task error is a result with ``success=False``.
        """
        if challenge is None:
            if not challenge_salt:
                raise ConfigurationError("get_result needs the submission's challenge_salt (or its challenge)")
            challenge = self.challenge_for(challenge_salt)
        status = self.get_order_status(order_id)
        if status != OrderStatus.CLOSED:
            raise ResultNotReadyError(f"order {order_id} is {status.name}, not CLOSED: no result yet")
        text = self._lagging_read(
            lambda: self._view(self.protocol.functions._getResultFromOrder(int(order_id))), f"result of {order_id}"
        )
        order_result = parse_order_result(text)
        tx = decode_result_transaction(order_result.transaction_bytes)
        verify_binding(tx, order_id, self.network.protocol_address or "", self.chain_id())
        if is_operator_fault(tx.task_code):
            raise OperatorFaultError(
                f"order {order_id} failed on the operator side: {tx.task_code_name} ({tx.task_code})"
            )
        verify_signer(tx, order_id, challenge)
        try:
            # profiles: API then gateway until the read window; missing bytes after it are an operator fault
            blob = read_result_blob(self, order_id, order_result.result_cid, max_result_bytes)
        except (TransientError, StorageError) as exc:
            raise StorageError(
                f"order {order_id}: the result {order_result.result_cid} could not be read from IPFS: {exc}"
            ) from None
        except ValueError:
            raise ResultVerificationError(
                f"order {order_id}: the result {order_result.result_cid} is not hex"
            ) from None
        plaintext = open_order_result(blob, self.settings.private_key or "", order_id, order_result.result_cid)
        del blob
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
        max_resubmits: int | None = None,
        poll_interval: float | None = None,
    ) -> TaskResult:
        """Run one task end to end through :class:`~.lifecycle.TaskLifecycle` (the operator's lifecycle too).

        No order within ``order_wait_timeout``: the request is cancelled (escrow back) and OrderTimeoutError is
        raised, unless a node booked it at the edge. A confirmed operator fault is resubmitted up to
        ``max_resubmits`` times (default 1). No completion within ``timeout`` (default the task's duration +
        15 min): CompletionTimeoutError. A task error returns a result with ``success=False``.
        """
        from airflow_provider_ethernity.protocol.lifecycle import DEFAULT_MAX_RESUBMITS, TaskLifecycle

        spec = self.task_spec(code, input_data, resources, trustedzone, node_address)
        lifecycle = TaskLifecycle(
            self,
            MemorySubmissionStore(),
            max_resubmits=DEFAULT_MAX_RESUBMITS if max_resubmits is None else max_resubmits,
            order_wait_timeout=order_wait_timeout,
            completion_timeout=timeout,
            poll_interval=poll_interval,
        )
        return lifecycle.run(spec)
