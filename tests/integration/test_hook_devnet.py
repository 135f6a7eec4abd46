"""EthernityHook against the devnet's real EVM node, real IPFS and node agent."""

from __future__ import annotations

import pytest

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import (
    ConfigurationError,
    InsufficientFundsError,
    OrderTimeoutError,
    StorageError,
    TransientError,
)
from airflow_provider_ethernity.protocol.retry import RetryPolicy
from tests.integration.conftest import set_conn
from tests.integration.deferral import Ledger, do_requests_count

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(attempts=2, initial=0.05, max_wait=0.1, max_delay=2)
HELLO = '___etny_result___("Hello, Python World!")'
APPROVED_TOPIC = "0x9b30afe0f76574363e78b150c33c302dafe8c2a0dbe597cda7938b0ba721a2a5"


def _nonce(hook: EthernityHook) -> int:
    client = hook.client
    return client.w3.eth.get_transaction_count(client.address, "pending")


def test_test_connection_reports_chain_contracts_ipfs_and_wallet(devnet, devnet_conn):
    ok, message = EthernityHook().test_connection()
    assert ok, message
    assert "chain 31337" in message and devnet.state.requester_address in message
    assert devnet_conn["password"] not in message and devnet_conn["password"][2:] not in message


def test_hello_world(devnet, devnet_conn):
    ledger = Ledger()
    result = EthernityHook().run_task(HELLO, order_wait_timeout=60, timeout=120)
    assert result.success
    assert result.value == "Hello, Python World!"
    assert (result.task_code, result.task_code_name) == (0, "SUCCESS")
    assert result.result_cid.startswith("bafk")
    ledger.assert_paid_once(tasks=1, price=10)


def test_input_dataset_reaches_the_code(devnet, devnet_conn):
    ledger = Ledger()
    code = "import json\nrows = json.loads(___etny_data_set___)\n___etny_result___({'sum': sum(rows), 'n': len(rows)})"
    result = EthernityHook().run_task(code, input_data="[1, 2, 3, 4]", order_wait_timeout=60, timeout=120)
    assert result.success and result.result_type == "json"
    assert result.value == {"sum": 10, "n": 4}
    ledger.assert_paid_once(tasks=1, price=10)


def test_code_that_raises_is_a_failure_with_its_error_text(devnet, devnet_conn):
    ledger = Ledger()
    result = EthernityHook().run_task("x = 1 / 0", order_wait_timeout=60, timeout=120)
    assert not result.success
    assert result.task_code_name == "BASE_EXCEPTION"
    assert "ZeroDivisionError" in result.value
    ledger.assert_paid_once(tasks=1, price=10)


def test_operator_fault_is_resubmitted_once_then_succeeds(agent, devnet_conn):
    hook = EthernityHook()
    ledger = Ledger()
    agent.set_agent(fault_codes=[37])
    result = hook.run_task(HELLO, order_wait_timeout=60, timeout=120, max_resubmits=1)
    assert result.success and result.value == "Hello, Python World!"
    ledger.assert_paid(requests=2, tokens=2 * 10)


def test_no_node_cancels_after_the_order_wait_and_returns_the_escrow(agent, devnet_conn):
    hook = EthernityHook()
    agent.set_agent(mode="idle")
    ledger = Ledger()
    with pytest.raises(OrderTimeoutError, match="cancelled"):
        hook.run_task(HELLO, resources={"taskPrice": 7}, order_wait_timeout=3, timeout=60)
    ledger.assert_paid(requests=1, tokens=0)
    last = do_requests_count() - 1
    assert hook.client.get_request_status(last).name == "CANCELED"


def test_pinned_node_skips_approval(devnet, devnet_conn):
    hook = EthernityHook()
    ledger = Ledger()
    start = hook.client.block_number()
    result = hook.run_task(HELLO, node_address=devnet.state.node_address, order_wait_timeout=60, timeout=120)
    assert result.success
    approvals = hook.client.w3.eth.get_logs(
        {"address": devnet.state.protocol_address, "fromBlock": start, "topics": [APPROVED_TOPIC]}
    )
    approved_orders = {int.from_bytes(bytes(e["data"])[32:64], "big") for e in approvals}
    assert result.order_id not in approved_orders
    ledger.assert_paid_once(tasks=1, price=10)


