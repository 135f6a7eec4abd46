"""TransactionSender against a fake node (``w3.eth``) that loses answers, drops transactions and reports nonce
conflicts: spends are identified by hash, recorded before broadcast, and re-signed only on a provably taken nonce."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from types import SimpleNamespace

import pytest
from web3.exceptions import ContractLogicError, TransactionNotFound

from airflow_provider_ethernity.protocol import transactions
from airflow_provider_ethernity.protocol.errors import ChainError, TransientError
from airflow_provider_ethernity.protocol.retry import is_transient
from airflow_provider_ethernity.protocol.transactions import (
    GAS_FLOORS,
    MAX_NONCE_ATTEMPTS,
    RECENT_SENDS,
    NonceTakenError,
    PendingTransactionError,
    RevertedError,
    SignedTx,
    TransactionSender,
    TxState,
    WalletNonces,
    describe_rpc_error,
    lock_dir,
    wallet_lock,
)
from tests.unit.fakes import WALLET, FakeAccount, FakeEth

CHAIN = 1337


class FakeClock:
    """Stands in for the module's ``time``: sleeping advances the clock and may run what the test scheduled."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


class Call:
    """A contract call: ``build_transaction`` as web3 answers it (or a revert)."""

    def __init__(self, name: str = "call", revert: str | None = None) -> None:
        self.name, self.revert, self.built = name, revert, []

    def build_transaction(self, params: dict) -> dict:
        if self.revert:
            raise ContractLogicError(f"execution reverted: {self.revert}")
        self.built.append(params)
        return {**params, "to": "0xprotocol", "data": self.name, "gas": 50_000}


class RpcError(ValueError):
    """A JSON-RPC error answer, with web3's ``message`` attribute."""

    def __init__(self, message: str) -> None:
        super().__init__({"code": -32000, "message": message})
        self.message = message


def rpc(fn):
    """The client's RPC wrapper in short: a network fault becomes TransientError."""
    try:
        return fn()
    except Exception as exc:
        if is_transient(exc) and not isinstance(exc, TransientError):
            raise TransientError(f"RPC unreachable: {type(exc).__name__}") from None
        raise


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(transactions, "time", fake)
    return fake


