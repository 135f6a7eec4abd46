"""EthernityRunTaskOperator, EthernityTaskSensor and the triggers against the devnet (real chain and IPFS)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.operators.ethernity import STATE_KEY, EthernityRunTaskOperator
from airflow_provider_ethernity.protocol.errors import OrderTimeoutError, TaskFailedError
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor
from airflow_provider_ethernity.triggers.ethernity import EthernityOrderPlacedTrigger, EthernityTaskCompletedTrigger
from tests.airflow_context import FileStateStore, RecordingTI, make_context
from tests.integration.deferral import Ledger, expect_deferral, fire, resume, run_deferrable

pytestmark = pytest.mark.integration
HELLO = '___etny_result___("Hello, Python World!")'
SUM = "import json\n___etny_result___(sum(json.loads(___etny_data_set___)))"


def assert_no_secret(devnet_conn: dict, *blobs: Any) -> None:
    key = devnet_conn["password"]
    for blob in blobs:
        text = json.dumps(blob, default=str)
        assert key not in text and key[2:] not in text


def test_operator_runs_a_task_and_pushes_ids_not_secrets(agent, devnet_conn) -> None:
    ledger = Ledger()
    context = make_context(store=FileStateStore(Path(agent.workdir) / "state-sync.json"))
    operator = EthernityRunTaskOperator(task_id="sum", code=SUM, input_data=[1, 2, 3], resources={"taskPrice": 2})
    assert operator.execute(context) == 6
    xcoms = context["ti"].xcoms
    assert {"do_request_id", "order_id", "tx_hash", "challenge_salt", "from_block", "result_cid"} <= set(xcoms)
    assert "challenge" not in xcoms  # the secret challenge is derived from the key, never published
    assert xcoms["task_code_name"] == "SUCCESS" and xcoms["result_cid"].startswith("baf")
    assert_no_secret(devnet_conn, xcoms, context["task_state_store"].get(STATE_KEY))
    ledger.assert_paid_once(tasks=1, price=2)


def test_deferrable_operator_waits_in_triggers(agent, devnet_conn) -> None:
    ledger = Ledger()
    context = make_context()
    operator = EthernityRunTaskOperator(task_id="hello", code=HELLO, resources={"taskPrice": 2}, deferrable=True)
    value, serialized = run_deferrable(operator, context)
    assert value == "Hello, Python World!"
    classpaths = [classpath for classpath, _ in serialized]
    assert classpaths == ["airflow_provider_ethernity.triggers.ethernity.EthernityTaskTrigger"]  # deferred once
    assert_no_secret(devnet_conn, serialized, context["ti"].xcoms)
    ledger.assert_paid_once(tasks=1, price=2)


def test_task_error_fails_with_code_name_and_error_text(agent, devnet_conn) -> None:
    ledger = Ledger()
    operator = EthernityRunTaskOperator(task_id="boom", code="raise ValueError('bad input row 7')")
    with pytest.raises(TaskFailedError, match=r"BASE_EXCEPTION \(4\)") as failure:
        operator.execute(make_context())
    assert "bad input row 7" in str(failure.value)
    ledger.assert_paid_once(tasks=1, price=10)  # the node ran the code: it is paid, and nothing is resubmitted


def test_operator_fault_is_resubmitted(agent, devnet_conn) -> None:
    agent.set_agent(fault_codes=[37])
    ledger = Ledger()
    operator = EthernityRunTaskOperator(task_id="fault", code=HELLO, max_resubmits=1)
    assert operator.execute(make_context()) == "Hello, Python World!"
    ledger.assert_paid(requests=2, tokens=2 * 10)  # the faulted order closed (its node was paid), one resubmission


def test_operator_fault_beyond_the_limit_fails(agent, devnet_conn) -> None:
    agent.set_agent(fault_codes=[39, 40])
    ledger = Ledger()
    operator = EthernityRunTaskOperator(task_id="fault", code=HELLO, max_resubmits=1)
    with pytest.raises(Exception, match="max_resubmits"):
        operator.execute(make_context())
    ledger.assert_paid(requests=2, tokens=2 * 10)


def test_no_node_cancels_and_returns_the_escrow(agent, devnet_conn) -> None:
    agent.set_agent(mode="idle")
    ledger = Ledger()
    operator = EthernityRunTaskOperator(task_id="idle", code=HELLO, order_wait_timeout=3, poll_interval=0.5)
    with pytest.raises(OrderTimeoutError, match="cancelled"):
        operator.execute(make_context())
    ledger.assert_paid(requests=1, tokens=0)  # placed, cancelled: the escrow came back


def test_submit_without_waiting_then_sensor_collects_the_result(agent, devnet_conn) -> None:
    ledger = Ledger()
    submit_ti = RecordingTI()
    operator = EthernityRunTaskOperator(task_id="submit", code=SUM, input_data="[4, 5]", wait_for_completion=False)
    returned = operator.execute(make_context(ti=submit_ti))
    assert returned["order_id"] == submit_ti.xcoms["order_id"]
    upstream = {("submit", key): value for key, value in submit_ti.xcoms.items()}

    poking = EthernityTaskSensor(task_id="collect", submit_task_id="submit", deferrable=False, poke_interval=0.5)
    assert poking.execute(make_context(ti=RecordingTI(upstream))) == 9

    deferring = EthernityTaskSensor(task_id="collect2", submit_task_id="submit", timeout=60)
    context = make_context(ti=RecordingTI(upstream))
    try:  # the order is closed by now: the sensor returns at once, or after one trigger event
        value = deferring.execute(context)
    except TaskDeferred as deferred:
        value = deferring.execute_complete(context, event=asyncio.run(fire(deferred.trigger)))
    assert value == 9
    ledger.assert_paid_once(tasks=1, price=10)  # two sensors read one result: nothing more is paid


def test_retry_after_a_killed_worker_reattaches_without_paying_twice(agent, devnet_conn, tmp_path) -> None:
    agent.set_agent(delay_seconds=3)  # keep the first try busy long enough to be killed
    state = tmp_path / "state.json"
    script = (
        "import sys\n"
        "from tests.airflow_context import FileStateStore, make_context\n"
        "from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator\n"
        "op = EthernityRunTaskOperator(task_id='t', code=sys.argv[2], poll_interval=0.2)\n"
        "op.execute(make_context(store=FileStateStore(sys.argv[1])))\n"
    )
    ledger = Ledger()
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(state), HELLO],
        env={**os.environ, "AIRFLOW_CONN_ETHERNITY_DEFAULT": os.environ["AIRFLOW_CONN_ETHERNITY_DEFAULT"]},
        cwd=Path(__file__).parents[2],
    )
    deadline = time.monotonic() + 60
    while not (state.exists() and FileStateStore(state).get(STATE_KEY)):
        assert worker.poll() is None, "the first try ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)  # the worker dies mid-flight, after paying
    worker.wait()
    agent.set_agent()

    retry = EthernityRunTaskOperator(task_id="t", code=HELLO, poll_interval=0.2)
    retry_ti = RecordingTI()  # a new try starts without XCom: the ids are published again
    assert retry.execute(make_context(store=FileStateStore(state), ti=retry_ti)) == "Hello, Python World!"
    ledger.assert_paid_once(tasks=1, price=10)
    assert retry_ti.xcoms["do_request_id"] == FileStateStore(state).get(STATE_KEY)["do_request_id"]


def test_restarted_trigger_finds_an_order_that_closed_while_it_was_down(agent, devnet_conn) -> None:
    ledger = Ledger()
    hook = EthernityHook()
    task = hook.submit_task(HELLO)
    order_id = hook.client.wait_for_order(task, timeout=30)
    hook.approve_order(order_id)
    assert hook.client.wait_closed(order_id, task.from_block, timeout=30)
    # A trigger rebuilt from serialized kwargs after the fact (a triggerer that was down) still fires.
    original = EthernityTaskCompletedTrigger(ethernity_conn_id="ethernity_default", order_id=order_id,
                                             from_block=task.from_block, poll_interval=0.2)  # fmt: skip
    _classpath, kwargs = original.serialize()
    rebuilt = EthernityTaskCompletedTrigger(**kwargs)
    event = asyncio.run(asyncio.wait_for(fire(rebuilt), 30))
    assert event["status"] == "completed" and event["order_id"] == order_id
    placed = EthernityOrderPlacedTrigger(ethernity_conn_id="ethernity_default", do_request_id=task.do_request_id,
                                         from_block=task.from_block, poll_interval=0.2)  # fmt: skip
    assert asyncio.run(asyncio.wait_for(fire(placed), 30)) == {
        "status": "placed",
        "order_id": order_id,
        "do_request_id": task.do_request_id,
    }
    ledger.assert_paid_once(tasks=1, price=10)


def test_trigger_times_out_at_its_deadline(agent, devnet_conn) -> None:
    trigger = EthernityTaskCompletedTrigger(ethernity_conn_id="ethernity_default", order_id=10**9,
                                            from_block=0, poll_interval=0.2, deadline=time.time() + 1)  # fmt: skip
    assert asyncio.run(asyncio.wait_for(fire(trigger), 20)) == {"status": "timeout", "order_id": 10**9}


def test_many_triggers_share_one_watcher(agent, devnet_conn) -> None:
    """Ten waits on one loop: the shared watcher's RPC requests grow with blocks, not with waiting tasks."""
    from airflow_provider_ethernity.protocol.watcher import get_watcher

    ledger = Ledger()
    hook = EthernityHook()
    tasks = [hook.submit_task(HELLO) for _ in range(10)]
    orders = [hook.client.wait_for_order(t, timeout=60) for t in tasks]
    for order_id in orders:
        hook.approve_order(order_id)
    from_block = min(t.from_block for t in tasks)

    async def wait_all() -> tuple[list[dict], dict[str, int]]:
        triggers = [
            EthernityTaskCompletedTrigger(
                ethernity_conn_id="ethernity_default", order_id=o, from_block=from_block, poll_interval=0.2
            )
            for o in orders
        ]
        events = await asyncio.wait_for(asyncio.gather(*(fire(t) for t in triggers)), 60)
        settings = hook.settings
        watcher = get_watcher(settings.rpc_url, settings.network.protocol_address, lambda: None)
        return events, dict(watcher.rpc_calls)

    events, calls = asyncio.run(wait_all())
    assert sorted(e["order_id"] for e in events) == sorted(orders)
    assert all(e["status"] == "completed" for e in events)
    assert calls["eth_getLogs"] <= calls["eth_blockNumber"] <= 200
    ledger.assert_paid_once(tasks=10, price=10)


