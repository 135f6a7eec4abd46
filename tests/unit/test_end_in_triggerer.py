"""The operator's task ending in the triggerer (``end_from_trigger``): which tasks may, what the trigger pushes, and
what resumes in a worker instead."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from unittest.mock import AsyncMock

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import OperatorFaultError, ResultNotReadyError
from airflow_provider_ethernity.protocol.events import OrderStatus
from airflow_provider_ethernity.triggers import ending
from airflow_provider_ethernity.triggers.ending import MAX_RESULT_BYTES, resolve_end_from_trigger
from tests.airflow_context import RecordingTI, make_context
from tests.unit.fakes import DictState, FakeClient, hooks_on, task_result
from tests.unit.operators.test_ethernity_operator import ORDER_LINK, make_operator
from tests.unit.triggers.test_ethernity_trigger import FakeWatcher, task_trigger

SALT = "cd" * 16


@pytest.fixture
def chain(mocker) -> FakeClient:
    """Order 1 of request 7 placed and (once the fake watcher says so) closed; the trigger's hooks use this client."""
    client = FakeClient()
    for _ in range(7):
        client.add_request()
    client.place_order(7, OrderStatus.CLOSED)  # order 1

    mocker.patch.object(EthernityHook, "afor_connection", AsyncMock(side_effect=hooks_on(client)))
    mocker.patch.object(EthernityHook, "aget_watcher", AsyncMock(return_value=FakeWatcher(placed=1, closed=42)))
    mocker.patch.object(EthernityHook, "approve_order", return_value="0xapproval")
    return client


@pytest.fixture
def pushed(mocker) -> dict:
    """XComs pushed through the task SDK (the triggerer's channel to the execution API), by key."""
    from airflow.sdk.execution_time.xcom import XCom

    xcoms: dict = {}

    async def aset(key, value, **where):
        assert where == {"dag_id": "d", "task_id": "squares", "run_id": "r", "map_index": 3}
        xcoms[key] = value

    mocker.patch.object(XCom, "aset", AsyncMock(side_effect=aset))
    return xcoms


def ending_trigger(**kwargs):
    trigger = task_trigger(end_from_trigger=True, challenge_salt=SALT, request_tx="0xrequest", **kwargs)
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="squares", run_id="r", map_index=3)
    return trigger


async def only_event(trigger):
    [event] = [event async for event in trigger.run()]
    return event


# ------------------------------------------------------------------ the trigger
async def test_a_verified_result_ends_the_task_with_the_operators_xcoms(chain: FakeClient, pushed, mocker) -> None:
    reads = mocker.spy(EthernityHook, "get_result")
    event = await only_event(ending_trigger())
    # pushed as a worker pushes them, not as the event's xcoms (Airflow 3.3.2 stores those encoded twice)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is None
    assert pushed == {
        "return_value": "result-of-1",
        "order_id": 1,
        ORDER_LINK: "https://explorer.test/tx/0xapproval",
        "result_cid": "bafyresult1",
        "task_code_name": "SUCCESS",
    }
    assert chain.result_calls == [(1, f"challenge-of-{SALT}")]  # the challenge is derived here, never a kwarg
    assert reads.call_args.kwargs["max_result_bytes"] == MAX_RESULT_BYTES


async def test_an_approved_order_ends_the_task_without_waiting(chain: FakeClient, pushed) -> None:
    event = await only_event(ending_trigger(wait_for_completion=False))
    assert isinstance(event, TaskSuccessEvent) and chain.result_calls == []
    assert pushed["return_value"] == {"order_id": 1, "do_request_id": 7} and pushed["order_id"] == 1


async def test_a_pinned_order_links_to_its_request(chain: FakeClient, pushed) -> None:
    await only_event(ending_trigger(approve=False))
    assert pushed[ORDER_LINK] == "https://explorer.test/tx/0xrequest"


async def test_xcoms_that_cannot_be_pushed_resume_the_task_in_a_worker(chain: FakeClient, mocker) -> None:
    """Outside a triggerer (no task SDK channel) or when the execution API refuses: the worker finishes."""
    from airflow.sdk.execution_time.xcom import XCom

    mocker.patch.object(XCom, "aset", AsyncMock(side_effect=RuntimeError("no SUPERVISOR_COMMS")))
    event = await only_event(ending_trigger())
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "completed"


