"""Exactly once, never stale: payments and results under Airflow's races, superseded tries, kills and clears.

Each case of "Exactly once, never stale" as a test against the devnet, each ending with the money invariant
on chain (one DO request per task instance, the balance down by exactly the prices, nothing left OPEN or
BOOKED without a closed order).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import STATE_KEY, EthernityRunTaskOperator, EthernityTaskFailed
from airflow_provider_ethernity.protocol.errors import OrderTimeoutError
from airflow_provider_ethernity.protocol.events import RequestStatus
from airflow_provider_ethernity.protocol.submission import FencedError, MemorySubmissionStore, Phase
from airflow_provider_ethernity.triggers.ethernity import EthernityTaskTrigger
from tests.airflow_context import FileStateStore, RecordingTI, SupersededStore, make_context
from tests.integration.deferral import Ledger, expect_deferral, fire, wallet_nonce

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
HELLO_VALUE = "Hello, Python World!"
ROOT = Path(__file__).parents[2]


def _operator(**kwargs) -> EthernityRunTaskOperator:
    kwargs.setdefault("task_id", "t")
    kwargs.setdefault("code", HELLO)
    kwargs.setdefault("resources", {"taskPrice": 3})
    kwargs.setdefault("poll_interval", 0.2)
    return EthernityRunTaskOperator(**kwargs)


# ---------------------------------------------------------------------- 1. superseded tries
@pytest.mark.parametrize("deferrable", [False, True])
def test_a_superseded_try_stops_before_spending(deferrable, agent, devnet_conn) -> None:
    """Airflow moved the task instance on: its state answers "not found" and refuses writes. The stale try
    must not approve an allowance or send a DO request (seen: DO request 62 after the terminate message)."""
    ledger, nonce = Ledger(), wallet_nonce()
    store = SupersededStore()
    with pytest.raises(FencedError, match="superseded"):
        _operator(deferrable=deferrable).execute(make_context(store=store))
    assert store.writes >= 1, "the try never tried to record its intent"
    assert wallet_nonce() == nonce, "the superseded try sent a transaction"
    assert ledger.requests_placed() == 0


def test_a_superseded_resumed_try_sends_nothing_and_the_current_try_finishes(agent, devnet_conn, tmp_path) -> None:
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    first = _operator(deferrable=True)
    deferred = expect_deferral(lambda: first.execute(make_context(store=store)))
    event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 60))
    nonce = wallet_nonce()
    with pytest.raises(FencedError):  # resumed after the server moved the task instance on
        _operator(deferrable=True).execute_complete(make_context(store=SupersededStore()), event=event)
    assert wallet_nonce() == nonce
    current = _operator(deferrable=True)  # the current try resumes from the same state
    assert current.execute_complete(make_context(store=store), event=event) == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=3)


# ---------------------------------------------------------------------- 2. resume without kwargs
def test_resume_without_kwargs_reads_the_task_state(agent, devnet_conn, tmp_path) -> None:
    """Airflow 3.3.2's ``dags test`` resumes with ``{"event": ...}`` only; a new process resumes the task."""
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    deferred = expect_deferral(lambda: _operator(deferrable=True).execute(make_context(store=store)))
    assert deferred.kwargs in (None, {}), "resume kwargs would be lost by Airflow 3.3.2"
    event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 60))
    resumed = _operator(deferrable=True)  # a new worker process: nothing but the state and the event
    assert resumed.execute_complete(make_context(store=store), event=event) == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=3)


def test_a_malformed_event_is_an_error_naming_it(agent, devnet_conn, tmp_path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    deferred = expect_deferral(lambda: _operator(deferrable=True).execute(make_context(store=store)))
    with pytest.raises(ValueError, match="event is missing"):
        _operator(deferrable=True).execute_complete(make_context(store=store), event=None)
    event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 60))
    with pytest.raises(FencedError, match="stale event"):
        _operator(deferrable=True).execute_complete(
            make_context(store=store), event={**event, "do_request_id": event["do_request_id"] + 1000}
        )
    assert _operator(deferrable=True).execute_complete(make_context(store=store), event=event) == HELLO_VALUE


# ---------------------------------------------------------------------- 3. clears
def test_a_task_error_fails_without_retries_and_a_clear_after_the_fix_runs_the_new_code(agent, devnet_conn, tmp_path):
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    broken = _operator(code="raise KeyError('missing column')")
    with pytest.raises(EthernityTaskFailed, match=r"KeyError|missing column") as failure:
        broken.execute(make_context(store=store))
    assert isinstance(failure.value, AirflowFailException), "Airflow would retry (and pay for) the same failure"
    fixed = _operator(code='___etny_result___("fixed")')  # the file was fixed, the task cleared
    assert fixed.execute(make_context(store=store)) == "fixed"
    ledger.assert_paid_once(tasks=2, price=3)