def test_openlineage_facets_name_the_sealed_input_and_result_and_the_chain(agent, devnet_conn) -> None:
    """With the OpenLineage provider installed: ipfs:// datasets in and out, the chain as a run facet."""
    ledger = Ledger()
    context = make_context()
    operator = EthernityRunTaskOperator(task_id="lineage", code=SUM, input_data=[1, 2], resources={"taskPrice": 2})
    assert operator.execute(context) == 3
    lineage = operator.get_openlineage_facets_on_complete(None)
    xcoms = context["ti"].xcoms
    hook = EthernityHook()
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("ipfs", xcoms["result_cid"])]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("ipfs", hook.get_input_cid(xcoms["do_request_id"]))]
    assert lineage.inputs[0].name.startswith("baf")
    facet = lineage.run_facets["ethernity"]
    assert (facet.network, facet.chainId) == ("devnet", 31337)
    assert (facet.doRequestId, facet.orderId, facet.requestTx) == (
        xcoms["do_request_id"],
        xcoms["order_id"],
        xcoms["tx_hash"],
    )
    assert facet.resultCid == xcoms["result_cid"] and facet.taskCode == "SUCCESS"
    assert_no_secret(devnet_conn, facet.approvalTx, facet.requestTx)
    ledger.assert_paid_once(tasks=1, price=2)