@pytest.mark.parametrize(
    "outcome",
    [
        task_result(1, "Traceback: boom", code=1, name="TASK_ERROR"),  # the worker fails it with code and text
        replace(task_result(1), value={1, 2}),  # not JSON: the worker's XCom backend may take it
        OperatorFaultError("order 1: the result's signer is not the enclave"),  # the worker resubmits
        ResultNotReadyError("order 1 is not CLOSED"),  # a reorged close: the worker waits again
    ],
    ids=["task-error", "not-json", "operator-fault", "not-ready"],
)
async def test_anything_but_a_plain_success_resumes_in_a_worker(chain: FakeClient, pushed, outcome) -> None:
    chain.results[1] = [outcome]
    event = await only_event(ending_trigger())
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "completed" and event.payload["order_id"] == 1
    assert event.payload["approval_tx"] == "0xapproval"  # the worker records the approval from the event
    assert pushed == {}


async def test_a_none_result_pushes_no_return_value(chain: FakeClient, pushed) -> None:
    """As a worker: a task returning None leaves no ``return_value`` row (a mapped reader would count it)."""
    chain.results[1] = [task_result(1, None)]
    event = await only_event(ending_trigger())
    assert isinstance(event, TaskSuccessEvent) and "return_value" not in pushed and pushed["order_id"] == 1


async def test_a_result_not_read_within_the_budget_is_left_to_a_worker(chain: FakeClient, pushed, mocker) -> None:
    """A stalled IPFS holds one of the triggerer's own read threads, never the task: it resumes in a worker."""
    import threading

    release = threading.Event()
    mocker.patch.object(ending, "READ_BUDGET_SECONDS", 0.2)
    mocker.patch.object(EthernityHook, "get_result", side_effect=lambda *a, **k: release.wait(30))
    try:
        event = await only_event(ending_trigger())
    finally:
        release.set()
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "completed" and pushed == {}


async def test_without_a_task_instance_nothing_is_read_in_the_trigger(chain: FakeClient, pushed) -> None:
    """``airflow dags test`` runs triggers inline with no task instance: the worker fetches the result."""
    trigger = ending_trigger()
    trigger.task_instance = None
    event = await only_event(trigger)
    assert event.payload["status"] == "completed" and chain.result_calls == [] and pushed == {}


async def test_the_timeout_is_still_a_worker_event(chain: FakeClient, mocker) -> None:
    mocker.patch.object(EthernityHook, "aget_watcher", AsyncMock(return_value=FakeWatcher(placed=1)))
    event = await only_event(ending_trigger(completion_timeout=0.01))
    assert event.payload["status"] == "timeout" and chain.result_calls == []


# ------------------------------------------------------------------ when a task may end there
def test_end_from_trigger_resolves_to_what_loses_nothing(mocker) -> None:
    manager = mocker.patch("airflow.listeners.listener.get_listener_manager")
    manager.return_value.has_listeners = False
    assert resolve_end_from_trigger(None) is True
    assert resolve_end_from_trigger(False) is False
    manager.return_value.has_listeners = True  # listeners would not hear of a task ending in the triggerer
    assert resolve_end_from_trigger(None) is False
    assert resolve_end_from_trigger(True) is True  # asked for: Airflow itself refuses such a DAG, with its reason


def test_a_custom_xcom_backend_keeps_the_end_in_a_worker(mocker, monkeypatch) -> None:
    mocker.patch("airflow.listeners.listener.get_listener_manager").return_value.has_listeners = False
    monkeypatch.setenv("AIRFLOW__CORE__XCOM_BACKEND", "my_company.xcom.S3XComBackend")
    assert resolve_end_from_trigger(None) is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"end_from_trigger": False},
        {"result_path": "file:///tmp/result.json"},
        {"result_mode": "reference"},
        {"outlets": [AssetAlias("ethernity-results")]},
        {"do_xcom_push": False},
        {"dag": None},  # no DAG to tell whether a downstream task maps over the value
    ],
    ids=["off", "result-path", "reference", "outlets", "no-xcom", "no-dag"],
)
def test_what_a_worker_must_finish_does_not_end_in_the_triggerer(kwargs) -> None:
    client = FakeClient()
    op = make_operator(client, deferrable=True, **kwargs)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context(DictState(), RecordingTI()))
    trigger_kwargs = deferred.value.trigger.serialize()[1]
    assert trigger_kwargs["end_from_trigger"] is False
    assert trigger_kwargs["challenge_salt"] is None and trigger_kwargs["request_tx"] is None


def test_airflow_reads_the_resolved_attribute(mocker) -> None:
    """Airflow's DAG bag refuses a task whose ``end_from_trigger`` is True while listeners are registered: the
    default resolves to False there, so the DAG loads."""
    manager = mocker.patch("airflow.listeners.listener.get_listener_manager")
    manager.return_value.has_listeners = True
    op = make_operator(FakeClient(), deferrable=True)
    assert getattr(op, "end_from_trigger", False) is False
    manager.return_value.has_listeners = False
    assert op.end_from_trigger is True


def test_brief_is_shared_by_both_triggers() -> None:
    assert ending.brief(ValueError("x")) == "ValueError: x"
