"""In-memory fakes for the unit tests: a protocol client, task state stores and the web3 pieces the transaction
layer touches. They model the protocol's state (requests, orders, allowance, mined transactions) so the real
lifecycle, operator, sensor and trigger code can run every branch without the devnet.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from airflow_provider_ethernity.protocol.client import Order
from airflow_provider_ethernity.protocol.do_requests import refused_for_allowance
from airflow_provider_ethernity.protocol.errors import ChainError, ResultNotReadyError
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
from airflow_provider_ethernity.protocol.metadata import normalize_node_address
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.results import TaskResult
from airflow_provider_ethernity.protocol.submission import TaskSpec
from airflow_provider_ethernity.protocol.transactions import RevertedError, SignedTx

NODE = "0x" + "11" * 20
WALLET = "0x" + "22" * 20


def task_result(order_id: int, value: Any = "hello", *, code: int = 0, name: str = "SUCCESS") -> TaskResult:
    return TaskResult(
        order_id=order_id,
        success=code == 0,
        task_code=code,
        task_code_name=name,
        value=value,
        text=str(value),
        result_type="json",
        raw=json.dumps(value),
        result_cid=f"bafyresult{order_id}",
        checksum="0xsum",
        enclave_challenge="ch",
        signer="0xsigner",
    )


@dataclass
class FakeCall:
    """A contract call as the fake client hands it to its sender."""

    label: str
    args: tuple[Any, ...] = ()


class FakeSender:
    """What the lifecycle sees of :class:`TransactionSender`: ``send`` hands the signed tx to ``record`` before it
    broadcasts, ``wait_receipt`` mines it on the fake chain, ``resume`` looks a recorded tx up."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.nonce = 0
        self.broadcast: list[SignedTx] = []  # every broadcast, in order
        self.receipt_failures: dict[str, list[BaseException]] = {}  # label -> errors of the next wait_receipt calls
        self.known: dict[str, bool] = {}  # tx hash -> resume's answer (mined/pending vs never minable)
        self.resumed: list[str] = []

    def send(self, call: FakeCall, label: str, record: Any = None) -> SignedTx:
        signed = SignedTx(
            label, "0x" + hashlib.sha256(f"{label}:{self.nonce}".encode()).hexdigest(), self.nonce, "0xraw"
        )
        self.nonce += 1
        if record is not None:
            record(signed)  # the write-ahead: if it raises, nothing reaches the network
        self.broadcast.append(signed)
        self.client.calls_by_hash[signed.tx_hash] = call
        return signed

    def wait_receipt(self, signed: SignedTx | str, label: str, timeout: float = 300.0) -> Any:
        tx_hash = signed.tx_hash if isinstance(signed, SignedTx) else signed
        failures = self.receipt_failures.get(label)
        if failures:
            error = failures.pop(0)
            if isinstance(error, ChainError):  # reverted, or its nonce went elsewhere: it will never be mined
                self.client.dead.add(tx_hash)
            raise error
        return self.client.mine(tx_hash, label)

    def resume(self, signed: SignedTx) -> bool:
        self.resumed.append(signed.tx_hash)
        alive = self.known.get(signed.tx_hash, True)
        if not alive:
            self.client.dead.add(signed.tx_hash)
        return alive

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.broadcast]


class FakeProtocol:
    """The ``functions`` of the protocol contract that :func:`reclaim` calls, over the fake client's state."""

    def __init__(self, client: FakeClient) -> None:
        self.functions = SimpleNamespace(
            _getMyDORequests=lambda: SimpleNamespace(call=lambda tx=None: sorted(client.requests)),
            _getMyDOOrders=lambda: SimpleNamespace(call=lambda tx=None: sorted(client.orders)),
            _getDORequest=lambda rid: SimpleNamespace(call=lambda tx=None: client.request_row(rid)),
        )