@pytest.fixture
def lock_env(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ETHERNITY_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"


@pytest.fixture
def eth() -> FakeEth:
    return FakeEth()


@pytest.fixture
def sender(eth: FakeEth, clock: FakeClock, lock_env) -> TransactionSender:
    return TransactionSender(SimpleNamespace(eth=eth), FakeAccount(), CHAIN, lambda: {"gasPrice": 7}, rpc)


# ------------------------------------------------------------------ send: write-ahead, signing
def test_send_records_the_signed_tx_before_broadcasting_it(sender: TransactionSender, eth: FakeEth, lock_env) -> None:
    recorded: list[SignedTx] = []

    def record(signed: SignedTx) -> None:
        assert eth.sent_raw == []  # nothing reached the node yet
        recorded.append(signed)

    signed = sender.send(Call("_addDORequest"), "_addDORequest", record=record)
    assert recorded == [signed]
    assert eth.sent_raw == [signed.raw] and signed.tx_hash in eth.pool
    assert signed.nonce == 0 and sender.address == WALLET
    assert sender.lookup(signed.tx_hash) is TxState.PENDING
    tx = sender.account.signed[0]
    assert tx["gas"] == GAS_FLOORS["_addDORequest"] and tx["gasPrice"] == 7 and tx["chainId"] == CHAIN
    assert tx["from"] == WALLET and tx["nonce"] == 0
    (lock_file,) = [p for p in lock_env.iterdir() if json.loads(p.read_text() or "{}").get("sent")]
    assert json.loads(lock_file.read_text()) == {"next": 1, "sent": {"0": signed.tx_hash}}


def test_gas_is_the_estimate_plus_a_quarter_above_the_floor(sender: TransactionSender) -> None:
    sender.send(Call(), "other")
    assert sender.account.signed[0]["gas"] == 62_500


def test_a_record_that_fails_means_nothing_is_broadcast(sender: TransactionSender, eth: FakeEth) -> None:
    def record(signed: SignedTx) -> None:
        raise RuntimeError("fenced")

    with pytest.raises(RuntimeError, match="fenced"):
        sender.send(Call(), "approve", record=record)
    assert eth.sent_raw == [] and eth.pool == {}


def test_a_call_that_would_revert_is_never_signed(sender: TransactionSender, eth: FakeEth) -> None:
    with pytest.raises(ChainError, match="_approveOrder would revert: execution reverted: not open"):
        sender.send(Call(revert="not open"), "_approveOrder", record=lambda s: pytest.fail("recorded"))
    assert sender.account.signed == [] and eth.sent_raw == []


def test_nonces_follow_the_wallet_file_across_sends(sender: TransactionSender, eth: FakeEth) -> None:
    first = sender.send(Call(), "a")
    second = sender.send(Call(), "b")
    assert (first.nonce, second.nonce) == (0, 1)


# ------------------------------------------------------------------ broadcast: errors resolved by hash
def test_a_lost_answer_for_a_pooled_tx_counts_as_sent(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = [("pooled", ConnectionError("connection reset by peer"))]
    signed = sender.send(Call(), "approve")
    assert eth.sent_raw == [signed.raw] and signed.tx_hash in eth.pool


def test_already_known_for_a_tx_the_node_has_counts_as_sent(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = [("pooled", RpcError("already known"))]
    signed = sender.send(Call(), "approve")
    assert len(eth.sent_raw) == 1 and signed.nonce == 0


def test_already_known_on_a_lagging_replica_sends_the_same_bytes_again(sender, eth: FakeEth, clock) -> None:
    eth.send_script = [RpcError("already known"), "ok"]
    signed = sender.send(Call(), "approve")
    assert eth.sent_raw == [signed.raw, signed.raw] and signed.nonce == 0 and signed.tx_hash in eth.pool
    assert clock.sleeps == []


def test_nonce_too_low_with_the_nonce_mined_by_another_tx_signs_at_the_next_nonce(sender, eth: FakeEth) -> None:
    eth.latest_count = 1  # another machine's transaction took nonce 0 ...
    eth.pending_answers = [0, 1]  # ... which the replica we asked first had not seen
    recorded: list[SignedTx] = []
    eth.send_script = [RpcError("nonce too low: next nonce 1, tx nonce 0")]
    signed = sender.send(Call(), "_addDORequest", record=recorded.append)
    assert [s.nonce for s in recorded] == [0, 1] and signed is recorded[-1]
    assert recorded[0].tx_hash != recorded[1].tx_hash and list(eth.pool) == [signed.tx_hash]


def test_nonce_too_low_with_the_nonce_not_mined_yet_is_still_taken(sender: TransactionSender, eth: FakeEth) -> None:
    signed = SignedTx("approve", "0xnotknown", 3, "0x" + json.dumps({"nonce": 3}).encode().hex())
    eth.send_script = [RpcError("replacement transaction underpriced")]
    with pytest.raises(NonceTakenError, match="approve: nonce 3 was used by another transaction"):
        sender.broadcast(signed)


def test_a_rejection_is_a_chain_error_without_a_retry(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = [RpcError("insufficient funds for gas * price + value")]
    with pytest.raises(ChainError, match="approve rejected by the node: insufficient funds"):
        sender.send(Call(), "approve")
    assert len(eth.sent_raw) == 1


def test_transient_errors_retry_the_same_bytes(sender: TransactionSender, eth: FakeEth, clock: FakeClock) -> None:
    eth.send_script = [ConnectionError("refused"), TimeoutError("timed out"), "ok"]
    signed = sender.send(Call(), "approve")
    assert eth.sent_raw == [signed.raw] * 3 and clock.sleeps == [0.5, 1.0]


def test_an_unreachable_node_keeps_the_hash_and_raises_transient(sender, eth: FakeEth, clock: FakeClock) -> None:
    eth.send_script = [ConnectionError("refused")] * 5
    eth.receipt_lookups_fail = [ConnectionError("refused")] * 5  # the look-ups fail too
    with pytest.raises(TransientError, match=r"could not be reached to send it.*looks it up by its hash"):
        sender.send(Call(), "approve")
    assert len(set(eth.sent_raw)) == 1 and len(eth.sent_raw) == 5 and clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_no_free_nonce_after_the_attempts(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = [RpcError("replacement transaction underpriced")] * MAX_NONCE_ATTEMPTS
    with pytest.raises(ChainError, match=f"could not find a free nonce after {MAX_NONCE_ATTEMPTS} attempts"):
        sender.send(Call(), "approve")
    assert len(sender.account.signed) == MAX_NONCE_ATTEMPTS


def test_describe_rpc_error_prefers_the_message() -> None:
    assert describe_rpc_error(RpcError("nonce too low")) == "nonce too low"
    assert describe_rpc_error(ValueError("plain")) == "plain"


# ------------------------------------------------------------------ look-ups and resume
def test_lookup_states(sender: TransactionSender, eth: FakeEth) -> None:
    signed = sender.send(Call(), "approve")
    assert sender.lookup(signed.tx_hash) is TxState.PENDING
    eth.mine()
    assert sender.lookup(signed.tx_hash) is TxState.MINED
    eth.receipt_lookups_fail = [TransactionNotFound("receipt index lags")]  # the tx itself shows its block
    assert sender.lookup(signed.tx_hash) is TxState.MINED
    assert sender.lookup("0xunknown") is TxState.UNKNOWN
    assert sender.mined_nonce() == 1


def test_resume_of_a_known_tx_sends_nothing(sender: TransactionSender, eth: FakeEth) -> None:
    signed = sender.send(Call(), "approve")
    assert sender.resume(signed) is True and len(eth.sent_raw) == 1


def test_resume_of_a_dropped_tx_broadcasts_the_same_bytes(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = ["drop"]
    signed = sender.send(Call(), "approve")
    assert eth.pool == {}
    assert sender.resume(signed) is True
    assert eth.sent_raw == [signed.raw, signed.raw] and signed.tx_hash in eth.pool


def test_resume_of_a_tx_whose_nonce_went_elsewhere_is_false(sender: TransactionSender, eth: FakeEth) -> None:
    eth.send_script = ["drop", RpcError("nonce too low")]
    signed = sender.send(Call(), "approve")
    eth.latest_count = 1
    assert sender.resume(signed) is False


# ------------------------------------------------------------------ wait_receipt
def test_wait_receipt_of_a_mined_tx(sender: TransactionSender, eth: FakeEth) -> None:
    signed = sender.send(Call(), "approve")
    eth.mine()
    assert sender.wait_receipt(signed, "approve")["status"] == 1


def test_wait_receipt_polls_until_mined(sender: TransactionSender, eth: FakeEth, clock: FakeClock) -> None:
    signed = sender.send(Call(), "approve")
    clock.on_sleep = [lambda: None, eth.mine]
    assert sender.wait_receipt(signed.tx_hash, "approve")["transactionHash"] == signed.tx_hash
    assert clock.sleeps == [0.5, 0.5]


def test_a_reverted_tx_is_a_reverted_error(sender: TransactionSender, eth: FakeEth) -> None:
    signed = sender.send(Call(), "_cancelDORequest")
    eth.mine()
    eth.reverted.add(signed.tx_hash)
    with pytest.raises(RevertedError, match=f"_cancelDORequest transaction {signed.tx_hash} reverted \\(block 7\\)"):
        sender.wait_receipt(signed, "_cancelDORequest")


def deep_sender(eth: FakeEth, confirmations: int) -> TransactionSender:
    return TransactionSender(SimpleNamespace(eth=eth), FakeAccount(), CHAIN, lambda: {"gasPrice": 7}, rpc,
                             confirmations=confirmations)  # fmt: skip


def test_a_revert_is_raised_only_once_it_is_confirmations_deep(eth: FakeEth, clock: FakeClock, lock_env) -> None:
    """A request that lost an allowance race is signed again only after its revert cannot be reorged away."""
    sender = deep_sender(eth, confirmations=2)
    signed = sender.send(Call(), "_addDORequest")
    eth.mine()
    eth.reverted.add(signed.tx_hash)
    eth.block_number = 7  # the revert's own block: 0 deep
    clock.on_sleep = [lambda: setattr(eth, "block_number", 8), lambda: setattr(eth, "block_number", 9)]
    with pytest.raises(RevertedError, match="reverted"):
        sender.wait_receipt(signed, "_addDORequest")
    assert len(clock.sleeps) == 2  # read again at 1 and 2 blocks deep


def test_a_shallow_revert_that_a_reorg_turns_into_a_success_is_that_success(eth, clock: FakeClock, lock_env) -> None:
    sender = deep_sender(eth, confirmations=5)
    signed = sender.send(Call(), "_addDORequest")
    eth.mine()
    eth.reverted.add(signed.tx_hash)
    eth.block_number = 8
    clock.on_sleep = [lambda: eth.reverted.discard(signed.tx_hash)]  # re-mined after the other machine's request
    assert sender.wait_receipt(signed, "_addDORequest")["status"] == 1


def test_a_tx_the_pool_forgot_is_broadcast_again_then_mined(sender, eth: FakeEth, clock: FakeClock) -> None:
    eth.send_script = ["drop"]
    signed = sender.send(Call(), "approve")

    def mine_if_pooled() -> None:
        if eth.pool:
            eth.mine()

    clock.on_sleep = [mine_if_pooled] * 20
    receipt = sender.wait_receipt(signed, "approve")
    assert receipt["transactionHash"] == signed.tx_hash
    assert eth.sent_raw == [signed.raw, signed.raw]  # the same bytes, after it was unknown for a while


def test_a_forgotten_tx_whose_nonce_went_elsewhere_raises_nonce_taken(sender, eth: FakeEth, clock) -> None:
    eth.send_script = ["drop", RpcError("nonce too low")]
    signed = sender.send(Call(), "approve")
    eth.latest_count = 1
    with pytest.raises(NonceTakenError, match=f"approve {signed.tx_hash}: nonce 0 went to another transaction"):
        sender.wait_receipt(signed, "approve")


def test_a_tx_still_pending_at_the_timeout_raises_pending(sender, eth: FakeEth, clock: FakeClock) -> None:
    signed = sender.send(Call(), "_approveOrder")
    with pytest.raises(PendingTransactionError, match="still pending after 3 s") as raised:
        sender.wait_receipt(signed, "_approveOrder", timeout=3)
    assert (raised.value.label, raised.value.tx_hash, raised.value.nonce) == ("_approveOrder", signed.tx_hash, 0)
    assert isinstance(raised.value, TransientError)
    with pytest.raises(PendingTransactionError) as by_hash:
        sender.wait_receipt(signed.tx_hash, "_approveOrder", timeout=1)
    assert by_hash.value.nonce == -1


# ------------------------------------------------------------------ nonces and locks
def test_gap_repair_fills_a_dropped_nonce_first(sender: TransactionSender, eth: FakeEth, lock_env) -> None:
    sent = [sender.send(Call(), "a") for _ in range(3)]
    eth.mine()
    del eth.chain[sent[1].tx_hash]  # nonce 1 mined nowhere: dropped at a fee spike
    eth.latest_count = 1
    eth.pending_answers = [1]
    refill = sender.send(Call(), "again")
    assert refill.nonce == 1


def test_gap_repair_uses_a_nonce_with_no_record(sender: TransactionSender, eth: FakeEth, lock_env) -> None:
    with wallet_lock(CHAIN, WALLET, "nonce") as fh:
        fh.write(json.dumps({"next": 2, "sent": {}}))
        fh.flush()
    assert sender.send(Call(), "a").nonce == 0


def test_a_lagging_node_count_defers_to_the_wallet_file(sender: TransactionSender, eth: FakeEth) -> None:
    first = sender.send(Call(), "a")
    eth.pending_answers = [0]  # the replica does not see our pooled tx
    second = sender.send(Call(), "b")
    assert (first.nonce, second.nonce) == (0, 1)


def test_wallet_nonces_survive_a_corrupt_file_and_keep_recent_sends() -> None:
    with tempfile.TemporaryFile("w+") as fh:
        fh.write("{not json")
        nonces = WalletNonces(fh)
        assert (nonces.next, nonces.sent) == (0, {})
        for n in range(RECENT_SENDS + 5):
            nonces.record(n, f"0x{n}")
        fh.seek(0)
        data = json.loads(fh.read())
        assert data["next"] == RECENT_SENDS + 5 and len(data["sent"]) == RECENT_SENDS and "0" not in data["sent"]
        assert WalletNonces(fh).sent == nonces.sent


def test_wallet_lock_is_exclusive_and_lives_in_the_lock_dir(lock_env) -> None:
    with wallet_lock(CHAIN, WALLET, "submit") as held:
        assert os.path.dirname(held.name) == str(lock_env) == lock_dir()
        with open(held.name) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with wallet_lock(CHAIN, WALLET, "nonce") as nonce_lock:  # another purpose: another lock
            assert nonce_lock.name != held.name
    with open(held.name) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def test_lock_dir_defaults_to_the_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETHERNITY_LOCK_DIR", raising=False)
    assert lock_dir() == os.path.join(tempfile.gettempdir(), "ethernity-wallet-locks")


def test_signed_tx_round_trips() -> None:
    signed = SignedTx("approve", "0xab", 4, "0xf8")
    assert SignedTx.from_dict(json.loads(json.dumps(signed.to_dict()))) == signed


class MinedRightAfterTheLookup(FakeEth):
    """A node that does not serve pooled transactions by hash (many providers don't), and whose block lands
    between the sender's look-up and its nonce check: the deterministic form of that race."""

    def get_transaction(self, tx_hash: str) -> dict:
        if tx_hash in self.pool:
            self.mine()  # the block with our transaction is sealed just after this answer
            raise TransactionNotFound(f"Transaction with hash: {tx_hash!r} not found.")
        return super().get_transaction(tx_hash)


def test_our_own_tx_mined_during_the_check_is_not_taken_for_another(clock, lock_env) -> None:
    eth = MinedRightAfterTheLookup()
    sender = TransactionSender(SimpleNamespace(eth=eth), FakeAccount(), CHAIN, lambda: {"gasPrice": 7}, rpc)
    eth.send_script = [("pooled", RpcError("already known"))]  # the node had our bytes already
    signed = sender.send(Call("_addDORequest"), "_addDORequest")
    assert [tx["nonce"] for tx in sender.account.signed] == [0], "the same call was signed again at nonce 1"
    assert signed.nonce == 0 and signed.tx_hash in eth.chain