def test_result_by_reference_and_into_storage_inputs_from_storage_and_ipfs(agent, devnet_conn, tmp_path) -> None:
    """Big or confidential data kept out of XCom and rendered fields: a reference a consumer resolves, a result
    written to an ObjectStoragePath (file://), inputs read from an ObjectStoragePath and from an ipfs:// CID."""
    upper = "___etny_result___(___etny_data_set___.upper())"
    source = tmp_path / "input.txt"
    source.write_text("read from storage")
    target = tmp_path / "out" / "result.txt"
    target.parent.mkdir()
    ledger = Ledger()

    by_ref = make_context()
    ref = EthernityRunTaskOperator(task_id="ref", code=upper, input_path=f"file://{source}", result_mode="reference")
    reference = ref.execute(by_ref)
    assert set(reference) == {"ethernity_conn_id", "order_id", "do_request_id", "result_cid", "challenge_salt"}
    assert "READ FROM STORAGE" not in json.dumps(by_ref["ti"].xcoms)
    assert EthernityHook().fetch_result(reference).value == "READ FROM STORAGE"
    consumer_copy = tmp_path / "consumer" / "result.txt"
    stored = EthernityHook().write_result(reference, f"file://{consumer_copy}")  # streamed, verified first
    assert consumer_copy.read_text() == "READ FROM STORAGE"
    assert stored.success and stored.size == len("READ FROM STORAGE") and stored.location.endswith("result.txt")

    with EthernityHook().get_ipfs_client() as ipfs:
        cid = ipfs.add_bytes(b"read from ipfs", opts={"cid-version": 1, "raw-leaves": True})
    to_file = make_context()
    op = EthernityRunTaskOperator(task_id="file", code=upper, input_path=f"ipfs://{cid}",
                                  result_path=f"file://{target}")  # fmt: skip
    returned = op.execute(to_file)
    assert target.read_text() == "READ FROM IPFS"
    assert returned["path"].endswith("result.txt") and returned["result_cid"].startswith("baf")
    assert "READ FROM IPFS" not in json.dumps(to_file["ti"].xcoms)

    with pytest.raises(FileNotFoundError, match="input_path="):
        EthernityRunTaskOperator(task_id="missing", code=upper, input_path=f"file://{tmp_path}/nope").execute(
            make_context()
        )
    ledger.assert_paid_once(tasks=2, price=10)  # the missing input was refused before any transaction