class FakeClient:
    """An in-memory :class:`EthernityClient`: the methods the lifecycle, the hook and reclaim use, over a small
    model of the protocol (DO requests with escrow, orders, the token allowance, mined transactions).

    A node's behaviour is scripted: ``auto_place`` (a node places an order while the lifecycle waits),
    ``place_at_settle`` (it books the request at the order timeout's edge), ``auto_close`` (the order closes
    while the lifecycle waits for completion), ``results`` (what ``get_result`` answers per order, in turn).
    """

    def __init__(self, *, token_is_protocol: bool = False) -> None:
        self.log = logging.getLogger("tests.fake_client")
        self.network = SimpleNamespace(token_name="ETNY", explorer_url="https://explorer.test", block_time=1.0)
        self.address = WALLET
        self.token_is_protocol = token_is_protocol
        self.sender = FakeSender(self)
        self.protocol = FakeProtocol(self)
        self.requests: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, Order] = {}
        self.mined: dict[str, dict[str, Any]] = {}
        self.calls_by_hash: dict[str, FakeCall] = {}
        self.dead: set[str] = set()  # sent transactions that can never be mined (reverted, nonce taken)
        self.allowance = 0
        self.block = 100
        self.auto_place = True
        self.place_at_settle = False
        self.auto_close = True
        self.steal_allowance = 0  # a concurrent submission of the wallet takes the allowance this many times
        self.results: dict[int, list[Any]] = {}
        self.prepare_error: BaseException | None = None
        self.cancel_error: BaseException | None = None
        self.settle_error: BaseException | None = None
        # what was asked, for assertions
        self.prepared: list[TaskSpec] = []
        self.cancelled: list[int] = []
        self.approved: list[int] = []
        self.result_calls: list[tuple[int, str | None]] = []
        self.read_untils: list[float | None] = []
        self.waits: list[tuple[str, Any]] = []
        self.lock_held = False

    # -------------------------------------------------------------- protocol model
    def add_request(self, price: int = 10, status: RequestStatus = RequestStatus.AVAILABLE) -> int:
        rid = len(self.requests) + 1
        self.requests[rid] = {"status": status, "price": price}
        return rid

    def place_order(self, do_request_id: int, status: OrderStatus = OrderStatus.OPEN, dproc: str = NODE) -> int:
        order_id = len(self.orders) + 1
        self.orders[order_id] = Order(order_id, WALLET, dproc, do_request_id, 900 + order_id, int(status))
        self.requests[do_request_id]["status"] = RequestStatus.BOOKED
        return order_id

    def set_order_status(self, order_id: int, status: OrderStatus) -> None:
        o = self.orders[order_id]
        self.orders[order_id] = Order(o.order_id, o.downer, o.dproc, o.do_request_id, o.dp_request_id, int(status))

    def request_row(self, do_request_id: int) -> tuple[Any, ...]:
        r = self.requests[int(do_request_id)]
        return (WALLET, 1, 1, 1, 1, 1, r["price"], int(r["status"]))

    def mine(self, tx_hash: str, label: str) -> dict[str, Any]:
        if tx_hash in self.mined:
            return self.mined[tx_hash]
        call = self.calls_by_hash.get(tx_hash, FakeCall(label))
        receipt: dict[str, Any] = {"status": 1, "transactionHash": tx_hash, "blockNumber": self.block}
        if label == "approve":
            self.allowance = call.args[0]  # ERC-20 approve sets the allowance
        elif label == "_addDORequest":
            spec = call.args[0]
            if not self.token_is_protocol:
                if self.allowance < spec.resources.price_wei:
                    self.dead.add(tx_hash)
                    raise RevertedError(f"_addDORequest transaction {tx_hash} reverted (block {self.block})")
                self.allowance -= spec.resources.price_wei
            receipt["do_request_id"] = self.add_request(spec.resources.taskPrice)
        self.block += 1
        self.mined[tx_hash] = receipt
        return receipt

    # -------------------------------------------------------------- the client's surface
    def task_spec(
        self,
        code: str,
        input_data: str | None = None,
        resources: Any = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> TaskSpec:
        return TaskSpec(
            code=code,
            input_data=input_data,
            resources=Resources.from_value(resources),
            trustedzone=trustedzone or "etny-pynithy-testnet",
            node_address=normalize_node_address(node_address),
            securelock=securelock or "",
        )

    def prepare_submission(self, spec: TaskSpec) -> str:
        if self.prepare_error is not None:
            raise self.prepare_error
        self.prepared.append(spec)
        return "enclave"

    def challenge_for(self, salt: str) -> str:
        return f"challenge-of-{salt}"

    def do_request_call(self, spec: TaskSpec, enclave: Any, challenge: str) -> FakeCall:
        return FakeCall("_addDORequest", (spec, challenge))

    @contextlib.contextmanager
    def submit_lock(self) -> Iterator[None]:
        assert not self.lock_held, "submit_lock is not re-entrant"
        self.lock_held = True
        try:
            yield
        finally:
            self.lock_held = False

    def orders_count(self) -> int:
        return len(self.orders)

    def block_number(self) -> int:
        return self.block

    def pending_allowance(self) -> int:
        """The allowance at the pending state: requests sent and not yet mined have used their part."""
        in_flight = [
            call.args[0].resources.price_wei
            for tx_hash, call in self.calls_by_hash.items()
            if call.label == "_addDORequest" and tx_hash not in self.mined and tx_hash not in self.dead
        ]
        return self.allowance - sum(in_flight)

    def ensure_allowance(self, amount_wei: int, record: Any = None) -> str | None:
        if self.token_is_protocol or self.pending_allowance() >= amount_wei:
            return None
        signed = self.sender.send(FakeCall("approve", (amount_wei,)), "approve", record=record)
        self.sender.wait_receipt(signed, "approve")
        if self.steal_allowance:
            self.steal_allowance -= 1
            self.allowance = 0  # the other machine's request used it
        return signed.tx_hash

    def lost_allowance_race(self, exc: ChainError, amount_wei: int) -> bool:
        return refused_for_allowance(exc) or (not self.token_is_protocol and self.allowance < amount_wei)

    def do_request_id_from(self, receipt: Any, tx_hash: str) -> int:
        if "do_request_id" not in receipt:
            raise ChainError(f"_addDORequest {tx_hash} succeeded but emitted no _addDORequestEV event")
        return int(receipt["do_request_id"])

    def find_order(self, do_request_id: int, from_block: int, order_count_anchor: int | None = None) -> int | None:
        for order in self.orders.values():
            if order.do_request_id == do_request_id:
                return order.order_id
        return None

    def get_order(self, order_id: int) -> Order:
        return self.orders[int(order_id)]

    get_order_once_approved = get_order  # no replica here to lag

    def get_order_status(self, order_id: int) -> OrderStatus:
        return OrderStatus(self.get_order(order_id).status)

    def get_request_status(self, do_request_id: int) -> RequestStatus:
        return RequestStatus(self.requests[int(do_request_id)]["status"])

    def get_do_request(self, do_request_id: int) -> Any:
        from airflow_provider_ethernity.protocol.contracts import DORequestRow

        row = self.request_row(do_request_id)
        return DORequestRow(int(do_request_id), *row[:7], RequestStatus(row[7]))

    def is_order_closed(self, order_id: int, from_block: int) -> bool:
        return self.get_order_status(order_id) == OrderStatus.CLOSED

    def cancel_task(self, do_request_id: int) -> str | None:
        if self.cancel_error is not None:
            raise self.cancel_error
        if self.get_request_status(do_request_id) != RequestStatus.AVAILABLE:
            return None
        self.requests[int(do_request_id)]["status"] = RequestStatus.CANCELED
        self.cancelled.append(int(do_request_id))
        return f"0xcancel{do_request_id}"

    def approve_order(self, order_id: int) -> str | None:
        if self.get_order_status(order_id) != OrderStatus.OPEN:
            return None
        self.set_order_status(order_id, OrderStatus.PROCESSING)
        self.approved.append(int(order_id))
        return f"0xapprove{order_id}"

    def wait_for_order_id(
        self,
        do_request_id: int,
        from_block: int,
        order_count_anchor: int | None = None,
        *,
        timeout: float,
        poll_interval: float | None = None,
    ) -> int | None:
        self.waits.append(("order", do_request_id))
        found = self.find_order(do_request_id, from_block, order_count_anchor)
        if found is None and self.auto_place:
            found = self.place_order(do_request_id)
        return found

    def settle_unplaced_request(
        self, do_request_id: int, from_block: int, order_count_anchor: int | None = None
    ) -> int | None:
        if self.settle_error is not None:
            raise self.settle_error
        if self.place_at_settle:
            return self.place_order(do_request_id)
        self.cancel_task(do_request_id)
        return None

    def wait_closed(self, order_id: int, from_block: int, timeout: float, poll_interval: float | None = None) -> bool:
        self.waits.append(("closed", order_id))
        if self.auto_close:
            self.set_order_status(order_id, OrderStatus.CLOSED)
        return self.is_order_closed(order_id, from_block)

    def get_result(
        self,
        order_id: int,
        challenge: str | None = None,
        max_result_bytes: int | None = None,
        *,
        challenge_salt: str | None = None,
        read_until: float | None = None,
    ) -> TaskResult:
        if challenge is None and challenge_salt:
            challenge = self.challenge_for(challenge_salt)
        self.result_calls.append((order_id, challenge))
        self.read_untils.append(read_until)
        queued = self.results.get(order_id)
        outcome = queued.pop(0) if queued else None
        if isinstance(outcome, BaseException):
            raise outcome
        if self.get_order_status(order_id) != OrderStatus.CLOSED:
            raise ResultNotReadyError(f"order {order_id} is not CLOSED")
        return outcome if outcome is not None else task_result(order_id, f"result-of-{order_id}")

    # reclaim's raw reads
    def _rpc(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def _view(self, call: Any) -> Any:
        return call.call()


# ------------------------------------------------------------------ task state stores
class DictState:
    """Airflow's ``task_state_store`` as a dict: ``get``/``set``, with faults on demand."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sets = 0
        self.fail_get: BaseException | None = None
        self.fail_set: BaseException | None = None
        self.fail_set_after: int | None = None  # sets that succeed before fail_set applies
        self.foreign_writer = False  # another try's write lands between our set and our read-back

    def get(self, key: str, default: Any = None) -> Any:
        if self.fail_get is not None:
            raise self.fail_get
        value = self.data.get(key, default)
        return json.loads(json.dumps(value)) if value is not None else value

    def set(self, key: str, value: Any, **_: Any) -> None:
        if self.fail_set is not None and (self.fail_set_after is None or self.sets >= self.fail_set_after):
            raise self.fail_set
        self.sets += 1
        self.data[key] = json.loads(json.dumps(value))
        if self.foreign_writer:
            self.data[key]["writer"] = "another-try"


@dataclass
class RecordingStore:
    """A :class:`SubmissionStore` that keeps every saved copy (to check what was written, and when) and can
    refuse writes from the n-th on."""

    saved: list[dict[str, Any]] = field(default_factory=list)
    refuse_from: int | None = None

    def load(self) -> Any:
        from airflow_provider_ethernity.protocol.submission import Submission

        return Submission.from_dict(self.saved[-1]) if self.saved else None

    def save(self, submission: Any) -> None:
        from airflow_provider_ethernity.protocol.submission import FencedError

        if self.refuse_from is not None and len(self.saved) >= self.refuse_from:
            raise FencedError("the task state did not keep this try's write")
        submission.writer = f"w{len(self.saved)}"
        self.saved.append(json.loads(json.dumps(submission.to_dict())))

    @property
    def phases(self) -> list[str]:
        return [s["phase"] for s in self.saved]


# ------------------------------------------------------------------ web3 pieces of the transaction layer
class TransactionNotFoundFactory:
    @staticmethod
    def make(tx_hash: str) -> Exception:
        from web3.exceptions import TransactionNotFound

        return TransactionNotFound(f"Transaction with hash: {tx_hash!r} not found.")


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


class FakeAccount:
    """Signs by serialising the transaction: the raw bytes are its JSON, the hash their sha256."""

    address = WALLET

    def __init__(self) -> None:
        self.signed: list[dict[str, Any]] = []

    def sign_transaction(self, tx: dict[str, Any]) -> Any:
        self.signed.append(dict(tx))
        raw = json.dumps(tx, sort_keys=True).encode()
        return SimpleNamespace(hash=_digest(raw), raw_transaction=raw)


class FakeEth:
    """``w3.eth`` of a node with a pool and a chain; ``send_script`` decides what each ``send_raw_transaction``
    does: ``"ok"`` (pooled), ``("pooled", exc)`` (pooled, but the answer is ``exc``: a lost answer, "already
    known"), ``"drop"`` (the node answers ok but forgets it), or an exception to raise without pooling.
    ``pending_answers`` overrides the next ``pending`` nonce counts (a lagging replica)."""

    def __init__(self) -> None:
        self.pool: dict[str, dict[str, Any]] = {}
        self.chain: dict[str, dict[str, Any]] = {}
        self.sent_raw: list[str] = []
        self.send_script: list[Any] = []
        self.latest_count = 0  # nonces mined from the wallet (other senders included)
        self.pending_extra = 0  # pooled transactions from elsewhere above latest_count
        self.receipt_lookups_fail: list[BaseException] = []
        self.reverted: set[str] = set()
        self.pending_answers: list[int] = []

    @staticmethod
    def decode(raw: str) -> tuple[str, dict[str, Any]]:
        data = bytes.fromhex(raw[2:])
        return "0x" + _digest(data).hex(), json.loads(data)

    def send_raw_transaction(self, raw: str) -> bytes:
        self.sent_raw.append(raw)
        tx_hash, tx = self.decode(raw)
        action = self.send_script.pop(0) if self.send_script else "ok"
        if action == "ok":
            self.pool[tx_hash] = tx
        elif isinstance(action, tuple):
            self.pool[tx_hash] = tx
            raise action[1]
        elif action == "drop":
            pass
        else:
            raise action
        return bytes.fromhex(tx_hash[2:])

    def mine(self) -> None:
        for tx_hash, tx in list(self.pool.items()):
            self.chain[tx_hash] = {**tx, "blockNumber": 7}
            self.latest_count = max(self.latest_count, tx["nonce"] + 1)
            del self.pool[tx_hash]

    def get_transaction_receipt(self, tx_hash: str) -> dict[str, Any]:
        if self.receipt_lookups_fail:
            raise self.receipt_lookups_fail.pop(0)
        if tx_hash in self.chain:
            return {"status": 0 if tx_hash in self.reverted else 1, "blockNumber": 7, "transactionHash": tx_hash}
        raise TransactionNotFoundFactory.make(tx_hash)

    def get_transaction(self, tx_hash: str) -> dict[str, Any]:
        if tx_hash in self.pool:
            return {**self.pool[tx_hash], "blockNumber": None}
        if tx_hash in self.chain:
            return self.chain[tx_hash]
        raise TransactionNotFoundFactory.make(tx_hash)

    def get_transaction_count(self, address: str, block: str) -> int:
        if block == "latest":
            return self.latest_count
        if self.pending_answers:
            return self.pending_answers.pop(0)
        ours = [tx["nonce"] + 1 for tx in self.pool.values()]
        return max([self.latest_count + self.pending_extra, *ours])


def hooks_on(client: FakeClient) -> Any:
    """A stand-in for ``EthernityHook.afor_connection``: hooks (any wallet) whose client is ``client``."""
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    def hook_for(conn_id: str, wallet: str | None = None) -> EthernityHook:
        hook = EthernityHook(conn_id, wallet=wallet)
        hook.__dict__["client"] = client
        hook.__dict__["settings"] = SimpleNamespace(network=client.network, private_key="0x" + "11" * 32)
        return hook

    return hook_for
