"""Faults during a task's life, against the devnet: the task survives or fails clearly, and nothing is lost
or paid twice (one DO request per task, its price spent once, no unverified value delivered).

The suite runs on every devnet profile (``default``, ``bloxberg``, ``polygon``): on the profiles the tasks read
the chain through the chain front (replica lag, hidden closes), upload through the intake and read results
gateway-first (bloxberg) or use the public IPFS API (polygon), and results are pinned late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator

import pytest

from airflow_provider_ethernity.devnet.network import Devnet
from airflow_provider_ethernity.devnet.node_agent import TAMPER_KINDS
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import (
    CompletionTimeoutError,
    OperatorFaultError,
    ResultReplayError,
    StorageError,
)
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY
from airflow_provider_ethernity.triggers.ethernity import EthernityTaskTrigger
from tests.airflow_context import FileStateStore, make_context
from tests.integration.conftest import set_conn
from tests.integration.deferral import Ledger, expect_deferral, fire, ledger_hook, resume, run_deferrable
from tests.profile_devnets import EVERY_PROFILE, REAL_APPROVAL_WINDOW, started_devnet
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
HELLO_VALUE = "Hello, Python World!"


@pytest.fixture(scope="module", params=EVERY_PROFILE)
def devnet(request: pytest.FixtureRequest, default_devnet, tmp_path_factory) -> Iterator[Devnet]:
    """The suite runs on each profile's devnet in turn."""
    yield from started_devnet(request.param, default_devnet, tmp_path_factory, REAL_APPROVAL_WINDOW)


def test_rpc_down_during_a_deferred_wait_the_trigger_keeps_waiting(agent, devnet, devnet_conn, monkeypatch, caplog):
    """The RPC endpoint goes away while the triggerer waits; the order closes meanwhile; the wait completes."""
    from airflow_provider_ethernity.protocol.events import OrderStatus

    block_time = devnet.state.block_time or 0
    agent.set_agent(delay_seconds=3 + 3 * block_time)  # the task runs long enough to cut the RPC after the approval
    ledger = Ledger()
    with TcpProxy(devnet.state.rpc_url) as proxy:
        set_conn(monkeypatch, "flaky_rpc", devnet_conn, rpc_url=proxy.url)
        operator = EthernityRunTaskOperator(
            task_id="rpc_outage",
            code=HELLO,
            resources={"taskPrice": 3},
            ethernity_conn_id="flaky_rpc",
            deferrable=True,
            poll_interval=0.2,
        )
        context = make_context()
        deferred = expect_deferral(lambda: operator.execute(context))
        assert isinstance(deferred.trigger, EthernityTaskTrigger)
        do_request_id, from_block = deferred.trigger.do_request_id, deferred.trigger.from_block
        direct = ledger_hook().client  # anvil itself, not through the proxy (nor a profile's lagging front)

        async def wait_through_an_outage() -> dict:
            waiting = asyncio.create_task(fire(deferred.trigger))
            order_id = await asyncio.to_thread(
                direct.wait_for_order_id, do_request_id, from_block, None, timeout=60, poll_interval=0.1
            )
            approving = time.monotonic() + 120
            # sync web3 calls stay off the event loop's thread: web3 guards its sync and async HTTP sessions
            # with one class-wide lock, which a suspended async call of the trigger can hold
            while await asyncio.to_thread(direct.get_order_status, order_id) == OrderStatus.OPEN:
                assert not waiting.done(), f"the trigger ended before approving: {waiting.result()}"
                assert time.monotonic() < approving, "the trigger did not approve the order within 120 s"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5 + 2 * block_time)  # the trigger sees its approval's receipt, starts waiting
            proxy.down()
            closed = await asyncio.to_thread(direct.wait_closed, order_id, from_block, 60, 0.2)
            assert closed, "the node did not close the order"
            await asyncio.sleep(2)  # several more polls against the dead endpoint
            assert not waiting.done(), "the trigger gave up (or fired) while the RPC was down"
            proxy.up()
            return await asyncio.wait_for(waiting, 60)

        with caplog.at_level(logging.WARNING):
            event = asyncio.run(wait_through_an_outage())
        outage = ("Transient fault (ClientConnectorError", "Cannot connect to host")
        assert any(o in r.getMessage() for r in caplog.records for o in outage), "no outage was seen"
        assert event["status"] == "completed"
        assert resume(operator, context, deferred, event) == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=3)