UPPER = "___etny_result___(___etny_data_set___.upper())"


def _defer_with_input(tmp_path: Path) -> tuple[Path, dict, Any, dict]:
    """A deferrable task with ``input_path`` submitted and deferred; returns its input file, context, deferral
    and the trigger's event (fired here, as the triggerer would)."""
    source = tmp_path / "input.txt"
    source.write_text("staged once")
    context = make_context(store=FileStateStore(tmp_path / "state.json"))
    operator = EthernityRunTaskOperator(task_id="in", code=UPPER, input_path=f"file://{source}", deferrable=True,
                                        poll_interval=0.2)  # fmt: skip
    deferred = expect_deferral(lambda: operator.execute(context))
    return source, context, deferred, asyncio.run(asyncio.wait_for(fire(deferred.trigger), 120))


def test_a_resumed_task_collects_its_result_after_its_input_file_was_removed(agent, devnet_conn, tmp_path) -> None:
    """The input is staged only to submit: a try resumed in a new worker reads the result without reading the
    input again (seen: every resume re-read input_path, and failed if the file was gone though the task was paid)."""
    ledger = Ledger()
    source, context, deferred, event = _defer_with_input(tmp_path)
    source.unlink()
    resumed = EthernityRunTaskOperator(task_id="in", code=UPPER, input_path=f"file://{source}", deferrable=True)
    assert resume(resumed, context, deferred, event) == "STAGED ONCE"
    ledger.assert_paid_once(tasks=1, price=10)


def test_a_resumed_task_stages_its_input_again_only_to_resubmit(agent, devnet_conn, tmp_path) -> None:
    """An operator fault found by the resumed try resubmits with the input read again; with the input gone, the
    resubmission fails naming input_path before any transaction."""
    agent.set_agent(fault_codes=[37, 39])
    ledger = Ledger()
    source, context, deferred, event = _defer_with_input(tmp_path)
    again = EthernityRunTaskOperator(task_id="in", code=UPPER, input_path=f"file://{source}", deferrable=True,
                                     poll_interval=0.2, max_resubmits=2)  # fmt: skip
    redeferred = expect_deferral(lambda: resume(again, context, deferred, event))  # resubmitted, deferred again
    assert ledger.requests_placed() == 2  # the faulted request, then its resubmission (escrowed)
    source.unlink()
    event = asyncio.run(asyncio.wait_for(fire(redeferred.trigger), 120))
    last = EthernityRunTaskOperator(task_id="in", code=UPPER, input_path=f"file://{source}", deferrable=True,
                                    max_resubmits=2)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="input_path="):
        resume(last, context, redeferred, event)
    ledger.assert_paid(requests=2, tokens=2 * 10)