def test_pin_to_an_address_that_is_not_a_node_sends_nothing(devnet, devnet_conn):
    hook = EthernityHook()
    nonce = _nonce(hook)
    with pytest.raises(ConfigurationError, match="is not a registered node"):
        hook.submit_task(HELLO, node_address="0x000000000000000000000000000000000000dEaD")
    assert _nonce(hook) == nonce


def test_unfunded_wallet_is_refused_before_any_transaction(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "poor", devnet_conn, password="0x" + "77" * 32)
    hook = EthernityHook("poor")
    with pytest.raises(InsufficientFundsError, match="taskPrice=10"):
        hook.submit_task(HELLO)
    assert _nonce(hook) == 0


def test_malformed_key_is_refused(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "badkey", devnet_conn, password="0x1234")
    with pytest.raises(ConfigurationError, match="private key"):
        EthernityHook("badkey").submit_task(HELLO)


def test_wrong_contract_address_is_refused(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "wrongaddr", devnet_conn, protocol_address=devnet.state.requester_address)
    hook = EthernityHook("wrongaddr")
    nonce = _nonce(hook)
    with pytest.raises(ConfigurationError, match="holds no contract"):
        hook.submit_task(HELLO)
    assert _nonce(hook) == nonce
    ok, message = hook.test_connection()
    assert not ok and "protocol_address" in message


def test_wrong_chain_id_is_refused(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "wrongchain", devnet_conn, chain_id=8995)
    ledger = Ledger()
    with pytest.raises(ConfigurationError, match="serves chain id 31337"):
        EthernityHook("wrongchain").submit_task(HELLO)
    ledger.assert_paid(requests=0, tokens=0)


def test_unreachable_rpc_is_a_clear_error(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "deadrpc", devnet_conn, rpc_url="http://127.0.0.1:9")
    with pytest.raises(TransientError, match=r"127\.0\.0\.1:9 unreachable"):
        EthernityHook("deadrpc", retry=FAST_RETRY).submit_task(HELLO)


def test_unreachable_ipfs_sends_no_transaction(devnet, devnet_conn, monkeypatch):
    set_conn(monkeypatch, "deadipfs", devnet_conn, ipfs_api_url="http://127.0.0.1:9/api/v0")
    hook = EthernityHook("deadipfs", retry=FAST_RETRY)
    nonce = _nonce(hook)
    with pytest.raises(StorageError, match="no transaction was sent"):
        hook.submit_task(HELLO)
    assert _nonce(hook) == nonce


def test_unknown_trustedzone_is_refused(devnet, devnet_conn):
    hook = EthernityHook()
    nonce = _nonce(hook)
    with pytest.raises(Exception, match="not in the image registry"):
        hook.submit_task(HELLO, trustedzone="etny-does-not-exist")
    assert _nonce(hook) == nonce


def test_step_by_step_api(devnet, devnet_conn):
    """The individual hook methods the operator and sensor build on."""
    hook = EthernityHook()
    ledger = Ledger()
    task = hook.submit_task(HELLO, resources={"taskPrice": 2, "duration": 1})
    assert task.do_request_id >= 0 and task.tx_hash.startswith("0x") and len(task.challenge_salt) == 32
    order_id = hook.client.wait_for_order(task, timeout=60)
    assert order_id is not None and hook.find_order(task.do_request_id, task.from_block) == order_id
    assert hook.get_order_status(order_id).name == "OPEN"
    hook.approve_order(order_id)
    assert hook.client.wait_closed(order_id, task.from_block, timeout=60)
    assert hook.get_order_status(order_id).name == "CLOSED"
    result = hook.get_result(order_id, challenge_salt=task.challenge_salt)
    assert result.value == "Hello, Python World!" and result.order_id == order_id
    assert hook.cancel_task(task.do_request_id) is None  # booked: nothing to cancel
    ledger.assert_paid_once(tasks=1, price=2)


def test_get_ipfs_client_adds_and_reads_through_the_connections_api(devnet, devnet_conn) -> None:
    """DAG authors' own IPFS work: an ipfshttpclient set up from the connection (address, token, timeout)."""
    from airflow_provider_ethernity.protocol.cid import compute_cid

    with EthernityHook().get_ipfs_client() as ipfs:
        cid = ipfs.add_bytes(b"a dataset of my own", opts={"cid-version": 1, "raw-leaves": True})
        assert cid == compute_cid(b"a dataset of my own")
        assert ipfs.cat(cid) == b"a dataset of my own"
        ipfs.pin.add(cid)