def test_a_cleared_task_with_a_new_input_runs_again_and_an_unchanged_one_reuses_its_result(
    agent, devnet_conn, tmp_path
):
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    code = "import json\n___etny_result___(sum(json.loads(___etny_data_set___)))"
    assert _operator(code=code, input_data=[1, 2]).execute(make_context(store=store)) == 3
    assert _operator(code=code, input_data=[1, 2, 3]).execute(make_context(store=store)) == 6  # new input
    assert ledger.requests_placed() == 2
    again = RecordingTI()
    assert _operator(code=code, input_data=[1, 2, 3]).execute(make_context(store=store, ti=again)) == 6
    assert ledger.requests_placed() == 2, "an unchanged task paid again"
    assert again.xcoms["do_request_id"] == store.get(STATE_KEY)["do_request_id"]
    ledger.assert_paid_once(tasks=2, price=3)


# ---------------------------------------------------------------------- 4. a worker killed around the send
KILLING_WORKER = """
import os, signal, sys
from airflow_provider_ethernity.protocol import transactions
from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from tests.airflow_context import FileStateStore, make_context

state, moment, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "wait"
original = transactions.TransactionSender.broadcast

def broadcast(self, signed):
    if signed.label == "_addDORequest" and moment == "before":
        os.kill(os.getpid(), signal.SIGKILL)  # recorded, not sent
    original(self, signed)
    if signed.label == "_addDORequest" and moment == "after":
        os.kill(os.getpid(), signal.SIGKILL)  # sent, receipt never seen

transactions.TransactionSender.broadcast = broadcast
op = EthernityRunTaskOperator(task_id="t", code=sys.argv[4], resources={"taskPrice": 3}, poll_interval=0.2,
                              wait_for_completion=wait)
op.execute(make_context(store=FileStateStore(state)))
"""


@pytest.mark.parametrize("moment", ["before", "after"])
@pytest.mark.parametrize("wait", ["wait", "nowait"])
def test_a_worker_killed_around_the_request_broadcast_is_continued_not_repaid(moment, wait, agent, devnet_conn,
                                                                               tmp_path) -> None:  # fmt: skip
    """SIGKILL right before or right after ``_addDORequest`` is broadcast (seen: the state was empty, try 2
    paid DO request 95 and 94's order stayed OPEN). The intent is written first; the retry continues it."""
    ledger = Ledger()
    state = tmp_path / "state.json"
    worker = subprocess.run(
        [sys.executable, "-c", KILLING_WORKER, str(state), moment, wait, HELLO],
        env={**os.environ}, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert worker.returncode == -9, worker.stderr[-3000:]
    record = FileStateStore(state).get(STATE_KEY)
    assert record["phase"] == Phase.SUBMITTING.value and record["intent"]["label"] == "_addDORequest"
    retry = _operator(wait_for_completion=wait == "wait")
    value = retry.execute(make_context(store=FileStateStore(state)))
    if wait == "wait":
        assert value == HELLO_VALUE
    else:
        assert value["do_request_id"] == FileStateStore(state).get(STATE_KEY)["do_request_id"]
        assert EthernityHook().client.wait_closed(value["order_id"], 0, 60, 0.2)
    ledger.assert_paid_once(tasks=1, price=3)


# ---------------------------------------------------------------------- 5. an order at the timeout's edge
def test_an_order_placed_at_the_order_timeout_is_carried_on_not_orphaned(agent, devnet_conn) -> None:
    """The order wait ran out, then a node booked the request before the cancel: carry on with that order
    (seen: OrderTimeoutError and 3 tokens escrowed in an OPEN order nobody approved)."""
    ledger = Ledger()
    hook = EthernityHook()
    lifecycle = hook.lifecycle(MemorySubmissionStore(), order_wait_timeout=0.5, poll_interval=0.1)
    agent.set_agent(mode="idle")
    sub = lifecycle.attach_or_submit(hook.task_spec(HELLO, resources={"taskPrice": 3}))
    assert lifecycle.await_order(sub) is None  # the wait ran out
    agent.set_agent()  # a node books it now, before the timeout is handled
    client = hook.client
    while client.get_request_status(sub.do_request_id) != RequestStatus.BOOKED:
        asyncio.run(asyncio.sleep(0.1))
    order_id = lifecycle.settle_order_timeout(sub)
    sub = lifecycle.approve(lifecycle.order_placed(sub, order_id))
    lifecycle.await_completion(sub)
    assert lifecycle.fetch_result(sub).value == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=3)


