"""Spends identified by their signed transaction hash: send, look up, resume, wait.

A transaction is signed before it is sent, so its hash is known before any byte reaches the network. The
caller may record that hash (and the raw bytes, which become public anyway once broadcast) durably before
the broadcast: the write-ahead that makes a crash, a lost answer or a second worker harmless. After any
send error, timeout or "already known/imported" answer the sender looks the hash up (receipt, then pool)
before it considers another nonce; a second transaction for the same purpose is only ever signed when the
first one provably cannot be mined (its nonce was consumed by another transaction).

Re-signing or re-broadcasting with the *same* nonce is always safe: at most one transaction per nonce is
mined. Moving to a *new* nonce is the only dangerous step, and it is taken only after that proof.

Nonces: :class:`WalletNonces` keeps the wallet's next nonce and its recent sends in a small JSON file next
to the wallet's ``flock`` lock, so every process of the machine shares them (no module globals). It
repairs gaps: when the node's pending count is below our counter and the transaction recorded at that nonce
is unknown to the node (dropped from the pool at a fee spike), the next send fills that nonce.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from airflow_provider_ethernity.protocol.errors import ChainError, TransientError
from airflow_provider_ethernity.protocol.logs import Log

log = logging.getLogger("airflow_provider_ethernity")

#: Where the per-wallet lock files live (one per chain + address + purpose).
LOCK_DIR_ENV = "ETHERNITY_LOCK_DIR"
#: Gas floors per call (the official runner's), used when the node's estimate is lower.
GAS_FLOORS = {"_addDORequest": 1_000_000, "_approveOrder": 100_000, "approve": 100_000, "_cancelDORequest": 200_000}
#: Answers meaning "this nonce is used by a transaction the node already has or has mined".
NONCE_TAKEN_PHRASES = (
    "nonce too low",
    "replacement transaction underpriced",
    "same nonce in the queue",
    "transaction with same nonce",
    "nonce has already been used",
    "already known",
    "already imported",
    "known transaction",
)
#: How many sends of one wallet the nonce file remembers (for gap repair).
RECENT_SENDS = 64
#: How many nonces one send tries before it gives up.
MAX_NONCE_ATTEMPTS = 20


class TxState(Enum):
    MINED = "mined"
    PENDING = "pending"
    UNKNOWN = "unknown"


class PendingTransactionError(TransientError):
    """A transaction was sent but is not mined yet; the next try looks it up by its hash."""

    def __init__(self, label: str, tx_hash: str, nonce: int, waited: float) -> None:
        self.label, self.tx_hash, self.nonce = label, tx_hash, nonce
        super().__init__(
            f"{label} transaction {tx_hash} (nonce {nonce}) is still pending after {waited:.0f} s; it may still be "
            "mined: a retry of this task looks it up by its hash and sends nothing new"
        )


class NonceTakenError(ChainError):
    """The nonce of a signed transaction was consumed by another transaction: this one can never be mined."""


class RevertedError(ChainError):
    """A transaction was mined and reverted: it moved no token, only its gas was paid.

    Every transaction is estimated against the chain's state just before it is signed (an estimate that
    reverts raises ``would revert`` and sends nothing), so a mined revert means the state changed in between.
    """


@dataclass(frozen=True)
class SignedTx:
    """A signed, not necessarily sent, transaction: its identity before the network has seen it."""

    label: str
    tx_hash: str
    nonce: int
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignedTx:
        return cls(str(data["label"]), str(data["tx_hash"]), int(data["nonce"]), str(data["raw"]))


def lock_dir() -> str:
    return os.environ.get(LOCK_DIR_ENV) or os.path.join(tempfile.gettempdir(), "ethernity-wallet-locks")


def _lock_path(chain_id: int, address: str, purpose: str) -> str:
    name = hashlib.sha256(f"{chain_id}:{address.lower()}:{purpose}".encode()).hexdigest()[:24]
    return os.path.join(lock_dir(), f"{name}.lock")


@contextlib.contextmanager
def wallet_lock(chain_id: int, address: str, purpose: str) -> Iterator[Any]:
    """An exclusive lock of one wallet on one chain, across threads and processes of this machine.

    ``flock`` goes with the process, so a killed task never leaves it held. Yields the open lock file.
    """
    os.makedirs(lock_dir(), exist_ok=True)
    with open(_lock_path(chain_id, address, purpose), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class WalletNonces:
    """The next nonce and the recent sends of one wallet, kept in its lock file (read and written under it)."""

    def __init__(self, handle: Any) -> None:
        self._fh = handle
        handle.seek(0)
        try:
            data = json.loads(handle.read() or "{}")
        except ValueError:
            data = {}
        self.next: int = int(data.get("next", 0))
        self.sent: dict[int, str] = {int(k): v for k, v in dict(data.get("sent", {})).items()}

    def record(self, nonce: int, tx_hash: str) -> None:
        self.sent[nonce] = tx_hash
        self.next = max(self.next, nonce + 1)
        for old in sorted(self.sent)[:-RECENT_SENDS]:
            del self.sent[old]
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps({"next": self.next, "sent": self.sent}))
        self._fh.flush()


class TransactionSender:
    """Signs locally and sends, idempotently by hash. One per client; safe across threads and processes."""

    def __init__(
        self,
        w3: Any,
        account: Any,
        chain_id: int,
        fee_fields: Callable[[], dict[str, int]],
        rpc: Callable[[Callable[[], Any]], Any],
        *,
        block_time: float = 1.0,
        confirmations: int = 0,
        logger: Log | None = None,
    ) -> None:
        self.w3 = w3
        self.confirmations = confirmations
        self.account = account
        self.chain_id = int(chain_id)
        self._fee_fields = fee_fields
        self._rpc = rpc
        self.block_time = block_time
        self.log = logger or log

    @property
    def address(self) -> str:
        return str(self.account.address)

    # ------------------------------------------------------------------ look-ups
    def lookup(self, tx_hash: str) -> TxState:
        """Where a transaction is: mined (a receipt), pending (in the pool), or unknown to the node."""
        from web3.exceptions import TransactionNotFound

        try:
            self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
            return TxState.MINED
        except TransactionNotFound:
            pass
        try:
            found = self._rpc(lambda: self.w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return TxState.UNKNOWN
        return TxState.MINED if found.get("blockNumber") is not None else TxState.PENDING

    def mined_nonce(self) -> int:
        """Transactions of the wallet mined so far (the ``latest`` count)."""
        return int(self._rpc(lambda: self.w3.eth.get_transaction_count(self.address, "latest")))

    def _pending_nonce(self) -> int:
        return int(self._rpc(lambda: self.w3.eth.get_transaction_count(self.address, "pending")))

    # ------------------------------------------------------------------ sending
    def _choose_nonce(self, nonces: WalletNonces) -> int:
        """The node's pending count, or our counter if the node lags; a gap left by a dropped send comes first."""
        pending = self._pending_nonce()
        for nonce in range(pending, nonces.next):
            recorded = nonces.sent.get(nonce)
            if recorded is None or self.lookup(recorded) is TxState.UNKNOWN:
                self.log.warning(
                    "nonce %s of %s was dropped from the pool: sending the next transaction with it",
                    nonce,
                    self.address,
                )
                return nonce
        return max(pending, nonces.next)

    def sign(self, call: Any, label: str, nonce: int) -> SignedTx:
        from web3.exceptions import ContractLogicError

        params = {"from": self.address, "nonce": nonce, "chainId": self.chain_id, **self._fee_fields()}
        try:
            tx = self._rpc(lambda: call.build_transaction(params))
        except ContractLogicError as exc:
            raise ChainError(f"{label} would revert: {describe_rpc_error(exc)}") from None
        tx["gas"] = max(int(tx["gas"] * 1.25), GAS_FLOORS.get(label, 0))
        signed = self.account.sign_transaction(tx)
        return SignedTx(label, "0x" + bytes(signed.hash).hex(), nonce, "0x" + bytes(signed.raw_transaction).hex())

    def send(self, call: Any, label: str, record: Callable[[SignedTx], None] | None = None) -> SignedTx:
        """Sign ``call`` with a free nonce, hand it to ``record`` (the write-ahead), then broadcast it.

        ``record`` runs before the broadcast; if it raises, nothing is sent. Any send error is resolved by
        looking the hash up; only a nonce provably taken by another transaction leads to a new signature.
        """
        with wallet_lock(self.chain_id, self.address, "nonce") as handle:
            nonces = WalletNonces(handle)
            nonce = self._choose_nonce(nonces)
            for _attempt in range(MAX_NONCE_ATTEMPTS):
                signed = self.sign(call, label, nonce)
                if record is not None:
                    record(signed)
                nonces.record(nonce, signed.tx_hash)
                try:
                    self.broadcast(signed)
                    return signed
                except NonceTakenError as exc:
                    self.log.debug("%s", exc)
                    nonce = max(nonce + 1, self._pending_nonce())
        raise ChainError(f"{label}: could not find a free nonce after {MAX_NONCE_ATTEMPTS} attempts")

    def broadcast(self, signed: SignedTx) -> None:
        """Send the raw bytes; an error whose transaction the node nevertheless has counts as sent.

        Raises :class:`NonceTakenError` when the nonce went to another transaction (this one can never be
        mined), :class:`TransientError` when the node cannot be reached (the transaction may or may not be
        in the pool: the caller keeps its hash), :class:`ChainError` for a rejection.
        """
        from airflow_provider_ethernity.protocol.retry import is_transient

        pause = 0.5
        for attempt in range(5):
            try:
                self.w3.eth.send_raw_transaction(signed.raw)
                return
            except Exception as exc:
                error = exc
            try:
                state = self.lookup(signed.tx_hash)
            except TransientError:
                state = TxState.UNKNOWN
            if state is not TxState.UNKNOWN:
                self.log.info(
                    "%s %s: the node has it (%s) despite %s",
                    signed.label,
                    signed.tx_hash,
                    state.value,
                    type(error).__name__,
                )
                return
            text = describe_rpc_error(error).lower()
            if any(phrase in text for phrase in NONCE_TAKEN_PHRASES):
                if self.mined_nonce() > signed.nonce or ("already" not in text and "known" not in text):
                    # the nonce is used; by ours only if it is mined now (it may have been mined between the
                    # first look-up and the nonce read, or the node does not serve pooled transactions by hash)
                    if self.lookup(signed.tx_hash) is not TxState.UNKNOWN:
                        return
                    raise NonceTakenError(f"{signed.label}: nonce {signed.nonce} was used by another transaction")
                continue  # "already known" but not found: a lagging replica; look again
            if not is_transient(error):
                raise ChainError(f"{signed.label} rejected by the node: {describe_rpc_error(error)}") from None
            if attempt < 4:
                time.sleep(pause)
                pause *= 2
        raise TransientError(
            f"{signed.label} {signed.tx_hash}: the node could not be reached to send it; the transaction may still "
            "arrive: a retry looks it up by its hash"
        )

    def resume(self, signed: SignedTx) -> bool:
        """Continue a recorded send: True when the transaction is mined or pending (re-broadcast when the node
        does not know it), False when it can never be mined (its nonce went to another transaction)."""
        state = self.lookup(signed.tx_hash)
        if state is not TxState.UNKNOWN:
            return True
        try:
            self.broadcast(signed)
        except NonceTakenError:
            return False
        except ChainError as exc:  # the node refuses these bytes (e.g. a fee cap below today's base fee)
            self.log.warning(
                "The recorded %s %s is refused (%s): it is signed again", signed.label, signed.tx_hash, exc
            )
            return False
        return True

    def _settled(self, receipt: Any) -> bool:
        """Whether a receipt is ``confirmations`` blocks deep: a revert is acted on (a request signed again) only
        then, as a reorg can re-order a block and turn a revert that lost a race into a success."""
        if self.confirmations <= 0:
            return True
        head = int(self._rpc(lambda: self.w3.eth.block_number))
        return head - int(receipt["blockNumber"]) >= self.confirmations

    def wait_receipt(self, signed: SignedTx | str, label: str, timeout: float = 300.0) -> Any:
        """The receipt of a mined, successful transaction. A pool that forgot it gets the raw bytes again; a
        transaction still pending at ``timeout`` raises :class:`PendingTransactionError` (nothing is lost)."""
        from web3.exceptions import TransactionNotFound

        tx_hash = signed.tx_hash if isinstance(signed, SignedTx) else signed
        start = time.monotonic()
        interval = min(1.0, max(0.05, self.block_time / 2))
        unknown_since: float | None = None
        while True:
            try:
                receipt = self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
            except TransactionNotFound:
                receipt = None
            if receipt is not None:
                if receipt["status"] == 1:
                    return receipt
                if self._settled(receipt):  # shallower, a reorg may re-mine it into a success: read it again
                    raise RevertedError(f"{label} transaction {tx_hash} reverted (block {receipt['blockNumber']})")
            now = time.monotonic()
            if isinstance(signed, SignedTx) and self.lookup(tx_hash) is TxState.UNKNOWN:
                unknown_since = unknown_since or now
                if now - unknown_since > 5 * interval:  # dropped from the pool: same bytes again
                    if not self.resume(signed):
                        raise NonceTakenError(f"{label} {tx_hash}: nonce {signed.nonce} went to another transaction")
                    unknown_since = None
            else:
                unknown_since = None
            if now - start >= timeout:
                nonce = signed.nonce if isinstance(signed, SignedTx) else -1
                raise PendingTransactionError(label, tx_hash, nonce, now - start)
            time.sleep(interval)


def describe_rpc_error(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message)
