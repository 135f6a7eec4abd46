"""Every spend is idempotent on the chain: lost answers, slow sends, dropped transactions, two machines, reorgs.

Each fault is injected by a JSON-RPC proxy in front of the devnet's anvil (``tests/rpc_faults.py``) or by
anvil itself, and each test ends with the money invariant on chain.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import ResultNotReadyError
from airflow_provider_ethernity.protocol.transactions import TxState
from tests.airflow_context import FileStateStore, make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import Ledger, expect_deferral, fire
from tests.integration.machines import run_on_two_machines
from tests.rpc_faults import RpcFaultProxy

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
HELLO_VALUE = "Hello, Python World!"


@pytest.fixture
def proxy(devnet, devnet_conn, monkeypatch):
    """``faulty``: the devnet connection through a fault-injecting RPC proxy (rpc_timeout 3 s)."""
    with RpcFaultProxy(devnet.state.rpc_url) as faults:
        set_conn(monkeypatch, "faulty", devnet_conn, rpc_url=faults.url, rpc_timeout=3)
        yield faults


def test_lost_answers_to_sends_never_pay_twice(agent, proxy) -> None:
    """The node accepts each transaction, the answer is lost (seen: "transaction already imported" on the
    transport's re-send, ChainError after paying, the order left OPEN)."""
    ledger = Ledger()
    proxy.lose_answers("eth_sendRawTransaction", rate=1.0)  # every first answer of every send
    result = EthernityHook("faulty").run_task(HELLO, resources={"taskPrice": 2}, poll_interval=0.2)
    assert result.value == HELLO_VALUE
    assert proxy.lost >= 2, "no answer was lost (allowance, request, approval)"
    ledger.assert_paid_once(tasks=1, price=2)


def test_deferrable_tasks_under_30_percent_lost_answers(agent, proxy, tmp_path) -> None:
    """Seen: 3 of 4 deferrable tasks failed, 2 of them after paying."""
    ledger = Ledger()
    proxy.lose_answers("eth_sendRawTransaction", rate=0.3, seed=11)
    for index in range(4):
        store = FileStateStore(tmp_path / f"state-{index}.json")
        operator = EthernityRunTaskOperator(task_id=f"t{index}", code=HELLO, resources={"taskPrice": 2},
                                            ethernity_conn_id="faulty", deferrable=True, poll_interval=0.2)  # fmt: skip
        deferred = expect_deferral(lambda op=operator, s=store: op.execute(make_context(store=s)))
        event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 120))
        assert operator.execute_complete(make_context(store=store), event=event) == HELLO_VALUE
    assert proxy.lost >= 1
    ledger.assert_paid_once(tasks=4, price=2)


def test_a_send_answered_after_the_timeout_is_found_by_its_hash(agent, proxy) -> None:
    """rpc_timeout 3 s, answers after 5 s (seen: "nonce too low", then a second _addDORequest: 4 requests for 3
    tasks, and "_approveOrder would revert: order is not open" after its own approval was mined)."""
    ledger = Ledger()
    for _ in range(3):
        proxy.delay_answers("eth_sendRawTransaction", seconds=5, n=2)
        result = EthernityHook("faulty").run_task(HELLO, resources={"taskPrice": 2}, poll_interval=0.2)
        assert result.value == HELLO_VALUE
    assert proxy.delayed >= 6
    ledger.assert_paid_once(tasks=3, price=2)


def test_a_transaction_dropped_from_the_pool_leaves_no_nonce_gap(agent, proxy, devnet_conn) -> None:
    """A fee spike drops a pending transaction; the wallet's next send fills its nonce instead of queueing
    behind the gap (seen: TimeExhausted after 300 s, nothing saved)."""
    ledger = Ledger()
    client = EthernityHook("faulty").client
    proxy.rpc("evm_setAutomine", [False])
    try:
        call = client.token.functions.approve(client.network.protocol_address, 1)
        stranded = client.sender.send(call, "approve")
        assert client.sender.lookup(stranded.tx_hash) is TxState.PENDING
        proxy.rpc("anvil_dropTransaction", [stranded.tx_hash])
        assert client.sender.lookup(stranded.tx_hash) is TxState.UNKNOWN
    finally:
        proxy.rpc("evm_setAutomine", [True])
    result = EthernityHook("faulty").run_task(HELLO, resources={"taskPrice": 2}, poll_interval=0.2)
    assert result.value == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=2)


def test_two_machines_share_one_wallet(agent, devnet_conn, tmp_path) -> None:
    """2 x 5 tasks at once from two machines, one wallet (seen: byte-identical approvals, and an _addDORequest
    reverted on chain for insufficient allowance)."""
    ledger = Ledger()
    values = run_on_two_machines(tmp_path, HELLO, tasks_each=5, conn_id="ethernity_default", price=1)
    assert values == [HELLO_VALUE] * 10, values
    ledger.assert_paid_once(tasks=10, price=1)


def test_a_close_removed_by_a_reorg_is_not_yet_never_a_fault(agent, devnet, devnet_conn) -> None:
    """A reorg removes the order's close after it was seen: the result is "not yet" (seen: treated as an
    operator fault and resubmitted, 10 tokens for price 5); once the close is mined again, it is delivered."""
    ledger = Ledger()
    hook = EthernityHook()
    client = hook.client
    task = hook.submit_task(HELLO, resources={"taskPrice": 5})
    order_id = client.wait_for_order(task, timeout=60, poll_interval=0.2)
    hook.approve_order(order_id)
    assert client.wait_closed(order_id, task.from_block, 60, 0.2)
    close_block = max(
        int(entry["blockNumber"])
        for entry in client.protocol.events._orderClosedEV().get_logs(from_block=task.from_block)
    )
    close_tx = next(
        tx for tx in client.w3.eth.get_block(close_block, full_transactions=True)["transactions"]
        if tx["to"] == client.network.protocol_address
    )  # fmt: skip
    raw = client.w3.eth.get_raw_transaction(close_tx["hash"])
    depth = client.block_number() - close_block + 1
    client.w3.provider.make_request("anvil_reorg", [depth, []])  # the close is gone
    assert hook.get_order_status(order_id).name == "PROCESSING"
    with pytest.raises(ResultNotReadyError):
        hook.get_result(order_id, challenge_salt=task.challenge_salt)
    client.w3.eth.send_raw_transaction(raw)  # the close is mined again
    assert client.wait_closed(order_id, task.from_block, 60, 0.2)
    assert hook.get_result(order_id, challenge_salt=task.challenge_salt).value == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=5)