def test_ipfs_down_at_result_fetch_fails_clearly_and_the_retry_fetches_without_paying_again(
    agent, devnet, devnet_conn, monkeypatch, tmp_path, caplog
):
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")

    def operator() -> EthernityRunTaskOperator:
        return EthernityRunTaskOperator(task_id="ipfs_outage", code=HELLO, resources={"taskPrice": 4},
                                        ethernity_conn_id="flaky_ipfs", deferrable=True, poll_interval=0.2)  # fmt: skip

    gateway = devnet.state.ipfs_gateway_url  # a profile's public gateway: results are read there first
    with TcpProxy(devnet.state.ipfs_api_url) as proxy, contextlib.ExitStack() as stack:
        both = [proxy]
        extra = {"ipfs_api_url": proxy.url}
        if gateway:
            gateway_proxy = stack.enter_context(TcpProxy(gateway))
            both.append(gateway_proxy)
            extra["ipfs_gateway_url"] = gateway_proxy.url
        set_conn(monkeypatch, "flaky_ipfs", devnet_conn, **extra)
        first, context = operator(), make_context(store=store)
        completing = expect_deferral(lambda: first.execute(context))
        event = asyncio.run(asyncio.wait_for(fire(completing.trigger), 60))
        for down in both:
            down.down()
        with (
            caplog.at_level(logging.WARNING, logger="airflow_provider_ethernity.protocol.retry"),
            pytest.raises(StorageError) as failure,
        ):
            resume(first, context, completing, event)
        order_id = event["order_id"]
        assert re.search(rf"order {order_id}: the result baf\w+ could not be read from IPFS", str(failure.value))
        retries = [r for r in caplog.records if r.name == "airflow_provider_ethernity.protocol.retry"]
        assert len(retries) == DEFAULT_RETRY.attempts - 1, "the fetch was not retried a bounded number of times"
        assert "result_cid" not in context["ti"].xcoms, "an undelivered result was announced"

        for up in both:  # the Airflow retry of the task: a new operator and TI, the same task_state_store
            up.up()
        retry_context = make_context(store=store)
        assert operator().execute(retry_context) == HELLO_VALUE
        assert retry_context["ti"].xcoms["order_id"] == order_id
    ledger.assert_paid_once(tasks=1, price=4)


REASONS = {
    "checksum": r"the result checksum \w+ does not match the signed checksum",
    "signer": r"the result is signed by 0x\w+, not by the enclave wallet",
    "order": r"the result transaction is for order \d+",
    "contract": r"the result transaction is addressed to 0x\w+, not the protocol contract",
    "chain": r"the result transaction is signed for chain {forged}, not {chain}",
}


def reason(kind: str, devnet: Devnet) -> str:
    """The refusal expected for a result forged the ``kind`` way (the agent signs for chain id + 1)."""
    chain = devnet.state.chain_id
    return REASONS[kind].format(forged=chain + 1, chain=chain) if kind == "chain" else REASONS[kind]


@pytest.mark.parametrize("kind", TAMPER_KINDS)
def test_a_tampered_result_fails_the_task_with_the_reason(kind, agent, devnet_conn):
    ledger = Ledger()
    agent.set_agent(tamper=[kind])
    context = make_context()
    operator = EthernityRunTaskOperator(task_id="tampered", code=HELLO, max_resubmits=0,
                                        poll_interval=0.2, completion_timeout=60)  # fmt: skip
    with pytest.raises(OperatorFaultError, match=reason(kind, agent)):
        operator.execute(context)
    xcoms = context["ti"].xcoms
    assert "result_cid" not in xcoms and "return_value" not in xcoms, "an unverified result reached XCom"
    ledger.assert_paid_once(tasks=1, price=10)  # the node closed the order: its escrow is paid, once


def test_a_tampered_result_is_resubmitted_to_get_a_verified_one(agent, devnet_conn):
    ledger = Ledger()
    agent.set_agent(tamper=["signer"])
    operator = EthernityRunTaskOperator(task_id="tampered_once", code=HELLO, max_resubmits=1,
                                        poll_interval=0.2, completion_timeout=60)  # fmt: skip
    assert operator.execute(make_context()) == HELLO_VALUE
    assert ledger.requests_placed() == 2  # the forged result's request, then one resubmission
    assert ledger.tokens_spent() == 2 * 10
    assert ledger.unsettled() == []


@pytest.mark.parametrize("kind", ["order", "contract", "chain"])
def test_a_replayed_result_is_refused_without_paying_again(kind, agent, devnet_conn):
    """A result bound to another order, contract or chain is a replay: refused, never resubmitted."""
    ledger = Ledger()
    agent.set_agent(tamper=[kind])
    operator = EthernityRunTaskOperator(task_id="replayed", code=HELLO, max_resubmits=2,
                                        poll_interval=0.2, completion_timeout=60)  # fmt: skip
    with pytest.raises(ResultReplayError, match=reason(kind, agent)):
        operator.execute(make_context())
    ledger.assert_paid_once(tasks=1, price=10)


def test_a_slow_node_times_out_with_the_order_state_and_the_retry_reattaches(agent, devnet_conn, tmp_path):
    ledger = Ledger()
    agent.set_agent(delay_seconds=6)
    store = FileStateStore(tmp_path / "state.json")
    slow = EthernityRunTaskOperator(task_id="slow", code=HELLO, resources={"taskPrice": 5}, deferrable=True,
                                    completion_timeout=1, poll_interval=0.2)  # fmt: skip
    with pytest.raises(CompletionTimeoutError) as timeout:
        run_deferrable(slow, make_context(store=store))
    assert re.search(
        r"order \d+ \(DO request \d+\) was not completed within completion_timeout=1 s: "
        r"order status PROCESSING, request status BOOKED; .* a retry of this task re-attaches",
        str(timeout.value),
    ), str(timeout.value)

    retry = EthernityRunTaskOperator(task_id="slow", code=HELLO, resources={"taskPrice": 5}, deferrable=True,
                                     completion_timeout=120, poll_interval=0.2)  # fmt: skip
    value, _ = run_deferrable(retry, make_context(store=store))
    assert value == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=5)