def test_the_trigger_carries_on_with_an_order_booked_at_its_deadline(agent, devnet_conn, tmp_path) -> None:
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    agent.set_agent(mode="idle")
    operator = _operator(deferrable=True, order_wait_timeout=1)
    deferred = expect_deferral(lambda: operator.execute(make_context(store=store)))
    trigger = deferred.trigger
    assert isinstance(trigger, EthernityTaskTrigger)
    agent.set_agent()
    client = EthernityHook().client
    while client.get_request_status(trigger.do_request_id) != RequestStatus.BOOKED:
        asyncio.run(asyncio.sleep(0.1))
    event = asyncio.run(asyncio.wait_for(fire(trigger), 60))  # its deadline has passed: it settles
    assert event["status"] == "completed"
    assert operator.execute_complete(make_context(store=store), event=event) == HELLO_VALUE
    ledger.assert_paid_once(tasks=1, price=3)


def test_no_node_at_all_cancels_in_the_trigger_and_returns_the_escrow(agent, devnet_conn, tmp_path) -> None:
    ledger = Ledger()
    store = FileStateStore(tmp_path / "state.json")
    agent.set_agent(mode="idle")
    operator = _operator(deferrable=True, order_wait_timeout=1)
    deferred = expect_deferral(lambda: operator.execute(make_context(store=store)))
    event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 60))
    assert event["status"] == "cancelled"
    with pytest.raises(OrderTimeoutError, match="cancelled and its escrow"):
        operator.execute_complete(make_context(store=store), event=event)
    assert ledger.requests_placed() == 1 and ledger.tokens_spent() == 0 and ledger.unsettled() == []
    # the Airflow retry submits anew (the cancelled request is not re-used) and pays once
    agent.set_agent()
    retry = _operator(deferrable=True)
    deferred = expect_deferral(lambda: retry.execute(make_context(store=store)))
    event = asyncio.run(asyncio.wait_for(fire(deferred.trigger), 60))
    assert retry.execute_complete(make_context(store=store), event=event) == HELLO_VALUE
    assert ledger.requests_placed() == 2 and ledger.tokens_spent() == 3 and ledger.unsettled() == []


# ---------------------------------------------------------------------- reclaim
def test_reclaim_cancels_unheld_requests_and_reports_unapproved_orders(agent, devnet_conn) -> None:
    hook = EthernityHook()
    ledger = Ledger()
    agent.set_agent(mode="idle")
    orphan = hook.submit_task(HELLO, resources={"taskPrice": 3})
    held = hook.submit_task(HELLO, resources={"taskPrice": 3})
    dry = hook.reclaim({held.do_request_id}, dry_run=True)
    entries = {e.do_request_id: e for e in dry.entries}
    assert entries[orphan.do_request_id].action.startswith("would cancel")
    assert entries[held.do_request_id].action.startswith("held")
    report = hook.reclaim({held.do_request_id})
    assert report.returned >= 3 and "returned" in report.render()
    assert hook.get_request_status(orphan.do_request_id) == RequestStatus.CANCELED
    assert hook.get_request_status(held.do_request_id) == RequestStatus.AVAILABLE
    # an order placed and never approved: reported with its escrow, never approved behind the user's back
    agent.set_agent()
    order_id = hook.client.wait_for_order(held, timeout=60)
    report = hook.reclaim()
    entry = next(e for e in report.entries if e.do_request_id == held.do_request_id)
    assert entry.order_id == order_id and "never approved" in entry.action and entry.locked
    hook.approve_order(order_id)  # settle it so the devnet ends clean
    assert hook.client.wait_closed(order_id, held.from_block, 60, 0.2)
    assert ledger.unsettled() == [] and ledger.tokens_spent() == 3


def test_ethernity_reclaim_command(agent, devnet_conn, capsys) -> None:
    from airflow_provider_ethernity.cli import main

    hook = EthernityHook()
    agent.set_agent(mode="idle")
    task = hook.submit_task(HELLO, resources={"taskPrice": 3})
    assert main(["reclaim", "--no-airflow", "--dry-run"]) == 0
    assert f"DO request {task.do_request_id}: 3 " in capsys.readouterr().out
    assert hook.get_request_status(task.do_request_id) == RequestStatus.AVAILABLE
    assert main(["reclaim", "--no-airflow", "--keep", str(task.do_request_id)]) == 0
    assert "held by a live task" in capsys.readouterr().out
    assert main(["reclaim", "--no-airflow"]) == 0
    assert "cancelled, escrow returned" in capsys.readouterr().out
    assert hook.get_request_status(task.do_request_id) == RequestStatus.CANCELED
